"""Interval analysis that stays honest under repeated looks: an alpha-spending schedule.

A live canary is judged again at every interval on the cumulative data. Testing each look at the
fixed level ``alpha`` (what Kayenta does per interval) lets the chance of a false failure grow with
every look. Here the analysis spends ``alpha`` over its looks (Lan and DeMets' spending functions,
information fraction = look / looks) and tests look ``k`` at the increment
``spent(k) - spent(k - 1)``; by the union bound, a metric of an identical canary fails at some look
with probability at most ``alpha`` whatever the tests and however the looks depend on each other,
so every test of the judge (Fisher's exact, the sign test, Mann-Whitney, the tail test) keeps its
error rate over the whole analysis without a change of its own.

- ``pocock`` (the default): ``alpha * ln(1 + (e - 1) t)``, spends early looks almost evenly, so
  a decisive failure rolls back at the look that sees it;
- ``obrien_fleming``: ``2 - 2 Phi(z_{1 - alpha / 2} / sqrt(t))``, keeps nearly all of ``alpha`` for
  the last look (early looks catch only overwhelming failures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

__all__ = ["SPENDING", "Spending", "Look", "spent", "schedule"]

Spending = Literal["pocock", "obrien_fleming"]
SPENDING: tuple[str, ...] = ("pocock", "obrien_fleming")


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _norm_ppf(p: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(p))


def spent(fraction: float, alpha: float, spending: Spending = "pocock") -> float:
    """The share of ``alpha`` spent once ``fraction`` (0 to 1) of the analysis is done."""
    if spending not in SPENDING:
        raise ValueError(f"spending must be one of {', '.join(SPENDING)} (got {spending!r})")
    t = min(max(float(fraction), 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log(1.0 + (math.e - 1.0) * t)
    return min(alpha, 2.0 - 2.0 * _norm_cdf(_norm_ppf(1.0 - alpha / 2.0) / math.sqrt(t)))


@dataclass(frozen=True)
class Look:
    """Look ``look`` of ``looks`` (1-based) of an analysis that keeps ``alpha`` per metric over all
    of them. ``level`` is the significance level of this look's tests."""

    look: int
    looks: int
    alpha: float
    spending: Spending = "pocock"

    def __post_init__(self) -> None:
        if self.looks < 1 or not 1 <= self.look <= self.looks:
            raise ValueError(f"a look is 1 to looks (got look {self.look} of {self.looks})")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1 (got {self.alpha})")
        if self.spending not in SPENDING:
            raise ValueError(f"spending must be one of {', '.join(SPENDING)} (got {self.spending!r})")

    @property
    def final(self) -> bool:
        return self.look == self.looks

    @property
    def spent(self) -> float:
        """The part of ``alpha`` spent up to and with this look."""
        return spent(self.look / self.looks, self.alpha, self.spending)

    @property
    def level(self) -> float:
        return self.spent - spent((self.look - 1) / self.looks, self.alpha, self.spending)

    def to_dict(self) -> dict:
        return {
            "look": self.look,
            "looks": self.looks,
            "final": self.final,
            "alpha": self.alpha,
            "spending": self.spending,
            "level": self.level,
            "alpha_spent": self.spent,
        }


def schedule(looks: int, alpha: float, spending: Spending = "pocock") -> list[Look]:
    """Every look of an analysis."""
    return [Look(k, looks, alpha, spending) for k in range(1, looks + 1)]
