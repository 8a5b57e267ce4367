"""The SLO report: every SLO's SLI, budget, window burn rates and projection, plus run figures.

``evaluate_records`` builds it from request records; ``PrometheusSource.evaluate`` from
Prometheus. It serializes to ``slo.json``; ``render_markdown`` is a rendering of that dict.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from harness.slo.budget import ErrorBudget, error_budget
from harness.slo.burn_rate import BurnProjection, WindowBurn, project, window_burns
from harness.slo.figures import Figures
from harness.slo.kinds import get as get_kind
from harness.slo.sli import SLIValue, sli_events, sli_figures, sli_from_events
from harness.slo.spec import SLO, SLOSpec

__all__ = ["SLOResult", "SLOReport", "evaluate_records", "record_columns", "result_for", "render_markdown"]


@dataclass(frozen=True)
class SLOResult:
    """One SLO evaluated: its SLI, budget, burn rate per alert window, and the projection."""

    slo: SLO
    sli: SLIValue
    budget: ErrorBudget
    windows: tuple[WindowBurn, ...]
    projection: tuple[BurnProjection, ...] = ()

    @property
    def met(self) -> bool | None:
        """Whether the SLI meets the objective (None without data)."""
        return None if self.sli.ratio is None else self.sli.ratio >= self.slo.objective

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.slo.to_dict(),
            "sli": self.sli.to_dict(),
            "met": self.met,
            "budget": self.budget.to_dict(),
            "windows": [w.to_dict() for w in self.windows],
            "projection": [p.to_dict() for p in self.projection],
        }


@dataclass(frozen=True)
class SLOReport:
    """All SLOs of a spec over one source and time range."""

    service: str
    source: Mapping[str, Any]
    start: float | None
    end: float | None
    traffic_rps: float | None
    results: tuple[SLOResult, ...]
    figures: Figures
    spec: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    """What the reader should know about the data: records left out (answered too far after the clock)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "source": dict(self.source),
            "start": self.start,
            "end": self.end,
            "traffic_rps": self.traffic_rps,
            "slos": [r.to_dict() for r in self.results],
            "figures": self.figures.to_dict(),
            "spec": dict(self.spec),
            "warnings": list(self.warnings),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False, default=str) + "\n"


def result_for(slo: SLO, sli: SLIValue, windows: tuple[WindowBurn, ...], traffic_rps: float | None) -> SLOResult:
    """Assemble an ``SLOResult`` (budget and projection follow from the SLI)."""
    proj = project(sli, slo, traffic_rps) if traffic_rps else ()
    return SLOResult(slo, sli, error_budget(sli, slo.objective), windows, proj)


