import json

import numpy as np
import pytest

from harness.canary import MetricSample, judge
from harness.errors import DataError, InputMissingError
from harness.report import build_decision, load_decision, render_markdown, write_decision


def _verdict():
    rng = np.random.default_rng(0)
    lat = rng.lognormal(np.log(0.08), 0.3, 300)
    q = rng.normal(6, 1, 300)
    s = {"latency": MetricSample(lat, lat * 3), "quality": MetricSample(q, q),
         "error_rate": MetricSample(np.zeros(300), np.zeros(300))}
    return judge(s)


def test_round_trip_and_markdown(tmp_path):
    v = _verdict()
    inputs = {"targets": {"baseline": {"url": "http://127.0.0.1:1", "model_version": "tiny-a"},
                          "canary": {"url": "http://127.0.0.1:2", "model_version": "tiny-b"}},
              "scenario": "steady", "dataset": "shapes:200"}
    slos = [{"target": "canary", "name": "latency-p95", "objective": 0.99, "sli": 0.9712, "budget_remaining": -1.88,
             "projected_burn_rate": 2.88, "would_page": False}]
    rec = build_decision(v.to_dict(), slos, inputs, run_id="r1", clock=lambda: 1000.0)
    path = write_decision(tmp_path, rec)
    back = load_decision(tmp_path)
    assert back == json.loads(path.read_text())
    assert back["verdict"] == "ROLLBACK" and back["created_unix"] == 1000.0
    md = render_markdown(back)
    assert md.startswith("## Canary decision: ⛔ ROLLBACK (score")
    assert "| latency | latency |" in md and "**HIGH**" in md
    assert "`tiny-b`" in md and "latency-p95" in md
    for r in back["reasons"]:
        assert f"- {r}" in md


def test_load_errors(tmp_path):
    with pytest.raises(InputMissingError, match="decision record not found"):
        load_decision(tmp_path)
    (tmp_path / "decision.json").write_text("{")
    with pytest.raises(DataError, match="malformed JSON"):
        load_decision(tmp_path)
    (tmp_path / "decision.json").write_text(json.dumps({"verdict": "MAYBE", "score": 1, "reasons": [],
                                                        "metrics": [], "slos": [], "inputs": {}}))
    with pytest.raises(DataError, match="'MAYBE' is not PROMOTE, HOLD or ROLLBACK"):
        load_decision(tmp_path)
    (tmp_path / "decision.json").write_text(json.dumps({"verdict": "HOLD"}))
    with pytest.raises(DataError, match="lacks score, reasons, metrics, slos, inputs"):
        load_decision(tmp_path)
