"""Error budgets: how much of the allowed unreliability the observed events have used."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from harness.slo.sli import SLIValue

__all__ = ["ErrorBudget", "error_budget", "exact"]


def exact(x: float | int) -> Fraction:
    """``x`` as the decimal it is written as (``0.99`` -> 99/100), so budgets carry no float noise."""
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


@dataclass(frozen=True)
class ErrorBudget:
    """Budget over the observed events, taken as the SLO period: ``remaining`` is below 0 when overspent."""

    objective: float
    total: float
    bad: float
    allowed: float
    consumed: float | None
    remaining: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "total": self.total,
            "bad": self.bad,
            "allowed_bad": self.allowed,
            "consumed": self.consumed,
            "remaining": self.remaining,
        }


def error_budget(sli: SLIValue, objective: float) -> ErrorBudget:
    """Allowed bad events ``(1 - objective) * total``, the share of them used, and what is left."""
    total, bad = exact(sli.total), exact(sli.bad)
    allowed = (1 - exact(objective)) * total
    if total == 0:
        return ErrorBudget(objective, float(total), float(bad), 0.0, None, None)
    consumed = bad / allowed
    return ErrorBudget(objective, float(total), float(bad), float(allowed), float(consumed), float(1 - consumed))
