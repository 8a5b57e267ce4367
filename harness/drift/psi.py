"""Population stability index over reference-quantile bins, with a sample-size-aware threshold."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from harness.drift.base import Detector, Score

__all__ = ["PSIDrift", "psi"]


def psi(reference_share: np.ndarray, current_share: np.ndarray, eps: float = 1e-4) -> float:
    """sum((c - r) * ln(c / r)) over bins, shares floored at ``eps``."""
    r = np.maximum(np.asarray(reference_share, dtype=np.float64), eps)
    c = np.maximum(np.asarray(current_share, dtype=np.float64), eps)
    return float(np.sum((c - r) * np.log(c / r)))


class PSIDrift(Detector):
    """PSI over ``bins`` reference-quantile bins. Drift when PSI exceeds the larger of the rule of
    thumb ``threshold`` and the chi-square critical value of PSI at ``alpha`` for these sample
    sizes (n·m/(n+m)·PSI is about chi-square with bins-1 degrees of freedom under no drift), so
    small samples do not false-alarm on noise."""

    kind: ClassVar[str] = "psi"
    method: ClassVar[str] = "population stability index (reference-quantile bins)"
    statistic_name: ClassVar[str] = "PSI"
    PARAMS: ClassVar[tuple[str, ...]] = ("bins", "threshold")

    def __init__(self, feature: str = "value", *, bins: int = 10, threshold: float = 0.1, **kw: Any):
        super().__init__(feature, **kw)
        self.bins = int(bins)
        self.threshold = float(threshold)

    def fit_reference(self, reference: np.ndarray) -> None:
        qs = np.quantile(reference, np.linspace(0, 1, self.bins + 1)[1:-1])
        self.state["edges"] = np.unique(qs)

    def shares(self, x: np.ndarray) -> np.ndarray:
        edges = self.state["edges"]
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        return counts / max(len(x), 1)

    def score(self, current: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> Score:
        from scipy.stats import chi2

        r, c = self.shares(reference), self.shares(current)
        value = psi(r, c)
        df = max(len(r) - 1, 1)
        scale = 1.0 / len(reference) + 1.0 / len(current)
        critical = float(chi2.ppf(1.0 - self.alpha, df) * scale)
        threshold = max(self.threshold, critical)
        details = {
            "bins": len(r),
            "approx_p_value": float(chi2.sf(value / scale, df)),
            "reference_share": r.round(6).tolist(),
            "current_share": c.round(6).tolist(),
        }
        return Score(value, threshold=threshold, min_detectable=threshold, details=details)
