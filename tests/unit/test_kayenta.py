"""Kayenta's own judge tests run against the harness's judge.

Every case of ``tests/data/kayenta/cases.json`` (the MannWhitney, Classifier, Statistic and Scorer
suites of spinnaker/kayenta at a69573b; semantics in ``SEMANTICS.md`` next to it) is a test here.
A case either agrees with Kayenta under the mapping below, or it is listed in ``DELIBERATE`` with
the reason and the test asserts the harness's own documented outcome for it instead (and, where a
mapping exists, that it really differs from Kayenta's), so both kinds fail when behaviour changes.
A case in ``KNOWN_BUGS`` asserts Kayenta's outcome and is a strict xfail until the harness is fixed.

Mapping, Kayenta -> harness:

* experiment/control -> canary/baseline; Kayenta's shift ``x - y`` is canary - baseline.
* Mann-Whitney. Kayenta computes no p-value; ``wilcoxonDiff(mu, q)`` is the tie- and
  continuity-corrected z of the test on ``x - mu``, minus ``q``. It is compared with the z of the
  harness's two-sided p-value, ``Phi^-1(1 - p/2)`` signed like the harness's estimate, within the
  case's tolerance. Kayenta's interval ends and estimate are roots found by Brent's method to an
  absolute 1e-4 (``BrentSolver.TOLERANCE``, as R's ``uniroot``): they are compared within
  ``max(abs_tol, 1e-4)`` when 1e-4 is under 1% of the bracket ``[min(x) - max(y), max(x) - min(y)]``
  the solver searches, else within the case's ``abs_tol`` (a solver tolerance as wide as the data
  says nothing). The normal quantile is the judge's ``z`` for the confidence.
* Classifier. ``confLevel`` -> ``JudgeConfig.confidence``. Kayenta's ``tolerance`` (the interval
  must lie beyond +-tolerance x |estimate|) is its significance rule; the harness's is
  p < 1 - confidence, nothing to map. Kayenta has no minimum sample size (only an empty series is
  Nodata): ``min_samples=1``. Mean-ratio thresholds become the harness's relative tolerance (a share
  of the baseline median): ``allowedIncrease`` a -> tolerance ``a - 1`` on increases,
  ``allowedDecrease`` b -> ``1 - b`` on decreases ("High only if canary/baseline >= a" becomes "High
  only if the shift exceeds (a - 1) x the baseline median"); a threshold on the harmless side of 1
  gives 0. Asymmetric thresholds on an ``either`` metric become two one-sided metrics (increase
  with a - 1, decrease with 1 - b): High if the first is High, Low if the second is Low.
  ``criticalIncrease``/``criticalDecrease`` c: Kayenta marks a High critical only when the ratio also
  passes c, so "critical" is whether ``decide`` rolls back naming the same metric set
  ``critical=True`` with tolerance ``max(a, c) - 1`` (resp. ``1 - min(b, c)``); for a Nodata result,
  whether ``decide`` rolls back on it as a critical metric without canary data. CLES thresholds are
  probabilities with no counterpart in a shift tolerance: tolerance 0 (only the test decides).
  ``nanStrategy: replace`` -> the caller turns NaN into 0 before judging (the harness drops
  non-finite values). ``MeanInequalityClassifier`` (no test, no parameters) -> the harness's
  classifier at its default confidence with tolerance 0. Kayenta's deviation (mean ratio) -> the
  harness's relative effect ``(|baseline| + effect) / |baseline|`` from the reported Hodges-Lehmann
  effect and baseline median: 1 when there is no shift, NaN when the baseline median is 0.
* Effect sizes: the mean ratio as the deviation above; CLES and Cohen's d have no counterpart.
* Descriptive statistics: R-7 percentiles -> the quantile the tail test takes
  (``tail_difference(...).baseline_q``, numpy's ``linear`` = R-7).
* Scorer: each Kayenta result -> a ``MetricResult`` built directly; a Nodata result as the harness's
  classifier builds one for a metric the canary gave no data for (``missing: canary``, baseline
  data present). No weights configured -> equal weights (Kayenta splits 100 evenly). Kayenta's
  summary score -> ``score_groups``'s and ``decide``'s score; its forced 0 on a critical failure ->
  ROLLBACK naming the critical metric; its forced 0 when half the metrics have no data -> HOLD; a
  group without data (Kayenta: ``noData``, reported 0.0) -> group score None.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from harness.canary.judge import MetricSample, _z, classify, decide, score_groups
from harness.canary.mann_whitney import mann_whitney_shift
from harness.canary.metric import JudgeConfig, MetricSpec
from harness.canary.tail import tail_difference
from harness.canary.verdict import HOLD, ROLLBACK, MetricResult

DATA = Path(__file__).parent.parent / "data" / "kayenta"
CASES = json.loads((DATA / "cases.json").read_text(encoding="utf-8"))
SUITES = ("mann_whitney", "classifier", "effect_sizes", "descriptive_statistics", "scorer")

SOLVER_TOL = 1e-4  # Kayenta's BrentSolver.TOLERANCE (R's uniroot default)
LABEL = {"Pass": "Pass", "High": "High", "Low": "Low", "Nodata": "NoData"}
NAME, GROUP = "metric", "group"

ESTIMATE = (
    "Hodges-Lehmann estimate (median of pairwise differences) and order-statistic interval, not roots "
    "of R's asymptotic statistic found by Brent's method to 1e-4: on these data the differences span "
    "5e-5, less than the solver's tolerance, so Kayenta's estimate lands on its upper bound"
)
ZERO_INFLATED = (
    "zero-inflated data (64% of pairwise differences are 0): the effect is the difference of means "
    "with its normal interval, not a shift that sits at 0 whatever the test says"
)
NO_EFFECT_SIZE = (
    "no CLES or Cohen's d: the harness's effect is a shift in the metric's units (Hodges-Lehmann), "
    "judged against a tolerance relative to the baseline median"
)
ZERO_CANARY = (
    "Kayenta's mean ratio is NaN when either mean is 0; the harness's relative effect is defined "
    "whenever the baseline median is not 0: a canary at 0 is -100%, deviation 0"
)
NO_DATA_NEVER_PASSES = (
    "no data is NoData: Kayenta with nanStrategy=replace passes a metric whose series is "
    "empty; the harness has no NaN-replacement mode and never passes a metric it has no "
    "observations for"
)
NO_SUMMARY = "no summary-statistics block (min, max, mean, sd): the harness reports a metric's count and median"

DELIBERATE: dict[str, str] = {
    "Mann-Whitney Confidence Interval & Estimate: Problem Case": ESTIMATE,
    "Mann-Whitney Intermediate Values / Variables": ZERO_INFLATED,
    "Mann-Whitney Zero Mean: Low Metric with Effect Size": ZERO_CANARY,
    "Mann-Whitney Missing Experiment Data with NaN Replacement": NO_DATA_NEVER_PASSES,
    "Effect Size: Cohen's D": NO_EFFECT_SIZE,
    "CLES Effect Size: Identical": NO_EFFECT_SIZE,
    "CLES Effect Size: Different (No Overlap)": NO_EFFECT_SIZE,
    "CLES Effect Size: High Metric": NO_EFFECT_SIZE,
    "CLES Effect Size: Low Metric": NO_EFFECT_SIZE,
    "Summary Statistics: Scalar": NO_SUMMARY,
    "Summary Statistics: List": NO_SUMMARY,
    "Summary Statistics: No Data": NO_SUMMARY,
}

KNOWN_BUGS: dict[str, str] = {}


def _cases(suite: str) -> list:
    out = []
    for case in CASES[suite]:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[case["name"]])] if case["name"] in KNOWN_BUGS else []
        out.append(pytest.param(case, id=case["name"], marks=marks))
    return out


def _tol(case: dict, key: str) -> float:
    t = case["abs_tol"]
    return float(t[key] if isinstance(t, dict) else t)


def _close(got: float, want: float, tol: float) -> bool:
    return abs(got - want) <= tol


def _signed_z(s) -> float:
    """The z of the harness's two-sided p-value, signed like its estimate (canary - baseline)."""
    return float(np.sign(s.estimate) * stats.norm.isf(s.p_value / 2))


