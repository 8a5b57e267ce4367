"""The gate on a data set with segments, end to end: 200 shapes images, every tenth one low light
(``shapes:200:low_light@0.1``), both targets one reference server. The evaluation records name each
image's segment, the run's records give the load records theirs from the data set, ``quality.json``
holds each target's figures per segment, the judge tests the paired metrics per segment (an
unchanged canary passes every one) and the spec's low-light SLO counts the low-light requests alone.
A canary wrong on the low-light images alone is judged on a run built from data:
``tests/integration/test_judge_segments.py``."""

import json

import pandas as pd
import pytest

from harness.canary.gate import GateConfig, run_gate
from harness.resources import example_path

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

RUN = dict(duration_s=3.0, users=2, rate=40.0, concurrency=4, seed=3, dataset="shapes:200:low_light@0.1")


def test_the_gate_judges_each_segment_of_an_unchanged_canary(tmp_path):
    from reference_model.server.launch import start_server

    spec = tmp_path / "slo.yaml"
    spec.write_text(
        example_path("slo.yaml").read_text()
        + "  - {name: availability-low-light, sli: availability, objective: 0.999, segment: low_light}\n"
    )
    with start_server("tiny", extra_args=["--threads", "1"]) as srv:
        rec = run_gate(GateConfig(srv.url, srv.url, tmp_path / "run", spec=spec, **RUN))
    run = tmp_path / "run"
    assert rec["verdict"] != "ROLLBACK", rec["reasons"]
    for name in ("quality", "hallucination", "caption_length"):
        m = next(m for m in rec["metrics"] if m["name"] == name)
        seg = {s["segment"]: s for s in m["segments"]}
        assert {k: s["pairs"] for k, s in seg.items()} == {"low_light": 20, "unshifted": 180}, name
        assert all(s["classification"] == "Pass" for s in seg.values()), (name, m["segments"])
    records = pd.read_parquet(run / "records.parquet")
    assert records["segment"].notna().all()  # the load's records too, from the data set by image id
    low = records[records["segment"] == "low_light"]
    assert set(low["image_id"].astype(int) % 10) == {9}
    slos = {(s["target"], s["name"]): s for s in rec["slos"]}
    canary_low = slos[("canary", "availability-low-light")]
    load = records[(records["target"] == "canary") & (records["scenario"] != "evaluate")]
    assert canary_low["segment"] == "low_light" and canary_low["total"] == (load["segment"] == "low_light").sum() > 0
    quality = json.loads((run / "quality.json").read_text())["targets"]
    for target in ("baseline", "canary"):
        cider = {k: v["metrics"]["CIDEr-D"]["corpus"] for k, v in quality[target]["segments"].items()}
        assert cider["low_light"] < cider["unshifted"]  # the tiny model sees little in the dark
