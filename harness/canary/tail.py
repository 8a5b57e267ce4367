"""The tail of latency: is the canary's p95 (or p99) higher than the baseline's? The test is
Fisher's exact test on the requests slower than the baseline's quantile (a slow path taken by a
fraction of requests moves the tail, not the median); the effect is the quantile difference
with a seeded bootstrap interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["TailDifference", "tail_difference"]

MAX_PER_SIDE = 5000  # the bootstrap sorts resamples x n values: larger samples are subsampled (seeded)


@dataclass(frozen=True)
class TailDifference:
    """``estimate`` is canary quantile minus baseline quantile; ``low``/``high`` bound it, ``sd`` is
    its bootstrap standard deviation. ``slower_*`` count requests over the baseline's quantile."""

    quantile: float
    p_value: float
    estimate: float
    low: float
    high: float
    sd: float
    baseline_q: float
    canary_q: float
    slower_baseline: int
    slower_canary: int
    n_baseline: int
    n_canary: int


def tail_difference(
    baseline, canary, quantile: float = 0.95, confidence: float = 0.98, seed: int = 0, resamples: int = 1000
) -> TailDifference:
    from scipy import stats

    from harness.canary.mann_whitney import cap_sample, finite_samples

    a, b = finite_samples(baseline, canary)
    rng = np.random.default_rng(seed)
    a, b = cap_sample(a, rng, MAX_PER_SIDE), cap_sample(b, rng, MAX_PER_SIDE)
    qa, qb = float(np.quantile(a, quantile)), float(np.quantile(b, quantile))
    ka, kb = int(np.sum(a > qa)), int(np.sum(b > qa))
    if ka + kb in (0, len(a) + len(b)):
        p = 1.0
    else:
        p = float(stats.fisher_exact([[kb, len(b) - kb], [ka, len(a) - ka]]).pvalue)
    ia = rng.integers(0, len(a), size=(resamples, len(a)))
    ib = rng.integers(0, len(b), size=(resamples, len(b)))
    boot = np.quantile(b[ib], quantile, axis=1) - np.quantile(a[ia], quantile, axis=1)
    alpha = 1 - confidence
    low, high = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    est = qb - qa
    return TailDifference(
        quantile, p, est, min(low, est), max(high, est), float(boot.std()), qa, qb, ka, kb, len(a), len(b)
    )