def _pairwise(x, y) -> np.ndarray:
    return np.sort(np.subtract.outer(np.asarray(x, float), np.asarray(y, float)).ravel())


# --- Mann-Whitney ---------------------------------------------------------------------------


def _root_tol(case: dict, key: str) -> float:
    x, y = np.asarray(case["x"], float), np.asarray(case["y"], float)
    span = (x.max() - y.min()) - (x.min() - y.max())
    return max(_tol(case, key), SOLVER_TOL) if SOLVER_TOL <= 0.01 * span else _tol(case, key)


def _check_wilcoxon_diff(x, y, mu: float, quantile: float, want: float, tol: float) -> None:
    s = mann_whitney_shift(y, np.asarray(x, float) - mu)
    got = _signed_z(s) - quantile
    assert _close(got, want, tol), f"wilcoxonDiff(mu={mu}, q={quantile}): harness {got}, Kayenta {want}"


def _agree_mann_whitney(case: dict) -> None:
    kind = case["kind"]
    if kind == "wilcoxon_diff":
        for ev in case["evaluations"]:
            _check_wilcoxon_diff(case["x"], case["y"], ev["mu"], ev["quantile"], ev["expected"], case["abs_tol"])
    elif kind == "normal_quantile":
        got = -_z(1 - case["alpha"])  # Phi^-1(alpha/2)
        assert _close(got, case["expected"]["inverse_normal_cdf"], case["abs_tol"])
    elif kind == "confidence_interval_and_estimate":
        s = mann_whitney_shift(case["y"], case["x"], case["confidence_level"])
        exp = case["expected"]
        got = {"ci_lower": s.low, "ci_upper": s.high, "estimate": s.estimate}
        for key, value in got.items():
            assert _close(value, exp[key], _root_tol(case, key)), f"{key}: harness {value}, Kayenta {exp[key]}"
    else:
        raise AssertionError(f"no agreement check for kind {kind}")


