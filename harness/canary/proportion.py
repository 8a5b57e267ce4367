"""Comparing two rates (errors, timeouts, safety flags, goodput): Fisher's exact test and the
Newcombe hybrid-score interval of the difference."""

from __future__ import annotations

from dataclasses import dataclass
from math import sqrt

__all__ = ["RateDifference", "rate_difference"]


@dataclass(frozen=True)
class RateDifference:
    """``estimate`` is the canary rate minus the baseline rate; ``low``/``high`` bound it."""

    p_value: float
    estimate: float
    low: float
    high: float
    baseline_rate: float
    canary_rate: float
    n_baseline: int
    n_canary: int


def rate_difference(k_base: int, n_base: int, k_canary: int, n_canary: int, confidence: float = 0.98) -> RateDifference:
    """Fisher's exact two-sided p-value and Newcombe's interval (method 10) for p_canary - p_base."""
    from scipy import stats

    from harness.stats import wilson_interval

    if n_base <= 0 or n_canary <= 0:
        raise ValueError("both samples need at least one trial")
    p1, p2 = k_base / n_base, k_canary / n_canary
    if k_base + k_canary in (0, n_base + n_canary):
        p = 1.0
    else:
        table = [[k_canary, n_canary - k_canary], [k_base, n_base - k_base]]
        p = float(stats.fisher_exact(table).pvalue)
    l1, u1 = wilson_interval(k_base, n_base, confidence)
    l2, u2 = wilson_interval(k_canary, n_canary, confidence)
    d = p2 - p1
    low = d - sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return RateDifference(p, d, low, high, p1, p2, n_base, n_canary)
