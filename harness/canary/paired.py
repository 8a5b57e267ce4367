"""Paired comparisons on the evaluation set: both targets captioned the very same images, so
each image is its own control. A sign test on the images that got worse or better by more than
a small delta judges quality; a Wilcoxon signed-rank test judges confidence, length and
calibration. Effects are shares and means, which do not vanish when most images are unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SignTest", "PairedShift", "sign_test", "paired_shift"]


@dataclass(frozen=True)
class SignTest:
    """``estimate`` is the net share of images that got better (better - worse) / n: negative
    when the canary is worse. ``low``/``high`` bound it (exact multinomial bootstrap, seeded)."""

    p_value: float
    estimate: float
    low: float
    high: float
    worse: int
    better: int
    n: int
    delta: float


@dataclass(frozen=True)
class PairedShift:
    """``estimate`` is the mean per-image difference canary - baseline; ``low``/``high`` bound it
    (percentile bootstrap over images, seeded). ``changed`` counts images whose value differs."""

    p_value: float
    estimate: float
    low: float
    high: float
    n: int
    changed: int


def _pair(baseline, canary) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(canary, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired samples must have the same length")
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def sign_test(
    baseline, canary, delta: float = 0.0, confidence: float = 0.98, seed: int = 0, resamples: int = 4000
) -> SignTest:
    """Exact two-sided sign test of images worse (canary < baseline - delta) against images better
    (canary > baseline + delta); unchanged images do not count as evidence either way."""
    from scipy import stats

    a, b = _pair(baseline, canary)
    n = len(a)
    if n == 0:
        raise ValueError("no image has a value on both targets")
    d = b - a
    worse, better = int(np.sum(d < -delta)), int(np.sum(d > delta))
    k = worse + better
    p = 1.0 if k == 0 else float(stats.binomtest(better, k, 0.5).pvalue)
    est = (better - worse) / n
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, [better / n, worse / n, 1 - k / n], size=resamples)
    boot = (draws[:, 0] - draws[:, 1]) / n
    alpha = 1 - confidence
    low, high = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    return SignTest(p, est, min(low, est), max(high, est), worse, better, n, delta)


def paired_shift(baseline, canary, confidence: float = 0.98, seed: int = 0, resamples: int = 2000) -> PairedShift:
    """Wilcoxon signed-rank test (zero differences dropped) and the mean difference's interval."""
    from scipy import stats

    a, b = _pair(baseline, canary)
    n = len(a)
    if n == 0:
        raise ValueError("no image has a value on both targets")
    d = b - a
    nz = d[d != 0]
    p = 1.0 if len(nz) == 0 else float(stats.wilcoxon(nz, zero_method="wilcox", alternative="two-sided").pvalue)
    est = float(d.mean())
    if len(nz) == 0:
        return PairedShift(p, 0.0, 0.0, 0.0, n, 0)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    boot = d[idx].mean(axis=1)
    alpha = 1 - confidence
    low, high = (float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2]))
    return PairedShift(p, est, min(low, est), max(high, est), n, int(len(nz)))
