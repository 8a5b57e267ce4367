"""ROUGE-L (LCS F-measure, beta 1.2) as COCO computes it."""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np

from harness.quality.scorer import MetricScore, Scorer, mean_aggregate, mean_stats

__all__ = ["RougeScorer"]


class RougeScorer(Scorer):
    family = "rouge"
    metrics = ("ROUGE-L",)

    def score(
        self, references: Mapping[Hashable, list[str]], candidates: Mapping[Hashable, str]
    ) -> tuple[MetricScore, ...]:
        from pycocoevalcap.rouge.rouge import Rouge

        corpus, per_image = Rouge().compute_score(dict(references), {k: [candidates[k]] for k in references})
        per_image = np.asarray(per_image, dtype=float)
        return (MetricScore("ROUGE-L", float(corpus), per_image, mean_stats(per_image), mean_aggregate),)
