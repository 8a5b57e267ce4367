"""Statistics the judge, the SLOs and the drift report share: Wilson's interval of a rate, and
what a run could have detected, the smallest harmful effect a test flags with 80% power at its
sample sizes and confidence (the judge never states less than a metric's tolerance, since smaller
effects pass by design)."""

from __future__ import annotations

from math import sqrt

__all__ = ["POWER", "normal_mde", "rate_mde", "sign_mde", "wilson_interval"]

POWER = 0.8


def _z(confidence: float, power: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - (1 - confidence) / 2) + stats.norm.ppf(power))


def wilson_interval(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a rate of ``k`` in ``n`` at ``confidence`` (two-sided)."""
    from statistics import NormalDist

    if n <= 0:
        raise ValueError("no events")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


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
    import numpy as np
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
