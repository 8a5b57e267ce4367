"""Quality by segment in the judge, on a gate run folder built from data (no server): 200 shapes
images, a tenth of them low light (``shapes:200:low_light@0.1``, each image's segment in the data
set), evaluation records scored as the gate scores them, simulated load records alike on both
targets. ``harness judge`` on the folder is the gate's own judgement of it.

The canary is wrong only on the low-light images (each gets another image's caption) and better
than the baseline on as many unshifted ones (where the baseline's caption was another image's):
the corpus sign test sees 20 images worse and 20 better and passes; within the low-light segment
it sees 20 worse and none better, Holm-adjusted over the two segments, and rolls the canary back
with the segment named. The same folder with the baseline's records as the canary's is promoted."""

import json
import shutil

import pytest

from factories import judge_run, write_records
from harness.canary.config import write_judge_config
from harness.canary.gate import _score
from harness.canary.judgement import JUDGE_YAML, SPEC_YAML, RunManifest, write_manifest
from harness.canary.metric import JudgeConfig
from harness.canary.simulation import simulate_traffic
from harness.datasets import generate_shapes, parse_shift, write_coco
from harness.quality import write_quality
from harness.resources import example_path

pytestmark = pytest.mark.slow  # a data contract check and scoring: seconds

N, WORLD, SHIFT = 200, 5, "low_light@0.1"
T0 = 1_700_000_000.0
# The example spec with two SLOs held to their own objective on the low-light segment.
SEGMENT_SLOS = """
  - {name: availability-low-light, sli: availability, objective: 0.999, segment: low_light}
  - {name: quality-low-light, sli: quality, metric: CIDEr-D, threshold: 0.5, objective: 0.5, segment: low_light}
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The data set (written once) and its samples."""
    folder = tmp_path_factory.mktemp("segments") / "dataset"
    samples = list(generate_shapes(N, WORLD, parse_shift(SHIFT)))
    write_coco(samples, folder, {"name": "shapes", "seed": WORLD, "n": N, "shift": SHIFT})
    return folder, samples


