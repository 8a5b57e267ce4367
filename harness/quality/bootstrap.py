"""Bootstrap confidence intervals for corpus figures, and the paired bootstrap of a difference.

Images are resampled with replacement; each resample's corpus figure is recomputed from the
per-image statistics (so BLEU and METEOR, whose corpus figures are not means, are resampled
exactly). CIDEr-D's document frequencies stay those of the full set. Intervals are percentile
intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from harness.quality.scorer import MetricScore

__all__ = [
    "Interval",
    "PairedDifference",
    "bootstrap_intervals",
    "paired_bootstrap",
    "resample_weights",
    "statistic_interval",
]

_CHUNK = 250


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float
    n_resamples: int
    seed: int

    def overlaps(self, other: "Interval") -> bool:
        return self.low <= other.high and other.low <= self.high

    def to_dict(self) -> dict:
        return {
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class PairedDifference:
    """``a - b`` on the same images, with its bootstrap interval and the two-sided bootstrap
    p-value of no difference (twice the smaller share of resampled differences on one side of 0)."""

    metric: str
    a: float
    b: float
    difference: float
    interval: Interval
    p_value: float
    n_images: int

    def to_dict(self) -> dict:
        return {
            "metric": self.metric,
            "a": self.a,
            "b": self.b,
            "difference": self.difference,
            "ci": self.interval.to_dict(),
            "p_value": self.p_value,
            "n_images": self.n_images,
        }


def resample_weights(n: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Chunks of rows of resample counts (each row sums to ``n``), seeded and reproducible."""
    rng = np.random.default_rng(seed)
    p = np.full(n, 1.0 / n)
    done = 0
    while done < n_resamples:
        b = min(_CHUNK, n_resamples - done)
        yield rng.multinomial(n, p, size=b).astype(float)
        done += b


def _check(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1 (got {n_resamples})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1) (got {level})")


def _bounds(values: np.ndarray, level: float) -> tuple[float, float]:
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [a, 1.0 - a])
    return float(lo), float(hi)


def bootstrap_intervals(
    scores: Sequence[MetricScore], n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> dict[str, Interval]:
    """One interval per metric, all metrics drawn from the same resamples of the images."""
    _check(n_resamples, level)
    if not scores:
        return {}
    n = len(scores[0].per_image)
    if any(len(s.per_image) != n for s in scores):
        raise ValueError("all scores must cover the same images")
    if n == 0:
        raise ValueError("no images to resample")
    draws: dict[str, list[np.ndarray]] = {s.name: [] for s in scores}
    for w in resample_weights(n, n_resamples, seed):
        for s in scores:
            draws[s.name].append(s.corpus_from(w))
    return {name: Interval(*_bounds(np.concatenate(v), level), level, n_resamples, seed) for name, v in draws.items()}


def paired_bootstrap(
    a: MetricScore, b: MetricScore, n_resamples: int = 1000, level: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Bootstrap of ``a - b`` where ``a`` and ``b`` score two targets' captions of the same images
    (same order): each resample draws the same images for both."""
    _check(n_resamples, level)
    if a.name != b.name:
        raise ValueError(f"cannot pair {a.name} with {b.name}")
    n = len(a.per_image)
    if n != len(b.per_image) or n == 0:
        raise ValueError("paired scores must cover the same, non-empty set of images")
    diffs = np.concatenate([a.corpus_from(w) - b.corpus_from(w) for w in resample_weights(n, n_resamples, seed)])
    below, above = float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))
    p = min(1.0, 2.0 * min(below, above))
    lo, hi = _bounds(diffs, level)
    return PairedDifference(
        a.name, a.corpus, b.corpus, a.corpus - b.corpus, Interval(lo, hi, level, n_resamples, seed), p, n
    )


def statistic_interval(
    statistic: Callable[[np.ndarray], float],
    n: int,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval | None:
    """Percentile interval of ``statistic`` over resamples of ``n`` items, each resample handed to it
    as the indices of the items drawn (with repeats). Resamples where it is undefined (NaN: every
    item drawn alike, say) are left out; None when it is undefined on all of them."""
    _check(n_resamples, level)
    if n < 1:
        raise ValueError("no items to resample")
    items = np.arange(n)
    draws = np.array(
        [statistic(np.repeat(items, row.astype(int))) for w in resample_weights(n, n_resamples, seed) for row in w],
        dtype=float,
    )
    draws = draws[np.isfinite(draws)]
    if not draws.size:
        return None
    return Interval(*_bounds(draws, level), level, n_resamples, seed)
