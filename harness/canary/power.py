"""What a run could have detected: the smallest harmful effect each test flags with 80% power
at this run's sample size and the judge's confidence (and never less than the tolerance, since
smaller effects pass by design)."""

from __future__ import annotations

from math import sqrt

import numpy as np

__all__ = ["POWER", "normal_mde", "rate_mde", "sign_mde"]

POWER = 0.8


def _z(confidence: float, power: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power))


def normal_mde(se: float, confidence: float, power: float = POWER) -> float:
    """An effect whose estimate has standard error ``se``: (z_{1-alpha/2} + z_power) x se."""
    return _z(confidence, power) * max(se, 0.0)


def rate_mde(
    p0: float, n_base: int, n_canary: int, confidence: float, power: float = POWER, increase: bool = True
) -> float:
    """The smallest change of a rate from ``p0`` that a two-sample test detects with ``power``
    (normal approximation with the variance at both rates, solved by fixed point)."""
    if n_base <= 0 or n_canary <= 0:
        return float("inf")
    z = _z(confidence, power)
    d = z * sqrt(max(p0 * (1 - p0), 1e-9) * (1 / n_base + 1 / n_canary))
    for _ in range(50):
        p1 = min(max(p0 + (d if increase else -d), 0.0), 1.0)
        new = z * sqrt(p0 * (1 - p0) / n_base + p1 * (1 - p1) / n_canary)
        new = max(new, z * z / (n_base + n_canary))  # at p0 = 0 the fixed point needs a floor
        if abs(new - d) < 1e-9:
            break
        d = new
    return float(d)


def sign_mde(
    n: int, better: int, confidence: float, tolerance: float = 0.0, power: float = POWER, step: float = 0.0025
) -> float:
    """The smallest share f of images that, if each got worse (beyond the delta) with probability f
    on top of the ``better`` images seen in this run, the sign test flags with ``power``
    (exact binomial sums over the number of images made worse)."""
    from scipy import stats

    if n <= 0:
        return float("inf")
    alpha = 1 - confidence
    ks = np.arange(0, n + 1)
    rejects = np.zeros(n + 1, dtype=bool)
    for k in ks:
        total = int(k) + better
        if total and (int(k) - better) / n > tolerance:
            rejects[k] = stats.binomtest(better, total, 0.5).pvalue < alpha
    if not rejects.any():
        return float("inf")
    free = max(n - better, 0)
    for f in np.arange(step, 1.0 + step / 2, step):
        pmf = stats.binom.pmf(ks[: free + 1], free, f)
        if float(np.sum(pmf[rejects[: free + 1]])) >= power:
            return float(round(f, 6))
    return float("inf")
