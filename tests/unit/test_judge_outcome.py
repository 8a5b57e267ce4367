"""The one classification path of the judge: a test's outcome -> classification, reason and
power statement, on constructed outcomes (no statistics run)."""

from dataclasses import replace

import pandas as pd
import pytest

from harness.canary.judge import classify
from harness.canary.metric import JudgeConfig, MetricSpec
from harness.canary.outcome import TestOutcome, classify_outcome, metric_result
from harness.canary.sample import MetricSample

CFG = JudgeConfig()  # alpha 0.02
RATE = MetricSpec("error_rate", "availability", "fisher", "increase", tolerance=0.5, tolerance_abs=0.01)
LATENCY = MetricSpec(
    "latency_p50", "latency", "mann_whitney", "increase", tolerance=0.25, tolerance_abs=0.005, unit="s"
)


def _rate(effect: float, p: float, base: float = 0.04, mde: float = 0.01, note: str = "") -> TestOutcome:
    return TestOutcome(
        "fisher_exact",
        baseline=base,
        canary=base + effect,
        n_baseline=1000,
        n_canary=1000,
        p_value=p,
        effect=effect,
        effect_low=effect - 0.01,
        effect_high=effect + 0.01,
        relative_to=base,
        mde=mde,
        what="rate",
        note=note,
        details={"count_baseline": 40},
    )


def test_a_significant_effect_within_the_tolerance_passes():
    # tolerance: max(0.5 x 4%, 1 point) = 2 points
    r = classify_outcome(RATE, _rate(0.015, 1e-4), CFG)
    assert (r.classification, r.failed, r.tolerance) == ("Pass", False, 0.02)
    assert r.reason == "rate differs by 1.5 points (p=0.0001), within the tolerance of 2 points"


def test_the_absolute_tolerance_applies_when_larger():
    r = classify_outcome(RATE, _rate(0.015, 1e-4, base=0.001), CFG)
    assert r.tolerance == 0.01 and r.classification == "High"


def test_a_significant_harmful_effect_is_high_or_low():
    r = classify_outcome(RATE, _rate(0.05, 1e-4), CFG)
    assert (r.classification, r.failed, r.test) == ("High", True, "fisher_exact")
    assert r.reason == "canary rate is higher by 5 points (p=0.0001), beyond the tolerance of 2 points"
    down = replace(RATE, direction="decrease")
    r = classify_outcome(down, _rate(-0.03, 0.0), CFG)
    assert (r.classification, r.failed) == ("Low", True)
    assert r.reason == "canary rate is lower by 3 points (p<1e-300), beyond the tolerance of 2 points"
    either = replace(RATE, direction="either")
    assert classify_outcome(either, _rate(-0.03, 1e-4), CFG).classification == "Low"
    assert classify_outcome(either, _rate(0.03, 1e-4), CFG).classification == "High"


def test_a_significant_effect_in_the_harmless_direction_passes():
    r = classify_outcome(RATE, _rate(-0.03, 1e-4), CFG)
    assert (r.classification, r.failed) == ("Pass", False)
    assert r.reason == "rate changed by -3 points (p=0.0001), in the harmless direction"


def test_an_insignificant_effect_passes_whatever_its_size():
    r = classify_outcome(RATE, _rate(0.2, 0.05), CFG)
    assert (r.classification, r.failed) == ("Pass", False)
    assert r.reason == "no significant difference in rate (p=0.05)"


def test_the_note_is_added_only_to_a_significant_difference():
    assert classify_outcome(RATE, _rate(0.05, 1e-4, note="3 of 9 slower"), CFG).reason.endswith("; 3 of 9 slower")
    assert classify_outcome(RATE, _rate(0.05, 0.5, note="3 of 9 slower"), CFG).reason == (
        "no significant difference in rate (p=0.5)"
    )


def test_the_level_of_a_look_decides_significance():
    from harness.canary.sequential import Look

    look = replace(CFG, look=Look(1, 4, 0.02))  # level ~0.007
    assert classify_outcome(RATE, _rate(0.05, 0.01), CFG).classification == "High"
    assert classify_outcome(RATE, _rate(0.05, 0.01), look).classification == "Pass"


