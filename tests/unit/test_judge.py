"""The canary judge on constructed observations, against hand-computed expectations: paired
per-image quality, tail latency, the harness's own output checks, power and the verdict rules."""

from math import comb

import numpy as np
import pandas as pd
import pytest

from harness.canary import (
    DEFAULT_METRICS,
    HOLD,
    PROMOTE,
    ROLLBACK,
    JudgeConfig,
    MetricSample,
    MetricSpec,
    classify,
    judge,
)
from harness.canary.mann_whitney import mann_whitney_shift
from harness.canary.paired import paired_shift, sign_test
from harness.canary.proportion import rate_difference
from harness.canary.tail import tail_difference
from harness.stats import rate_mde, sign_mde

SPEC = {m.name: m for m in DEFAULT_METRICS}


def healthy(rng, n=400, images=200):
    """One target's observations: lognormal latency per request, 0/1 outcomes per request, and
    per-image values keyed by image id for the paired metrics."""
    ids = [f"img{i}" for i in range(images)]
    lat = rng.lognormal(np.log(0.08), 0.3, n)
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
        "hallucination": pd.Series(np.zeros(images), index=ids),
        "clipscore": pd.Series(np.full(images, 2.3), index=ids),
        "confidence": conf,
        "calibration": (conf - 1.0) ** 2,
        "caption_length": pd.Series(rng.integers(4, 14, images).astype(float), index=ids),
        "degenerate_rate": zeros,
        "caption_changed": pd.Series(["a caption"] * images, index=ids),
        "pii_rate": zeros,
        "safety_flag_rate": zeros,
        "goodput": (lat < 0.3).astype(float),
    }


def samples(base, can):
    return {k: MetricSample(base[k], can[k]) for k in base}


def by_name(v):
    return {m.name: m for m in v.metrics}


def flags(n, k):
    x = np.zeros(n)
    x[:k] = 1
    return x


# ------------------------------------------------------------------------------ statistics


def test_hodges_lehmann_of_a_pure_shift_is_exact():
    a = np.arange(1.0, 21.0)
    s = mann_whitney_shift(a, a + 10.0)
    assert s.estimate == 10.0
    # ties: normal approximation. 98%: c = floor(200 - 2.3263 * sqrt(400 * 41 / 12)) = 114; the
    # 115th smallest of the differences 10 + (i - j) is 5 (105 are below it), and symmetrically 15.
    assert (s.low, s.high) == (5.0, 15.0) and not s.exact
    assert s.p_value < 1e-4
    same = mann_whitney_shift(a, a)
    assert same.estimate == 0.0 and same.p_value > 0.9


def test_small_samples_get_r_exact_interval():
    # R: wilcox.test(c(10,20,30,40), c(1,2,3,4), conf.int=TRUE)$conf.int is (6, 39);
    # qwilcox(0.025, 4, 4) = 1, so the interval is the 1st and 16th of the 16 sorted differences.
    s = mann_whitney_shift([1, 2, 3, 4], [10, 20, 30, 40], confidence=0.95)
    assert s.exact and (s.low, s.high) == (6.0, 39.0) and s.estimate == 22.5
    assert s.p_value == pytest.approx(2 / 70)  # exact: the most extreme of C(8,4) = 70 arrangements, twice


def test_zero_inflated_data_keep_an_effect():
    # Most pairwise differences are 0, so the Hodges-Lehmann shift is 0 whatever the test says:
    # the effect becomes the difference of means.
    a = flags(400, 10) * 1.0
    b = np.zeros(400)
    b[:80] = 2.0
    s = mann_whitney_shift(a, b)
    assert s.p_value < 1e-9 and s.measure == "mean_difference"
    assert s.estimate == pytest.approx(80 * 2 / 400 - 10 / 400)


def test_fisher_exact_p_value_matches_the_hypergeometric_sum():
    r = rate_difference(0, 100, 10, 100)
    # Both tails of a table whose margins are symmetric: P(X=10) + P(X=0) = 2 C(100,10) / C(200,10).
    assert r.p_value == pytest.approx(2 * comb(100, 10) / comb(200, 10), rel=1e-9)
    assert r.estimate == pytest.approx(0.10)
    assert r.low < 0.10 < r.high
    assert rate_difference(3, 100, 3, 100).p_value == pytest.approx(1.0)


def test_sign_test_counts_images_beyond_delta():
    a = np.full(100, 6.0)
    b = a.copy()
    b[:20] = 3.0  # worse
    b[20:25] = 6.05  # better, but within delta 0.1: unchanged
    s = sign_test(a, b, delta=0.1)
    assert (s.worse, s.better, s.n) == (20, 0, 100)
    assert s.p_value == pytest.approx(2 * 0.5**20)  # exact binomial, two-sided
    assert s.estimate == -0.2 and s.low <= -0.2 <= s.high
    assert sign_test(a, a).p_value == 1.0


