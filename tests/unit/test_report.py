"""The decision record: built through the typed model, written, read back and validated; its JSON
Schema and README section generated from the model; summary.md with target text made inert."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factories import decision_parts, slo_records, typed_inputs
from harness.canary import MetricResult, MetricSample, judge
from harness.errors import DataError, InputMissingError
from harness.report import DecisionParts, build_decision, load_decision, render_markdown, write_decision
from harness.report.markdown import code_span, inline_text
from harness.report.model import DecisionRecord, Inputs, MetricRecord, TargetFigures
from harness.report.schema import BEGIN, END, SCHEMA_NAME, json_schema, readme_section, schema_text, with_section
from markup import markdown_html

ROOT = Path(__file__).resolve().parents[2]


def _observations(rng, slow: float = 1.0, n: int = 400, images: int = 200) -> dict:
    """One target's observations for every default metric (latency scaled by ``slow``)."""
    ids = [f"img{i}" for i in range(images)]
    lat = rng.lognormal(np.log(0.08), 0.3, n) * slow
    zeros = np.zeros(n)
    conf = pd.Series(np.clip(rng.normal(0.97, 0.02, images), 0, 1), index=ids)
    return {
        "latency_p50": lat,
        "latency_p95": lat,
        "latency_p99": lat,
        "error_rate": zeros,
        "timeout_rate": zeros,
        "unusable_rate": zeros,
        "blank_rate": zeros,
        "quality": pd.Series(np.clip(rng.normal(6.0, 1.0, images), 0, 10), index=ids),
        "confidence": conf,
        "calibration": (conf - 1.0) ** 2,
        "caption_length": pd.Series(rng.integers(4, 14, images).astype(float), index=ids),
        "degenerate_rate": zeros,
        "caption_changed": pd.Series(["a caption"] * images, index=ids),
        "pii_rate": zeros,
        "safety_flag_rate": zeros,
        "goodput": (lat < 0.3).astype(float),
    }


def _verdict():
    """The canary is three times slower: every latency metric High, ROLLBACK with score 60."""
    base = _observations(np.random.default_rng(0))
    lat = base["latency_p50"] * 3
    can = dict(base, latency_p50=lat, latency_p95=lat, latency_p99=lat)
    return judge({k: MetricSample(base[k], can[k]) for k in base})


INPUTS = {
    "targets": {
        "baseline": {
            "url": "http://127.0.0.1:1",
            "model_version": "tiny-a",
            "model": "tiny",
            "device": "cpu",
            "batching": {"max_batch": 8, "max_wait_ms": 5},
        },
        "canary": {"url": "http://127.0.0.1:2", "model_version": "tiny-b"},
    },
    "scenario": "steady",
    "load": {"users": 4, "rate": None, "duration_s": 20.0, "seed": 0},
    "duration_s": 20.0,
    "dataset": "shapes:200",
    "spec": "examples/slo.yaml",
    "faults": {},
    "latency_threshold_s": 0.5,
    "quality_floor": 0.5,
    "traffic_rps": 10.0,
}
SLOS = [
    {
        "target": "canary",
        "name": "latency-p95",
        "kind": "latency",
        "objective": 0.99,
        "sli": 0.9712,
        "good": 971,
        "total": 1000,
        "budget_remaining": -1.88,
        "projected_burn_rate": 2.88,
        "burn_low": 2.1,
        "page_factor": 6.0,
        "would_page": False,
        "would_ticket": True,
        "alerts": [
            {
                "severity": "page",
                "factor": 14.4,
                "long": "1h",
                "short": "5m",
                "burn_rate": 2.88,
                "burn_low": 2.1,
                "burn_high": 3.9,
                "budget_consumed": 0.004,
                "decision": "silent",
            }
        ],
    }
]


