"""The SLO review: every SLO of a spec over its window (28 or 30 days) from a history of its events.

A source gives each SLO's good and total events per step on one ``Grid`` (``harness.slo.history``
from records, ``PrometheusSource.history`` from Prometheus); everything here follows from those
counts, so both sources are judged alike:

- the SLI and the error budget over the window (Sloth's ``period_error_budget_remaining``:
  ``1 - bad / ((1 - objective) x total)``), and the budget's burn-down, the same figure over the
  events from the window's start to each step;
- per alert of the multiwindow set, the burn rate over its long and its short window at every
  step (``bad / (total x (1 - objective))`` over the trailing window, as the generated rules' ratios
  are), the steps where both meet the factor, and the episodes they make (held for the rule's
  ``for``); an episode is *noisy* when the budget it spent (bad events over its long window and
  its length, against the whole window's allowance) is below the share of budget the alert stands
  for: it fired on few events;
- the exhaustion projection: at the last day's burn rate and traffic, when the budget over the
  events so far reaches zero (never at a burn rate of 1 or less);
- the trend: the error ratio over the window's last quarter (at most 7 days) against the rest;
- what to decide: SLOs that spent more than their budget, SLOs never at risk (less than
  ``NEVER_AT_RISK_SPENT`` of the budget, no alert condition met or alert fired, and no
  exhaustion projected within a window's length: the objective may be too loose), noisy
  alerts, and SLOs without data.

Markers for deploys (decision records) and drift reports put what changed on the same axis.
Renderings (markdown, HTML with inline SVG, the dashboard) read the ``Review``; nothing is
computed there.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np

from harness.slo.budget import ErrorBudget, error_budget
from harness.slo.sli import SLIValue
from harness.slo.spec import SLO, AlertWindow, SLOSpec, format_duration

__all__ = [
    "Grid",
    "SLOHistory",
    "Episode",
    "AlertReview",
    "SLOReview",
    "Marker",
    "Decision",
    "Review",
    "choose_step",
    "span_text",
    "review_grid",
    "review_slo",
    "build_review",
    "MAX_POINTS",
    "NEVER_AT_RISK_SPENT",
    "TREND_DAYS",
    "PROJECTION_S",
]

MAX_POINTS = 40_320  # steps in a window at most: 28 days at one minute
MIN_STEP_S = 60.0
NEVER_AT_RISK_SPENT = 0.10  # an SLO that spent less than this share of its budget, with no alert, was never at risk
TREND_DAYS = 7.0  # the trend compares the window's last quarter, at most this many days, with the rest
TREND_RATIO = 1.25  # and calls it a change when the error ratios differ by more than this factor
PROJECTION_S = 86_400.0  # the exhaustion projection runs at the burn rate of the last day


def span_text(seconds: float) -> str:
    """A duration for people in its two largest units (``3d 4h``, ``2h 5m``, ``45m``, ``0s``)."""
    if seconds < 60:
        return f"{max(0, round(seconds))}s"
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{minutes}m"
    if minutes < 1440:
        h, m = divmod(minutes, 60)
        return f"{h}h {m}m" if m else f"{h}h"
    d, h = divmod(int(round(seconds / 3600)), 24)
    return f"{d}d {h}h" if h else f"{d}d"


def choose_step(window_s: float, step_s: float | None = None) -> float:
    """The grid's step: ``step_s`` when given, else one minute up to 28 days and, beyond, the
    whole minutes that keep the window within ``MAX_POINTS`` steps."""
    if step_s is not None:
        if not step_s > 0:
            raise ValueError(f"the step must be positive (got {step_s!r})")
        return float(step_s)
    return float(max(MIN_STEP_S, math.ceil(window_s / MAX_POINTS / 60.0) * 60.0))


@dataclass(frozen=True)
class Grid:
    """``n`` steps of ``step_s`` from ``start``: step ``i`` holds the events in
    ``(start + i*step_s, start + (i+1)*step_s]``, as a counter read at the step's end counts them.
    The first ``lead`` steps come before the window: they fill the alert windows at its start."""

    start: float
    step_s: float
    n: int
    lead: int = 0

    @property
    def window_start(self) -> float:
        return self.start + self.lead * self.step_s

    @property
    def end(self) -> float:
        return self.start + self.n * self.step_s

    def ends(self) -> np.ndarray:
        """The end of every step (where a counter is read)."""
        return self.start + self.step_s * np.arange(1, self.n + 1, dtype=float)

    def bins(self, t: np.ndarray) -> np.ndarray:
        """The step of each time ``t``; -1 outside the grid."""
        t = np.asarray(t, dtype=float)
        i = np.ceil((t - self.start) / self.step_s).astype(np.int64) - 1
        return np.where((i >= 0) & (i < self.n), i, -1)

    def steps(self, seconds: float) -> int:
        """Whole steps that cover ``seconds`` (a window shorter than a step takes one)."""
        return max(1, int(math.ceil(seconds / self.step_s - 1e-9)))


def review_grid(end: float, window_s: float, slos: Iterable[SLO], step_s: float | None = None) -> Grid:
    """The grid of a review of ``window_s`` ending at ``end``, with a lead-in as long as the longest
    alert window of ``slos``. ``end`` is rounded down to a whole step."""
    step = choose_step(window_s, step_s)
    end = math.floor(end / step) * step
    n = max(1, int(math.ceil(window_s / step - 1e-9)))
    longest = max((w.long_s for s in slos for w in s.windows), default=0.0)
    lead = int(math.ceil(longest / step - 1e-9))
    return Grid(end - (n + lead) * step, step, n + lead, lead)


@dataclass(frozen=True)
class Episode:
    """An alert's condition held from ``start`` until ``end`` (None: still held at the review's end).

    ``spent``: the share of the window's budget the bad events over the episode and its long
    window spent; ``share``: the share the alert stands for; ``noisy`` when ``spent < share``.
    ``source``: ``burn rates`` (computed here) or ``prometheus`` (its ``ALERTS`` series)."""

    severity: str
    start: float
    end: float | None
    spent: float | None = None
    share: float | None = None
    source: str = "burn rates"

    @property
    def noisy(self) -> bool:
        return self.spent is not None and self.share is not None and self.spent < self.share

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "start": self.start,
            "end": self.end,
            "spent": self.spent,
            "share": self.share,
            "noisy": self.noisy,
            "source": self.source,
        }


@dataclass(frozen=True)
class SLOHistory:
    """What a source gives for one SLO: good and total events per step of the grid (NaN-free), a
    note when it has none, and, from Prometheus, the episodes its ``ALERTS`` series shows (None
    when the source keeps none) and the alerts firing now by severity (None when unknown)."""

    slo: SLO
    good: np.ndarray
    total: np.ndarray
    note: str = ""
    fired: tuple[Episode, ...] | None = None
    firing: frozenset[str] | None = None


@dataclass(frozen=True)
class AlertReview:
    """One alert of an SLO's multiwindow set over the window."""

    window: AlertWindow
    long_burn: np.ndarray = field(repr=False)
    short_burn: np.ndarray = field(repr=False)
    condition: np.ndarray = field(repr=False)
    episodes: tuple[Episode, ...]
    fired: tuple[Episode, ...] | None = None
    firing_now: bool | None = None
    """Prometheus' rules API: whether this alert fires now (None: not asked, no rules loaded, or a window that
    ended in the past)."""

    @property
    def long_now(self) -> float | None:
        return _last(self.long_burn)

    @property
    def short_now(self) -> float | None:
        return _last(self.short_burn)

    @property
    def met_now(self) -> bool:
        return bool(len(self.condition) and self.condition[-1])

    @property
    def peak(self) -> float | None:
        """The highest long-window burn rate over the window."""
        finite = self.long_burn[np.isfinite(self.long_burn)]
        return float(finite.max()) if len(finite) else None

    def to_dict(self) -> dict[str, Any]:
        w = self.window
        return {
            "severity": w.severity,
            "factor": w.burn_rate,
            "long": w.long,
            "short": w.short,
            "long_burn_now": self.long_now,
            "short_burn_now": self.short_now,
            "condition_now": self.met_now,
            "firing_now": self.firing_now,
            "peak_long_burn": self.peak,
            "episodes": [e.to_dict() for e in self.episodes],
            "fired": None if self.fired is None else [e.to_dict() for e in self.fired],
        }


