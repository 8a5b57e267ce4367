"""The canary judge: Kayenta's method (a test per metric, effect-size tolerance, weighted group
scores, critical metrics) with paired tests on the evaluation set, tail-aware latency, and a
statement of what the run could have detected."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from harness.canary.metric import JudgeConfig, MetricSpec
from harness.canary.sample import MetricSample
from harness.canary.verdict import HOLD, PROMOTE, ROLLBACK, GroupResult, MetricResult, Verdict
from harness.verdicts import SHARE_OF_IMAGES

__all__ = ["MetricSample", "judge", "decide", "classify", "score_groups", "TEST_FUNCTIONS"]

HALF_NO_DATA = 0.5  # Kayenta: when at least half of the scored metrics have no data, no verdict


def _arr(x) -> np.ndarray:
    if x is None:
        return np.array([], dtype=float)
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    a = np.atleast_1d(np.asarray(x, dtype=float))
    return a[np.isfinite(a)]


def _paired(sample: MetricSample, numeric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Align the two sides by image id (Series) or by position (sequences)."""
    a, b = sample.baseline, sample.canary
    if a is None or b is None:
        return np.array([]), np.array([])
    if hasattr(a, "index") and hasattr(b, "index"):
        a = a[~a.index.duplicated(keep="last")]
        b = b[~b.index.duplicated(keep="last")]
        a, b = a.align(b, join="inner")
        a, b = a.to_numpy(), b.to_numpy()
    else:
        a, b = np.asarray(list(a), dtype=object), np.asarray(list(b), dtype=object)
        if len(a) != len(b):
            raise ValueError("paired samples must have the same length")
    if not numeric:
        keep = np.array([x is not None and y is not None for x, y in zip(a, b)], dtype=bool)
        return a[keep], b[keep]
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _result(spec: MetricSpec, cls: str, test: str, reason: str, **kw) -> MetricResult:
    failed = cls in ("High", "Low")
    base = dict(
        baseline=None,
        canary=None,
        n_baseline=0,
        n_canary=0,
        p_value=None,
        effect=None,
        effect_low=None,
        effect_high=None,
        tolerance=None,
    )
    base.update(kw)
    return MetricResult(
        spec.name,
        spec.group,
        cls,
        failed,
        spec.critical,
        test,
        direction=spec.direction,
        unit=spec.unit,
        reason=reason,
        must_detect=spec.must_detect,
        effect_unit=SHARE_OF_IMAGES if spec.test == "sign" else spec.unit,
        **base,
    )


def _direction_class(spec: MetricSpec, effect: float, significant: bool, tol: float) -> str:
    if not significant or abs(effect) <= tol:
        return "Pass"
    up = effect > 0
    if spec.direction == "increase":
        return "High" if up else "Pass"
    if spec.direction == "decrease":
        return "Low" if not up else "Pass"
    return "High" if up else "Low"


def _pv(p: float) -> str:
    return "p<1e-300" if p == 0 else f"p={p:.3g}"


def _fmt(spec: MetricSpec, v: float) -> str:
    if spec.unit == "s":
        return f"{v * 1000:.3g} ms"
    if spec.test == "sign":
        return f"{v:.1%} of images"
    if spec.test == "fisher":
        return f"{v * 100:.3g} points"
    return f"{v:.4g}{(' ' + spec.unit) if spec.unit else ''}"


def _explain(spec: MetricSpec, cls: str, significant: bool, effect: float, tol: float, p: float, what: str) -> str:
    if not significant:
        return f"no significant difference in {what} ({_pv(p)})"
    if abs(effect) <= tol:
        return f"{what} differs by {_fmt(spec, effect)} ({_pv(p)}), within the tolerance of {_fmt(spec, tol)}"
    if cls == "Pass":
        return f"{what} changed by {_fmt(spec, effect)} ({_pv(p)}), in the harmless direction"
    word = "higher" if cls == "High" else "lower"
    return f"canary {what} is {word} by {_fmt(spec, abs(effect))} ({_pv(p)}), beyond the tolerance of {_fmt(spec, tol)}"


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