def _extra(caption: str = "a red circle", version: str = "tiny-b") -> dict:
    return {
        "figures": {
            "baseline": {
                "requests": 400,
                "p95_s": 0.13,
                "cider_d": 1.0,
                "cider_d_ci": {"low": 0.9, "high": 1.1, "level": 0.95, "n_resamples": 500, "seed": 0},
                "queue_depth_max": 3,
            },
            "canary": {"requests": 400, "p95_s": 0.39},
        },
        "worst_captions": [
            {
                "target": "canary",
                "image_id": "7",
                "image_path": "dataset/images/000007.png",
                "caption": caption,
                "references": ["a red circle"],
                "cider_d": 0.1,
                "confidence": 0.4,
            }
        ],
        "contracts": {
            "records": {
                "success": True,
                "n_records": 800,
                "results": [
                    {
                        "rule": "status",
                        "expectation": "expect_column_values_to_be_in_set",
                        "success": True,
                        "unexpected": 0,
                        "checked": 800,
                        "observed": None,
                        "error": None,
                    }
                ],
            }
        },
        "findings": [
            {
                "target": "canary",
                "check": "pii",
                "count": 2,
                "answers": 400,
                "examples": [
                    {"request_id": "canary-1", "image_id": "3", "caption": caption, "match": "me@evil.example"},
                    {"request_id": "canary-2", "image_id": "4", "caption": f"{version} says hi", "match": None},
                ],
            }
        ],
        "drift": {
            "drifted": False,
            "detectors": [
                {
                    "name": "confidence_ks",
                    "method": "ks",
                    "statistic": 0.05,
                    "p_value": 0.6,
                    "threshold": None,
                    "drift": False,
                }
            ],
        },
        "artifacts": {
            "dataset": "/data/shapes",
            "summary_md": "summary.md",
            "records": "records.parquet",
            "quality": "quality.json",
            "drift": "drift.json",
            "drift_html": "drift.html",
        },
    }


def _record(extra: dict | None = None, **kw) -> DecisionRecord:
    extra = _extra(**kw) if extra is None else extra
    return build_decision(
        _verdict(), slo_records(SLOS), typed_inputs(INPUTS), "r1", decision_parts(**extra), clock=lambda: 1000.0
    )


def _json(rec: DecisionRecord) -> dict:
    """The record as ``write_decision`` writes it."""
    return rec.model_dump(mode="json", by_alias=True)


def test_round_trip_and_markdown(tmp_path):
    rec = _record()
    path = write_decision(tmp_path, rec)
    back = load_decision(tmp_path)
    assert back == rec and json.loads(path.read_text()) == _json(rec)
    assert back.schema_version == 2 and back.verdict == "ROLLBACK" and back.created_unix == 1000.0
    assert back.artifacts.dataset == "/data/shapes" and back.artifacts.summary_md == "summary.md"
    assert _json(back)["thresholds"] == {"pass": 90.0, "marginal": 75.0, "confidence": 0.98}
    assert back.figures["baseline"].model_extra == {"queue_depth_max": 3}  # figures are open
    md = render_markdown(back)
    assert md == render_markdown(rec)
    assert md.startswith("## Canary decision: ⛔ ROLLBACK (score 60)")
    assert "| latency_p95 | latency |" in md and "**HIGH**" in md and "| info |" in md
    assert "| model version | `tiny-a` | `tiny-b` |" in md and "latency-p95" in md
    for r in back.reasons:
        assert f"- {inline_text(r, 500)}" in md


def test_pipeline_figures_of_an_asynchronous_load_are_shown():
    assert "Pipeline" not in render_markdown(_record())  # a synchronous load has none
    extra = _extra()
    extra["figures"]["baseline"].update(lag_p50_s=0.25, lag_p95_s=0.5, lag_p99_s=0.75, drain_s=12.5, missing_captions=0)
    extra["figures"]["canary"].update(lag_p50_s=2.0, lag_p95_s=None, lag_p99_s="x", drain_s=30.0, missing_captions=7)
    md = render_markdown(_record(extra))
    assert (
        "### Pipeline (asynchronous jobs)\n\n| figure | baseline | canary |\n| --- | --- | --- |\n"
        "| P50 pipeline lag | 250.0 ms | 2000.0 ms |\n| P95 pipeline lag | 500.0 ms | – |\n"
        "| P99 pipeline lag | 750.0 ms | – |\n| drain time | 12.5 s | 30.0 s |\n"
        "| missing captions | 0 | 7 |\n"
    ) in md