def _last(a: np.ndarray) -> float | None:
    if not len(a) or not math.isfinite(a[-1]):
        return None
    return float(a[-1])


@dataclass(frozen=True)
class SLOReview:
    """One SLO over the review window: SLI, budget, burn-down, projection, trend and its alerts.

    The arrays hold one value per step of the window (the lead-in left out): ``good`` and
    ``total`` events, ``remaining`` (the budget left over the events from the window's start to
    the step; NaN before the first event)."""

    slo: SLO
    grid: Grid
    good: np.ndarray = field(repr=False)
    total: np.ndarray = field(repr=False)
    sli: SLIValue
    budget: ErrorBudget
    remaining: np.ndarray = field(repr=False)
    alerts: tuple[AlertReview, ...]
    exhaustion_s: float | None
    recent_burn: float | None
    trend: str
    note: str = ""

    @property
    def has_data(self) -> bool:
        return self.sli.total > 0

    @property
    def episodes(self) -> tuple[Episode, ...]:
        return tuple(e for a in self.alerts for e in a.episodes)

    @property
    def firing_now(self) -> tuple[str, ...]:
        """Severities firing now: Prometheus' word where it gave one, else the burn rates'."""
        return tuple(
            a.window.severity for a in self.alerts if (a.firing_now if a.firing_now is not None else a.met_now)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.slo.to_dict(),
            "sli": self.sli.to_dict(),
            "met": None if self.sli.ratio is None else self.sli.ratio >= self.slo.objective,
            "budget": self.budget.to_dict(),
            "exhaustion_s": self.exhaustion_s,
            "exhaustion": None if self.exhaustion_s is None else span_text(self.exhaustion_s),
            "recent_burn": self.recent_burn,
            "trend": self.trend,
            "firing_now": list(self.firing_now),
            "alerts": [a.to_dict() for a in self.alerts],
            "note": self.note,
        }