def _detectable(spec: MetricSpec, mde: float) -> str:
    """The power statement in words, e.g. 'a quality regression on >= 6% of images'."""
    if not np.isfinite(mde):
        return f"no {spec.name} regression: too few observations"
    sign = "-" if spec.direction == "decrease" else "+"
    if spec.test == "sign":
        return f"a {spec.name} regression on >= {mde:.1%} of images"
    if spec.test == "tail":
        return f"p{round((spec.quantile or 0) * 100)} {sign}{mde * 1000:.0f} ms"
    if spec.test == "mann_whitney" and spec.unit == "s":
        return f"median {sign}{mde * 1000:.1f} ms"
    if spec.test == "fisher":
        return f"{spec.name.replace('_', ' ')} {sign}{mde * 100:.2g} points"
    return f"{spec.name.replace('_', ' ')} {sign}{mde:.3g}{(' ' + spec.unit) if spec.unit else ''}"


def _power(spec: MetricSpec, mde: float, tol: float) -> dict:
    mde = max(float(mde), tol)
    adequate = None if spec.must_detect is None else bool(mde <= spec.must_detect)
    return {"mde": mde if np.isfinite(mde) else None, "adequate": adequate, "detectable": _detectable(spec, mde)}


def _size(x) -> int:
    return 0 if x is None else len(x) if hasattr(x, "__len__") and not isinstance(x, str) else 1


def _need(
    spec: MetricSpec, a: np.ndarray, b: np.ndarray, need: int, sample: MetricSample | None = None
) -> MetricResult | None:
    """A NoData result when either side has fewer than ``need`` observations (for paired tests:
    pairs; the side named is the one that gave nothing, else the canary)."""
    if len(a) < need or len(b) < need:
        side = "baseline" if len(a) < need else "canary"
        if sample is not None:
            side = "baseline" if _size(sample.baseline) == 0 else "canary"
        na, nb = (len(a), len(b)) if sample is None else (_size(sample.baseline), _size(sample.canary))
        res = _result(
            spec,
            "NoData",
            "none",
            f"{side} has {min(len(a), len(b))} observations (needs {need})",
            n_baseline=na,
            n_canary=nb,
            details={"missing": side},
        )
        if spec.must_detect is not None:
            return MetricResult(**{**res.to_dict(), "adequate": False, "detectable": _detectable(spec, float("inf"))})
        return res
    return None