def test_paired_shift_drops_unchanged_images():
    a = np.full(50, 0.9)
    b = a.copy()
    b[:10] = 0.5
    s = paired_shift(a, b)
    assert s.changed == 10 and s.estimate == pytest.approx(-0.08)
    # Wilcoxon on the 10 nonzero differences, all the same sign: exact p = 2 / 2^10.
    assert s.p_value == pytest.approx(2 / 1024)


def test_tail_difference_sees_a_slow_fifth_that_the_median_does_not():
    rng = np.random.default_rng(0)
    a = rng.lognormal(np.log(0.03), 0.3, 3000)
    b = rng.lognormal(np.log(0.03), 0.3, 3000)
    b[rng.random(3000) < 0.2] += 0.4
    t = tail_difference(a, b, 0.95)
    assert t.p_value < 1e-30 and t.estimate > 0.35 and t.slower_canary > 500
    assert t.slower_baseline == 150  # exactly 5% of 3000 lie above the baseline's own p95


def test_power_figures():
    # 100 images, no image better: the sign test needs 7 worse images (2 / 2^7 < 0.02); a share f
    # of images made worse reaches 7 with 80% probability from f = 9%.
    assert sign_mde(100, 0, 0.98) == pytest.approx(0.09, abs=0.0026)
    assert sign_mde(40, 0, 0.98) > 0.2
    assert sign_mde(200, 0, 0.98) < 0.05
    assert rate_mde(0.0, 1000, 1000, 0.98) == pytest.approx(0.0099, abs=0.0005)
    assert rate_mde(0.0, 100, 100, 0.98) > rate_mde(0.0, 1000, 1000, 0.98)


# ------------------------------------------------------------------------------ verdicts


def test_identical_targets_promote_with_a_perfect_score():
    rng = np.random.default_rng(1)
    base = healthy(rng)
    v = judge(samples(base, base))
    assert v.verdict == PROMOTE and v.score == 100.0 and v.exit_code == 0
    assert all(m.classification in ("Pass", "Info") for m in v.metrics)
    assert by_name(v)["caption_changed"].effect == 0.0
    q = by_name(v)["quality"]
    assert q.adequate is True and q.detectable.startswith("a quality regression on >= ")


def test_three_times_the_latency_is_rolled_back_with_score_60():
    rng = np.random.default_rng(2)
    base = healthy(rng)
    lat = base["latency_p50"] * 3
    can = dict(base, latency_p50=lat, latency_p95=lat, latency_p99=lat)
    v = judge(samples(base, can))
    for name in ("latency_p50", "latency_p95", "latency_p99"):
        assert by_name(v)[name].classification == "High"
    # latency group 0 (weight 40), the other groups 100 (weights 20+15+10+15): 6000/100 = 60.
    assert v.score == 60.0
    assert v.verdict == ROLLBACK and v.exit_code == 1


def test_a_slow_fifth_fails_the_tail_and_is_rolled_back():
    rng = np.random.default_rng(3)
    base = healthy(rng)
    lat = base["latency_p50"].copy()
    lat[rng.random(len(lat)) < 0.2] += 0.4
    v = judge(samples(base, dict(base, latency_p50=lat, latency_p95=lat, latency_p99=lat)))
    m = by_name(v)
    assert m["latency_p95"].classification == "High" and m["latency_p99"].classification == "High"
    # p50, p95 and p99: 1 of 3 pass in the latency group: 40/3 + 60 = 73.33, rolled back.
    assert v.score == 73.33 and v.verdict == ROLLBACK


def test_wrong_captions_on_a_fifth_of_the_images_roll_back():
    rng = np.random.default_rng(4)
    base = healthy(rng)
    q = base["quality"].copy()
    q.iloc[::5] -= 2.0  # 40 of 200 images worse, none better
    v = judge(samples(base, dict(base, quality=q)))
    r = by_name(v)["quality"]
    assert r.classification == "Low" and r.critical and r.effect == -0.2
    assert r.details["worse"] == 40 and r.details["better"] == 0
    assert v.verdict == ROLLBACK and v.reasons[0].startswith("critical metric quality failed")


def test_unpaired_ids_are_left_out_of_the_pairing():
    rng = np.random.default_rng(5)
    base = healthy(rng)
    can_q = base["quality"].iloc[:150]  # 50 images the canary did not answer
    r = classify(SPEC["quality"], MetricSample(base["quality"], can_q), JudgeConfig())
    assert r.n_baseline == r.n_canary == 150 and r.classification == "Pass"


@pytest.mark.parametrize("metric", ["error_rate", "unusable_rate", "blank_rate", "pii_rate"])
def test_a_fifth_of_bad_answers_is_a_critical_failure(metric):
    rng = np.random.default_rng(6)
    base = healthy(rng)
    v = judge(samples(base, dict(base, **{metric: flags(400, 80)})))
    r = by_name(v)[metric]
    assert (r.baseline, r.canary) == (0.0, 0.2) and r.classification == "High" and r.critical
    assert v.verdict == ROLLBACK


