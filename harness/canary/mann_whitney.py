"""Mann-Whitney U comparison of two unpaired samples, with the Hodges-Lehmann shift and its
confidence interval (exact for small samples without ties, as R's ``wilcox.test``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["ShiftEstimate", "mann_whitney_shift", "u_quantile", "EXACT_BELOW"]

MAX_PER_SIDE = 2000  # pairwise differences grow as n*m: larger samples are subsampled (seeded)
EXACT_BELOW = 50  # both samples smaller than this and no ties: exact distribution of U (R's rule)
ZERO_INFLATED = 0.5  # at least this share of pairwise differences exactly 0: the shift says nothing


@dataclass(frozen=True)
class ShiftEstimate:
    """``estimate`` is canary minus baseline: the Hodges-Lehmann shift, or the difference of means
    when the data are zero-inflated (``measure`` says which); ``low``/``high`` bound it."""

    p_value: float
    estimate: float
    low: float
    high: float
    n_baseline: int
    n_canary: int
    subsampled: bool
    measure: str = "hodges_lehmann"
    exact: bool = False


def cap_sample(x: np.ndarray, rng: np.random.Generator, limit: int = MAX_PER_SIDE) -> np.ndarray:
    """At most ``limit`` values of ``x``, drawn without replacement (seeded) when it has more."""
    return x if len(x) <= limit else rng.choice(x, limit, replace=False)


def finite_samples(baseline, canary) -> tuple[np.ndarray, np.ndarray]:
    """Both samples as float arrays without NaN or infinities; ``ValueError`` when one is empty."""
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(canary, dtype=float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        raise ValueError("both samples need at least one value")
    return a, b


@lru_cache(maxsize=256)
def _u_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of arrangements giving each value of U (0..m*n) for samples of sizes m and n: the
    coefficients of the Gaussian binomial [m+n choose m], built with exact integers."""
    size = m * n + 1
    c = [0] * size
    c[0] = 1
    for i in range(1, m + 1):
        step = n + i  # multiply by (1 - q^(n+i))
        for k in range(size - 1, step - 1, -1):
            c[k] -= c[k - step]
        for k in range(i, size):  # divide by (1 - q^i)
            c[k] += c[k - i]
    return tuple(c)


def u_quantile(p: float, m: int, n: int) -> int:
    """R's ``qwilcox(p, m, n)``: the smallest u with P(U <= u) >= p under no difference."""
    counts = _u_counts(m, n)
    total = sum(counts)
    acc = 0
    for u, c in enumerate(counts):
        acc += c
        if acc >= p * total * (1 - 1e-12):
            return u
    return m * n


def mann_whitney_shift(baseline, canary, confidence: float = 0.98, seed: int = 0) -> ShiftEstimate:
    """Two-sided Mann-Whitney U test and the distribution-free interval of the location shift
    (order statistics of the pairwise differences). Small samples without ties use U's exact
    distribution, as R does; larger ones its normal approximation. When most pairwise
    differences are exactly 0 (zero-inflated data), the Hodges-Lehmann shift is 0 whatever the
    test says, so the effect becomes the difference of means with its normal interval."""
    from scipy import stats

    a, b = finite_samples(baseline, canary)
    rng = np.random.default_rng(seed)
    sub = len(a) > MAX_PER_SIDE or len(b) > MAX_PER_SIDE
    a, b = cap_sample(a, rng), cap_sample(b, rng)
    m, n = len(a), len(b)
    ties = len(np.unique(np.concatenate([a, b]))) < m + n
    exact = m < EXACT_BELOW and n < EXACT_BELOW and not ties
    if np.all(a == a[0]) and np.all(b == a[0]):
        p = 1.0
    else:
        method = "exact" if exact else "asymptotic"
        p = float(stats.mannwhitneyu(b, a, alternative="two-sided", method=method).pvalue)
    diffs = np.sort(np.subtract.outer(b, a).ravel())
    alpha = 1.0 - confidence
    if exact:
        qu = max(u_quantile(alpha / 2, n, m), 1)
        lo_i, hi_i = qu - 1, m * n - qu  # R: diffs[qu], diffs[m*n - qu + 1], 1-indexed
    else:
        z = float(stats.norm.ppf(1 - alpha / 2))
        c = int(np.floor(m * n / 2 - z * np.sqrt(m * n * (m + n + 1) / 12)))
        lo_i, hi_i = c, len(diffs) - 1 - c
    lo_i, hi_i = min(max(lo_i, 0), len(diffs) - 1), min(max(hi_i, 0), len(diffs) - 1)
    estimate, low, high = float(np.median(diffs)), float(diffs[lo_i]), float(diffs[hi_i])
    measure = "hodges_lehmann"
    if np.mean(diffs == 0) >= ZERO_INFLATED and not (np.all(a == a[0]) and np.all(b == a[0])):
        measure = "mean_difference"
        estimate = float(b.mean() - a.mean())
        se = float(np.sqrt(a.var(ddof=1) / m + b.var(ddof=1) / n)) if m > 1 and n > 1 else 0.0
        z = float(stats.norm.ppf(1 - alpha / 2))
        low, high = estimate - z * se, estimate + z * se
    return ShiftEstimate(p, estimate, low, high, m, n, sub, measure, exact)