def test_power_is_derived_from_the_metrics():
    rec = _record()
    by_name = {m.name: m for m in rec.metrics}
    assert [p.metric for p in rec.power] == [m.name for m in rec.metrics if m.detectable is not None]
    for p in rec.power:
        m = by_name[p.metric]
        assert p.model_dump() == {
            "metric": m.name,
            "detectable": m.detectable,
            "mde": m.mde,
            "must_detect": m.must_detect,
            "adequate": m.adequate,
        }
    assert {p.metric for p in rec.power if p.must_detect is not None} == {
        "latency_p95",
        "error_rate",
        "quality",
    }
    md = render_markdown(rec)
    q = next(p for p in rec.power if p.metric == "quality")
    assert "### What this run could detect" in md
    assert f"| quality | {inline_text(q.detectable)} |" in md and "| 250 ms | yes |" in md
    # A record whose power statement disagrees with its metrics is refused.
    doc = _json(rec)
    bad = dict(doc, power=doc["power"][1:])
    with pytest.raises(ValueError, match="power does not match"):
        DecisionRecord.model_validate(bad)


def test_metric_record_mirrors_metric_result():
    assert list(MetricRecord.model_fields) == [f.name for f in dataclasses.fields(MetricResult)]


def test_build_refuses_what_does_not_fit():
    v, slos, inputs = _verdict(), slo_records(SLOS), typed_inputs(INPUTS)
    with pytest.raises(TypeError, match="takes the judge's Verdict, not a mapping"):
        build_decision(v.to_dict(), slos, inputs, "r1")
    # Every other part is its model, made where its values were: plain values are refused.
    with pytest.raises(TypeError, match=r"^inputs takes Inputs \(harness.report.model\), not dict$"):
        build_decision(v, slos, INPUTS, "r1")
    with pytest.raises(TypeError, match="^slos takes SloRecord"):
        build_decision(v, SLOS, inputs, "r1")
    with pytest.raises(TypeError, match="^parts takes DecisionParts"):
        build_decision(v, slos, inputs, "r1", {"figures": {}})
    with pytest.raises(TypeError, match="^figures takes TargetFigures"):
        DecisionParts(figures={"canary": {"p95_s": 0.1}})
    with pytest.raises(TypeError, match="^drift takes Drift"):
        DecisionParts(drift={"drifted": False})
    broken = dataclasses.replace(v, metrics=(dataclasses.replace(v.metrics[0], classification="Maybe"), *v.metrics[1:]))
    with pytest.raises(ValueError, match=r"^decision record: metrics\[0\]\.classification: Input should be"):
        build_decision(broken, slos, inputs, "r1")
    with pytest.raises(ValueError, match=r"^decision record: figures\.prod: Input should be 'baseline' or 'canary'"):
        build_decision(v, slos, inputs, "r1", DecisionParts(figures={"prod": TargetFigures()}))


def test_numpy_values_and_odd_target_answers_become_plain_json(tmp_path):
    targets = {
        "baseline": {"url": "http://a", "model_version": 3, "model": {"name": "x"}, "batching": [1, 2]},
        "canary": {"url": "http://b", "device": None},
    }
    inputs = dict(
        INPUTS, duration_s=np.float32(20.0), load={"users": np.int64(4), "seed": np.int64(0)}, targets=targets
    )
    slos = [dict(SLOS[0], good=np.int64(971), would_page=np.bool_(False), budget_remaining=np.float64("nan"))]
    extra = _extra()
    extra["worst_captions"][0]["confidence"] = float("nan")
    # Numpy values and NaN are made plain where each model is built (here by the factories).
    parts = decision_parts(**extra)
    rec = build_decision(_verdict(), slo_records(slos), typed_inputs(inputs), "r1", parts, clock=lambda: 1.0)
    assert rec.inputs.load.users == 4 and rec.slos[0].good == 971
    assert rec.slos[0].budget_remaining is None and rec.worst_captions[0].confidence is None
    assert _json(rec)["inputs"]["targets"]["baseline"] == {
        "url": "http://a",
        "protocol": None,
        "model_version": "3",
        "model": '{"name": "x"}',
        "device": None,
        "batching": [1, 2],
    }
    assert load_decision(write_decision(tmp_path, rec)) == rec


