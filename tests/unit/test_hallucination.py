"""The judge's ``hallucination`` metric: per image, whether the caption names an object the image
does not hold (CHAIR_s), baseline and canary paired by image; the exact sign test on the discordant
pairs (McNemar's exact test) against hand-computed p-values. Also what it needs: data sets whose
``instances.json`` says what each image holds (with or without reference captions), and the
proxy's ``add_object`` flaw that appends an object no image holds."""

import json
import random
from math import comb

import numpy as np
import pandas as pd
import pytest

from cli_run import run_cli
from harness.canary import DEFAULT_METRICS, ROLLBACK, JudgeConfig, MetricSample, classify, judge
from harness.canary.observations import NO_REFERENCES, TargetData, calibration, hallucination, quality
from harness.canary.sample import Missing
from harness.datasets import generate_shapes, load_coco, write_coco
from harness.datasets.scene import COLOURS, SHAPES, UNSEEN_SHAPES
from harness.errors import DataError
from harness.load.flaws import flaw_faults
from harness.load.proxy import ProxyFaults, flaw_caption
from harness.quality.chair import (
    NEVER_DRAWN_SHAPES,
    NO_OBJECTS,
    DatasetObjects,
    dataset_objects,
    load_instances,
    load_objects,
    shapes_objects,
    shapes_vocabulary,
)
from harness.quality.evaluation import parse_dataset

SPEC = {m.name: m for m in DEFAULT_METRICS}
N = 100
SAMPLES = list(generate_shapes(N, seed=1))
OBJECTS = DatasetObjects(shapes_vocabulary(), {str(s.image_id): shapes_objects(s.scene) for s in SAMPLES})


def _evaluation(captions: dict[int, str], target: str) -> pd.DataFrame:
    """Evaluation records of one target: one ok answer per image."""
    return pd.DataFrame(
        {
            "image_id": [str(k) for k in captions],
            "outcome": ["ok"] * len(captions),
            "caption": list(captions.values()),
            "target": [target] * len(captions),
        }
    )


def _captions(extra: dict[int, str]) -> dict[int, str]:
    """The canonical caption of each image (naming only what it holds), ``extra`` appended."""
    return {s.image_id: s.captions[0] + extra.get(s.image_id, "") for s in SAMPLES}


# 2 images hallucinated by the baseline alone, 13 by the canary alone, 5 by both, 80 by neither.
BOTH = {k: " and a green heart" for k in range(5)}
BASELINE = _captions({**BOTH, 5: " and a blue oval", 6: " and a red diamond"})
CANARY = _captions({**BOTH, **{k: " and a red pentagon" for k in range(10, 23)}})


def test_the_observation_is_chair_s_per_image():
    base = hallucination(TargetData(_evaluation(BASELINE, "baseline"), objects=OBJECTS))
    can = hallucination(TargetData(_evaluation(CANARY, "canary"), objects=OBJECTS))
    assert list(base.index) == [str(s.image_id) for s in SAMPLES]
    assert set(base[base == 1].index) == {str(k) for k in (0, 1, 2, 3, 4, 5, 6)}
    assert set(can[can == 1].index) == {str(k) for k in (*range(5), *range(10, 23))}
    assert base.sum() == 7 and can.sum() == 18
    # The world's canonical captions name only what each image holds: CHAIR_s 0 without the extras.
    clean = hallucination(TargetData(_evaluation(_captions({}), "baseline"), objects=OBJECTS))
    assert clean.sum() == 0 and len(clean) == N


def test_mcnemar_exact_on_the_discordant_pairs():
    sample = MetricSample(
        hallucination(TargetData(_evaluation(BASELINE, "baseline"), objects=OBJECTS)),
        hallucination(TargetData(_evaluation(CANARY, "canary"), objects=OBJECTS)),
    )
    m = classify(SPEC["hallucination"], sample, JudgeConfig())
    # 15 discordant pairs, 13 of them against the canary: 2 P(X <= 2), X ~ Binomial(15, 1/2).
    p = 2 * sum(comb(15, k) for k in range(3)) / 2**15
    assert m.p_value == pytest.approx(p, rel=1e-12) and p == pytest.approx(0.0073853, rel=1e-4)
    assert m.test == "sign_test_paired" and m.classification == "High" and m.critical
    assert (m.baseline, m.canary) == (0.07, 0.18)
    assert m.effect == pytest.approx((13 - 2) / N) and m.effect_low < m.effect < m.effect_high
    assert m.details["worse"] == 13 and m.details["better"] == 2 and m.details["pairs"] == N
    assert "(13 of 100 images worse, 2 better)" in m.reason and "beyond the tolerance of 2.0% of images" in m.reason
    assert m.tolerance == 0.02 and m.mde is not None and m.detectable.startswith("a hallucination regression on >= ")
    # The same table the other way round is an improvement: it passes.
    back = classify(SPEC["hallucination"], MetricSample(sample.canary, sample.baseline), JudgeConfig())
    assert back.p_value == m.p_value and back.classification == "Pass" and "harmless direction" in back.reason
    # Concordant pairs are no evidence: without the 2 the p-value is 2 / 2^13.
    fewer = classify(
        SPEC["hallucination"],
        MetricSample(pd.Series(np.zeros(N)), sample.canary.reset_index(drop=True).where(lambda s: s.index >= 5, 0.0)),
        JudgeConfig(),
    )
    assert fewer.p_value == pytest.approx(2 / 2**13) and fewer.details["worse"] == 13


