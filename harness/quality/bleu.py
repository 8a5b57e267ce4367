"""BLEU-1..4 as COCO computes it (pycocoevalcap, closest reference length)."""

from __future__ import annotations

from typing import Hashable, Mapping

import numpy as np

from harness.quality.scorer import MetricScore, Scorer

__all__ = ["BleuScorer", "bleu_from_counts"]

_TINY, _SMALL = 1e-15, 1e-9


def bleu_from_counts(summed: np.ndarray, order: int) -> np.ndarray:
    """Corpus BLEU-``order`` from summed counts ``[testlen, reflen, guess_1..4, correct_1..4]``."""
    s = np.atleast_2d(np.asarray(summed, dtype=float))
    testlen, reflen, guess, correct = s[:, 0], s[:, 1], s[:, 2:6], s[:, 6:10]
    prod = np.ones(len(s))
    for k in range(order):
        prod = prod * (correct[:, k] + _TINY) / (guess[:, k] + _SMALL)
    bleu = prod ** (1.0 / order)
    ratio = (testlen + _TINY) / (reflen + _SMALL)
    with np.errstate(divide="ignore", over="ignore"):
        brevity = np.where(ratio < 1, np.exp(1 - 1 / np.maximum(ratio, 1e-300)), 1.0)
    return bleu * brevity


class BleuScorer(Scorer):
    """BLEU-1..4; per-image scores are pycocoevalcap's sentence-level BLEU."""

    family = "bleu"
    metrics = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")

    def score(
        self, references: Mapping[Hashable, list[str]], candidates: Mapping[Hashable, str]
    ) -> tuple[MetricScore, ...]:
        from pycocoevalcap.bleu.bleu_scorer import BleuScorer as _Cooked

        cooked = _Cooked(n=4)
        for k in references:
            cooked += (candidates[k], references[k])
        corpus, per_image = cooked.compute_score(option="closest", verbose=0)
        rows = []
        for comps in cooked.ctest:
            reflen = cooked._single_reflen(comps["reflen"], "closest", comps["testlen"])
            rows.append([comps["testlen"], reflen, *comps["guess"], *comps["correct"]])
        stats = np.asarray(rows, dtype=float).reshape(-1, 10)
        return tuple(
            MetricScore(
                name,
                float(corpus[i]),
                np.asarray(per_image[i], dtype=float),
                stats,
                lambda summed, order=i + 1: bleu_from_counts(summed, order),
            )
            for i, name in enumerate(self.metrics)
        )