def evaluate_records(
    spec: SLOSpec,
    records,
    quality=None,
    traffic_rps: float | None = None,
    price_per_hour: float | None = None,
    at: float | None = None,
    source: Mapping[str, Any] | None = None,
    folder=None,
    clock: float | None = None,
) -> SLOReport:
    """Evaluate every SLO of ``spec`` over the records: a DataFrame from ``load_records``, or chunks
    of one window (an iterable of DataFrames, as ``harness.records.iter_records`` yields them), taken
    one at a time: each SLO keeps only its events' times and good flags, so the window is never
    whole in memory and the counts stay exact.

    Window burn rates end at ``at`` (default: the last answer); the projection uses
    ``traffic_rps`` (default: the spec's), cost ``price_per_hour`` (default: the spec's).
    ``folder``: the run's folder, where a kind's own input (the feedback log) is looked for.

    ``clock``: the reader's time (unix s, default now). A record answered more than
    ``harness.records.CLOCK_SKEW_S`` after it comes from a clock that disagrees: it is left out of
    the SLIs, the windows and the figures (so it cannot move the windows' end), and the report's
    ``warnings`` say how many were; so are events of a kind's own input (feedback) stamped as late.
    """
    import time

    import numpy as np
    import pandas as pd

    from harness.records import CLOCK_SKEW_S, ahead_note, ahead_of_clock, answer_times
    from harness.slo.columns import in_segment
    from harness.slo.figures import figure_part, figures_from_parts
    from harness.slo.kinds import RecordsKind, SLIInputs

    traffic = traffic_rps if traffic_rps is not None else spec.traffic_rps
    price = price_per_hour if price_per_hour is not None else spec.price_per_hour
    clock = time.time() if clock is None else float(clock)
    late = {"n": 0, "read": 0, "first": math.inf}

    def _on_time(chunk):
        """The chunk without the records answered too far after the clock (counted in ``late``)."""
        late["read"] += len(chunk)
        if not len(chunk):
            return chunk
        ahead = ahead_of_clock(chunk, clock)
        if not ahead.any():
            return chunk
        late["n"] += int(ahead.sum())
        late["first"] = min(late["first"], float(answer_times(chunk)[ahead].min()))
        return chunk[~ahead]

    chunks = (_on_time(c) for c in ([records] if isinstance(records, pd.DataFrame) else records))
    by_records = [s for s in spec.slos if isinstance(get_kind(s.sli), RecordsKind)]
    times: dict[str, list] = {s.name: [] for s in by_records}
    goods: dict[str, list] = {s.name: [] for s in by_records}
    notes: dict[str, list[str]] = {s.name: [] for s in by_records}
    parts: dict[str, list] = {s.name: [] for s in by_records}
    fig_parts = []
    for chunk in chunks:
        fig_parts.append(figure_part(chunk))
        inputs = SLIInputs(chunk, quality, None if folder is None else Path(folder))
        for slo in by_records:
            kind = get_kind(slo.sli)
            part = in_segment(chunk, slo.segment)  # an SLO with ``segment:`` counts that segment's records
            ev, note = kind.events(inputs if part is chunk else replace(inputs, records=part), slo)
            times[slo.name].append(ev["t"].to_numpy(dtype=float))
            goods[slo.name].append(ev["good"].to_numpy(dtype=bool))
            notes[slo.name].append(note)
            if len(part):
                parts[slo.name].append(kind.figure_part(part, slo))
    fig = figures_from_parts(fig_parts, price)
    starts = [p["start"] for p in fig_parts if p["n"]]
    ends = [p["end"] for p in fig_parts if p["n"]]
    start, end = (min(starts), max(ends)) if starts else (None, None)
    when = at if at is not None else end
    warnings: list[str] = []
    if late["n"]:
        warnings.append(
            ahead_note(late["n"], late["read"], late["first"], clock)
            + ": left out of the SLIs, burn windows and figures"
        )
    results = []
    for slo in spec.slos:
        kind = get_kind(slo.sli)
        if slo.name in notes:
            t = np.concatenate(times.pop(slo.name) or [np.empty(0)])  # each SLO's chunks freed in turn
            good = np.concatenate(goods.pop(slo.name) or [np.empty(0, dtype=bool)])
            order = np.argsort(t, kind="stable")
            events = pd.DataFrame({"t": t[order], "good": good[order]})
            del t, good, order
            said = [n for n in notes[slo.name] if n]
            note = "" if len(events) and len(said) < len(notes[slo.name]) else (said[0] if said else "")
            if not note and events.empty:
                note = "no data: no events" + (f" in segment {slo.segment!r}" if slo.segment else "")
            figures = kind.merge_figures(parts[slo.name], slo)
        else:  # a kind with an input of its own (the feedback log) or none from the records
            events, note = sli_events(None, slo, quality, folder)
            ahead = (events["t"] > clock + CLOCK_SKEW_S).to_numpy(dtype=bool)
            if ahead.any():
                first = float(events["t"][ahead].min())
                late_events = ahead_note(int(ahead.sum()), len(events), first, clock, noun="events", verb="stamped")
                warnings.append(f"{slo.name}: {late_events}: left out of its SLI and burn windows")
                events = events[~ahead].reset_index(drop=True)
            figures = sli_figures(None, slo, events, quality, folder)
        sli = sli_from_events(events, slo, note, figures)
        own = kind.own_clock and at is None and len(events)
        slo_at, slo_since = (float(events["t"].max()), float(events["t"].min())) if own else (when, start)
        results.append(result_for(slo, sli, window_burns(events, slo, slo_at, slo_since), traffic))
    return SLOReport(
        service=spec.service,
        source=dict(source or {"kind": "records"}),
        start=start,
        end=end,
        traffic_rps=traffic,
        results=tuple(results),
        figures=fig,
        spec=spec.to_dict(),
        warnings=tuple(warnings),
    )


def record_columns(spec: SLOSpec) -> tuple[list[str], list[str]]:
    """``(columns, optional)``: the record columns an evaluation of ``spec`` reads (its run figures
    and every SLO's kind), and those it reads only where the records have them."""
    from harness.slo.columns import SEGMENT
    from harness.slo.figures import FIGURE_COLUMNS

    cols, optional = list(FIGURE_COLUMNS), []
    for slo in spec.slos:
        need, maybe = get_kind(slo.sli).columns(slo)
        cols += need + ((SEGMENT,) if slo.segment is not None else ())
        optional += maybe
    return list(dict.fromkeys(cols)), [c for c in dict.fromkeys(optional) if c not in cols]