def test_load_errors(tmp_path):
    with pytest.raises(InputMissingError, match="decision record not found"):
        load_decision(tmp_path)
    path = tmp_path / "decision.json"
    path.write_text("{")
    with pytest.raises(DataError, match="malformed JSON"):
        load_decision(tmp_path)
    path.write_text(
        json.dumps({"verdict": "MAYBE", "score": 1, "reasons": [], "metrics": [], "slos": [], "inputs": {}})
    )
    with pytest.raises(DataError, match="'MAYBE' is not PROMOTE, HOLD or ROLLBACK"):
        load_decision(tmp_path)
    path.write_text(json.dumps({"verdict": "HOLD"}))
    with pytest.raises(DataError, match="lacks score, reasons, metrics, slos, inputs$"):
        load_decision(tmp_path)
    rec = _json(_record())
    rec["metrics"][2]["n_canary"] = "many"
    path.write_text(json.dumps(rec))
    with pytest.raises(DataError) as err:
        load_decision(tmp_path)
    assert str(err.value) == (
        f"{path}: decision record field metrics[2].n_canary: Input should be a valid integer, "
        "unable to parse string as an integer (got 'many')"
    )
    path.write_text(json.dumps(dict(_json(_record()), schema_version=3)))
    with pytest.raises(DataError, match="schema_version 3 is not one this harness reads"):
        load_decision(tmp_path)
    path.write_text(json.dumps(dict(_json(_record()), colour="red")))
    with pytest.raises(DataError, match=r"decision record field colour: Extra inputs are not permitted"):
        load_decision(tmp_path)
    path.write_text(json.dumps(dict(_json(_record()), thresholds=None)))
    assert load_decision(tmp_path).thresholds is None


# A record of the first schema, as the harness wrote it before the typed model: old metric names,
# no power figures, load as free text, fields schema 2 does not know.
V1 = {
    "schema_version": 1,
    "run_id": "old",
    "created_unix": 1_600_000_000.0,
    "verdict": "PROMOTE",
    "score": 100.0,
    "reasons": ["score 100 >= pass threshold 90"],
    "metrics": [
        {
            "name": "latency",
            "group": "latency",
            "classification": "Pass",
            "failed": False,
            "critical": False,
            "test": "mann_whitney_u",
            "baseline": 0.08,
            "canary": 0.081,
            "n_baseline": 200,
            "n_canary": 200,
            "p_value": 0.7,
            "effect": 0.001,
            "effect_low": -0.004,
            "effect_high": 0.006,
            "tolerance": 0.02,
            "direction": "increase",
            "unit": "s",
            "reason": "no significant difference",
        }
    ],
    "groups": [{"name": "latency", "weight": 30.0, "score": 100.0, "passed": 1, "failed": 0, "no_data": 0}],
    "thresholds": {"pass": 90.0, "marginal": 75.0, "confidence": 0.98},
    "slos": [
        {
            "target": "canary",
            "name": "availability",
            "objective": 0.99,
            "sli": 1.0,
            "budget_remaining": 1.0,
            "projected_burn_rate": 0.0,
            "would_page": False,
            "note": "dropped",
        }
    ],
    "inputs": {
        "targets": {
            "baseline": {"url": "http://a", "model_version": "v1"},
            "canary": {"url": "http://b", "model_version": "v1"},
        },
        "scenario": "steady",
        "load": "constant 4 users",
        "batching": {"max_batch": 8},
    },
    "figures": {"canary": {"p95_s": 0.1, "error_rate": 0.0}},
    "worst_captions": [{"target": "canary", "image_id": 3, "caption": "a circle", "references": []}],
    "comment": "dropped too",
}


