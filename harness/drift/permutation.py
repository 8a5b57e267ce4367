"""Permutation tests: random relabellings of the pooled sample, the exact-valid p-value and the
critical value of a statistic, shared by every detector whose null is a permutation null."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["label_matrix", "permutation_p_value", "critical_value", "permutations_for"]


def label_matrix(n_reference: int, n_current: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean (N, 1 + n_permutations) matrix: True marks a reference sample. Column 0 is the
    observed split (the first ``n_reference`` rows of the pooled sample); the others are random
    permutations of it."""
    n = n_reference + n_current
    observed = np.zeros(n, dtype=bool)
    observed[:n_reference] = True
    labels = np.empty((n, 1 + n_permutations), dtype=bool)
    labels[:, 0] = observed
    if n_permutations:
        labels[:, 1:] = rng.permuted(np.tile(observed, (n_permutations, 1)), axis=1).T
    return labels


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """(k + 1) / (n + 1), k the number of permuted statistics at least as large as ``observed``:
    valid at every level for randomly drawn permutations. Near-ties count as ties."""
    null = np.asarray(null, dtype=np.float64)
    tol = 1e-9 * max(abs(observed), 1e-12)
    k = int(np.count_nonzero(null >= observed - tol))
    return (k + 1) / (len(null) + 1)


def critical_value(null: np.ndarray, alpha: float) -> float:
    """The statistic above which the permutation p-value is at most ``alpha``: the smallest effect
    this test can flag at this sample size. Infinite when there are too few permutations."""
    null = np.sort(np.asarray(null, dtype=np.float64))[::-1]
    k = math.floor(alpha * (len(null) + 1) + 1e-9) - 1
    if k < 0:
        return math.inf
    return float(null[min(k, len(null) - 1)])


def permutations_for(alpha: float, at_least: int) -> int:
    """Enough permutations to resolve p-values well below ``alpha`` (ten times its reciprocal)."""
    return max(int(at_least), math.ceil(10.0 / alpha))
