"""The canary judge: Kayenta's method (Mann-Whitney per metric, effect-size tolerance, weighted
group scores, critical metrics) applied to latency, errors, quality, safety and SLO burn."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from harness.canary.mann_whitney import mann_whitney_shift
from harness.canary.metric import JudgeConfig, MetricSpec
from harness.canary.proportion import rate_difference
from harness.canary.verdict import HOLD, PROMOTE, ROLLBACK, GroupResult, MetricResult, Verdict

__all__ = ["MetricSample", "judge", "classify"]


@dataclass(frozen=True)
class MetricSample:
    """Observations of one metric on both targets: values (continuous), 0/1 outcomes (rate), or
    a single figure each (limit). ``None`` means the target produced no data for it."""

    baseline: Sequence[float] | float | None
    canary: Sequence[float] | float | None


def _arr(x) -> np.ndarray:
    if x is None:
        return np.array([], dtype=float)
    a = np.atleast_1d(np.asarray(x, dtype=float))
    return a[np.isfinite(a)]


def _result(spec: MetricSpec, cls: str, test: str, reason: str, **kw) -> MetricResult:
    failed = cls in ("High", "Low")
    base = dict(baseline=None, canary=None, n_baseline=0, n_canary=0, p_value=None, effect=None,
                effect_low=None, effect_high=None, tolerance=None)
    base.update(kw)
    return MetricResult(spec.name, spec.group, cls, failed, spec.critical, test, direction=spec.direction,
                        unit=spec.unit, reason=reason, **base)


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


def _explain(spec: MetricSpec, cls: str, significant: bool, effect: float, tol: float, p: float, what: str) -> str:
    fmt = lambda v: f"{v:.4g}{(' ' + spec.unit) if spec.unit else ''}"  # noqa: E731
    if not significant:
        return f"no significant difference in {what} ({_pv(p)})"
    if abs(effect) <= tol:
        return f"{what} differs by {fmt(effect)} ({_pv(p)}), within the tolerance of {fmt(tol)}"
    if cls == "Pass":
        return f"{what} changed by {fmt(effect)} ({_pv(p)}), in the harmless direction"
    word = "higher" if cls == "High" else "lower"
    return f"canary {what} is {word} by {fmt(abs(effect))} ({_pv(p)}), beyond the tolerance of {fmt(tol)}"


def classify(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    """Compare one metric's baseline and canary observations and classify the difference."""
    a, b = _arr(sample.baseline), _arr(sample.canary)
    alpha = 1.0 - cfg.confidence
    if spec.kind == "limit":
        if len(a) == 0 or len(b) == 0:
            return _result(spec, "NoData", "limit", "no value for " + ("baseline" if len(a) == 0 else "canary"))
        av, bv = float(a[0]), float(b[0])
        lim = float(spec.limit if spec.limit is not None else np.inf)
        if bv > lim and av > lim:
            cls, why = "NoData", f"both targets exceed the limit {lim:g} (baseline {av:.4g}, canary {bv:.4g}): inconclusive"
        elif bv > lim:
            cls, why = "High", f"canary {bv:.4g} exceeds the limit {lim:g} (baseline {av:.4g})"
        else:
            cls, why = "Pass", f"canary {bv:.4g} within the limit {lim:g} (baseline {av:.4g})"
        return _result(spec, cls, "limit", why, baseline=av, canary=bv, n_baseline=1, n_canary=1,
                       effect=bv - av, tolerance=lim)
    need = 1 if spec.kind == "rate" else cfg.min_samples
    if len(a) < need or len(b) < need:
        side = "baseline" if len(a) < need else "canary"
        return _result(spec, "NoData", "none", f"{side} has {min(len(a), len(b))} observations (needs {need})",
                       n_baseline=len(a), n_canary=len(b))
    if spec.kind == "rate":
        r = rate_difference(int(a.sum()), len(a), int(b.sum()), len(b), cfg.confidence)
        tol = max(spec.tolerance * r.baseline_rate, spec.tolerance_abs)
        sig = r.p_value < alpha
        cls = _direction_class(spec, r.estimate, sig, tol)
        why = _explain(spec, cls, sig, r.estimate, tol, r.p_value,
                       f"rate ({r.baseline_rate:.2%} -> {r.canary_rate:.2%})")
        return _result(spec, cls, "fisher_exact", why, baseline=r.baseline_rate, canary=r.canary_rate,
                       n_baseline=len(a), n_canary=len(b), p_value=r.p_value, effect=r.estimate,
                       effect_low=r.low, effect_high=r.high, tolerance=tol)
    s = mann_whitney_shift(a, b, cfg.confidence, seed=cfg.seed)
    med_a, med_b = float(np.median(a)), float(np.median(b))
    tol = max(spec.tolerance * abs(med_a), spec.tolerance_abs)
    sig = s.p_value < alpha
    cls = _direction_class(spec, s.estimate, sig, tol)
    why = _explain(spec, cls, sig, s.estimate, tol, s.p_value, f"median {spec.name.replace('_', ' ')}")
    return _result(spec, cls, "mann_whitney_u", why, baseline=med_a, canary=med_b, n_baseline=len(a),
                   n_canary=len(b), p_value=s.p_value, effect=s.estimate, effect_low=s.low,
                   effect_high=s.high, tolerance=tol)


