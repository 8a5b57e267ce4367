"""Mann-Whitney U comparison of two samples, with the Hodges-Lehmann shift and its confidence interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ShiftEstimate", "mann_whitney_shift"]

MAX_PER_SIDE = 2000  # pairwise differences grow as n*m: larger samples are subsampled (seeded)


@dataclass(frozen=True)
class ShiftEstimate:
    """``estimate`` is the Hodges-Lehmann shift canary minus baseline; ``low``/``high`` bound it."""

    p_value: float
    estimate: float
    low: float
    high: float
    n_baseline: int
    n_canary: int
    subsampled: bool


def _cap(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= MAX_PER_SIDE else rng.choice(x, MAX_PER_SIDE, replace=False)


def mann_whitney_shift(baseline, canary, confidence: float = 0.98, seed: int = 0) -> ShiftEstimate:
    """Two-sided Mann-Whitney U test and the distribution-free interval of the location shift
    (order statistics of the pairwise differences, normal approximation of U's critical value)."""
    from scipy import stats

    a = np.asarray(baseline, dtype=float)
    b = np.asarray(canary, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples need at least one value")
    rng = np.random.default_rng(seed)
    sub = len(a) > MAX_PER_SIDE or len(b) > MAX_PER_SIDE
    a, b = _cap(a, rng), _cap(b, rng)
    if np.all(a == a[0]) and np.all(b == a[0]):
        p = 1.0
    else:
        p = float(stats.mannwhitneyu(b, a, alternative="two-sided", method="asymptotic").pvalue)
    diffs = np.sort(np.subtract.outer(b, a).ravel())
    m, n = len(a), len(b)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    c = int(np.floor(m * n / 2 - z * np.sqrt(m * n * (m + n + 1) / 12)))
    c = min(max(c, 0), len(diffs) - 1)
    low, high = float(diffs[c]), float(diffs[len(diffs) - 1 - c])
    return ShiftEstimate(p, float(np.median(diffs)), low, high, m, n, sub)