def _harness_mann_whitney(case: dict) -> None:
    x, y, conf = case["x"], case["y"], case["confidence_level"]
    exp = case["expected"]
    s = mann_whitney_shift(y, x, conf)
    diffs = _pairwise(x, y)
    m = n = len(x)
    z = _z(conf)
    if case["kind"] == "confidence_interval_and_estimate":
        # The Hodges-Lehmann estimate and the normal-approximation order statistics (n >= 50).
        assert s.measure == "hodges_lehmann" and not s.exact
        c = int(np.floor(m * n / 2 - z * np.sqrt(m * n * (m + n + 1) / 12)))
        assert s.estimate == float(np.median(diffs))
        assert (s.low, s.high) == (float(diffs[c]), float(diffs[len(diffs) - 1 - c]))
        assert s.p_value > 1 - conf and s.low <= 0 <= s.high
        assert not _close(s.estimate, exp["estimate"], _root_tol(case, "estimate"))
        return
    # Intermediate values: the solver's bracket and the statistic at its ends agree ...
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    assert _close(xa.min() - ya.max(), exp["mu_min"], case["abs_tol"])
    assert _close(xa.max() - ya.min(), exp["mu_max"], case["abs_tol"])
    assert _close(_z(conf), exp["zq_lower"], case["abs_tol"]) and _close(-_z(conf), exp["zq_upper"], case["abs_tol"])
    for key, mu, zq in (
        ("f_lower1", "mu_min", "zq_lower"),
        ("f_upper1", "mu_max", "zq_lower"),
        ("f_lower2", "mu_min", "zq_upper"),
        ("f_upper2", "mu_max", "zq_upper"),
    ):
        _check_wilcoxon_diff(x, y, exp[mu], exp[zq], exp[key], case["abs_tol"])
    # ... but the effect is the difference of means with its normal interval.
    assert np.mean(diffs == 0) >= 0.5 and s.measure == "mean_difference"
    est = float(xa.mean() - ya.mean())
    se = float(np.sqrt(xa.var(ddof=1) / m + ya.var(ddof=1) / n))
    assert s.estimate == pytest.approx(est, abs=1e-12)
    assert (s.low, s.high) == pytest.approx((est - z * se, est + z * se), abs=1e-12)
    assert s.p_value < 1 - conf and s.low > 0
    assert not _close(s.estimate, exp["estimate"], case["abs_tol"])


