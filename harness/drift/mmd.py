"""Maximum mean discrepancy between two sets of vectors, with a permutation test.

The vectors are first whitened with the pooled sample's ridge-regularised covariance, so that a
shift along a low-variance direction (an unseen colour) weighs as much as one along the dominant
direction; the transform is a symmetric function of the pooled sample, so the permutation null
stays exact. The Gaussian kernel's bandwidth is the median pairwise distance in the (whitened)
reference, fitted once.
All permutations are scored at once: with K the pooled kernel matrix and A the matrix of group
labels (one column per permutation), every within- and between-group kernel sum comes from the
single product K @ A, so the cost is one N x N x P matrix multiply instead of P passes over K.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from harness.drift.base import Score, VectorDetector, blas_threads, subsample
from harness.drift.permutation import critical_value, label_matrix, permutation_p_value

__all__ = ["MMDDrift", "median_bandwidth", "gaussian_kernel", "mmd2_permutations", "whiten"]


def whiten(z: np.ndarray, ridge: float) -> np.ndarray:
    """Centre ``z`` and scale its principal directions to unit variance, each variance increased
    by ``ridge`` times the mean variance (so near-empty directions are not blown up)."""
    with blas_threads(0.0):  # d x d work: threads only slow it down
        return _whiten(np.asarray(z, dtype=np.float64), ridge)


def _whiten(z: np.ndarray, ridge: float) -> np.ndarray:
    mean = z.mean(axis=0)
    zc = z - mean
    cov = (zc.T @ zc) / max(len(z) - 1, 1)
    ev, vecs = np.linalg.eigh(cov)
    ev = np.maximum(ev, 0.0)
    lam = ridge * ev.mean() if ev.mean() > 0 else 1.0
    return (zc @ vecs) / np.sqrt(ev + lam)


def median_bandwidth(x: np.ndarray, max_points: int = 1000, seed: int = 0) -> float:
    """Median pairwise Euclidean distance among up to ``max_points`` rows of ``x``."""
    x = np.asarray(x, dtype=np.float64)
    x = x[subsample(len(x), max_points, np.random.default_rng(seed))]
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (x @ x.T), 0.0)
    iu = np.triu_indices(len(x), k=1)
    med = float(np.sqrt(np.median(d2[iu]))) if len(iu[0]) else 0.0
    return med if med > 0 else 1.0


def gaussian_kernel(z: np.ndarray, sigma: float, block: int = 128) -> np.ndarray:
    """exp(-|zi - zj|^2 / (2 sigma^2)) for all pairs of rows, float32.

    With x = z / sigma, the exponent is x_i.x_j - |x_i|^2/2 - |x_j|^2/2 (never positive): one
    matrix product, then one cache-sized block of rows at a time for the rest."""
    x = np.ascontiguousarray(z, dtype=np.float32) / np.float32(sigma)
    half = 0.5 * np.einsum("ij,ij->i", x, x)
    k = x @ x.T
    for start in range(0, len(k), block):
        blk = k[start : start + block]
        blk -= half[start : start + block, None]
        blk -= half[None, :]
        np.minimum(blk, 0.0, out=blk)
        np.exp(blk, out=blk)
    return k


def mmd2_permutations(kernel: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 between the True and False rows for every column of ``labels``.

    One product K @ [A | 1] gives, for every column a of A, K a and the row sums of K; the
    within- and between-group sums follow as a.Ka, a.K1 - a.Ka and 1.K1 - 2 a.K1 + a.Ka."""
    n_all, cols = labels.shape
    a = np.empty((n_all, cols + 1), dtype=kernel.dtype)
    a[:, :cols] = labels
    a[:, cols] = 1.0
    ka = kernel @ a
    a64 = labels.astype(np.float64)
    row = ka[:, cols].astype(np.float64)
    s_xx = np.einsum("ij,ij->j", a64, ka[:, :cols], dtype=np.float64)
    s_xy = a64.T @ row - s_xx
    s_yy = row.sum() - 2.0 * s_xy - s_xx
    diag = np.diagonal(kernel).astype(np.float64)
    d_x = a64.T @ diag
    d_y = diag.sum() - d_x
    n = a64.sum(axis=0)
    m = n_all - n
    return (s_xx - d_x) / (n * (n - 1)) + (s_yy - d_y) / (m * (m - 1)) - 2.0 * s_xy / (n * m)


class MMDDrift(VectorDetector):
    """Unbiased MMD^2 with a Gaussian kernel; p-value (k+1)/(P+1) over ``n_permutations``."""

    kind: ClassVar[str] = "mmd"
    method: ClassVar[str] = "MMD (Gaussian kernel, median-heuristic bandwidth), permutation test"
    statistic_name: ClassVar[str] = "MMD^2"
    PARAMS: ClassVar[tuple[str, ...]] = ("n_permutations", "whiten", "ridge")

    def __init__(
        self,
        feature: str = "embedding",
        *,
        n_permutations: int = 200,
        whiten: bool = True,
        ridge: float = 0.1,
        max_n: int | None = 5000,
        **kw: Any,
    ):
        super().__init__(feature, max_n=max_n, **kw)
        self.n_permutations = int(n_permutations)
        self.whiten = bool(whiten)
        self.ridge = float(ridge)

    def _transform(self, z: np.ndarray) -> np.ndarray:
        return whiten(z, self.ridge) if self.whiten else z

    def fit_reference(self, reference: np.ndarray) -> None:
        self.state["sigma"] = median_bandwidth(self._transform(reference), seed=self.seed)

    def cost(self, n_reference: int, n_current: int) -> float:
        n = n_reference + n_current
        d = self.state["reference"].shape[1] if self.fitted else 128
        return float(n) * n * (d + 2 * (self.n_permutations + 1) + 20) + (4.0 * n * d * d if self.whiten else 0.0)

    def score(self, current: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> Score:
        sigma = float(self.state["sigma"])
        kernel = gaussian_kernel(self._transform(np.concatenate([reference, current])), sigma)
        labels = label_matrix(len(reference), len(current), self.n_permutations, rng)
        stats = mmd2_permutations(kernel, labels)
        observed, null = float(stats[0]), stats[1:]
        return Score(
            observed,
            p_value=permutation_p_value(observed, null),
            min_detectable=critical_value(null, self.alpha),
            details={
                "n_permutations": self.n_permutations,
                "bandwidth": sigma,
                "dimensions": int(reference.shape[1]),
                "whitened": self.whiten,
            },
        )
