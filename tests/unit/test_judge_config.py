import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.canary import JudgeConfig
from harness.canary.config import load_judge_config, parse_judge_config
from harness.errors import DataError, InputMissingError

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "judge.yaml"


def test_the_example_is_exactly_the_defaults():
    assert load_judge_config(EXAMPLE) == JudgeConfig()


def test_overrides_change_only_what_they_name():
    cfg = parse_judge_config(
        {
            "pass_threshold": 95,
            "groups": {"latency": 50, "availability": 20, "quality": 25, "safety": 5, "slo": 0},
            "metrics": {
                "latency_p95": {"critical": True, "tolerance": 0.1, "must_detect": None},
                "quality": {"delta": 0.5},
            },
        }
    )
    assert cfg.pass_threshold == 95 and cfg.marginal_threshold == 75
    lat = cfg.metric("latency_p95")
    assert lat.critical and lat.tolerance == 0.1 and lat.tolerance_abs == 0.01 and lat.must_detect is None
    assert lat.test == "tail" and lat.quantile == 0.95 and lat.observe is not None
    assert cfg.metric("quality").delta == 0.5 and cfg.metric("quality").test == "sign"
    assert cfg.metric("error_rate") == JudgeConfig().metric("error_rate")
    assert cfg.group_weights["latency"] == 50.0


@pytest.mark.parametrize(
    "doc,msg",
    [
        ({"pass": 90}, "pass: unknown field"),
        ({"pass_threshold": 120}, "pass_threshold: must be at most 100.0 \\(got 120\\)"),
        ({"pass_threshold": 70}, "marginal_threshold: must not exceed pass_threshold"),
        ({"pass_threshold": float("nan")}, "pass_threshold: must be a finite number"),
        ({"metrics": {"latncy": {}}}, "metrics.latncy: unknown metric"),
        ({"metrics": ["latency_p50"]}, "metrics: must be a mapping \\(got list\\)"),
        ({"metrics": {"latency_p50": 3}}, "metrics.latency_p50: must be a mapping"),
        ({"metrics": {"latency_p50": {"direction": "up"}}}, "metrics.latency_p50.direction: must be one of increase"),
        ({"metrics": {"latency_p50": {"critical": "yes"}}}, "metrics.latency_p50.critical: must be true or false"),
        ({"metrics": {"latency_p50": {"group": "speed"}}}, "metrics.latency_p50.group: unknown group 'speed'"),
        ({"metrics": {"latency_p50": {"tolerance": float("inf")}}}, "metrics.latency_p50.tolerance: must be a finite"),
        ({"metrics": {"latency_p50": {"unit": 3}}}, "metrics.latency_p50.unit: must be a string \\(got 3\\)"),
        ({"groups": {"latency": 1}}, "groups: no weight for availability, quality, safety, slo"),
        ({"groups": {"latency": 30, "availability": 20, "quality": 25, "safety": 10}}, "groups: no weight for slo"),
        (
            {"groups": {"latency": 30, "availability": 20, "quality": 25, "safety": 10, "slo": 15, "cost": 5}},
            "groups.cost: no metric belongs to this group",
        ),
        (
            {"groups": {"latency": 0, "availability": 0, "quality": 0, "safety": 0, "slo": 0}},
            "groups: at least one group needs a weight above 0",
        ),
        ({"groups": [1, 2]}, "groups: must be a mapping \\(got list\\)"),
        ({"confidence": "high"}, "confidence: must be a number"),
        ([1, 2], "the judge config must be a mapping"),
    ],
)
def test_bad_fields_are_named(doc, msg):
    with pytest.raises(DataError, match=msg):
        parse_judge_config(doc, "judge.yaml")


def test_files(tmp_path):
    with pytest.raises(InputMissingError, match="judge config not found"):
        load_judge_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: [1,\n")
    with pytest.raises(DataError, match="bad.yaml: not valid YAML at line 2"):
        load_judge_config(bad)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("pass_threshold: 90 # caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin.yaml: the judge config is not UTF-8 text"):
        load_judge_config(latin)
    with pytest.raises(DataError, match="must be a file"):
        load_judge_config(tmp_path)


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from(["increase", "decrease", "latency", "quality"]),
)
_keys = st.sampled_from(
    [
        "pass_threshold",
        "marginal_threshold",
        "confidence",
        "min_samples",
        "seed",
        "groups",
        "metrics",
        "latency_p50",
        "quality",
        "error_rate",
        "latency",
        "slo",
        "tolerance",
        "critical",
        "direction",
        "group",
        "must_detect",
        "delta",
        "x",
    ]
)
_docs = st.recursive(
    _leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_docs)
def test_any_shape_is_used_or_refused_with_its_path(doc):
    try:
        cfg = parse_judge_config(doc, "judge.yaml")
    except DataError as exc:
        msg = str(exc)
        assert msg.startswith("judge.yaml: ") and "\n" not in msg
        return
    assert isinstance(cfg, JudgeConfig)
    for m in cfg.metrics:
        assert m.group in cfg.group_weights
        assert all(math.isfinite(v) for v in (m.tolerance, m.tolerance_abs, m.delta))


def test_all_weights_zero_is_refused_by_the_gate_in_one_line(tmp_path, capsys):
    """A judge with nothing to weigh would score nothing and HOLD: refused before any work (65)."""
    from harness.cli import main

    zero = tmp_path / "zero.yaml"
    zero.write_text("groups: {latency: 0, availability: 0, quality: 0, safety: 0, slo: 0}\n")
    out = tmp_path / "out"
    closed = "http://127.0.0.1:9"
    code = main(["gate", "--baseline", closed, "--canary", closed, "--judge-config", str(zero), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 65
    assert err == f"harness gate: error: {zero}: groups: at least one group needs a weight above 0\n"
    assert not out.exists()