def _evaluation(samples, target: str, wrong: set[str]):
    """One caption per image: its canonical caption, or for the images in ``wrong`` the caption of
    the first image from half the set away whose scene it does not describe."""
    import pandas as pd

    from harness.records import COLUMNS

    rows = []
    for i, s in enumerate(samples):
        k = str(s.image_id)
        caption = s.captions[0]
        if k in wrong:
            others = (samples[(i + N // 2 + j) % N].captions[0] for j in range(N))
            caption = next(c for c in others if c not in s.captions)
        row = dict.fromkeys(COLUMNS)
        row.update(
            run_id="segments",
            target=target,
            scenario="evaluate",
            request_id=f"{target}-eval-{k}",
            image_id=k,
            t_start=T0 - 60 + i * 0.1,
            latency_s=0.03,
            status=200,
            outcome="ok",
            caption=caption,
            confidence=0.8,
            model_version="tiny",
            safety_flagged=False,
            segment=s.segment,
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _run(tmp_path, dataset, canary_wrong: set[str], baseline_wrong: set[str]):
    """A gate run folder: the data set, both targets' evaluation and load records, quality.json,
    the spec, the judge config and the manifest."""
    from harness.datasets import load_coco

    ds_folder, samples = dataset
    folder = tmp_path / "run"
    shutil.copytree(ds_folder, folder / "dataset")
    load = simulate_traffic(600, target="baseline", seed=3, t0=T0, duration_s=30.0)
    evals = {
        "baseline": _evaluation(samples, "baseline", baseline_wrong),
        "canary": _evaluation(samples, "canary", canary_wrong),
    }
    for k, ev in evals.items():
        write_records(folder / "evaluate" / k, ev)
        write_records(folder / "load" / k, load.assign(target=k, request_id=load["request_id"] + k))
    ds = load_coco(folder / "dataset")
    references = {str(it.image_id): list(it.captions) for it in ds.items}
    write_quality({"targets": {k: _score(ev, references, ds.segments()) for k, ev in evals.items()}}, folder)
    (folder / SPEC_YAML).write_text(example_path("slo.yaml").read_text() + SEGMENT_SLOS)
    write_judge_config(JudgeConfig(), folder / JUDGE_YAML)
    inputs = {
        "targets": {"baseline": {"url": "http://baseline"}, "canary": {"url": "http://canary"}},
        "dataset": f"shapes:{N}:{SHIFT}",
        "duration_s": 30.0,
    }
    write_manifest(folder, RunManifest("segments", inputs, (), 0, "dataset"))
    return folder


def _metric(rec, name):
    return next(m for m in rec["metrics"] if m["name"] == name)


def _segments(samples, name):
    return {str(s.image_id) for s in samples if s.segment == name}


def test_a_canary_wrong_only_on_low_light_images_is_rolled_back_with_the_segment_named(tmp_path, dataset):
    _, samples = dataset
    low, unshifted = _segments(samples, "low_light"), sorted(_segments(samples, "unshifted"), key=int)
    assert len(low) == N // 10 and len(unshifted) == N - N // 10  # exactly a tenth
    run = _run(tmp_path, dataset, canary_wrong=low, baseline_wrong=set(unshifted[: len(low)]))
    rec = judge_run(run, tmp_path / "judged")
    assert rec["verdict"] == "ROLLBACK", rec["reasons"]
    q = _metric(rec, "quality")
    # The corpus test alone passes: as many images better as worse.
    assert q["details"]["worse"] == q["details"]["better"] == len(low)
    assert q["p_value"] == 1.0
    seg = {s["segment"]: s for s in q["segments"]}
    assert set(seg) == {"low_light", "unshifted"}
    lo, un = seg["low_light"], seg["unshifted"]
    assert (lo["pairs"], lo["details"]["worse"], lo["details"]["better"]) == (len(low), len(low), 0)
    assert lo["classification"] == "Low" and lo["failed"]
    assert lo["p_unadjusted"] == pytest.approx(2 * 0.5**20)  # exact two-sided sign test, 20 of 20
    assert lo["p_value"] == pytest.approx(2 * lo["p_unadjusted"])  # Holm over two segments: the smaller doubled
    assert un["classification"] == "Pass" and un["details"]["better"] == len(low) and un["details"]["worse"] == 0
    assert q["classification"] == "Low" and q["failed"]
    assert any(r.startswith("critical metric quality failed: in segment 'low_light': ") for r in rec["reasons"])
    # Power is stated per segment, at the family's level; 20 pairs cannot detect 10% of images.
    assert lo["mde"] > q["mde"] and lo["adequate"] is False and lo["detectable"].startswith("a quality regression")
    # Another paired metric tested the same way: the wrong captions name objects the images do not hold.
    h = {s["segment"]: s for s in _metric(rec, "hallucination")["segments"]}
    assert h["low_light"]["details"]["worse"] > 0 and h["low_light"]["details"]["better"] == 0
    # The segment SLOs: counted on the low-light images' load records (the data set names their segment).
    slos = {(s["target"], s["name"]): s for s in rec["slos"]}
    assert slos[("canary", "quality-low-light")]["segment"] == "low_light"
    assert slos[("canary", "quality-low-light")]["sli"] < slos[("baseline", "quality-low-light")]["sli"]
    summary = (tmp_path / "judged" / "summary.md").read_text()
    assert "### By segment" in summary and "| quality | low_light | 20 |" in summary
    # quality.json gives each target's figures per segment: the canary's low-light CIDEr-D collapses.
    quality = json.loads((run / "quality.json").read_text())["targets"]
    cider = {k: quality[k]["segments"]["low_light"]["metrics"]["CIDEr-D"]["corpus"] for k in quality}
    assert cider["canary"] < cider["baseline"] / 2


def test_an_identical_canary_with_segments_is_promoted(tmp_path, dataset):
    _, samples = dataset
    wrong = set(sorted(_segments(samples, "unshifted"), key=int)[:20])
    run = _run(tmp_path, dataset, canary_wrong=wrong, baseline_wrong=wrong)
    rec = judge_run(run, tmp_path / "judged")
    assert rec["verdict"] == "PROMOTE" and rec["score"] == 100.0, rec["reasons"]
    for name in ("quality", "hallucination", "confidence", "caption_length"):
        segments = _metric(rec, name)["segments"]
        assert {s["segment"] for s in segments} == {"low_light", "unshifted"}, name
        assert all(s["classification"] == "Pass" and s["p_value"] == 1.0 for s in segments), name
