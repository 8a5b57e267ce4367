"""The gate on a data set without reference captions: 200 shapes-world images whose
``captions.json`` is removed, so only ``instances.json`` (what each image holds) is left. The
metrics scored against references are NoData ("no reference captions"); the reference-free ones
still judge: a canary that appends an object the image does not hold to a tenth of its captions
(the ``hallucinated_object`` flaw, through the fault proxy) is rolled back by ``hallucination``, and
``clipscore`` (each caption against its own image) sees those captions score lower."""

import pytest

from harness.canary.gate import GateConfig, run_gate
from harness.canary.judgement import judge_run
from harness.datasets import generate_shapes, write_coco
from harness.load.flaws import flaw_faults
from harness.load.proxy import ProxyProcess

pytest.importorskip("torch")
pytestmark = pytest.mark.slow

# 200 images: every one captioned by both targets, so 200 pairs; the load only has to run.
RUN = dict(duration_s=3.0, users=2, concurrency=4, seed=3)
NO_REFERENCES = "no reference captions"


@pytest.fixture(scope="module")
def servers():
    from contextlib import ExitStack

    from reference_model.server.launch import start_server

    with ExitStack() as st:
        yield (
            st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
            st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
        )


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """200 images of the shapes world with their objects and no reference captions."""
    folder = tmp_path_factory.mktemp("unlabelled")
    write_coco(generate_shapes(200, seed=1), folder, {"name": "shapes", "seed": 1, "n": 200})
    (folder / "captions.json").unlink()
    return folder


def _metric(rec, name):
    return next(m for m in rec["metrics"] if m["name"] == name)


def _without_references(rec):
    for name in ("quality", "calibration"):
        m = _metric(rec, name)
        assert m["classification"] == "NoData" and m["reason"] == NO_REFERENCES, m
    assert rec["figures"]["baseline"]["cider_d"] is None and rec["worst_captions"] == []
    h = _metric(rec, "hallucination")
    assert h["n_baseline"] == h["n_canary"] == 200 and h["test"] == "sign_test_paired"
    assert h["mde"] is not None and h["detectable"].startswith("a hallucination regression on >= ")
    # CLIPScore needs no reference either: every image's caption against the image, paired.
    c = _metric(rec, "clipscore")
    assert c["n_baseline"] == c["n_canary"] == 200 and c["test"] == "wilcoxon_signed_rank", c
    assert c["mde"] is not None and c["detectable"].startswith("clipscore -") and not c["critical"]
    assert rec["inputs"]["clip"].startswith("embedded-") and rec["figures"]["baseline"]["clip_score"] > 1.0
    return h


def test_a_tenth_of_captions_with_an_absent_object_is_rolled_back(servers, unlabelled, tmp_path):
    stable, twin = servers
    faults = flaw_faults("hallucinated_object", 0.1)
    with ProxyProcess(stable.url) as base, ProxyProcess(twin.url, faults=faults, seed=7) as proxy:
        rec = run_gate(GateConfig(base.url, proxy.url, tmp_path, dataset=f"coco:{unlabelled}", faults=faults, **RUN))
    assert rec["verdict"] == "ROLLBACK", rec["reasons"]
    h = _without_references(rec)
    assert h["classification"] == "High" and h["critical"] and h["p_value"] < 0.02
    assert h["details"]["better"] == 0 and 10 <= h["details"]["worse"] <= 30  # a tenth of 200, give or take
    assert h["effect"] == pytest.approx(h["details"]["worse"] / 200)
    assert any(r.startswith("critical metric hallucination failed") for r in rec["reasons"]), rec["reasons"]
    figures = rec["figures"]
    assert figures["baseline"]["chair_s"] + h["effect"] == pytest.approx(figures["canary"]["chair_s"])
    c = _metric(rec, "clipscore")
    assert c["details"]["changed"] >= h["details"]["worse"] and c["effect"] < 0, c  # the flawed captions score lower
    summary = (tmp_path / "summary.md").read_text()
    assert "### Object hallucination (CHAIR)" in summary and "No data: quality (no reference captions)" in summary
    assert "### CLIPScore (reference-free)" in summary
    # The judgement is a function of the saved run: judged again, the same metrics.
    again = judge_run(tmp_path, tmp_path / "judged-again")
    assert again["verdict"] == rec["verdict"] and again["metrics"] == rec["metrics"]


def test_an_identical_canary_is_not_rolled_back(servers, unlabelled, tmp_path):
    stable, twin = servers
    rec = run_gate(GateConfig(stable.url, twin.url, tmp_path, dataset=f"coco:{unlabelled}", **RUN))
    h = _without_references(rec)
    assert h["classification"] == "Pass" and h["effect"] == 0.0
    c = _metric(rec, "clipscore")
    assert (c["classification"], c["effect"], c["p_value"]) == ("Pass", 0.0, 1.0), c
    assert not [m["name"] for m in rec["metrics"] if m["classification"] in ("High", "Low")], rec["reasons"]
    assert rec["verdict"] == "PROMOTE", rec["reasons"]