def test_schema_1_records_load_leniently(tmp_path):
    folder = tmp_path / "run-old"
    folder.mkdir()
    (folder / "decision.json").write_text(json.dumps(V1))
    rec = load_decision(folder)
    assert rec.schema_version == 1 and rec.verdict == "PROMOTE" and rec.metrics[0].name == "latency"
    assert rec.power == [] and rec.findings == [] and rec.drift is None
    doc = _json(rec)
    assert "comment" not in doc and "note" not in doc["slos"][0] and "batching" not in doc["inputs"]
    assert rec.inputs.load == "constant 4 users" and rec.worst_captions[0].image_id == "3"
    assert "## Canary decision: ✅ PROMOTE (score 100)" in render_markdown(rec)
    # The smallest first-schema record: the six fields that schema required.
    bare = {"verdict": "HOLD", "score": None, "reasons": [], "metrics": [], "slos": [], "inputs": {}}
    (folder / "decision.json").write_text(json.dumps(bare))
    rec = load_decision(folder)
    assert rec.run_id == "run-old" and rec.created_unix == (folder / "decision.json").stat().st_mtime
    assert rec.groups == [] and rec.thresholds is None and rec.inputs.targets == {}
    render_markdown(rec)


def test_import_harness_report_does_not_import_pydantic():
    code = "import sys, harness, harness.report, harness.cli; print('pydantic' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- the JSON Schema and the README section --------------------------------------------------------
def test_committed_schema_and_readme_are_generated_from_the_model():
    assert (ROOT / "reports" / SCHEMA_NAME).read_text() == schema_text(), "run: python -m harness.report.schema"
    readme = (ROOT / "reports" / "README.md").read_text()
    assert readme_section() in readme and with_section(readme) == readme, "run: python -m harness.report.schema"


def test_schema_check_command(tmp_path):
    (tmp_path / "README.md").write_text("# reports/\n\nintro\n")
    cmd = [sys.executable, "-m", "harness.report.schema", "--reports", str(tmp_path)]
    assert subprocess.run(cmd + ["--check"], capture_output=True).returncode == 1
    assert subprocess.run(cmd, capture_output=True).returncode == 0
    assert subprocess.run(cmd + ["--check"], capture_output=True).returncode == 0
    readme = (tmp_path / "README.md").read_text()
    assert readme.startswith("# reports/\n\nintro\n\n" + BEGIN) and readme.endswith(END + "\n")
    assert with_section(readme) == readme


def test_every_field_is_described():
    schema = json_schema()
    models = {"DecisionRecord": schema, **schema["$defs"]}
    for name, m in models.items():
        assert m.get("description"), name
        for field, p in m["properties"].items():
            assert p.get("description") and "\n" not in p["description"], f"{name}.{field}"
    assert "pass" in schema["$defs"]["Thresholds"]["properties"]


def test_records_validate_against_the_schema(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads((ROOT / "reports" / SCHEMA_NAME).read_text()))
    rec = _json(_record())
    validator.validate(rec)
    validator.validate(_json(build_decision(_verdict(), [], Inputs(targets={}), "bare", clock=lambda: 0.0)))
    assert DecisionRecord.model_validate(rec).model_dump(mode="json", by_alias=True) == rec
    assert list(validator.iter_errors(dict(rec, verdict="MAYBE")))
    assert list(validator.iter_errors(dict(rec, surprise=1)))


# -- summary.md: target text stays inert -----------------------------------------------------------
HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "![t](http://x/t.png)",
    "[link](http://x)",
    "<a href='http://x' onclick='steal()'>click</a>",
    "see http://evil.example/x, www.evil.example and me@evil.example",
    "``` fenced ``` and ` a tick and `` two",
    "a | b | c",
    "line one\nline two\r\n# heading\n- item\n| --- | --- |\n<div onmouseover=x>",
    "**bold** _em_ ~~strike~~ $x^2$ :red[alarm] &lt;b&gt; \\",
    "\u202eevil\u202c",
    "x" * 100_000,
]