@dataclass(frozen=True)
class Marker:
    """Something that changed, on the review's time axis: a deploy (a gate's or judge's decision
    record) or a drift report. ``label`` and ``detail`` may quote a service's text (escape them)."""

    t: float
    kind: str  # "deploy" or "drift"
    label: str
    detail: str = ""
    path: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Decision:
    """A point for the review meeting: ``kind`` is ``overspent``, ``never_at_risk``, ``noisy_alert``
    or ``no_data``; ``text`` says it in one sentence."""

    kind: str
    slo: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Review:
    """Every SLO of a spec over one window from one source, with the markers and what to decide."""

    service: str
    source: Mapping[str, Any]
    grid: Grid
    slos: tuple[SLOReview, ...]
    markers: tuple[Marker, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def start(self) -> float:
        return self.grid.window_start

    @property
    def end(self) -> float:
        return self.grid.end

    @property
    def decisions(self) -> tuple[Decision, ...]:
        return tuple(d for s in self.slos for d in decisions_for(s))

    @property
    def without_data(self) -> tuple[str, ...]:
        return tuple(s.slo.name for s in self.slos if not s.has_data)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "source": dict(self.source),
            "start": self.start,
            "end": self.end,
            "window": format_duration(self.end - self.start),
            "step_s": self.grid.step_s,
            "slos": [s.to_dict() for s in self.slos],
            "decisions": [d.to_dict() for d in self.decisions],
            "markers": [m.to_dict() for m in self.markers],
            "without_data": list(self.without_data),
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"


# ---- the figures ---------------------------------------------------------------------------


def _trailing(cum: np.ndarray, k: int) -> np.ndarray:
    """Sums over the trailing ``k`` steps at each step, from a cumulative sum with a leading 0."""
    hi = cum[1:]
    lo = cum[np.maximum(np.arange(1, len(cum)) - k, 0)]
    return hi - lo


def _burns(bad_cum: np.ndarray, total_cum: np.ndarray, k: int, budget: float) -> np.ndarray:
    bad, total = _trailing(bad_cum, k), _trailing(total_cum, k)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = bad / (total * budget)
    out[total <= 0] = np.nan
    return out


def _meets(burn: np.ndarray, w: AlertWindow) -> np.ndarray:
    factor = float(w.burn_rate)
    # the factor as the rules write it: factor x budget compared with the ratio; compared here as
    # burn rates with a relative tolerance of one part in 1e12 so that an exact 14.4x is 14.4x
    tol = factor * 1e-12
    ok = np.isfinite(burn)
    return ok & ((burn > factor + tol) if w.strict else (burn >= factor - tol))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(first, last)`` step of every run of True."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return list(zip(starts.tolist(), stops.tolist()))


def _share(w: AlertWindow, period_s: float) -> float:
    if w.budget_percent is not None:
        return float(w.budget_percent) / 100.0
    return float(w.burn_rate) * w.long_s / period_s


def _episodes(
    cond: np.ndarray, w: AlertWindow, grid: Grid, bad_cum: np.ndarray, allowed: float, period_s: float
) -> tuple[Episode, ...]:
    """Episodes of the condition inside the window (``cond`` covers the window's steps)."""
    ends = grid.ends()[grid.lead :]
    hold = int(math.ceil(w.alert_after_s / grid.step_s - 1e-9)) if w.alert_after_s else 0
    k = grid.steps(w.long_s)
    out = []
    for first, last in _runs(cond):
        if last - first < hold:  # the rule's ``for``: pending, never firing
            continue
        lo = max(0, grid.lead + first - k + 1)
        spent = None if allowed <= 0 else float(bad_cum[grid.lead + last + 1] - bad_cum[lo]) / allowed
        out.append(
            Episode(
                w.severity,
                float(ends[first + hold]),
                None if last == len(cond) - 1 else float(ends[last] + grid.step_s),
                spent,
                _share(w, period_s),
            )
        )
    return tuple(out)


def _trend(bad: np.ndarray, total: np.ndarray, grid: Grid) -> str:
    n = len(total)
    recent = min(n // 4, int(TREND_DAYS * 86400 / grid.step_s))
    if recent < 1 or n - recent < 1:
        return "unknown"
    b1, t1 = bad[-recent:].sum(), total[-recent:].sum()
    b0, t0 = bad[:-recent].sum(), total[:-recent].sum()
    if t1 <= 0 or t0 <= 0:
        return "unknown"
    r1, r0 = b1 / t1, b0 / t0
    if r1 > r0 * TREND_RATIO and r1 > 0:
        return "worse"
    if r1 * TREND_RATIO < r0:
        return "better"
    return "steady"


def _exhaustion(bad_w: np.ndarray, total_w: np.ndarray, budget: float, grid: Grid) -> tuple[float | None, float | None]:
    """``(seconds until the budget is gone, the last day's burn rate)`` at the last day's burn
    rate and traffic; 0 when it is gone already, None when it never goes at that rate."""
    k = min(len(total_w), grid.steps(PROJECTION_S))
    n_day, bad_day = float(total_w[-k:].sum()), float(bad_w[-k:].sum())
    n, bad = float(total_w.sum()), float(bad_w.sum())
    if n <= 0 or n_day <= 0:
        return None, None
    burn = bad_day / (n_day * budget)
    left = budget * n - bad
    if left <= 0:
        return 0.0, burn
    if burn <= 1:
        return None, burn
    rate = n_day / (k * grid.step_s)
    return left / (budget * rate * (burn - 1)), burn


def review_slo(history: SLOHistory, grid: Grid) -> SLOReview:
    """Every figure of one SLO over the window from its history on ``grid``."""
    slo = history.slo
    budget = slo.error_budget
    good = np.asarray(history.good, dtype=float)
    total = np.asarray(history.total, dtype=float)
    if good.shape != (grid.n,) or total.shape != (grid.n,):
        raise ValueError(f"{slo.name}: the history has {total.shape} steps, the grid {grid.n}")
    bad = np.clip(total - good, 0.0, None)
    bad_cum = np.concatenate([[0.0], np.cumsum(bad)])
    total_cum = np.concatenate([[0.0], np.cumsum(total)])
    w0 = grid.lead
    good_w, total_w, bad_w = good[w0:], total[w0:], bad[w0:]
    n, n_bad = float(total_w.sum()), float(bad_w.sum())
    note = history.note if n <= 0 else ""
    if n <= 0 and not note:
        note = "no data: no events in the window"
    sli = SLIValue(slo.name, slo.sli, n - n_bad, n, note)
    with np.errstate(divide="ignore", invalid="ignore"):
        cum_total, cum_bad = np.cumsum(total_w), np.cumsum(bad_w)
        remaining = 1.0 - cum_bad / (cum_total * budget)
    remaining[cum_total <= 0] = np.nan
    allowed = budget * n
    alerts = []
    fired_by = {}
    for e in history.fired or ():
        fired_by.setdefault(e.severity, []).append(e)
    for w in slo.windows:
        long_burn = _burns(bad_cum, total_cum, grid.steps(w.long_s), budget)[w0:]
        short_burn = _burns(bad_cum, total_cum, grid.steps(w.short_s), budget)[w0:]
        cond = _meets(long_burn, w) & _meets(short_burn, w)
        episodes = _episodes(cond, w, grid, bad_cum, allowed, slo.period_s)
        fired = None
        if history.fired is not None:
            fired = tuple(
                Episode(e.severity, e.start, e.end, *_spent(e, w, grid, bad_cum, allowed, slo.period_s), "prometheus")
                for e in fired_by.get(w.severity, ())
            )
        firing = None if history.firing is None else w.severity in history.firing
        alerts.append(AlertReview(w, long_burn, short_burn, cond, episodes, fired, firing))
    exhaustion, recent = _exhaustion(bad_w, total_w, budget, grid)
    return SLOReview(
        slo=slo,
        grid=grid,
        good=good_w,
        total=total_w,
        sli=sli,
        budget=error_budget(sli, slo.objective),
        remaining=remaining,
        alerts=tuple(alerts),
        exhaustion_s=exhaustion,
        recent_burn=recent,
        trend=_trend(bad_w, total_w, grid) if n > 0 else "unknown",
        note=note,
    )


def _spent(
    e: Episode, w: AlertWindow, grid: Grid, bad_cum: np.ndarray, allowed: float, period_s: float
) -> tuple[float | None, float]:
    """What an episode Prometheus reports spent of the budget, as ``_episodes`` counts it."""
    share = _share(w, period_s)
    if allowed <= 0:
        return None, share
    # the episode's last step is the one before its end (the first step it no longer fired)
    hi = grid.bins(np.array([e.end - grid.step_s if e.end is not None else grid.end]))[0]
    hi = grid.n - 1 if hi < 0 else int(hi)
    lo = grid.bins(np.array([e.start - w.long_s]))[0]
    lo = 0 if lo < 0 else int(lo) + 1
    return float(bad_cum[hi + 1] - bad_cum[lo]) / allowed, share


def decisions_for(s: SLOReview) -> list[Decision]:
    """What the review meeting should decide about one SLO."""
    name = s.slo.name
    if not s.has_data:
        return [Decision("no_data", name, f"{name}: {s.note or 'no data'}; the review cannot judge it")]
    out = []
    consumed = s.budget.consumed or 0.0
    if consumed > 1:
        out.append(
            Decision(
                "overspent",
                name,
                f"{name} spent {consumed:.0%} of its error budget over the window: "
                "more than its share; freeze risky changes or revisit the objective",
            )
        )
    elif (
        consumed < NEVER_AT_RISK_SPENT
        and not s.episodes
        and not any(a.fired for a in s.alerts)
        and (s.exhaustion_s is None or s.exhaustion_s > (s.grid.n - s.grid.lead) * s.grid.step_s)
    ):
        out.append(
            Decision(
                "never_at_risk",
                name,
                f"{name} spent {consumed:.1%} of its error budget and no alert condition was met: "
                f"never at risk; the objective ({s.slo.objective:.4g}) may be too loose",
            )
        )
    for a in s.alerts:
        shown = a.fired if a.fired else a.episodes
        noisy = [e for e in shown if e.noisy]
        if noisy:
            spent = max(e.spent or 0.0 for e in noisy)
            out.append(
                Decision(
                    "noisy_alert",
                    name,
                    f"{name}'s {a.window.severity} alert ({a.window.burn_rate:g}x over {a.window.long} and "
                    f"{a.window.short}) fired {len(noisy)} time(s) while spending at most {spent:.2%} of the "
                    f"budget, less than the {noisy[0].share:.2%} it stands for: noisy (few events)",
                )
            )
    return out


def build_review(
    spec: SLOSpec,
    histories: Iterable[SLOHistory],
    grid: Grid,
    source: Mapping[str, Any],
    markers: Iterable[Marker] = (),
    warnings: Iterable[str] = (),
) -> Review:
    """The review of every SLO of ``spec`` from its history on ``grid``; markers outside the
    window are left out."""
    slos = tuple(review_slo(h, grid) for h in histories)
    inside = tuple(
        sorted((m for m in markers if grid.window_start <= m.t <= grid.end), key=lambda m: (m.t, m.kind, m.label))
    )
    return Review(spec.service, dict(source), grid, slos, inside, tuple(warnings))
