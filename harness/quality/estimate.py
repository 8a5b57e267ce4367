"""Label-free quality estimate from confidence (the CBPE idea, for captions).

On a labelled reference set, learn how a caption's confidence maps to its quality (a per-image
metric such as CIDEr-D); on unlabelled traffic, estimate the corpus quality from confidence
alone. The mapping is checked by k-fold cross-validation on the reference set, and the estimate
carries that held-out error. It holds while the confidence-to-quality relation holds: under
concept shift (same confidence, worse captions) it cannot see the drop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import numpy as np

__all__ = ["QualityModel", "QualityEstimate", "fit_quality_model", "isotonic_fit"]


def isotonic_fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-decreasing least-squares fit of ``y`` on ``x`` (pool adjacent violators): knots (xs, ys)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xs, inv = np.unique(x, return_inverse=True)
    w = np.bincount(inv).astype(float)
    m = np.bincount(inv, weights=y) / w
    # blocks as (mean, weight, count of knots)
    means, weights, counts = [], [], []
    for mi, wi in zip(m, w):
        means.append(mi)
        weights.append(wi)
        counts.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            w2 = weights[-2] + weights[-1]
            mean = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w2
            c = counts[-2] + counts[-1]
            del means[-1], weights[-1], counts[-1]
            means[-1], weights[-1], counts[-1] = mean, w2, c
    ys = np.repeat(means, counts)
    return xs, ys


@dataclass(frozen=True)
class QualityEstimate:
    """Estimated corpus quality (mean per-image quality) of unlabelled captions."""

    estimate: float
    n: int
    held_out_error: float
    outside_reference: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class QualityModel:
    """A fitted confidence -> quality mapping and how well it held on held-out reference data.

    ``held_out_mae``: mean absolute error of per-image predictions on held-out folds;
    ``held_out_corpus_error``: mean over folds of |mean predicted - mean actual| quality, the
    error to expect of a corpus estimate.
    """

    method: str
    knots_x: tuple[float, ...]
    knots_y: tuple[float, ...]
    n_reference: int
    confidence_range: tuple[float, float]
    reference_quality: float
    held_out_mae: float
    held_out_corpus_error: float
    folds: int

    def predict(self, confidence: Sequence[float]) -> np.ndarray:
        c = np.asarray(confidence, dtype=float)
        xs, ys = np.asarray(self.knots_x), np.asarray(self.knots_y)
        if self.method == "binned":
            # knots_x are the upper edges of the bins (the last is +inf)
            return ys[np.minimum(np.searchsorted(xs, c, side="left"), len(ys) - 1)]
        return np.interp(c, xs, ys)

    def estimate(self, confidence: Sequence[float]) -> QualityEstimate:
        c = np.asarray(confidence, dtype=float)
        c = c[np.isfinite(c)]
        if len(c) == 0:
            raise ValueError("no confidences to estimate from")
        lo, hi = self.confidence_range
        outside = float(np.mean((c < lo) | (c > hi)))
        return QualityEstimate(float(np.mean(self.predict(c))), int(len(c)), self.held_out_corpus_error, outside)

    def to_dict(self) -> dict:
        return asdict(self)


def _fit(method: str, conf: np.ndarray, qual: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    if method == "isotonic":
        return isotonic_fit(conf, qual)
    edges = np.unique(np.quantile(conf, np.linspace(0, 1, bins + 1)[1:-1]))
    idx = np.searchsorted(edges, conf, side="left")
    ys = np.array([qual[idx == b].mean() if np.any(idx == b) else np.nan for b in range(len(edges) + 1)])
    ys = np.where(np.isnan(ys), np.nanmean(ys), ys)
    return np.append(edges, np.inf), ys


def fit_quality_model(
    confidence: Sequence[float],
    quality: Sequence[float],
    method: Literal["isotonic", "binned"] = "isotonic",
    folds: int = 5,
    bins: int = 10,
    seed: int = 0,
) -> QualityModel:
    """Learn confidence -> per-image quality on labelled data, with a seeded k-fold check."""
    conf, qual = np.asarray(confidence, dtype=float), np.asarray(quality, dtype=float)
    if conf.shape != qual.shape or conf.ndim != 1:
        raise ValueError("confidence and quality must be 1-d and of the same length")
    keep = np.isfinite(conf) & np.isfinite(qual)
    conf, qual = conf[keep], qual[keep]
    if method not in ("isotonic", "binned"):
        raise ValueError(f"method must be isotonic or binned (got {method!r})")
    if folds < 2 or len(conf) < 2 * folds:
        raise ValueError(
            f"need at least {2 * max(folds, 2)} labelled images for {max(folds, 2)}-fold checking (got {len(conf)})"
        )
    order = np.random.default_rng(seed).permutation(len(conf))
    abs_err, corpus_err = [], []
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        xs, ys = _fit(method, conf[train], qual[train], bins)
        probe = QualityModel(method, tuple(xs), tuple(ys), 0, (0.0, 1.0), 0.0, 0.0, 0.0, 0)
        pred = probe.predict(conf[part])
        abs_err.append(np.abs(pred - qual[part]))
        corpus_err.append(abs(pred.mean() - qual[part].mean()))
    xs, ys = _fit(method, conf, qual, bins)
    return QualityModel(
        method,
        tuple(float(v) for v in xs),
        tuple(float(v) for v in ys),
        int(len(conf)),
        (float(conf.min()), float(conf.max())),
        float(qual.mean()),
        float(np.concatenate(abs_err).mean()),
        float(np.mean(corpus_err)),
        folds,
    )