@pytest.mark.parametrize("case", _cases("mann_whitney"))
def test_mann_whitney(case):
    if case["name"] in DELIBERATE:
        _harness_mann_whitney(case)
    else:
        _agree_mann_whitney(case)


# --- Classifier -----------------------------------------------------------------------------


def _tolerances(case: dict) -> tuple[float, float, float, float, float]:
    """(increase, decrease, critical increase, critical decrease) tolerances and the confidence."""
    if case["classifier"] == "MeanInequalityClassifier":
        return 0.0, 0.0, 0.0, 0.0, JudgeConfig().confidence
    p = case["params"]
    allowed, crit = p["effect_size_thresholds"], p["critical_thresholds"]
    if p["effect_size_measure"] != "meanRatio":  # CLES: a probability, no shift tolerance
        return 0.0, 0.0, 0.0, 0.0, p["confidence_level"]
    inc, dec = max(allowed["allowed_increase"] - 1, 0.0), max(1 - allowed["allowed_decrease"], 0.0)
    cinc = max(inc, crit["critical_increase"] - 1)
    cdec = max(dec, 1 - crit["critical_decrease"])
    return inc, dec, cinc, cdec, p["confidence_level"]


def _specs(direction: str, inc: float, dec: float, critical: bool) -> list[MetricSpec]:
    if direction == "increase":
        sides = [("increase", inc)]
    elif direction == "decrease":
        sides = [("decrease", dec)]
    elif inc == dec:
        sides = [("either", inc)]
    else:
        sides = [("increase", inc), ("decrease", dec)]
    return [MetricSpec(NAME, GROUP, "mann_whitney", d, critical=critical, tolerance=t) for d, t in sides]


def _cfg(confidence: float, specs) -> JudgeConfig:
    return JudgeConfig(metrics=tuple(specs), group_weights={GROUP: 1.0}, confidence=confidence, min_samples=1)


def _deviation(r: MetricResult) -> float:
    if r.effect is None:
        return float("nan")
    if r.effect == 0:
        return 1.0
    if not r.baseline:
        return float("nan")
    return (abs(r.baseline) + r.effect) / abs(r.baseline)


def _values(values, nan_strategy: str) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    return np.nan_to_num(a, nan=0.0) if nan_strategy == "replace" else a


def _judge_case(case: dict) -> dict:
    """Kayenta's view of one classifier case, from the harness: label, critical, deviation, result."""
    inc, dec, cinc, cdec, conf = _tolerances(case)
    sample = MetricSample(
        _values(case["control"], case["nan_strategy"]), _values(case["experiment"], case["nan_strategy"])
    )
    labelled = [classify(s, sample, _cfg(conf, [s])) for s in _specs(case["direction"], inc, dec, False)]
    classes = {r.classification for r in labelled}
    label = next((c for c in ("High", "Low", "NoData") if c in classes), "Pass")
    critical = False
    if case["critical"]:
        for spec in _specs(case["direction"], cinc, cdec, True):
            cfg = _cfg(conf, [spec])
            v = decide([classify(spec, sample, cfg)], cfg)
            critical |= any(r.startswith(f"critical metric {NAME} ") for r in v.reasons)
    return {"classification": label, "critical": critical, "deviation": _deviation(labelled[0]), "result": labelled[0]}


