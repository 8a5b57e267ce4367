"""The scorer extension point: one ``score`` method from tokenized captions to metric scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Hashable, Mapping

import numpy as np

__all__ = ["MetricScore", "Scorer", "mean_stats", "mean_aggregate"]


@dataclass(frozen=True, eq=False)
class MetricScore:
    """One metric over a corpus: the corpus figure, one score per image, and the per-image
    sufficient statistics whose column sums give the corpus figure back through ``aggregate``
    (what the bootstrap resamples)."""

    name: str
    corpus: float
    per_image: np.ndarray
    stats: np.ndarray = field(repr=False)
    aggregate: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def corpus_from(self, weights: np.ndarray) -> np.ndarray:
        """Corpus figures for rows of per-image weights (resample counts), shape (B, N) -> (B,)."""
        return self.aggregate(np.atleast_2d(weights) @ self.stats)


def mean_stats(per_image: np.ndarray) -> np.ndarray:
    """Statistics of a metric whose corpus figure is the mean of its per-image scores."""
    per_image = np.asarray(per_image, dtype=float)
    return np.column_stack([per_image, np.ones_like(per_image)])


def mean_aggregate(summed: np.ndarray) -> np.ndarray:
    summed = np.atleast_2d(summed)
    return summed[:, 0] / summed[:, 1]


class Scorer:
    """A metric family. ``score`` takes PTB-tokenized references and candidates keyed by image id
    (the same keys, in the same order) and returns one ``MetricScore`` per metric it computes."""

    family: str = ""
    metrics: tuple[str, ...] = ()

    def score(
        self, references: Mapping[Hashable, list[str]], candidates: Mapping[Hashable, str]
    ) -> tuple[MetricScore, ...]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the scorer holds (a Java process, for some)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
