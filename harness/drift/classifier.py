"""Classifier two-sample test: can a model tell the current sample from the reference?

A standardised logistic regression is cross-validated (stratified k folds). On each held-out fold
its scores are independent of the fold's labels when there is no drift, so the fold's ROC AUC is
a Mann-Whitney U with an exact null. The folds share training data, so their p-values are merged
by twice their mean, which is valid under any dependence (Rüschendorf; Vovk and Wang).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from harness.drift.base import Score, VectorDetector

__all__ = ["ClassifierDrift"]


class ClassifierDrift(VectorDetector):
    """Cross-validated ROC AUC of reference-vs-current logistic regression; p-value from the folds."""

    kind: ClassVar[str] = "classifier"
    method: ClassVar[str] = "classifier two-sample test (logistic regression, cross-validated ROC AUC)"
    statistic_name: ClassVar[str] = "AUC"
    PARAMS: ClassVar[tuple[str, ...]] = ("folds", "C")

    def __init__(
        self, feature: str = "embedding", *, folds: int = 5, C: float = 1.0, max_n: int | None = 2000, **kw: Any
    ):
        super().__init__(feature, max_n=max_n, **kw)
        self.folds = int(folds)
        self.C = float(C)
        self.min_samples = 2 * self.folds

    def cost(self, n_reference: int, n_current: int) -> float:
        d = self.state["reference"].shape[1] if self.fitted else 128
        return 400.0 * self.folds * (n_reference + n_current) * d  # about 100 lbfgs steps per fold

    def score(self, current: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> Score:
        from scipy.stats import mannwhitneyu, norm
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.concatenate([reference, current]).astype(np.float64)
        y = np.r_[np.zeros(len(reference), dtype=int), np.ones(len(current), dtype=int)]
        split = StratifiedKFold(n_splits=self.folds, shuffle=True, random_state=int(rng.integers(2**31)))
        aucs, pvals, crit = [], [], []
        for train, test in split.split(x, y):
            model = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=500))
            model.fit(x[train], y[train])
            s = model.decision_function(x[test])
            cur, ref = s[y[test] == 1], s[y[test] == 0]
            u = mannwhitneyu(cur, ref, alternative="greater")
            aucs.append(float(u.statistic) / (len(cur) * len(ref)))
            pvals.append(float(u.pvalue))
            n1, n2 = len(cur), len(ref)
            crit.append(0.5 + norm.ppf(1 - self.alpha / 2) * math.sqrt((n1 + n2 + 1) / (12.0 * n1 * n2)))
        p = min(1.0, 2.0 * float(np.mean(pvals)))
        return Score(
            float(np.mean(aucs)),
            p_value=p,
            min_detectable=float(np.mean(crit)),
            details={"fold_auc": [round(a, 4) for a in aucs], "fold_p_value": pvals, "folds": self.folds},
        )
