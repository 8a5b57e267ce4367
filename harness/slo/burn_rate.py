"""Burn rates: how fast the error budget is spent, over alert windows and projected to production.

A burn rate of 1 spends the whole budget in exactly one SLO period; the workbook pages at 14.4
(2% of a 30-day budget in an hour). An alert fires when both of its windows burn at its rate or
faster (``>=``). Burn rates are computed in exact fractions of the counts, so a constructed
14.4x burn is 14.4x, not 14.399999.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from harness.slo.budget import exact
from harness.slo.sli import SLIValue
from harness.slo.spec import SLO, AlertWindow, format_duration
from harness.stats import wilson_interval

__all__ = [
    "burn_rate",
    "WindowBurn",
    "BurnProjection",
    "window_burns",
    "project",
]


def _burn(bad: float, total: float, objective: float) -> Fraction | None:
    if total <= 0:
        return None
    return exact(bad) / (exact(total) * (1 - exact(objective)))


def burn_rate(error_ratio: float, objective: float) -> float:
    """``error_ratio / (1 - objective)``: 1.0 spends the budget in exactly one period."""
    return float(exact(error_ratio) / (1 - exact(objective)))


def _f(x: Fraction | None) -> float | None:
    return None if x is None else float(x)


@dataclass(frozen=True)
class WindowBurn:
    """Burn rates over an alert's long and short windows ending at ``at``, and whether it fires.

    ``covered`` is the share of the long window that the data spans (a short run covers little).
    """

    severity: str
    factor: float
    long: str
    short: str
    long_burn: float | None
    short_burn: float | None
    long_events: int
    short_events: int
    covered: float
    fires: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _window_counts(events, start: float, end: float) -> tuple[int, int]:
    sel = events[(events["t"] > start) & (events["t"] <= end)]
    return int(len(sel)), int((~sel["good"]).sum())


def window_burns(events, slo: SLO, at: float | None = None, since: float | None = None) -> tuple[WindowBurn, ...]:
    """Each alert window of ``slo`` evaluated at ``at`` (default: the last event) over ``events``.

    ``events`` has columns ``t`` and ``good`` (see ``sli_events``); a window is ``(at - w, at]``.
    """
    out = []
    if len(events) == 0:
        for w in slo.windows:
            out.append(WindowBurn(w.severity, w.burn_rate, w.long, w.short, None, None, 0, 0, 0.0, False))
        return tuple(out)
    at = float(events["t"].max()) if at is None else float(at)
    first = float(events["t"].min()) if since is None else float(since)
    for w in slo.windows:
        n_long, bad_long = _window_counts(events, at - w.long_s, at)
        n_short, bad_short = _window_counts(events, at - w.short_s, at)
        lb, sb = _burn(bad_long, n_long, slo.objective), _burn(bad_short, n_short, slo.objective)
        fires = lb is not None and sb is not None and w.fires(lb) and w.fires(sb)
        covered = min(1.0, max(0.0, (at - first) / w.long_s))
        out.append(
            WindowBurn(w.severity, w.burn_rate, w.long, w.short, _f(lb), _f(sb), n_long, n_short, covered, fires)
        )
    return tuple(out)


@dataclass(frozen=True)
class BurnProjection:
    """What the observed error ratio would do at ``traffic_rps`` in production, for one alert.

    ``budget_consumed``: share of the period's budget spent over the long window; ``fires``: the
    alert at the observed ratio; ``decision``: ``fires``/``silent`` when the whole confidence
    interval of the ratio agrees, ``inconclusive`` when it straddles the alert's threshold.
    """

    severity: str
    factor: float
    long: str
    short: str
    traffic_rps: float
    error_ratio: float | None
    burn_rate: float | None
    burn_low: float | None
    burn_high: float | None
    budget_consumed: float | None
    long_window_events: float
    long_window_bad: float | None
    period_budget_events: float
    exhaustion_s: float | None
    fires: bool
    decision: str

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["exhaustion"] = None if self.exhaustion_s is None else format_duration(round(self.exhaustion_s))
        return d


def _project_one(sli: SLIValue, slo: SLO, w: AlertWindow, traffic: Fraction, confidence: float) -> BurnProjection:
    period, long_s = exact(slo.period_s), exact(w.long_s)
    budget = 1 - exact(slo.objective)
    events = traffic * long_s
    period_budget = budget * traffic * period
    burn = _burn(sli.bad, sli.total, slo.objective)
    if burn is None:
        return BurnProjection(
            w.severity,
            w.burn_rate,
            w.long,
            w.short,
            float(traffic),
            None,
            None,
            None,
            None,
            None,
            float(events),
            None,
            float(period_budget),
            None,
            False,
            "no data",
        )
    ratio = exact(sli.bad) / exact(sli.total)
    lo, hi = wilson_interval(float(sli.bad), float(sli.total), confidence)
    burn_lo, burn_hi = exact(lo) / budget, exact(hi) / budget
    fires = w.fires(burn)
    decision = "fires" if w.fires(burn_lo) else "silent" if not w.fires(burn_hi) else "inconclusive"
    return BurnProjection(
        severity=w.severity,
        factor=w.burn_rate,
        long=w.long,
        short=w.short,
        traffic_rps=float(traffic),
        error_ratio=float(ratio),
        burn_rate=float(burn),
        burn_low=float(burn_lo),
        burn_high=float(burn_hi),
        budget_consumed=float(burn * long_s / period),
        long_window_events=float(events),
        long_window_bad=float(ratio * events),
        period_budget_events=float(period_budget),
        exhaustion_s=float(period / burn) if burn > 0 else None,
        fires=bool(fires),
        decision=decision,
    )


def project(sli: SLIValue, slo: SLO, traffic_rps: float, confidence: float = 0.95) -> tuple[BurnProjection, ...]:
    """Project the SLI's error ratio, sustained at ``traffic_rps``, onto each alert window of ``slo``.

    A sustained ratio burns both windows of an alert alike, so the alert fires exactly when the
    burn rate reaches its factor; traffic sets the event and budget counts.
    """
    if traffic_rps <= 0:
        raise ValueError("traffic_rps must be above 0")
    traffic = exact(traffic_rps)
    return tuple(_project_one(sli, slo, w, traffic, confidence) for w in slo.windows)