def judge(samples: Mapping[str, MetricSample], cfg: JudgeConfig = JudgeConfig(), reasons: Sequence[str] = ()) -> Verdict:
    """Classify every configured metric, score the groups and decide.

    ``reasons`` are conditions found before judging (a target down, a failed data contract):
    any of them makes the verdict HOLD, whatever the metrics say."""
    results = [classify(m, samples.get(m.name, MetricSample(None, None)), cfg) for m in cfg.metrics]
    groups = []
    for g, w in cfg.group_weights.items():
        rs = [r for r in results if r.group == g]
        scored = [r for r in rs if r.classification != "NoData"]
        passed = sum(r.classification == "Pass" for r in scored)
        score = 100.0 * passed / len(scored) if scored else None
        groups.append(GroupResult(g, w, score, passed, len(scored) - passed, len(rs) - len(scored)))
    weighted = [(g.weight, g.score) for g in groups if g.score is not None and g.weight > 0]
    score = round(sum(w * s for w, s in weighted) / sum(w for w, _ in weighted), 2) if weighted else None
    out = list(reasons)
    critical = [r for r in results if r.critical and r.failed]
    missing = [r for r in results if r.classification == "NoData" and cfg.metric(r.name).must_have_data]
    thresholds = {"pass": cfg.pass_threshold, "marginal": cfg.marginal_threshold, "confidence": cfg.confidence}
    if reasons:
        # The data cannot be trusted (a target down, a failed contract): inconclusive, never a verdict.
        out += [f"critical metric {r.name} failed on data that cannot be trusted: {r.reason}" for r in critical]
        verdict = HOLD
    elif critical:
        out += [f"critical metric {r.name} failed: {r.reason}" for r in critical]
        verdict = ROLLBACK
    elif missing:
        out += [f"no data for required metric {r.name}: {r.reason}" for r in missing]
        verdict = HOLD
    elif score is None:
        out.append("no metric had data on both targets")
        verdict = HOLD
    elif score >= cfg.pass_threshold:
        out.append(f"score {score:g} >= pass threshold {cfg.pass_threshold:g}")
        verdict = PROMOTE
    elif score >= cfg.marginal_threshold:
        out.append(f"score {score:g} is marginal ({cfg.marginal_threshold:g} <= score < {cfg.pass_threshold:g})")
        verdict = HOLD
    else:
        out.append(f"score {score:g} < marginal threshold {cfg.marginal_threshold:g}")
        verdict = ROLLBACK
    if verdict != PROMOTE:
        out += [f"{r.name}: {r.reason}" for r in results if r.failed and not r.critical]
    return Verdict(verdict, score, tuple(out), tuple(results), tuple(groups), thresholds)