def _agree_classifier(case: dict) -> None:
    got, exp = _judge_case(case), case["expected"]
    if "classification" in exp:
        assert got["classification"] == LABEL[exp["classification"]]
    if "critical" in exp:
        assert got["critical"] == exp["critical"]
    if "deviation_is_nan" in exp:
        assert math.isnan(got["deviation"]) == exp["deviation_is_nan"]
    if "deviation" in exp:
        assert got["deviation"] == exp["deviation"]
    if "reason_nonempty" in exp:
        assert bool(got["result"].reason) == exp["reason_nonempty"]


def _harness_classifier(case: dict) -> None:
    got = _judge_case(case)
    r = got["result"]
    if DELIBERATE[case["name"]] == NO_DATA_NEVER_PASSES:
        assert case["expected"]["classification"] == "Pass" and len(case["experiment"]) == 0
        assert got["classification"] == "NoData" and r.details == {"missing": "canary"}
        assert r.n_baseline == len(case["control"]) and r.n_canary == 0
        v = decide([r], _cfg(0.95, [MetricSpec(NAME, GROUP)]))
        assert v.verdict == HOLD and v.score is None
    elif DELIBERATE[case["name"]] == ZERO_CANARY:
        assert got["classification"] == LABEL[case["expected"]["classification"]] and not got["critical"]
        assert r.canary == 0 and r.effect == -r.baseline and got["deviation"] == 0.0
        assert case["expected"]["deviation_is_nan"]
    else:
        raise AssertionError(f"no harness outcome written for {case['name']}")


@pytest.mark.parametrize("case", _cases("classifier"))
def test_classifier(case):
    if case["name"] in DELIBERATE:
        _harness_classifier(case)
    else:
        _agree_classifier(case)


# --- Effect sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("effect_sizes"))
def test_effect_sizes(case):
    exp = case["expected"]
    if case["name"] not in DELIBERATE:
        assert case["measure"] in ("meanRatio", "meanRatio_from_summary_statistics")
        r = classify(MetricSpec(NAME, GROUP), MetricSample(case["control"], case["experiment"]), _cfg(0.98, []))
        got = _deviation(r)
        if exp.get("is_nan"):
            assert math.isnan(got)
        else:
            assert _close(got, exp["value"], _tol(case, "value"))
        return
    # The harness's effect on the same data: the Hodges-Lehmann shift, on the same side of "no
    # effect" as Kayenta's measure (CLES 0.5, Cohen's d 0).
    assert case["measure"] in ("cles", "cohenD")
    s = mann_whitney_shift(case["control"], case["experiment"])
    diffs = _pairwise(case["experiment"], case["control"])
    assert s.measure == "hodges_lehmann" and s.estimate == float(np.median(diffs))
    neutral = 0.5 if case["measure"] == "cles" else 0.0
    assert np.sign(s.estimate) == np.sign(exp["value"] - neutral)
    if case["measure"] == "cles" and exp["value"] in (0.0, 1.0):  # no overlap: the interval excludes 0
        assert s.high < 0 if exp["value"] == 0.0 else s.low > 0


# --- Descriptive statistics -----------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("descriptive_statistics"))
def test_descriptive_statistics(case):
    values = case["values"]
    if case["name"] not in DELIBERATE:
        assert case["kind"] == "percentile_r7"
        for e in case["expected"]:
            got = tail_difference(values, values, quantile=e["p"] / 100).baseline_q
            assert _close(got, e["value"], e["abs_tol"]), f"p{e['p']}: harness {got}, Kayenta {e['value']}"
        return
    # What the harness reports about a sample instead: its count and median.
    assert case["kind"] == "summary"
    r = classify(MetricSpec(NAME, GROUP), MetricSample(values, values), _cfg(0.98, []))
    assert r.n_baseline == case["expected"]["count"]
    if values:
        assert r.classification == "Pass" and r.baseline == float(np.median(values))
    else:
        assert r.classification == "NoData" and r.baseline is None