def test_a_small_significant_change_within_the_tolerance_passes():
    base, can = pd.Series(np.zeros(2000)), pd.Series(np.zeros(2000))
    can[:30] = 1.0  # 1.5% of images: significant, under the 2% tolerance
    m = classify(SPEC["hallucination"], MetricSample(base, can), JudgeConfig())
    assert m.p_value < 1e-6 and m.classification == "Pass" and "within the tolerance" in m.reason


def test_the_canary_is_rolled_back_for_it_whatever_else_passes():
    base = TargetData(_evaluation(BASELINE, "baseline"), objects=OBJECTS)
    can = TargetData(_evaluation(CANARY, "canary"), objects=OBJECTS)
    cfg = JudgeConfig(metrics=(SPEC["error_rate"], SPEC["hallucination"]))
    samples = {
        "error_rate": MetricSample(np.zeros(400), np.zeros(400)),
        "hallucination": MetricSample(hallucination(base), hallucination(can)),
    }
    v = judge(samples, cfg)
    assert v.verdict == ROLLBACK and v.reasons[0].startswith("critical metric hallucination failed: canary")


def test_without_objects_or_references_the_metrics_say_why_they_have_no_data():
    ev = _evaluation(BASELINE, "baseline")
    bare = TargetData(ev, references=False)
    assert hallucination(bare) == Missing(NO_OBJECTS)
    assert quality(bare) == Missing(NO_REFERENCES) and calibration(bare) == Missing(NO_REFERENCES)
    assert hallucination(TargetData(None, ev)) is None  # traffic alone: no evaluation to pair
    cfg = JudgeConfig()
    for name, why in (("hallucination", NO_OBJECTS), ("quality", NO_REFERENCES), ("calibration", NO_REFERENCES)):
        spec = SPEC[name]
        m = classify(spec, MetricSample(spec.observe(bare), spec.observe(bare)), cfg)
        assert m.classification == "NoData" and m.reason == why and m.details == {"missing": "both"}
        assert (m.n_baseline, m.n_canary) == (0, 0)
    q = classify(SPEC["quality"], MetricSample(quality(bare), quality(bare)), cfg)
    assert q.adequate is False and q.detectable == f"no quality regression: {NO_REFERENCES}"
    # NoData on both sides is no reason to roll back, critical or not.
    v = judge({"hallucination": MetricSample(Missing(NO_OBJECTS), Missing(NO_OBJECTS))}, cfg)
    assert v.verdict != ROLLBACK


# ---------------------------------------------------------------------------- data sets


def _same_objects(a, b) -> bool:
    """The same objects and axes; centres equal to the last bits (read back from a bbox in pixels)."""
    return (
        a.axes == b.axes
        and [(o.category, o.colour) for o in a.objects] == [(o.category, o.colour) for o in b.objects]
        and all(
            o.x == pytest.approx(p.x, abs=1e-12) and o.y == pytest.approx(p.y, abs=1e-12)
            for o, p in zip(a.objects, b.objects)
        )
    )


def test_an_exported_set_says_what_each_image_holds(tmp_path):
    write_coco(SAMPLES[:12], tmp_path, {"name": "shapes", "seed": 1})
    kind, objects = load_objects(tmp_path)
    assert kind == "shapes" and list(objects) == list(range(12))
    assert all(_same_objects(objects[s.image_id], shapes_objects(s.scene)) for s in SAMPLES[:12])
    assert load_instances(tmp_path) == {
        s.image_id: tuple(sorted({o.shape for o in s.scene.objects})) for s in SAMPLES[:12]
    }
    doc = json.loads((tmp_path / "instances.json").read_text())
    assert doc["info"]["vocabulary"] == "shapes" and {c["name"] for c in doc["categories"]} == {*SHAPES, *UNSEEN_SHAPES}
    ev = parse_dataset(f"coco:{tmp_path}")
    assert ev.objects == "shapes" and _same_objects(next(ev.images()).objects, shapes_objects(SAMPLES[0].scene))
    d = dataset_objects(tmp_path)
    assert d.vocabulary.name == "shapes" and list(d.images) == [str(k) for k in range(12)]
    assert all(_same_objects(d.images[k], OBJECTS.images[k]) for k in d.images)


