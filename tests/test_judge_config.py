from pathlib import Path

import pytest

from harness.canary import JudgeConfig
from harness.canary.config import load_judge_config, parse_judge_config
from harness.errors import DataError, InputMissingError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "judge.yaml"


def test_the_example_is_exactly_the_defaults():
    assert load_judge_config(EXAMPLE) == JudgeConfig()


def test_overrides_change_only_what_they_name():
    cfg = parse_judge_config({"pass_threshold": 95, "groups": {"latency": 50, "availability": 20, "quality": 25,
                                                               "safety": 5, "slo": 0},
                              "metrics": {"latency": {"critical": True, "tolerance": 0.1}}})
    assert cfg.pass_threshold == 95 and cfg.marginal_threshold == 75
    lat = cfg.metric("latency")
    assert lat.critical and lat.tolerance == 0.1 and lat.tolerance_abs == 0.005
    assert cfg.metric("quality") == JudgeConfig().metric("quality")
    assert cfg.group_weights["latency"] == 50.0


@pytest.mark.parametrize("doc,msg", [
    ({"pass": 90}, "pass: unknown field"),
    ({"pass_threshold": 120}, "pass_threshold: must be between 0 and 100"),
    ({"pass_threshold": 70}, "marginal_threshold: must not exceed pass_threshold"),
    ({"metrics": {"latncy": {}}}, "metrics.latncy: unknown metric"),
    ({"metrics": {"latency": {"direction": "up"}}}, "metrics.latency.direction: must be one of increase"),
    ({"metrics": {"latency": {"critical": "yes"}}}, "metrics.latency.critical: must be true or false"),
    ({"metrics": {"latency": {"group": "speed"}}}, "metrics.latency.group: unknown group 'speed'"),
    ({"groups": {"latency": 1}}, "groups: no weight for availability, quality, safety"),
    ({"confidence": "high"}, "confidence: must be a number"),
])
def test_bad_fields_are_named(doc, msg):
    with pytest.raises(DataError, match=msg):
        parse_judge_config(doc, "judge.yaml")


def test_files(tmp_path):
    with pytest.raises(InputMissingError, match="judge config not found"):
        load_judge_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups: [1,\n")
    with pytest.raises(DataError, match="bad.yaml: malformed YAML"):
        load_judge_config(bad)
