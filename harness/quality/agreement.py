"""How far a judge's 1 to 5 scores agree with people's ratings of the same captions, and whether
that is enough for the judge to gate.

    pairs      one per caption both scored by the judge and rated by people: (judge score, the
               mean of the people's ratings of that caption)
    tau-b      Kendall's tau-b of the pairs (ties in either column accounted for)
    rho        Spearman's rank correlation of the pairs
    kappa      Cohen's kappa, quadratically weighted, on the 1 to 5 scale: the judge's score against
               the people's mean rating rounded to the nearest whole rating (halves up)

Each figure comes with a seeded percentile bootstrap interval (``statistic_interval``: the
captions resampled with replacement, the same resamples for the three figures). A judge may gate
(``gate_allowed``) only while its kappa is at least the user's threshold on at least ``min_pairs``
pairs; otherwise its figures are reported and marked not gating, with the reason.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Hashable, Iterable, Sequence

import numpy as np

from harness.quality.bootstrap import Interval, statistic_interval
from harness.quality.hybrid import RATING_MAX, RATING_MIN, Rating

__all__ = [
    "Figure",
    "Agreement",
    "Pairs",
    "Gating",
    "SCALE",
    "MIN_PAIRS",
    "pair_ratings",
    "kendall_tau_b",
    "spearman_rho",
    "weighted_kappa",
    "agreement",
    "gate_allowed",
]

SCALE: tuple[int, ...] = tuple(range(int(RATING_MIN), int(RATING_MAX) + 1))  # 1, 2, 3, 4, 5
MIN_PAIRS = 30


@dataclass(frozen=True)
class Figure:
    """A figure of agreement: its value on all pairs (None where undefined, e.g. every score alike)
    and its bootstrap interval (None without resamples or where undefined on every resample)."""

    value: float | None
    interval: Interval | None

    def to_dict(self) -> dict:
        return {"value": self.value, "ci": self.interval.to_dict() if self.interval else None}


@dataclass(frozen=True)
class Pairs:
    """The judge's scores and people's mean ratings of the same captions, and what did not pair."""

    judge: tuple[int, ...]
    people: tuple[float, ...]
    ratings_used: int  # ratings behind the pairs
    rated_not_scored: int  # captions people rated that the judge did not score (refused, error ...)
    ratings_unmatched: int  # ratings of no judged caption (another image, or another caption of it)


@dataclass(frozen=True)
class Agreement:
    n_pairs: int
    kendall_tau_b: Figure
    spearman_rho: Figure
    weighted_kappa: Figure
    ratings_used: int
    rated_not_scored: int
    ratings_unmatched: int
    n_resamples: int
    seed: int

    def to_dict(self) -> dict:
        return {
            "n_pairs": self.n_pairs,
            "kendall_tau_b": self.kendall_tau_b.to_dict(),
            "spearman_rho": self.spearman_rho.to_dict(),
            "weighted_kappa": self.weighted_kappa.to_dict(),
            "ratings_used": self.ratings_used,
            "rated_not_scored": self.rated_not_scored,
            "ratings_unmatched": self.ratings_unmatched,
            "n_resamples": self.n_resamples,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Gating:
    """Whether the judge may gate, and why (or why not)."""

    allowed: bool
    reason: str
    min_kappa: float
    min_pairs: int

    def to_dict(self) -> dict:
        return {
            "allowed": self.allowed,
            "reason": self.reason,
            "min_kappa": self.min_kappa,
            "min_pairs": self.min_pairs,
        }


def _same_caption(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def pair_ratings(
    scored: Iterable[tuple[Hashable, str, int | None]],
    ratings: Iterable[tuple[Rating, str | None]],
) -> Pairs:
    """Pair the judge's ``(image id, caption, score or None)`` with people's ratings (each with the
    caption it rates, or None: then it rates the image's caption, whichever that is). Image ids
    match as strings, captions with their whitespace runs made one space."""
    judged: dict[str, tuple[str, int | None]] = {}
    for image_id, caption, score in scored:
        judged[str(image_id)] = (caption, score)
    by_image: dict[str, list[float]] = {}
    unmatched = 0
    for r, caption in ratings:
        hit = judged.get(r.image_id)
        if hit is None or (caption is not None and not _same_caption(caption, hit[0])):
            unmatched += 1
            continue
        by_image.setdefault(r.image_id, []).append(r.rating)
    judge, people, used, not_scored = [], [], 0, 0
    for image_id, values in by_image.items():
        score = judged[image_id][1]
        if score is None:
            not_scored += 1
            continue
        judge.append(int(score))
        people.append(math.fsum(values) / len(values))
        used += len(values)
    return Pairs(tuple(judge), tuple(people), used, not_scored, unmatched)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def kendall_tau_b(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b (NaN where undefined: fewer than two pairs, or one column all alike)."""
    from scipy.stats import kendalltau

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(kendalltau(x, y, variant="b").statistic)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho (NaN where undefined)."""
    from scipy.stats import spearmanr

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return math.nan
    return float(spearmanr(x, y).statistic)


def to_scale(value: float) -> int:
    """A mean rating as the nearest whole rating of the 1 to 5 scale, halves up."""
    return int(min(max(math.floor(value + 0.5), SCALE[0]), SCALE[-1]))


def weighted_kappa(judge: Sequence[int], people: Sequence[float]) -> float:
    """Cohen's kappa with quadratic weights on the 1 to 5 scale (scikit-learn's), the people's mean
    ratings rounded by ``to_scale``; NaN where undefined (no pairs, or both sides give one rating
    throughout, where chance explains all agreement: a judge that always says 4 earns no kappa)."""
    from sklearn.metrics import cohen_kappa_score

    if not len(judge):
        return math.nan
    a = np.asarray(judge, dtype=int)
    b = np.asarray([to_scale(v) for v in people], dtype=int)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")  # an undefined kappa is NaN here, said once by the report
        return float(cohen_kappa_score(a, b, labels=list(SCALE), weights="quadratic"))


def agreement(pairs: Pairs, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Agreement:
    """tau-b, rho and weighted kappa of the pairs, each with its bootstrap interval (``n_resamples``
    0: no intervals)."""
    x = np.asarray(pairs.judge, dtype=float)
    y = np.asarray(pairs.people, dtype=float)
    n = len(x)
    figures = []
    for fn in (kendall_tau_b, spearman_rho, lambda a, b: weighted_kappa(a.astype(int), b)):
        value = _finite(fn(x, y)) if n else None
        ci = None
        if n and n_resamples > 0:
            ci = statistic_interval(lambda idx, fn=fn: fn(x[idx], y[idx]), n, n_resamples, level, seed)
        figures.append(Figure(value, ci))
    return Agreement(
        n, *figures, pairs.ratings_used, pairs.rated_not_scored, pairs.ratings_unmatched, n_resamples, seed
    )


def gate_allowed(result: Agreement, min_kappa: float, min_pairs: int = MIN_PAIRS) -> Gating:
    """A judge may gate only with at least ``min_pairs`` pairs and a weighted kappa of at least
    ``min_kappa``; otherwise the reason it may not."""
    kappa = result.weighted_kappa.value
    if result.n_pairs < min_pairs:
        reason = f"only {result.n_pairs} captions both judged and rated by people (at least {min_pairs} needed)"
        return Gating(False, reason, min_kappa, min_pairs)
    if kappa is None:
        return Gating(False, "weighted kappa is undefined on these pairs", min_kappa, min_pairs)
    if kappa < min_kappa:
        reason = f"weighted kappa {kappa:.3f} is below {min_kappa:g} on {result.n_pairs} pairs"
        return Gating(False, reason, min_kappa, min_pairs)
    return Gating(
        True, f"weighted kappa {kappa:.3f} is at least {min_kappa:g} on {result.n_pairs} pairs", min_kappa, min_pairs
    )
