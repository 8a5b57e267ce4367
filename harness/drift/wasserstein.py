"""Wasserstein-1 (earth mover's) distance between two 1-d samples, with a permutation test."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from harness.drift.base import Detector, Score
from harness.drift.permutation import critical_value, label_matrix, permutation_p_value

__all__ = ["WassersteinDrift", "wasserstein_statistics"]


def wasserstein_statistics(pooled: np.ndarray, labels: np.ndarray, chunk: int = 256) -> np.ndarray:
    """W1 between the True and False groups of ``pooled`` for every column of ``labels``.

    W1 is the integral of |F_ref - F_cur|: with the pooled sample sorted once, each column's
    difference of empirical CDFs is a cumulative sum of +1/n and -1/m steps."""
    order = np.argsort(pooled, kind="stable")
    gaps = np.diff(pooled[order])
    out = np.empty(labels.shape[1])
    for start in range(0, labels.shape[1], chunk):
        lab = labels[order, start : start + chunk].T
        n = lab.sum(axis=1, keepdims=True)
        m = lab.shape[1] - n
        steps = np.where(lab, 1.0 / n, -1.0 / m)
        diff = np.cumsum(steps, axis=1)[:, :-1]
        out[start : start + chunk] = np.abs(diff) @ gaps
    return out


class WassersteinDrift(Detector):
    """W1 distance (in the feature's units); its null is ``n_permutations`` random relabellings."""

    kind: ClassVar[str] = "wasserstein"
    method: ClassVar[str] = "Wasserstein-1 distance, permutation test"
    statistic_name: ClassVar[str] = "W1"
    PARAMS: ClassVar[tuple[str, ...]] = ("n_permutations",)

    def __init__(self, feature: str = "value", *, n_permutations: int = 1000, **kw: Any):
        super().__init__(feature, **kw)
        self.n_permutations = int(n_permutations)

    def cost(self, n_reference: int, n_current: int) -> float:
        return 4.0 * (n_reference + n_current) * (self.n_permutations + 1)

    def score(self, current: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> Score:
        pooled = np.concatenate([reference, current])
        labels = label_matrix(len(reference), len(current), self.n_permutations, rng)
        stats = wasserstein_statistics(pooled, labels)
        observed, null = float(stats[0]), stats[1:]
        return Score(
            observed,
            p_value=permutation_p_value(observed, null),
            min_detectable=critical_value(null, self.alpha),
            details={"n_permutations": self.n_permutations, "mean_shift": float(np.mean(current) - np.mean(reference))},
        )
