"""The canary judge on constructed distributions, against hand-computed expectations."""

from math import comb

import numpy as np
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
from harness.canary.proportion import rate_difference


def healthy(rng, n=400, latency_scale=1.0, quality_shift=0.0, errors=0, flags=0):
    """One target's observations: lognormal latency, per-image quality, 0/1 outcomes."""
    lat = rng.lognormal(np.log(0.08), 0.3, n) * latency_scale
    err = np.zeros(n)
    err[:errors] = 1
    flag = np.zeros(n)
    flag[:flags] = 1
    return {
        "latency": lat,
        "error_rate": err,
        "timeout_rate": np.zeros(n),
        "quality": np.clip(rng.normal(6.0, 1.0, n) + quality_shift, 0, 10),
        "confidence": np.clip(rng.normal(0.97, 0.02, n), 0, 1),
        "caption_length": rng.integers(4, 14, n).astype(float),
        "safety_flag_rate": flag,
        "goodput": (lat < 0.3).astype(float),
    }


def samples(base, can):
    return {k: MetricSample(base[k], can[k]) for k in base}


def test_hodges_lehmann_of_a_pure_shift_is_exact():
    a = np.arange(1.0, 21.0)
    s = mann_whitney_shift(a, a + 10.0)
    assert s.estimate == 10.0
    # 98%: c = floor(200 - 2.3263 * sqrt(400 * 41 / 12)) = 114; the 115th smallest of the
    # differences 10 + (i - j) is 5 (105 differences are below it), and symmetrically 15.
    assert (s.low, s.high) == (5.0, 15.0)
    assert s.p_value < 1e-4
    same = mann_whitney_shift(a, a)
    assert same.estimate == 0.0 and same.p_value > 0.9


def test_fisher_exact_p_value_matches_the_hypergeometric_sum():
    r = rate_difference(0, 100, 10, 100)
    # Both tails of a table whose margins are symmetric: P(X=10) + P(X=0) = 2 C(100,10) / C(200,10).
    assert r.p_value == pytest.approx(2 * comb(100, 10) / comb(200, 10), rel=1e-9)
    assert r.estimate == pytest.approx(0.10)
    assert r.low < 0.10 < r.high
    assert rate_difference(3, 100, 3, 100).p_value == pytest.approx(1.0)


def test_identical_targets_promote_with_a_perfect_score():
    rng = np.random.default_rng(1)
    base = healthy(rng)
    v = judge(samples(base, base))
    assert v.verdict == PROMOTE and v.score == 100.0 and v.exit_code == 0
    assert all(m.classification == "Pass" for m in v.metrics)


def test_three_times_the_latency_is_rolled_back_with_score_70():
    rng = np.random.default_rng(2)
    base = healthy(rng)
    can = dict(base, latency=base["latency"] * 3)
    v = judge(samples(base, can))
    by = {m.name: m for m in v.metrics}
    assert by["latency"].classification == "High" and by["latency"].failed
    # latency group 0 (weight 30), the other groups 100 (weights 20+25+10+15): 7000/100 = 70.
    assert v.score == 70.0
    assert v.verdict == ROLLBACK and v.exit_code == 1
    assert any("latency" in r for r in v.reasons)


def test_a_clear_quality_drop_fails_a_critical_metric():
    rng = np.random.default_rng(3)
    base = healthy(rng)
    can = dict(base, quality=base["quality"] - 1.5)
    v = judge(samples(base, can))
    q = {m.name: m for m in v.metrics}["quality"]
    assert q.classification == "Low" and q.critical
    assert q.effect == pytest.approx(-1.5, abs=0.01)
    assert v.verdict == ROLLBACK
    assert v.reasons[0].startswith("critical metric quality failed")


def test_quality_rise_and_latency_drop_are_harmless():
    rng = np.random.default_rng(4)
    base = healthy(rng)
    can = dict(base, quality=base["quality"] + 1.0, latency=base["latency"] / 2)
    v = judge(samples(base, can))
    assert v.verdict == PROMOTE and v.score == 100.0
    assert "harmless direction" in {m.name: m for m in v.metrics}["latency"].reason


def test_small_significant_change_within_tolerance_passes():
    a = np.linspace(0.1, 0.2, 2000)
    r = classify(DEFAULT_METRICS[0], MetricSample(a, a * 1.05), JudgeConfig())
    assert r.p_value < 0.02 and r.classification == "Pass"
    assert "within the tolerance" in r.reason


def test_error_burst_is_critical():
    rng = np.random.default_rng(5)
    base = healthy(rng)
    can = healthy(np.random.default_rng(5), errors=40)
    v = judge(samples(base, can))
    e = {m.name: m for m in v.metrics}["error_rate"]
    assert (e.baseline, e.canary) == (0.0, 0.1)
    assert e.classification == "High" and v.verdict == ROLLBACK


def test_marginal_score_holds():
    rng = np.random.default_rng(6)
    base = healthy(rng)
    can = dict(base, goodput=np.zeros_like(base["goodput"]))
    v = judge(samples(base, can))
    # only the slo group (weight 15) fails: 8500 / 100 = 85, between 75 and 90.
    assert v.score == 85.0 and v.verdict == HOLD and v.exit_code == 2


def test_missing_required_data_and_prior_reasons_hold():
    rng = np.random.default_rng(7)
    base = healthy(rng)
    s = samples(base, base)
    s["quality"] = MetricSample(base["quality"], None)
    v = judge(s)
    assert v.verdict == HOLD
    assert any(r.startswith("no data for required metric quality") for r in v.reasons)
    v2 = judge(samples(base, base), reasons=["canary target unreachable: connection refused"])
    assert v2.verdict == HOLD and v2.reasons[0].startswith("canary target unreachable")


def test_no_data_on_an_optional_metric_is_left_out_of_the_score():
    rng = np.random.default_rng(8)
    base = healthy(rng)
    s = samples(base, base)
    del s["caption_length"]
    v = judge(s)
    q = {g.name: g for g in v.groups}["quality"]
    assert (q.passed, q.failed, q.no_data) == (2, 0, 1)
    assert v.verdict == PROMOTE


def test_limit_metric():
    spec = MetricSpec("burn_rate_page", "slo", "limit", limit=14.4)
    cfg = JudgeConfig()
    assert classify(spec, MetricSample(1.0, 20.0), cfg).classification == "High"
    assert classify(spec, MetricSample(1.0, 3.0), cfg).classification == "Pass"
    assert classify(spec, MetricSample(20.0, 30.0), cfg).classification == "NoData"


def test_decision_serializes():
    rng = np.random.default_rng(9)
    base = healthy(rng)
    d = judge(samples(base, base)).to_dict()
    assert set(d) >= {"verdict", "score", "reasons", "metrics", "groups", "thresholds"}
    assert {"baseline", "canary", "test", "effect", "classification", "reason"} <= set(d["metrics"][0])


def test_untrusted_data_holds_even_when_a_critical_metric_fails():
    rng = np.random.default_rng(10)
    base = healthy(rng)
    can = dict(base, quality=base["quality"] - 2.0)
    v = judge(samples(base, can), reasons=["canary load records failed their data contract: duplicate request ids"])
    assert v.verdict == HOLD
    assert v.reasons[0].startswith("canary load records failed")
    assert v.reasons[1].startswith("critical metric quality failed on data that cannot be trusted")