def _limit(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    a, b = _arr(sample.baseline), _arr(sample.canary)
    if len(a) == 0 or len(b) == 0:
        side = "baseline" if len(a) == 0 else "canary"
        return _result(spec, "NoData", "limit", f"no value for {side}", details={"missing": side})
    av, bv = float(a[0]), float(b[0])
    lim = float(spec.limit if spec.limit is not None else np.inf)
    if bv > lim and av > lim:
        cls, why = "NoData", f"both targets exceed the limit {lim:g} (baseline {av:.4g}, canary {bv:.4g}): inconclusive"
    elif bv > lim:
        cls, why = "High", f"canary {bv:.4g} exceeds the limit {lim:g} (baseline {av:.4g})"
    else:
        cls, why = "Pass", f"canary {bv:.4g} within the limit {lim:g} (baseline {av:.4g})"
    return _result(
        spec,
        cls,
        "limit",
        why,
        baseline=av,
        canary=bv,
        n_baseline=1,
        n_canary=1,
        effect=bv - av,
        tolerance=lim,
        p_value=sample.p_value,
    )


def _fisher(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    from harness.canary.power import rate_mde
    from harness.canary.proportion import rate_difference

    a, b = _arr(sample.baseline), _arr(sample.canary)
    if (short := _need(spec, a, b, 1)) is not None:
        return short
    r = rate_difference(int(a.sum()), len(a), int(b.sum()), len(b), cfg.confidence)
    tol = max(spec.tolerance * r.baseline_rate, spec.tolerance_abs)
    sig = r.p_value < cfg.alpha
    cls = _direction_class(spec, r.estimate, sig, tol)
    why = _explain(spec, cls, sig, r.estimate, tol, r.p_value, f"rate ({r.baseline_rate:.2%} -> {r.canary_rate:.2%})")
    mde = rate_mde(r.baseline_rate, len(a), len(b), cfg.test_confidence, increase=spec.direction != "decrease")
    return _result(
        spec,
        cls,
        "fisher_exact",
        why,
        baseline=r.baseline_rate,
        canary=r.canary_rate,
        n_baseline=len(a),
        n_canary=len(b),
        p_value=r.p_value,
        effect=r.estimate,
        effect_low=r.low,
        effect_high=r.high,
        tolerance=tol,
        **_power(spec, mde, tol),
        details={"count_baseline": int(a.sum()), "count_canary": int(b.sum())},
    )


def _mann_whitney(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    from harness.canary.mann_whitney import mann_whitney_shift
    from harness.canary.power import normal_mde

    a, b = _arr(sample.baseline), _arr(sample.canary)
    if (short := _need(spec, a, b, cfg.min_samples)) is not None:
        return short
    s = mann_whitney_shift(a, b, cfg.confidence, seed=cfg.seed)
    if s.measure == "mean_difference":  # the tolerance is relative to the figure the effect is taken on
        med_a, med_b = float(np.mean(a)), float(np.mean(b))
    else:
        med_a, med_b = float(np.median(a)), float(np.median(b))
    tol = max(spec.tolerance * abs(med_a), spec.tolerance_abs)
    sig = s.p_value < cfg.alpha
    cls = _direction_class(spec, s.estimate, sig, tol)
    what = "median " + spec.name.replace("_p50", "").replace("_", " ")
    if s.measure == "mean_difference":
        what = "mean " + spec.name.replace("_p50", "").replace("_", " ") + " (zero-inflated data)"
    why = _explain(spec, cls, sig, s.estimate, tol, s.p_value, what)
    mde = normal_mde((s.high - s.low) / (2 * _z(cfg.confidence)), cfg.test_confidence)
    return _result(
        spec,
        cls,
        "mann_whitney_u",
        why,
        baseline=med_a,
        canary=med_b,
        n_baseline=len(a),
        n_canary=len(b),
        p_value=s.p_value,
        effect=s.estimate,
        effect_low=s.low,
        effect_high=s.high,
        tolerance=tol,
        **_power(spec, mde, tol),
        details={"effect_measure": s.measure, "exact_interval": s.exact, "subsampled": s.subsampled},
    )


def _tail(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    from harness.canary.power import normal_mde
    from harness.canary.tail import tail_difference

    a, b = _arr(sample.baseline), _arr(sample.canary)
    if (short := _need(spec, a, b, cfg.min_samples)) is not None:
        return short
    q = spec.quantile or 0.95
    t = tail_difference(a, b, q, cfg.confidence, seed=cfg.seed)
    tol = max(spec.tolerance * abs(t.baseline_q), spec.tolerance_abs)
    sig = t.p_value < cfg.alpha
    cls = _direction_class(spec, t.estimate, sig, tol)
    pct = f"p{round(q * 100)}"
    why = _explain(spec, cls, sig, t.estimate, tol, t.p_value, f"{pct} latency")
    if sig:
        why += (
            f"; {t.slower_canary} of {t.n_canary} canary requests were slower than the baseline's {pct} "
            f"(baseline: {t.slower_baseline} of {t.n_baseline})"
        )
    mde = normal_mde(t.sd, cfg.test_confidence)
    return _result(
        spec,
        cls,
        "tail_fisher_exact",
        why,
        baseline=t.baseline_q,
        canary=t.canary_q,
        n_baseline=len(a),
        n_canary=len(b),
        p_value=t.p_value,
        effect=t.estimate,
        effect_low=t.low,
        effect_high=t.high,
        tolerance=tol,
        **_power(spec, mde, tol),
        details={"quantile": q, "slower_baseline": t.slower_baseline, "slower_canary": t.slower_canary},
    )


def _sign(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    from harness.canary.paired import sign_test
    from harness.canary.power import sign_mde

    a, b = _paired(sample)
    if (short := _need(spec, a, b, 1, sample)) is not None:
        return short
    s = sign_test(a, b, spec.delta, cfg.confidence, seed=cfg.seed)
    tol = spec.tolerance_abs
    sig = s.p_value < cfg.alpha
    cls = _direction_class(spec, s.estimate, sig, tol)
    what = f"per-image {spec.name} ({s.worse} of {s.n} images worse, {s.better} better, by more than {spec.delta:g})"
    why = _explain(spec, cls, sig, s.estimate, tol, s.p_value, what)
    mde = sign_mde(s.n, min(s.better, s.worse), cfg.test_confidence, tol)  # the churn both ways is the noise
    return _result(
        spec,
        cls,
        "sign_test_paired",
        why,
        baseline=float(np.mean(a)),
        canary=float(np.mean(b)),
        n_baseline=s.n,
        n_canary=s.n,
        p_value=s.p_value,
        effect=s.estimate,
        effect_low=s.low,
        effect_high=s.high,
        tolerance=tol,
        **_power(spec, mde, tol),
        details={
            "worse": s.worse,
            "better": s.better,
            "pairs": s.n,
            "delta": spec.delta,
            "mean_difference": float(np.mean(b - a)),
        },
    )


def _wilcoxon(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    from harness.canary.paired import paired_shift
    from harness.canary.power import normal_mde

    a, b = _paired(sample)
    if (short := _need(spec, a, b, cfg.min_samples, sample)) is not None:
        return short
    s = paired_shift(a, b, cfg.confidence, seed=cfg.seed)
    base = float(np.mean(a))
    tol = max(spec.tolerance * abs(base), spec.tolerance_abs)
    sig = s.p_value < cfg.alpha
    cls = _direction_class(spec, s.estimate, sig, tol)
    why = _explain(
        spec,
        cls,
        sig,
        s.estimate,
        tol,
        s.p_value,
        f"mean per-image {spec.name.replace('_', ' ')} ({s.changed} of {s.n} images changed)",
    )
    mde = normal_mde((s.high - s.low) / (2 * _z(cfg.confidence)), cfg.test_confidence)
    details: dict[str, Any] = {"pairs": s.n, "changed": s.changed}
    return _result(
        spec,
        cls,
        "wilcoxon_signed_rank",
        why,
        baseline=base,
        canary=float(np.mean(b)),
        n_baseline=s.n,
        n_canary=s.n,
        p_value=s.p_value,
        effect=s.estimate,
        effect_low=s.low,
        effect_high=s.high,
        tolerance=tol,
        **_power(spec, mde, tol),
        details=details,
    )


def _share(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    a, b = _paired(sample, numeric=False)
    if len(a) == 0:
        return _result(spec, "NoData", "share", "no image was answered by both targets", details={"missing": "pairs"})
    changed = int(sum(x != y for x, y in zip(a, b)))
    share = changed / len(a)
    why = f"{changed} of {len(a)} images got a different caption ({share:.1%}); informational"
    return _result(
        spec,
        "Info",
        "share_changed",
        why,
        baseline=0.0,
        canary=share,
        n_baseline=len(a),
        n_canary=len(a),
        effect=share,
        details={"changed": changed, "pairs": len(a)},
    )


TEST_FUNCTIONS: dict[str, Callable[[MetricSpec, MetricSample, JudgeConfig], MetricResult]] = {
    "limit": _limit,
    "fisher": _fisher,
    "mann_whitney": _mann_whitney,
    "tail": _tail,
    "sign": _sign,
    "wilcoxon": _wilcoxon,
    "share": _share,
}


def classify(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    """Compare one metric's baseline and canary observations with its test and classify."""
    return TEST_FUNCTIONS[spec.test](spec, sample, cfg)


def _required(cfg: JudgeConfig) -> set[str]:
    return {m.name for m in cfg.metrics if m.must_have_data}


def _spec(cfg: JudgeConfig, r: MetricResult) -> MetricSpec:
    try:
        return cfg.metric(r.name)
    except KeyError:
        return MetricSpec(r.name, r.group, r.test)  # type: ignore[arg-type]


def score_groups(
    results: Sequence[MetricResult], weights: Mapping[str, float]
) -> tuple[list[GroupResult], float | None]:
    """A group's score is Pass / (Pass + High + Low) x 100 over its metrics with data (NoData and
    informational metrics left out); the run's score is the mean of the group scores weighted by
    ``weights``, over the groups that have data (rounded to 2 decimals; None when none has)."""
    groups = []
    for g, w in weights.items():
        rs = [r for r in results if r.group == g and r.classification != "Info"]
        scored = [r for r in rs if r.classification != "NoData"]
        passed = sum(r.classification == "Pass" for r in scored)
        gs = 100.0 * passed / len(scored) if scored else None
        groups.append(GroupResult(g, w, gs, passed, len(scored) - passed, len(rs) - len(scored)))
    weighted = [(g.weight, g.score) for g in groups if g.score is not None and g.weight > 0]
    score = round(sum(w * s for w, s in weighted) / sum(w for w, _ in weighted), 2) if weighted else None
    return groups, score


def judge(
    samples: Mapping[str, MetricSample], cfg: JudgeConfig = JudgeConfig(), reasons: Sequence[str] = ()
) -> Verdict:
    """Classify every configured metric, score the groups and decide.

    ``reasons`` are conditions found before judging that make the data untrustworthy (a target
    down, the harness's own records corrupt): any of them makes the verdict HOLD.
    Then, in order: a failed critical metric (or a critical metric the canary gave no data for)
    is ROLLBACK; a score under the marginal threshold is ROLLBACK; no data on a required metric,
    at least half of the metrics without data, a run too small to detect what it must
    (underpowered), or a metric that failed decisively (p under ``decisive_p``: a change a person
    must see) is HOLD; a marginal score is HOLD; else PROMOTE. At a look of an interval analysis
    before the last, what is not ROLLBACK is HOLD: the analysis goes on."""
    results = [classify(m, samples.get(m.name, MetricSample(None, None)), cfg) for m in cfg.metrics]
    return decide(results, cfg, reasons)


def decide(results: Sequence[MetricResult], cfg: JudgeConfig = JudgeConfig(), reasons: Sequence[str] = ()) -> Verdict:
    """The verdict from classified metrics (the rules of ``judge``)."""
    groups, score = score_groups(results, cfg.group_weights)
    out = list(reasons)
    judged = [r for r in results if r.classification != "Info"]
    critical = [r for r in judged if r.critical and r.failed]
    # Kayenta: a critical metric with no data fails the run. Here only when the canary gave none
    # while the baseline did; with no baseline data there is nothing to compare: HOLD.
    critical_nodata = [
        r
        for r in judged
        if r.critical and r.classification == "NoData" and r.details.get("missing") == "canary" and r.n_baseline > 0
    ]
    missing = [
        r for r in judged if r.classification == "NoData" and r.name in _required(cfg) and r not in critical_nodata
    ]
    no_data = [r for r in judged if r.classification == "NoData"]
    underpowered = [r for r in judged if r.adequate is False and r.classification != "NoData"]
    decisive = [r for r in judged if r.failed and r.p_value is not None and r.p_value < cfg.decisive_p]
    thresholds = {"pass": cfg.pass_threshold, "marginal": cfg.marginal_threshold, "confidence": cfg.confidence}
    if reasons:
        out += [f"critical metric {r.name} failed on data that cannot be trusted: {r.reason}" for r in critical]
        verdict = HOLD
    elif critical or critical_nodata:
        out += [f"critical metric {r.name} failed: {r.reason}" for r in critical]
        out += [f"critical metric {r.name} has no data from the canary: {r.reason}" for r in critical_nodata]
        verdict = ROLLBACK
    elif score is not None and score < cfg.marginal_threshold:
        out.append(f"score {score:g} < marginal threshold {cfg.marginal_threshold:g}")
        verdict = ROLLBACK
    elif missing:
        out += [f"no data for required metric {r.name}: {r.reason}" for r in missing]
        verdict = HOLD
    elif score is None:
        out.append("no metric had data on both targets")
        verdict = HOLD
    elif judged and len(no_data) >= HALF_NO_DATA * len(judged):
        out.append(f"{len(no_data)} of {len(judged)} metrics have no data: inconclusive")
        verdict = HOLD
    elif underpowered:
        out += [
            f"underpowered: {r.name} could only detect {r.detectable}, but must detect "
            f"{_detectable(_spec(cfg, r), r.must_detect)}"
            for r in underpowered
        ]
        verdict = HOLD
    elif decisive:
        out += [
            f"decisive change in {r.name} ({_pv(r.p_value)} < {cfg.decisive_p:g}): never promoted without a person; "
            f"{r.reason}"
            for r in decisive
        ]
        verdict = HOLD
    elif score >= cfg.pass_threshold:
        out.append(f"score {score:g} >= pass threshold {cfg.pass_threshold:g}")
        verdict = PROMOTE
    else:
        out.append(f"score {score:g} is marginal ({cfg.marginal_threshold:g} <= score < {cfg.pass_threshold:g})")
        verdict = HOLD
    if cfg.look is not None and not cfg.look.final and verdict != ROLLBACK:
        lk = cfg.look
        out.insert(
            0,
            f"look {lk.look} of {lk.looks}: no decisive failure at level {lk.level:.3g}; the analysis goes on "
            f"(PROMOTE only at the last look)",
        )
        verdict = HOLD
    if verdict != PROMOTE:
        out += [f"{r.name}: {r.reason}" for r in results if r.failed and not r.critical]
    return Verdict(verdict, score, tuple(out), tuple(results), tuple(groups), thresholds)