@pytest.mark.parametrize(
    "mde, must_detect, adequate, expected",
    [
        (0.01, 0.03, True, 0.02),  # the mde is never below the tolerance (2 points)
        (0.025, 0.03, True, 0.025),
        (0.05, 0.03, False, 0.05),
        (0.05, None, None, 0.05),
        (float("inf"), 0.03, False, None),
    ],
)
def test_the_power_statement_against_must_detect(mde, must_detect, adequate, expected):
    spec = replace(RATE, must_detect=must_detect)
    r = classify_outcome(spec, _rate(0.0, 1.0, mde=mde), CFG)
    assert (r.mde, r.adequate, r.must_detect) == (expected, adequate, must_detect)
    words = (
        "no error_rate regression: too few observations"
        if expected is None
        else f"error rate +{expected * 100:.2g} points"
    )
    assert r.detectable == words


def test_the_outcome_fields_reach_the_result():
    o = TestOutcome(
        "mann_whitney_u",
        baseline=0.1,
        canary=0.2,
        n_baseline=30,
        n_canary=40,
        p_value=1e-5,
        effect=0.1,
        effect_low=0.05,
        effect_high=0.15,
        relative_to=0.1,
        mde=0.02,
        what="median latency",
        details={"effect_measure": "hodges_lehmann"},
    )
    r = classify_outcome(LATENCY, o, CFG)
    assert r.to_dict() == {
        "name": "latency_p50",
        "group": "latency",
        "classification": "High",
        "failed": True,
        "critical": False,
        "test": "mann_whitney_u",
        "baseline": 0.1,
        "canary": 0.2,
        "n_baseline": 30,
        "n_canary": 40,
        "p_value": 1e-5,
        "effect": 0.1,
        "effect_low": 0.05,
        "effect_high": 0.15,
        "tolerance": 0.025,
        "direction": "increase",
        "unit": "s",
        "reason": "canary median latency is higher by 100 ms (p=1e-05), beyond the tolerance of 25 ms",
        "mde": 0.025,
        "must_detect": None,
        "adequate": None,
        "detectable": "median +25.0 ms",
        "details": {"effect_measure": "hodges_lehmann"},
        "effect_unit": "s",
        "segments": (),
    }


def test_the_sign_test_uses_the_absolute_tolerance_alone():
    spec = MetricSpec("quality", "quality", "sign", "decrease", tolerance=0.5, tolerance_abs=0.02, must_detect=0.1)
    o = TestOutcome(
        "sign_test_paired",
        baseline=1.0,
        canary=0.9,
        n_baseline=100,
        n_canary=100,
        p_value=1e-4,
        effect=-0.15,
        effect_low=-0.2,
        effect_high=-0.1,
        relative_to=None,
        mde=0.08,
        what="per-image quality",
    )
    r = classify_outcome(spec, o, CFG)
    assert (r.classification, r.tolerance, r.adequate, r.effect_unit) == ("Low", 0.02, True, "share of images")
    assert (
        r.reason
        == "canary per-image quality is lower by 15.0% of images (p=0.0001), beyond the tolerance of 2.0% of images"
    )
    assert r.detectable == "a quality regression on >= 8.0% of images"


def test_tests_that_classify_themselves_use_the_same_builder():
    share = MetricSpec("caption_changed", "quality", "share", "either")
    r = classify(share, MetricSample(pd.Series(["a", "b"]), pd.Series(["a", "c"])), CFG)
    assert (r.classification, r.failed, r.test, r.effect) == ("Info", False, "share_changed", 0.5)
    nodata = classify(RATE, MetricSample([0.0, 1.0], None), CFG)
    assert (nodata.classification, nodata.details) == ("NoData", {"missing": "canary"})
    built = metric_result(
        RATE, "NoData", "none", "canary has 0 observations (needs 1)", n_baseline=2, details={"missing": "canary"}
    )
    assert nodata == built