def test_hostile_target_text_stays_inert():
    pytest.importorskip("markdown_it")
    v = _verdict()
    hostile = tuple(f"canary target http://127.0.0.1:2 is unavailable: {h}" for h in HOSTILE)
    v = dataclasses.replace(v, reasons=hostile + v.reasons)
    inputs = {
        **INPUTS,
        "targets": {
            "baseline": {"url": HOSTILE[5], "model_version": HOSTILE[0], "model": HOSTILE[2]},
            "canary": {"url": HOSTILE[4], "model_version": HOSTILE[6], "model": HOSTILE[7]},
        },
    }
    extra = _extra()
    extra["findings"] = [
        {
            "target": "canary",
            "check": "blocklist",
            "count": len(HOSTILE),
            "answers": 400,
            "examples": [
                {"request_id": f"r{i}", "image_id": h[:40], "caption": h, "match": h} for i, h in enumerate(HOSTILE)
            ],
        },
        {
            "target": "baseline",
            "check": "pii",
            "count": 1,
            "answers": 400,
            "examples": [{"request_id": "r", "image_id": "1", "caption": HOSTILE[-1], "match": HOSTILE[8]}],
        },
    ]
    rec = build_decision(v, slo_records(SLOS), typed_inputs(inputs), "r1", decision_parts(**extra), clock=lambda: 0.0)
    md = render_markdown(rec)
    assert len(md) < 30_000  # the 100 kB caption is clipped
    html = markdown_html(md)
    assert not {"script", "img", "a", "div"} & set(html.tags)
    assert not [a for a in html.attrs if a[1].startswith("on") or a[1] in ("href", "src")]
    assert not {"h1", "h2", "h4", "del", "s", "em"} & set(html.tags[1:])  # one h2 title, then h3 sections only
    assert html.tags.count("h2") == 1
    text = "".join(html.text)
    assert "<script>alert(1)</script>" in text and "![t](http://x/t.png)" in text  # shown, as text
    assert "\u202e" not in md
    # Every table keeps its shape: targets, metrics, groups, power, SLOs.
    widths = [set(t) for t in html.tables]
    assert widths == [{3}, {8}, {3}, {5}, {7}]
    assert len(html.tables[0]) == 4  # header, url, model, model version
    assert len(html.tables[1]) == 1 + len(rec.metrics)
    # Findings: up to three examples per check and target.
    assert md.count("  - image ") == 3 + 1
    assert md.count("**canary · blocklist**") == 1


@pytest.mark.parametrize("text", HOSTILE)
def test_each_hostile_text_alone(text):
    pytest.importorskip("markdown_it")
    md = (
        f"- {inline_text(text)}\n- {code_span(text)}\n\n| a | b |\n| --- | --- |\n"
        f"| {inline_text(text)} | {code_span(text, cell=True)} |\n"
    )
    html = markdown_html(md)
    assert set(html.tags) <= {"ul", "li", "code", "table", "thead", "tbody", "tr", "th", "td"}
    assert not html.attrs
    assert [set(t) for t in html.tables] == [{2}] and len(html.tables[0]) == 2


def test_escaping_details():
    assert inline_text("error_rate") == "error_rate"  # intraword underscores cannot emphasise
    assert inline_text("_x_") == "\\_x\\_"
    assert inline_text("- a") == "\\- a" and inline_text("12. a") == "12\\. a" and inline_text("# a") == "\\# a"
    assert inline_text("a\n\nb\tc") == "a b c"
    assert inline_text(None) == "–" and code_span(None) == "–" and code_span("  ") == "–"
    assert code_span("a`b") == "``a`b``" and code_span("`") == "`` ` ``"
    assert code_span("a|b", cell=True) == "`a\\|b`" and code_span("a|b") == "`a|b`"
    assert inline_text("y" * 50, limit=10) == "y" * 9 + "…"
