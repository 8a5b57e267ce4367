"""Two-sample Kolmogorov-Smirnov test, feature by feature with a Bonferroni correction."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Sequence

import numpy as np

from harness.drift.base import Detector, Score
from harness.errors import DataError

__all__ = ["KSDrift", "ks_critical_distance"]


def ks_critical_distance(n_reference: int, n_current: int, alpha: float) -> float:
    """Smallest KS distance D flagged at level ``alpha`` for these sample sizes (asymptotic)."""
    from scipy.special import kolmogi

    return float(kolmogi(alpha) * math.sqrt((n_reference + n_current) / (n_reference * n_current)))


class KSDrift(Detector):
    """KS on each column; the p-value is the smallest one times the number of columns."""

    kind: ClassVar[str] = "ks"
    method: ClassVar[str] = "two-sample Kolmogorov-Smirnov (Bonferroni over features)"
    statistic_name: ClassVar[str] = "D"
    PARAMS: ClassVar[tuple[str, ...]] = ("features",)

    def __init__(self, feature: str = "value", *, features: Sequence[str] | None = None, **kw: Any):
        super().__init__(feature, **kw)
        self.features = list(features) if features is not None else None

    def preprocess(self, data: Any, side: str) -> np.ndarray:
        x = np.asarray(data, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2:
            raise DataError(f"{side} {self.feature}: expected a table of numbers (got shape {x.shape})")
        if not np.all(np.isfinite(x)):
            raise DataError(f"{side} {self.feature}: values must be finite numbers")
        if self.features is not None and x.shape[1] != len(self.features):
            raise DataError(
                f"{side} {self.feature}: {x.shape[1]} columns, expected {len(self.features)} ({', '.join(self.features)})"
            )
        if "reference" in self.state and x.shape[1] != self.state["reference"].shape[1]:
            raise DataError(
                f"{side} {self.feature}: {x.shape[1]} columns, the reference has {self.state['reference'].shape[1]}"
            )
        return x

    def score(self, current: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> Score:
        from scipy.stats import ks_2samp

        k = reference.shape[1]
        names = self.features or ([f"{self.feature}[{j}]" for j in range(k)] if k > 1 else [self.feature])
        per = []
        for j in range(k):
            r = ks_2samp(reference[:, j], current[:, j])
            per.append((float(r.statistic), float(r.pvalue)))
        worst = min(range(k), key=lambda j: per[j][1])
        p = min(1.0, k * per[worst][1])
        details = {"features": {names[j]: {"D": d, "p_value": pv} for j, (d, pv) in enumerate(per)}} if k > 1 else {}
        return Score(
            per[worst][0],
            p_value=p,
            min_detectable=ks_critical_distance(len(reference), len(current), self.alpha / k),
            details=details,
        )
