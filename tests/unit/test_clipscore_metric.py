"""The judge's ``clipscore`` metric: per image, the CLIPScore of the caption against its own image,
baseline and canary paired by image, compared by the Wilcoxon signed-rank test; on constructed
per-image scores against hand-computed p-values and effects. Also what feeds it: each distinct
(image, caption) scored once, the reason it has no data (turned off, no images, traffic alone),
and the judge config's ``clip``."""

import numpy as np
import pandas as pd
import pytest

from harness.canary import DEFAULT_METRICS, JudgeConfig, MetricSample, classify
from harness.canary.config import judge_config_doc, load_judge_config, parse_judge_config
from harness.canary.judgement import TRAFFIC_IMAGES, _clip_scores
from harness.canary.observations import TargetData, clipscore
from harness.canary.sample import Missing
from harness.errors import DataError
from harness.quality.clipscore import score_pairs

SPEC = {m.name: m for m in DEFAULT_METRICS}["clipscore"]
IDS = [str(i) for i in range(100)]


def _scores(values) -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=IDS)


def test_a_tenth_of_images_much_worse_is_low_with_the_exact_wilcoxon_p():
    base = np.full(100, 2.3)
    can = base.copy()
    can[:10] = 0.3 + 0.01 * np.arange(10)  # another image's caption: about 2 lower, no two alike
    m = classify(SPEC, MetricSample(_scores(base), _scores(can)), JudgeConfig())
    # 10 differences, all negative and distinct: the exact two-sided p is 2 / 2^10.
    assert m.test == "wilcoxon_signed_rank" and m.p_value == pytest.approx(2 * 0.5**10, rel=1e-12)
    assert m.effect == pytest.approx(float(np.mean(can - base)), abs=1e-12) and m.effect < -0.19
    assert m.tolerance == pytest.approx(0.02 * 2.3)  # 2% of the baseline's mean
    assert m.classification == "Low" and m.failed and not m.critical
    assert m.baseline == pytest.approx(2.3) and m.canary == pytest.approx(float(can.mean()))
    assert m.details == {"pairs": 100, "changed": 10}
    assert m.detectable.startswith("clipscore -") and m.detectable.endswith(" CLIPScore") and m.mde >= m.tolerance
    assert "is lower by" in m.reason and "beyond the tolerance" in m.reason


def test_a_significant_change_within_the_tolerance_passes_and_an_identical_canary_has_p_1():
    base = np.full(100, 2.3)
    can = base.copy()
    can[:10] -= 0.3 + 0.001 * np.arange(10)  # significant (p = 2 / 2^10), but a mean of -0.03 < 0.046
    m = classify(SPEC, MetricSample(_scores(base), _scores(can)), JudgeConfig())
    assert m.p_value == pytest.approx(2 * 0.5**10) and m.classification == "Pass" and "within the tolerance" in m.reason
    same = classify(SPEC, MetricSample(_scores(base), _scores(base)), JudgeConfig())
    assert same.classification == "Pass" and same.p_value == 1.0 and same.effect == 0.0
    assert same.mde == pytest.approx(same.tolerance)  # no change at all: the power is the tolerance


def test_better_captions_pass_and_the_floor_of_the_tolerance_is_0_01():
    base = np.full(100, 0.3)  # a real CLIP's scale: 2% of 0.3 is under the floor
    can = base + 0.05
    m = classify(SPEC, MetricSample(_scores(base), _scores(can)), JudgeConfig())
    assert m.classification == "Pass" and "harmless direction" in m.reason and m.tolerance == 0.01


def test_the_observation_is_the_scores_of_the_evaluated_images_or_why_there_are_none():
    ev = pd.DataFrame({"image_id": ["1", "2"], "outcome": ["ok", "ok"], "caption": ["a", "b"]})
    got = clipscore(TargetData(ev, clip_scores={"1": 2.0, "2": 1.5}))
    assert got.to_dict() == {"1": 2.0, "2": 1.5}
    off = Missing("CLIPScore: turned off (the judge config's clip: off)")
    assert clipscore(TargetData(ev, clip_scores=off)) == off
    assert clipscore(TargetData(None, ev, clip_scores=Missing(TRAFFIC_IMAGES))) == Missing(TRAFFIC_IMAGES)
    assert clipscore(TargetData(None, ev)) is None
    m = classify(SPEC, MetricSample(off, off), JudgeConfig())
    assert m.classification == "NoData" and m.reason == off.reason


def test_the_judgement_says_why_it_could_not_score():
    targets = {k: TargetData(None) for k in ("baseline", "canary")}
    assert _clip_scores(targets, None, "embedded", evaluated=False) == (
        {k: Missing(TRAFFIC_IMAGES) for k in targets},
        None,
    )
    off, _ = _clip_scores(targets, None, "off", evaluated=True)
    assert off["canary"].reason == "CLIPScore: turned off (the judge config's clip: off)"
    none, _ = _clip_scores(targets, None, "embedded", evaluated=True)
    assert none["baseline"].reason == "CLIPScore: no images of the evaluation set (no data set folder)"


class _Scorer:
    """A stand-in encoder: CLIPScore = the caption's length; counts what it was asked."""

    def __init__(self):
        self.asked = []

    def score(self, images, captions):
        from types import SimpleNamespace

        self.asked += list(zip(images, captions))
        return SimpleNamespace(clip_score=[float(len(c)) for c in captions])


def test_each_distinct_pair_is_scored_once_in_sorted_order_and_unreadable_images_are_named():
    scorer = _Scorer()
    read = {"1": "image-1", "2": "image-2"}.get
    pairs = [("2", "b b"), ("1", "a"), ("2", "b b"), ("1", "a"), ("3", "c"), ("1", "aa")]
    scores, unread = score_pairs(scorer, pairs, read, chunk=2)
    assert scores == {("1", "a"): 1.0, ("1", "aa"): 2.0, ("2", "b b"): 3.0}
    assert unread == ["3"]
    assert scorer.asked == [("image-1", "a"), ("image-1", "aa"), ("image-2", "b b")]


def test_the_judge_config_names_the_encoder(tmp_path):
    assert JudgeConfig().clip == "embedded" and judge_config_doc(JudgeConfig())["clip"] == "embedded"
    assert parse_judge_config({"clip": "off"}).clip == "off"
    (tmp_path / "judge.yaml").write_text("clip: models/clip-b32\n")
    assert load_judge_config(tmp_path / "judge.yaml").clip == str(tmp_path.resolve() / "models" / "clip-b32")
    assert parse_judge_config({"clip": "/opt/clip"}).clip == "/opt/clip"
    with pytest.raises(DataError, match="judge.yaml: clip: must be a string"):
        parse_judge_config({"clip": 3}, "judge.yaml")
    with pytest.raises(DataError, match="judge.yaml: clip: must be embedded, off or a CLIP folder"):
        parse_judge_config({"clip": "  "}, "judge.yaml")
    assert parse_judge_config(judge_config_doc(parse_judge_config({"clip": "off"}))).clip == "off"