def test_overconfident_wrong_captions_fail_calibration():
    rng = np.random.default_rng(7)
    base = healthy(rng)
    cal = base["calibration"].copy()
    cal.iloc[::5] = 0.99**2  # confidence 0.99 on captions below the quality floor
    r = classify(SPEC["calibration"], MetricSample(base["calibration"], cal), JudgeConfig())
    assert r.classification == "High" and r.effect > 0.15


def test_a_run_too_small_to_detect_is_held_as_underpowered():
    rng = np.random.default_rng(8)
    base = healthy(rng, images=40)
    v = judge(samples(base, base))
    q = by_name(v)["quality"]
    assert q.classification == "Pass" and q.adequate is False and q.mde > 0.2
    assert v.verdict == HOLD and any(r.startswith("underpowered: quality") for r in v.reasons)


def test_critical_no_data_from_the_canary_fails_the_run():
    rng = np.random.default_rng(9)
    base = healthy(rng)
    s = samples(base, base)
    s["quality"] = MetricSample(base["quality"], None)
    v = judge(s)
    assert v.verdict == ROLLBACK and any("has no data from the canary" in r for r in v.reasons)
    s["quality"] = MetricSample(None, base["quality"])  # nothing to compare against: inconclusive
    v = judge(s)
    assert v.verdict == HOLD and any(r.startswith("no data for required metric quality") for r in v.reasons)


def test_half_the_metrics_without_data_is_inconclusive():
    rng = np.random.default_rng(10)
    base = healthy(rng)
    keep = ("error_rate", "quality", "timeout_rate", "latency_p50", "latency_p95", "latency_p99")
    v = judge({k: MetricSample(base[k], base[k]) for k in keep})
    assert v.verdict == HOLD and any("metrics have no data: inconclusive" in r for r in v.reasons)


def test_marginal_score_holds():
    rng = np.random.default_rng(11)
    base = healthy(rng)
    v = judge(samples(base, dict(base, goodput=np.zeros_like(base["goodput"]))))
    # only the slo group (weight 15) fails: 8500 / 100 = 85, between 75 and 90.
    assert v.score == 85.0 and v.verdict == HOLD and v.exit_code == 2


def test_harmless_changes_promote():
    rng = np.random.default_rng(12)
    base = healthy(rng)
    lat = base["latency_p50"] / 2
    v = judge(
        samples(base, dict(base, quality=base["quality"] + 1.0, latency_p50=lat, latency_p95=lat, latency_p99=lat))
    )
    assert v.verdict == PROMOTE and v.score == 100.0
    assert "harmless direction" in by_name(v)["latency_p50"].reason


def test_small_significant_change_within_tolerance_passes():
    a = np.linspace(0.1, 0.2, 2000)
    r = classify(SPEC["latency_p50"], MetricSample(a, a * 1.05), JudgeConfig())
    assert r.p_value < 0.02 and r.classification == "Pass"
    assert "within the tolerance" in r.reason


def test_limit_metric():
    spec = MetricSpec("burn_rate_page", "slo", "limit", limit=14.4)
    cfg = JudgeConfig()
    assert classify(spec, MetricSample(1.0, 20.0), cfg).classification == "High"
    assert classify(spec, MetricSample(1.0, 3.0), cfg).classification == "Pass"
    assert classify(spec, MetricSample(20.0, 30.0), cfg).classification == "NoData"


def test_untrusted_data_holds_even_when_a_critical_metric_fails():
    rng = np.random.default_rng(13)
    base = healthy(rng)
    v = judge(
        samples(base, dict(base, quality=base["quality"] - 2.0)),
        reasons=["canary load records failed their data contract: duplicate request ids"],
    )
    assert v.verdict == HOLD
    assert v.reasons[0].startswith("canary load records failed")
    assert v.reasons[1].startswith("critical metric quality failed on data that cannot be trusted")


def test_decision_serializes():
    rng = np.random.default_rng(14)
    base = healthy(rng)
    d = judge(samples(base, base)).to_dict()
    assert set(d) >= {"verdict", "score", "reasons", "metrics", "groups", "thresholds"}
    assert {"baseline", "canary", "test", "effect", "classification", "reason", "mde", "detectable"} <= set(
        d["metrics"][0]
    )


def test_paired_metrics_given_lists_pair_by_position():
    """Lists pair by position as Series pair by image id: the same classification either way."""
    base = [0.5, 0.6, 0.7, 0.8] * 10
    can = [b - 0.3 for b in base]
    ids = [f"img{i}" for i in range(len(base))]
    by_list = classify(SPEC["quality"], MetricSample(base, can), JudgeConfig())
    by_id = classify(
        SPEC["quality"], MetricSample(pd.Series(base, index=ids), pd.Series(can, index=ids)), JudgeConfig()
    )
    assert by_list.classification == by_id.classification == "Low"
    assert by_list.to_dict() == by_id.to_dict()
    shared = classify(SPEC["caption_changed"], MetricSample(["a", "b"], ["a", "c"]), JudgeConfig())
    assert shared.classification == "Info" and shared.canary == 0.5
