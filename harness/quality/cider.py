"""CIDEr-D (pycocoevalcap's ``Cider``: clipped n-gram counts, Gaussian length penalty, x10)."""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np

from harness.quality.scorer import MetricScore, Scorer, mean_aggregate, mean_stats

__all__ = ["CiderDScorer"]


class CiderDScorer(Scorer):
    """CIDEr-D; document frequencies come from the references of the images scored together,
    so a corpus figure is only comparable with one over the same images."""

    family = "cider"
    metrics = ("CIDEr-D",)

    def score(
        self, references: Mapping[Hashable, list[str]], candidates: Mapping[Hashable, str]
    ) -> tuple[MetricScore, ...]:
        from pycocoevalcap.cider.cider import Cider

        corpus, per_image = Cider().compute_score(dict(references), {k: [candidates[k]] for k in references})
        per_image = np.asarray(per_image, dtype=float).reshape(-1)
        return (MetricScore("CIDEr-D", float(corpus), per_image, mean_stats(per_image), mean_aggregate),)