# ---- markdown rendering of the report dict ---------------------------------------------------


def _pct(x: float | None, digits: int = 3) -> str:
    return "no data" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{1000 * x:.1f} ms"


def _gone(p: Mapping[str, Any]) -> str:
    if p["burn_rate"] is None:
        return "-"
    return p["exhaustion"] or "never"


def _figure(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if key.startswith("drain") and isinstance(v, (int, float)):
        return f"{v:.1f} s"
    if key.endswith("_s") and isinstance(v, (int, float)):
        return _ms(v)
    return f"{v:g}" if isinstance(v, (int, float)) else str(v)


def _kind_figures(slos) -> list[str]:
    """What an SLO's kind adds beside its SLI (the lag kind's pipeline figures, the correction
    kind's counts per action), one table per SLO that has some."""
    lines: list[str] = []
    for r in slos:
        figures = r["sli"].get("figures") or {}
        if not figures:
            continue
        lines += ["", f"### {r['name']}: {r['sli']['kind']} figures", "", "| figure | value |", "| --- | --- |"]
        lines += [f"| {k.removesuffix('_s').replace('_', ' ')} | {_figure(k, v)} |" for k, v in figures.items()]
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    """A markdown summary of a report dict (as written to ``slo.json``)."""
    src = report["source"]
    where = src.get("path") or src.get("url") or src.get("kind")
    lines = [f"# SLOs of {report['service']}", "", f"Source: {src.get('kind')} `{where}`", ""]
    lines += [f"**Warning:** {w}" for w in report.get("warnings") or ()]
    lines += [""] if report.get("warnings") else []
    lines += [
        "| SLO | SLI | objective | SLI value | good / total | budget remaining | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["slos"]:
        sli = r["sli"]
        kind = r["sli"]["kind"] + (f" (threshold {r['threshold']:g})" if r.get("threshold") is not None else "")
        value = sli["note"] if sli["ratio"] is None else _pct(sli["ratio"])
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        name = r["name"] + (f" (segment {r['segment']})" if r.get("segment") is not None else "")
        lines.append(
            f"| {name} | {kind} | {_pct(r['objective'], 2)} | {value} | "
            f"{sli['good']:g} / {sli['total']:g} | {_pct(r['budget']['remaining'], 1)} | {met} |"
        )
    lines += _kind_figures(report["slos"])
    lines += ["", "## Burn rates over the alert windows", ""]
    lines += [
        "| SLO | alert | factor | long | short | burn (long) | burn (short) | data covers | fires |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["slos"]:
        for w in r["windows"]:
            lines.append(
                f"| {r['name']} | {w['severity']} | {w['factor']:g}x | {w['long']} | {w['short']} | "
                f"{_num(w['long_burn'])} | {_num(w['short_burn'])} | {_pct(w['covered'], 1)} | "
                f"{'**yes**' if w['fires'] else 'no'} |"
            )
    if report.get("traffic_rps"):
        lines += ["", f"## Projection at {report['traffic_rps']:g} requests/s in production", ""]
        lines += [
            "| SLO | alert | factor | long / short | burn rate (95% CI) | budget spent over long | "
            "budget gone in | fires | decision |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in report["slos"]:
            for p in r["projection"]:
                ci = (
                    "-"
                    if p["burn_rate"] is None
                    else (f"{p['burn_rate']:.2f} ({p['burn_low']:.2f} to {p['burn_high']:.2f})")
                )
                lines.append(
                    f"| {r['name']} | {p['severity']} | {p['factor']:g}x | {p['long']} / {p['short']} | {ci} | "
                    f"{_pct(p['budget_consumed'], 2)} | {_gone(p)} | "
                    f"{'**yes**' if p['fires'] else 'no'} | {p['decision']} |"
                )
    f = report["figures"]
    lines += ["", "## Figures", "", "| figure | value |", "| --- | --- |"]
    lines += [
        f"| requests | {f['requests']:g} |",
        f"| captions | {f['captions']:g} |",
        f"| duration | {_num(f['duration_s'], 1)} s |",
        f"| throughput | {_num(f['throughput_rps'])} requests/s |",
        f"| latency p50 / p95 / p99 | {_ms(f['p50_s'])} / {_ms(f['p95_s'])} / {_ms(f['p99_s'])} |",
        f"| coverage | {_pct(f['coverage'], 2)} |",
        "| cost per 1,000 captions | "
        + (
            "- (no price_per_hour)"
            if f["cost_per_1000"] is None
            else f"{f['cost_per_1000']:.4f} at {f['price_per_hour']:g}/hour"
        )
        + " |",
    ]
    return "\n".join(lines) + "\n"