def test_a_set_without_references_is_its_images_and_objects(tmp_path):
    code, out, err = run_cli(["dataset", "export", "--n", "6", "--seed", "1", "--out", tmp_path, "--no-references"])
    assert code == 0, err
    assert out.strip() == f"wrote 6 images and {tmp_path / 'instances.json'}"
    assert not (tmp_path / "captions.json").exists()
    ds = load_coco(tmp_path)
    assert [it.image_id for it in ds.items] == list(range(6)) and all(it.captions == () for it in ds.items)
    assert parse_dataset(f"coco:{tmp_path}").objects == "shapes"
    assert _same_objects(dataset_objects(tmp_path).images["3"], shapes_objects(SAMPLES[3].scene))


def test_an_instances_file_names_its_images_as_safely_as_a_captions_file(tmp_path, tmp_path_factory):
    folder = tmp_path / "set"
    write_coco(SAMPLES[:2], folder, references=False)
    doc = json.loads((folder / "instances.json").read_text())
    (tmp_path / "secret.txt").write_text("not an image of the set")
    doc["images"][1]["file_name"] = "../../secret.txt"
    (folder / "instances.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"instances.json: images\[1\].file_name '../../secret.txt' leaves the images"):
        load_coco(folder)
    with pytest.raises(ValueError, match="a set without references needs its objects"):
        write_coco([], tmp_path_factory.mktemp("none"), references=False)


def test_a_coco_instances_file_keeps_the_coco_vocabulary(tmp_path):
    write_coco(SAMPLES[:2], tmp_path)
    (tmp_path / "instances.json").write_text(
        json.dumps(
            {
                "images": [{"id": 0, "file_name": "000000.png"}, {"id": 1, "file_name": "000001.png"}],
                "categories": [{"id": 18, "name": "dog"}],
                "annotations": [{"id": 1, "image_id": 0, "category_id": 18}],
            }
        )
    )
    assert load_objects(tmp_path) == ("coco", {0: ("dog",), 1: ()})
    d = dataset_objects(tmp_path)
    assert d.vocabulary.name == "coco" and d.images["0"].categories == {"dog"} and d.images["1"].categories == set()
    rep = d.chair({"0": "a puppy on a sofa", "1": "a cat", "7": "not in the set"})
    assert [c.chair_s for c in rep.captions] == [True, True] and rep.hallucinated == 2


@pytest.mark.parametrize(
    "change, msg",
    [
        (lambda a: a.pop("bbox"), r"annotations\[0\] needs a 'bbox' of four numbers"),
        (lambda a: a.update(colour=3), r"annotations\[0\] needs a string 'colour'"),
        (lambda a: a.update(image_id=999), r"annotations\[0\].image_id 999 is not among the images"),
    ],
)
def test_a_broken_shapes_instances_file_is_refused(tmp_path, change, msg):
    write_coco(SAMPLES[:2], tmp_path)
    doc = json.loads((tmp_path / "instances.json").read_text())
    change(doc["annotations"][0])
    (tmp_path / "instances.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=msg):
        load_objects(tmp_path)


# ---------------------------------------------------------------------------- the flaw


def test_the_flaw_appends_an_object_no_image_holds():
    assert set(NEVER_DRAWN_SHAPES).isdisjoint({*SHAPES, *UNSEEN_SHAPES})
    assert set(NEVER_DRAWN_SHAPES) <= set(shapes_vocabulary().categories)
    assert flaw_faults("hallucinated_object", 0.1) == {"caption_fault": "add_object", "caption_fault_rate": 0.1}
    assert ProxyFaults(**flaw_faults("hallucinated_object", 0.1)).faults_captions
    rng, again = random.Random("7:caption_text"), random.Random("7:caption_text")
    for s in SAMPLES[:20]:
        before = s.captions[0]
        after = flaw_caption(before, "add_object", rng)
        assert after == flaw_caption(before, "add_object", again)  # the seeded stream fixes every edit
        assert after.startswith(before + " and a ")
        colour, shape = after[len(before + " and a ") :].split()
        assert colour in COLOURS and shape in NEVER_DRAWN_SHAPES
        rep = OBJECTS.chair({str(s.image_id): after})
        assert [m.category for m in rep.captions[0].hallucinated] == [shape]
    assert flaw_caption("", "add_object", random.Random(1)).startswith("and a ")