# --- Scorer ---------------------------------------------------------------------------------


def _scorer_result(m: dict) -> MetricResult:
    assert len(m["groups"]) == 1
    cls = LABEL[m["classification"]]
    nodata = cls == "NoData"
    return MetricResult(
        m["name"],
        m["groups"][0],
        cls,
        cls in ("High", "Low"),
        m["critical"],
        "mann_whitney_u",
        baseline=None,
        canary=None,
        n_baseline=20,
        n_canary=0 if nodata else 20,
        p_value=None,
        effect=None,
        effect_low=None,
        effect_high=None,
        tolerance=None,
        direction="increase",
        unit="",
        reason=f"Kayenta: {m['classification']}",
        details={"missing": "canary"} if nodata else {},
    )


@pytest.mark.parametrize("case", _cases("scorer"))
def test_scorer(case):
    assert case["name"] not in DELIBERATE
    results = [_scorer_result(m) for m in case["metrics"]]
    names = list(dict.fromkeys(r.group for r in results))
    weights = dict(case["group_weights"]) or {g: 1.0 for g in names}
    cfg = JudgeConfig(
        metrics=tuple(MetricSpec(r.name, r.group, critical=r.critical) for r in results), group_weights=weights
    )
    groups, score = score_groups(results, weights)
    v = decide(results, cfg)
    exp, src = case["expected"], case["derived_from_source"]
    if src["critical_failures"]:
        assert exp["summary_score"] == 0.0 and v.verdict == ROLLBACK
        named = {m for m in src["critical_failures"] if any(x.startswith(f"critical metric {m} ") for x in v.reasons)}
        assert named == set(src["critical_failures"])
    elif src["too_many_nodata"]:
        assert exp["summary_score"] == 0.0 and v.verdict == HOLD
        assert any(
            x == "no metric had data on both targets" or x.endswith("have no data: inconclusive") for x in v.reasons
        )
    else:
        assert score == exp["summary_score"] and v.score == exp["summary_score"]
    by_group = {g.name: g.score for g in groups}
    kayenta_view = {g: (0.0 if s is None else s) for g, s in by_group.items()}  # no data: Kayenta reports 0.0
    assert {g for g, s in by_group.items() if s is None} == set(src["groups_without_data"])
    assert kayenta_view == pytest.approx(src["group_scores"], abs=1e-6)
    if "group_scores" in exp:
        assert kayenta_view == pytest.approx(exp["group_scores"], abs=0)
    if "group_scores_sorted" in exp:
        assert sorted(kayenta_view.values()) == exp["group_scores_sorted"]
    if "group_count" in exp:
        assert len(groups) == exp["group_count"]


# --- The lists themselves -------------------------------------------------------------------


def test_every_case_is_run_and_the_lists_name_real_cases():
    names = [c["name"] for s in SUITES for c in CASES[s]]
    assert {s: len(CASES[s]) for s in SUITES} == CASES["counts"]
    assert len(names) == len(set(names)) == sum(CASES["counts"].values())
    assert set(DELIBERATE) <= set(names) and set(KNOWN_BUGS) <= set(names)
    assert not set(DELIBERATE) & set(KNOWN_BUGS)


def test_differences_md_matches_the_lists():
    text = (DATA / "DIFFERENCES.md").read_text(encoding="utf-8")
    for name in list(DELIBERATE) + list(KNOWN_BUGS):
        assert f"`{name}`" in text, name
    differ = set(DELIBERATE) | set(KNOWN_BUGS)
    total = agree = 0
    for suite in SUITES:
        n = len(CASES[suite])
        k = n - sum(c["name"] in differ for c in CASES[suite])
        total, agree = total + n, agree + k
        assert re.search(rf"\b{k} of {n}\b", text), suite
    assert f"{agree} of {total} cases agree" in text
