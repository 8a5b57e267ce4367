"""A metric's classification, one path for every test (Kayenta's shape: each test compares the two
targets and reports a ``TestOutcome``; ``classify_outcome`` alone turns it into a classification
with the metric's tolerance and harmful direction, says why in words and states the run's power).
``metric_result`` builds every ``MetricResult``, those of tests that classify themselves (no data,
a limit, an informational share) included."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.canary.metric import JudgeConfig, MetricSpec
from harness.canary.verdict import MetricResult
from harness.verdicts import SHARE_OF_IMAGES, Classification

__all__ = ["TestOutcome", "classify_outcome", "metric_result", "tolerance", "direction_class", "detectable", "format_p"]


@dataclass(frozen=True)
class TestOutcome:
    """What one test found, before any classification. ``test`` is the test as recorded
    (``fisher_exact``, ``mann_whitney_u``, ...); ``baseline`` and ``canary`` the figures compared
    (in the metric's unit); ``effect`` (canary minus baseline) and its interval in the effect's
    unit. ``relative_to``: the figure the relative tolerance is taken on (``spec.tolerance`` x its
    magnitude, or ``spec.tolerance_abs`` if larger); None: ``spec.tolerance_abs`` alone (the sign
    test, whose effect is a share of images). ``mde``: the smallest harmful effect this run detects
    with 80% power, before the tolerance. ``what``: the words for what was compared;
    ``note``: a sentence added to the reason when the difference is significant."""

    __test__ = False  # not a pytest test class

    test: str
    baseline: float
    canary: float
    n_baseline: int
    n_canary: int
    p_value: float
    effect: float
    effect_low: float
    effect_high: float
    relative_to: float | None
    mde: float
    what: str
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)


def metric_result(spec: MetricSpec, cls: Classification, test: str, reason: str, **kw: Any) -> MetricResult:
    """The ``MetricResult`` of ``spec`` classified ``cls`` by ``test``; ``kw`` sets the figures
    (absent: None, or 0 observations)."""
    base: dict[str, Any] = dict(
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
        cls in ("High", "Low"),
        spec.critical,
        test,
        direction=spec.direction,
        unit=spec.unit,
        reason=reason,
        must_detect=spec.must_detect,
        effect_unit=SHARE_OF_IMAGES if spec.test == "sign" else spec.unit,
        **base,
    )


def tolerance(spec: MetricSpec, relative_to: float | None) -> float:
    """The largest effect that passes even when significant."""
    if relative_to is None:
        return spec.tolerance_abs
    return max(spec.tolerance * abs(relative_to), spec.tolerance_abs)


def direction_class(spec: MetricSpec, effect: float, significant: bool, tol: float) -> Classification:
    """High or Low for a significant effect beyond ``tol`` in the metric's harmful direction,
    else Pass."""
    if not significant or abs(effect) <= tol:
        return "Pass"
    up = effect > 0
    if spec.direction == "increase":
        return "High" if up else "Pass"
    if spec.direction == "decrease":
        return "Low" if not up else "Pass"
    return "High" if up else "Low"


def format_p(p: float) -> str:
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
        return f"no significant difference in {what} ({format_p(p)})"
    if abs(effect) <= tol:
        return f"{what} differs by {_fmt(spec, effect)} ({format_p(p)}), within the tolerance of {_fmt(spec, tol)}"
    if cls == "Pass":
        return f"{what} changed by {_fmt(spec, effect)} ({format_p(p)}), in the harmless direction"
    word = "higher" if cls == "High" else "lower"
    return (
        f"canary {what} is {word} by {_fmt(spec, abs(effect))} ({format_p(p)}), "
        f"beyond the tolerance of {_fmt(spec, tol)}"
    )


def detectable(spec: MetricSpec, mde: float) -> str:
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


def _power(spec: MetricSpec, mde: float, tol: float) -> dict[str, Any]:
    mde = max(float(mde), tol)
    adequate = None if spec.must_detect is None else bool(mde <= spec.must_detect)
    return {"mde": mde if np.isfinite(mde) else None, "adequate": adequate, "detectable": detectable(spec, mde)}


def classify_outcome(spec: MetricSpec, outcome: TestOutcome, cfg: JudgeConfig) -> MetricResult:
    """Classify a test's outcome: significant (p < ``cfg.alpha``) and beyond the tolerance in the
    harmful direction is High or Low, anything else Pass; with the reason in words and the power
    statement (the effect detectable, never below the tolerance, against ``spec.must_detect``)."""
    o = outcome
    tol = tolerance(spec, o.relative_to)
    sig = o.p_value < cfg.alpha
    cls = direction_class(spec, o.effect, sig, tol)
    why = _explain(spec, cls, sig, o.effect, tol, o.p_value, o.what)
    if sig and o.note:
        why += f"; {o.note}"
    return metric_result(
        spec,
        cls,
        o.test,
        why,
        baseline=o.baseline,
        canary=o.canary,
        n_baseline=o.n_baseline,
        n_canary=o.n_canary,
        p_value=o.p_value,
        effect=o.effect,
        effect_low=o.effect_low,
        effect_high=o.effect_high,
        tolerance=tol,
        **_power(spec, o.mde, tol),
        details=o.details,
    )
