"""Renderings of the SLO review (``harness.slo.review.Review``) for the monthly review meeting:
``review.md``, ``review.html`` (self-contained: inline CSS and SVG, no script, nothing loaded, a CSP
that allows nothing else) and ``review.json`` (``Review.to_json``). Nothing is computed here beyond
what drawing needs: every figure comes from the review.

Both renderings show the same content, in this order: what to decide (grouped: overspent, never at
risk, noisy alerts, no data), the SLO list, then per SLO its summary, alerts and episodes, then the
markers (deploys, drift reports) and warnings. The HTML adds, per SLO with data, the budget's
burn-down with its exhaustion projection, the error ratio and events per step, and per alert its long
and short burn rates against its factor with its episodes shaded; markers are vertical lines on
every chart.

Text that a service or a spec supplied (service and SLO names, notes, marker labels and details,
the source's URL or path, warnings) is escaped in both: ``inline_text``/``code_span`` in markdown,
``html.escape`` in HTML.

Downsampling (for drawing only; the tables read the full series). A line has at most ``MAX_DRAWN``
points: the window's steps are cut, from its start, into buckets of ``ceil(steps / MAX_DRAWN)``
consecutive steps, each drawn at the end of its last step, and a bucket gives
- for a burn rate: its highest value (so a peak survives; a bucket without events is a gap);
- for the burn-down: its last value (the budget left at that time);
- for the SLI: its bad events over its events (the error ratio over the bucket, not a mean of
  ratios) and its events per step (their mean: a short last bucket is drawn as the others).
Episodes and markers are drawn at their exact times. Burn rates are drawn on a log scale
(``log10(1 + rate)``), so that 0, 1x, the factor and a 500x peak all show on one chart.
"""

from __future__ import annotations

import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import numpy as np

from harness.duration import format_duration
from harness.report.markdown import code_span, inline_text
from harness.report.svg import PAGE_CSP, legend, line, polylines, rect, svg, text
from harness.slo.review import TREND_DAYS, AlertReview, Episode, Review, SLOReview, span_text
from harness.text import one_line

__all__ = [
    "render_markdown",
    "render_html",
    "write_review",
    "downsample",
    "charts",
    "MAX_DRAWN",
    "MAX_EPISODES",
    "REVIEW_JSON",
    "REVIEW_MD",
    "REVIEW_HTML",
]

REVIEW_JSON, REVIEW_MD, REVIEW_HTML = "review.json", "review.md", "review.html"
MAX_DRAWN = 800  # points per drawn line at most
MAX_EPISODES = 50  # episodes listed per SLO (review.json has them all)
QUOTE_LIMIT = 300  # characters of a quoted text shown

TREND = {"better": "▲ better", "worse": "▼ worse", "steady": "► steady", "unknown": "? unknown"}
GROUPS = (
    ("overspent", "Overspent"),
    ("never_at_risk", "Never at risk"),
    ("noisy_alert", "Noisy alerts"),
    ("no_data", "No data"),
)


# ---- the content, once for both renderings -----------------------------------------------------


class Quoted(str):
    """Text a service or a spec supplied: escaped in every rendering."""


class Code(str):
    """Such text shown verbatim (a URL, a path): a code span, escaped."""


class Strong(str):
    """Words of the report's own, emphasised."""


Pieces = tuple  # of str, Quoted, Code, Strong: one paragraph, list item, heading or table cell


def _utc(t: float) -> str:
    d = datetime.fromtimestamp(t, timezone.utc)
    return d.strftime("%Y-%m-%d %H:%M:%S" if d.second or d.microsecond else "%Y-%m-%d %H:%M")


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _objective(o: float) -> str:
    return f"{100 * o:.6g}%"


def _count(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.1f}"


def _rate(x: float | None) -> str:
    """A burn rate: three significant digits, whole from 100."""
    if x is None:
        return "–"
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


def _factor(f: float) -> str:
    return f"{f:.4g}x"


def _projection(s: SLOReview) -> str:
    """``gone in 3d 4h at the last day's 2.1x``, ``not at the last day's 0.4x``."""
    if s.recent_burn is None:
        return "–" if not s.has_data else "– (no events in the last day)"
    at = f"the last day's {_rate(s.recent_burn)}x"
    if s.exhaustion_s is None:
        return f"not at {at}"
    if s.exhaustion_s <= 0:
        return f"gone already ({at})"
    return f"gone in {span_text(s.exhaustion_s)} at {at}"


def _kind(s: SLOReview) -> Pieces:
    th = s.slo.threshold
    return (Quoted(s.slo.sli),) + ((f" (threshold {th:g})",) if th is not None else ())


def _firing(a: AlertReview) -> str | Strong:
    if a.firing_now is not None:
        return Strong("yes (Prometheus)") if a.firing_now else "no (Prometheus)"
    return Strong("yes") if a.met_now else "no"


def _alert_name(a: AlertReview) -> str:
    w = a.window
    return f"{w.severity} {_factor(w.burn_rate)} over {w.long} / {w.short}"


def _decisions(review: Review) -> list:
    blocks: list = [("h", 2, ("What to decide",))]
    by_kind: dict[str, list] = {}
    for d in review.decisions:
        by_kind.setdefault(d.kind, []).append(d)
    if not by_kind:
        return blocks + [
            (
                "p",
                (
                    "Nothing to decide: no SLO overspent its budget or was never at risk, no alert was noisy, "
                    "and every SLO had data.",
                ),
            )
        ]
    for kind, title in GROUPS:
        if kind not in by_kind:
            continue
        blocks.append(("h", 3, (title,)))
        if kind == "no_data":
            items = [(Quoted(s.slo.name), ": ", Quoted(s.note or "no data")) for s in review.slos if not s.has_data]
        else:
            items = [(Quoted(d.text),) for d in by_kind[kind]]
        blocks.append(("ul", items))
    return blocks


def _slo_table(review: Review) -> tuple:
    headers = (
        "SLO",
        "SLI kind",
        "objective",
        "window",
        "SLI over the window",
        "good / total",
        "budget left",
        "exhaustion projection",
        "alerts firing now",
        "trend",
    )
    rows = []
    for s in review.slos:
        sli = "no data" if s.sli.ratio is None else _pct(s.sli.ratio, 3)
        firing = ", ".join(dict.fromkeys(s.firing_now))  # each severity once
        rows.append(
            (
                (Quoted(s.slo.name),),
                _kind(s),
                (_objective(s.slo.objective),),
                (s.slo.period,),
                (sli,),
                (f"{_count(s.sli.good)} / {_count(s.sli.total)}",),
                (_pct(s.budget.remaining),),
                (_projection(s),),
                (Strong(firing) if firing else "none",),
                (TREND.get(s.trend, s.trend),),
            )
        )
    return ("table", headers, rows)


def _summary(s: SLOReview, review: Review) -> Pieces:
    if not s.has_data:
        return ("No data: ", Quoted(s.note or "no events in the window"), ". The review cannot judge this SLO.")
    b = s.budget
    return (
        *_kind(s),
        f" SLI {_pct(s.sli.ratio, 3)} against an objective of {_objective(s.slo.objective)} over {s.slo.period}: "
        f"{_count(s.sli.bad)} bad of {_count(s.sli.total)} events, {_count(b.allowed)} allowed; "
        f"budget left {_pct(b.remaining)} (spent {_pct(b.consumed)}). Exhaustion projection: {_projection(s)}. "
        f"Trend: {TREND.get(s.trend, s.trend)} (the error ratio over the window's last quarter, at most "
        f"{TREND_DAYS:g} days, against the rest).",
    )


def _alerts_table(s: SLOReview) -> tuple:
    headers = (
        "severity",
        "factor",
        "long / short",
        "burn now (long / short)",
        "peak long burn",
        "episodes",
        "firing now",
        "noisy episodes",
    )
    rows = []
    for a in s.alerts:
        w = a.window
        shown = a.fired if a.fired else a.episodes
        noisy = sum(1 for e in shown if e.noisy)
        episodes = f"{len(a.episodes)}" + (f" (Prometheus: {len(a.fired)})" if a.fired is not None else "")
        rows.append(
            (
                (w.severity,),
                (_factor(w.burn_rate),),
                (f"{w.long} / {w.short}",),
                (f"{_rate(a.long_now)} / {_rate(a.short_now)}",),
                (_rate(a.peak),),
                (episodes,),
                (_firing(a),),
                (Strong(f"{noisy} noisy") if noisy else "none",),
            )
        )
    return ("table", headers, rows)


def _episodes(s: SLOReview, review: Review) -> list:
    found = sorted(
        ((a, e) for a in s.alerts for e in (*a.episodes, *(a.fired or ()))),
        key=lambda ae: (ae[1].start, ae[0].window.severity, ae[1].source),
    )
    if not found:
        return [("p", ("No alert condition held over the window.",))]
    headers = ("alert", "from", "start (UTC)", "end (UTC)", "lasted", "budget spent", "its share", "noisy")
    rows = []
    for a, e in found[:MAX_EPISODES]:
        end = _utc(e.end) if e.end is not None else "still firing at the end"
        rows.append(
            (
                (_alert_name(a),),
                (e.source,),
                (_utc(e.start),),
                (end,),
                (span_text((e.end if e.end is not None else review.end) - e.start),),
                (_pct(e.spent, 2),),
                (_pct(e.share, 2),),
                (Strong("noisy") if e.noisy else "no",),
            )
        )
    out: list = [("table", headers, rows)]
    if len(found) > MAX_EPISODES:
        out.append(("p", (f"… and {len(found) - MAX_EPISODES} more episodes (review.json lists them all).",)))
    return out


def _content(review: Review) -> list:
    """The report as blocks: ``("h", level, pieces)``, ``("p", pieces)``, ``("ul", [pieces])``,
    ``("table", headers, rows of cells)``, ``("charts", SLOReview)`` (HTML only)."""
    src = review.source
    where = src.get("url") or src.get("path")
    blocks: list = [
        ("h", 1, ("SLO review: ", Quoted(review.service))),
        (
            "p",
            (
                f"Window {_utc(review.start)} to {_utc(review.end)} UTC ({format_duration(review.end - review.start)}, "
                f"one point every {format_duration(review.grid.step_s)}); source: ",
                Quoted(src.get("kind", "unknown")),
                *((" ", Code(where)) if where else ()),
                f". {len(review.slos)} SLOs, {len(review.markers)} markers.",
            ),
        ),
    ]
    blocks += _decisions(review)
    blocks += [("h", 2, ("SLOs",)), _slo_table(review)]
    for s in review.slos:
        blocks += [("h", 2, ("SLO ", Quoted(s.slo.name))), ("p", _summary(s, review))]
        if s.has_data:
            blocks += [("charts", s), ("h", 3, ("Alerts",)), _alerts_table(s), ("h", 3, ("Episodes",))]
            blocks += _episodes(s, review)
    blocks.append(("h", 2, ("Markers",)))
    if review.markers:
        rows = [
            ((_utc(m.t),), (Quoted(m.kind),), (Quoted(m.label),), (Quoted(m.detail),) if m.detail else ("–",))
            for m in review.markers
        ]
        blocks.append(("table", ("time (UTC)", "kind", "label", "detail"), rows))
    else:
        blocks.append(("p", ("No deploy or drift report in the window.",)))
    if review.warnings:
        blocks += [("h", 2, ("Warnings",)), ("ul", [(Quoted(w),) for w in review.warnings])]
    return blocks


# ---- markdown ----------------------------------------------------------------------------------


def _md(pieces: Pieces, cell: bool = False) -> str:
    out = []
    for p in pieces:
        if isinstance(p, Quoted):
            out.append(inline_text(p, QUOTE_LIMIT))
        elif isinstance(p, Code):
            out.append(code_span(p, QUOTE_LIMIT, cell=cell))
        elif isinstance(p, Strong):
            out.append(f"**{p}**")
        else:
            out.append(p)
    return "".join(out)


def render_markdown(review: Review) -> str:
    """The review as markdown (GitHub's flavour); text from a service or a spec is escaped."""
    lines: list[str] = []
    for block in _content(review):
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + _md(block[2]), ""]
        elif kind == "p":
            lines += [_md(block[1]), ""]
        elif kind == "ul":
            lines += [f"- {_md(item)}" for item in block[1]] + [""]
        elif kind == "table":
            _, headers, rows = block
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + " --- |" * len(headers))
            lines += ["| " + " | ".join(_md(c, cell=True) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---- HTML --------------------------------------------------------------------------------------


def _h(pieces: Pieces) -> str:
    out = []
    for p in pieces:
        if isinstance(p, Quoted):
            out.append(html.escape(one_line(p, QUOTE_LIMIT)))
        elif isinstance(p, Code):
            out.append(f"<code>{html.escape(one_line(p, QUOTE_LIMIT))}</code>")
        elif isinstance(p, Strong):
            out.append(f"<strong>{html.escape(p)}</strong>")
        else:
            out.append(html.escape(p))
    return "".join(out)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}strong{color:#b00020}
.charts{display:flex;flex-direction:column;gap:8px}.charts figure{margin:0;border:1px solid #ddd;padding:4px}"""


def render_html(review: Review) -> str:
    """The review as a self-contained HTML page with inline SVG charts; every text is escaped."""
    body = []
    for block in _content(review):
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{_h(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{_h(block[1])}</p>")
        elif kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_h(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            _, headers, rows = block
            head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
            cells = "".join("<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in rows)
            body.append(f"<table><tr>{head}</tr>{cells}</table>")
        elif kind == "charts":
            figures = "".join(f"<figure>{c}</figure>" for c in charts(block[1], review))
            body.append(f'<div class="charts">{figures}</div>')
    title = html.escape(f"SLO review: {one_line(review.service, 120)}")
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{PAGE_CSP}">\n'
        f"<title>{title}</title><style>{_CSS}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


# ---- charts ------------------------------------------------------------------------------------

CW, CH = 900, 210  # chart size
X0, X1, Y0, Y1 = 64, CW - 16, CH - 26, 38  # plot area: left, right, bottom, top
BLUE, ORANGE, RED, GREY, DARK = "#3b6ea5", "#e07b24", "#b00020", "#9a9a9a", "#444"
SHADE = "#f4b6b6"
MARKER_COLOUR = {"deploy": "#1b7f3b", "drift": "#7b3fa0"}


def downsample(n: int, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(first step, last step)`` of each bucket of ``k`` steps (default: as few as keep at most
    ``MAX_DRAWN`` buckets) over ``n`` steps."""
    k = k or max(1, math.ceil(n / MAX_DRAWN))
    first = np.arange(0, n, k)
    return first, np.minimum(first + k - 1, n - 1)


def _bucket_max(a: np.ndarray, first: np.ndarray) -> np.ndarray:
    return np.fmax.reduceat(a, first) if len(a) else a  # NaN only where the whole bucket is NaN


class _Frame:
    """The time axis of one SLO's charts, with the markers."""

    def __init__(self, review: Review, t0: float, t1: float):
        self.review, self.t0, self.t1 = review, t0, t1

    def x(self, t: float) -> float:
        return X0 + (t - self.t0) / ((self.t1 - self.t0) or 1.0) * (X1 - X0)

    def axis(self) -> str:
        parts = [line(X0, Y0, X1, Y0, DARK), line(X0, Y0, X0, Y1, DARK)]
        span = self.t1 - self.t0
        every = next((s for s in _TICKS if span / s <= 8), _TICKS[-1])
        first = math.ceil(self.t0 / every) * every
        fmt = "%m-%d" if every >= 86400 else "%m-%d %H:%M"
        for t in np.arange(first, self.t1 + 1e-6, every):
            x = self.x(float(t))
            parts.append(line(x, Y0, x, Y0 + 4, DARK))
            label = datetime.fromtimestamp(float(t), timezone.utc).strftime(fmt)
            parts.append(text(x, CH - 8, label, 10, "middle"))
        end = self.x(self.review.end)
        if end < X1 - 1:  # the window's end, where a projection starts
            parts.append(line(end, Y1, end, Y0, GREY, 1, 'stroke-dasharray="1 2"'))
        return "".join(parts)

    def markers(self) -> str:
        parts = []
        for i, m in enumerate(self.review.markers):
            x = self.x(m.t)
            colour = MARKER_COLOUR.get(m.kind, DARK)
            cls = f"marker {m.kind}" if m.kind in MARKER_COLOUR else "marker"
            parts.append(line(x, Y1, x, Y0, colour, 1, f'stroke-dasharray="3 2" class="{cls}"'))
            parts.append(text(x + 2, Y1 + 9 + (i % 3) * 10, one_line(m.label, 24), 9, "", f'fill="{colour}"'))
        return "".join(parts)

    def chart(self, body: str, title: str, keys: Sequence[tuple[str, str]]) -> str:
        head = text(X0, 14, title, 12, "", 'font-weight="bold"')
        spacing = max(len(k) for k, _ in keys) * 6 + 28
        return svg(self.axis() + body + self.markers() + head + legend(keys, X0, 20, spacing), title, CW, CH)


_TICKS = [3600 * h for h in (1, 2, 3, 6, 12)] + [86400 * d for d in (1, 2, 7, 14, 28, 56, 91, 182, 364)]


def _y(v: np.ndarray | float, lo: float, hi: float) -> np.ndarray | float:
    return Y0 - (np.asarray(v, dtype=float) - lo) / ((hi - lo) or 1.0) * (Y0 - Y1)


def _burn_down(s: SLOReview, review: Review) -> str:
    first, last = downsample(len(s.remaining))
    ends = s.grid.ends()[s.grid.lead :]
    ts, ys = ends[last], s.remaining[last]
    gone = s.exhaustion_s if s.exhaustion_s and s.exhaustion_s > 0 else None
    window = review.end - review.start
    reach = min(gone, window / 4) if gone else 0.0
    f = _Frame(review, review.start, review.end + reach)
    finite = ys[np.isfinite(ys)]
    lowest = float(finite.min()) if len(finite) else 0.0
    lo, hi = min(0.0, lowest), max(1.0, float(finite.max()) if len(finite) else 1.0)
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    body = [
        line(X0, _y(0.0, lo, hi), X1, _y(0.0, lo, hi), GREY),
        text(X0 - 4, _y(0.0, lo, hi) + 3, "0%", 10, "end"),
        text(X0 - 4, _y(1.0, lo, hi) + 3, "100%", 10, "end"),
    ]
    if lowest < -0.15:  # far enough below 0 for a label of its own
        body.append(text(X0 - 4, _y(lowest, lo, hi) + 3, _pct(lowest, 0), 10, "end"))
    body.append(polylines([f.x(t) for t in ts], _y(ys, lo, hi), BLUE, 1.8))
    keys = [("budget left", BLUE)]
    last_left = s.remaining[-1] if len(s.remaining) else float("nan")
    if gone and math.isfinite(last_left):
        to_t = review.end + reach
        to_v = last_left * (1.0 - reach / gone)
        body.append(
            line(
                f.x(review.end), _y(last_left, lo, hi), f.x(to_t), _y(to_v, lo, hi), RED, 1.5, 'stroke-dasharray="5 3"'
            )
        )
        body.append(text(f.x(to_t) - 2, _y(to_v, lo, hi) - 4, f"gone in {span_text(gone)}", 10, "end", f'fill="{RED}"'))
        keys.append((f"projection at the last day's {_rate(s.recent_burn)}x", RED))
    return f.chart("".join(body), f"{s.slo.name}: error budget left over the window", keys)


def _sli(s: SLOReview, review: Review) -> str:
    first, last = downsample(len(s.total))
    ends = s.grid.ends()[s.grid.lead :]
    bad = np.clip(s.total - s.good, 0.0, None)
    total_b, bad_b = np.add.reduceat(s.total, first), np.add.reduceat(bad, first)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total_b > 0, bad_b / total_b, np.nan)
    per_step = total_b / (last - first + 1)  # a short last bucket drawn as the others
    f = _Frame(review, review.start, review.end)
    xs = [f.x(t) for t in ends[last]]
    allowed = s.slo.error_budget
    finite = ratio[np.isfinite(ratio)]
    top = max(2 * allowed, float(finite.max()) if len(finite) else 0.0) * 1.05
    most = float(per_step.max()) if len(per_step) else 0.0
    step = format_duration(s.grid.step_s)
    body = [
        polylines(xs, _y(per_step, 0.0, (most or 1.0) * 1.25), GREY, 1.2),
        text(X1, Y1 - 3, f"events per {step}: up to {_count(round(most, 1))}", 10, "end", f'fill="{GREY}"'),
        line(X0, _y(allowed, 0.0, top), X1, _y(allowed, 0.0, top), DARK, 1, 'stroke-dasharray="5 3"'),
        text(X0 - 4, Y1 + 3, _pct(top, 2), 10, "end"),
        text(X0 - 4, Y0 + 3, "0%", 10, "end"),
        polylines(xs, _y(ratio, 0.0, top), RED, 1.5),
    ]
    keys = [("error ratio", RED), (f"allowed ({_pct(allowed, 2)})", DARK), (f"events per {step} (mean)", GREY)]
    return f.chart("".join(body), f"{s.slo.name}: error ratio and events per {step}", keys)


def _log(v: np.ndarray | float) -> np.ndarray | float:
    return np.log10(1.0 + np.asarray(v, dtype=float))


def _alert(s: SLOReview, a: AlertReview, review: Review) -> str:
    first, last = downsample(len(a.long_burn))
    ends = s.grid.ends()[s.grid.lead :]
    f = _Frame(review, review.start, review.end)
    xs = [f.x(t) for t in ends[last]]
    long_b, short_b = _bucket_max(a.long_burn, first), _bucket_max(a.short_burn, first)
    w = a.window
    both = np.concatenate([long_b, short_b])
    peak = float(np.nanmax(both)) if np.isfinite(both).any() else 0.0
    top = float(_log(max(peak, float(w.burn_rate), 1.0) * 1.15))
    body = []

    def shade(e: Episode, y: float, h: float, colour: str, extra: str) -> None:
        x1 = f.x(e.start)
        x2 = f.x(e.end if e.end is not None else review.end)
        body.append(rect(x1, y, max(x2 - x1, 1.0), h, colour, extra))

    for e in a.episodes:
        shade(e, Y1, Y0 - Y1, SHADE, 'fill-opacity="0.55" class="episode"')
    for e in a.fired or ():
        shade(e, Y1 - 4, 4, ORANGE, 'class="fired"')
    tick = 1.0
    while tick <= 10**top:
        y = _y(_log(tick), 0.0, top)
        body += [line(X0 - 3, y, X0, y, DARK), text(X0 - 5, y + 3, f"{tick:g}x", 10, "end")]
        tick *= 10
    body.append(text(X0 - 5, Y0 + 3, "0", 10, "end"))
    fy = _y(_log(w.burn_rate), 0.0, top)
    body.append(line(X0, fy, X1, fy, DARK, 1, 'stroke-dasharray="5 3"'))
    body.append(text(X1, fy - 3, f"factor {_factor(w.burn_rate)}", 10, "end"))
    body.append(polylines(xs, _y(_log(short_b), 0.0, top), ORANGE, 1, 'stroke-opacity="0.8"'))
    body.append(polylines(xs, _y(_log(long_b), 0.0, top), BLUE, 1.6))
    keys = [(f"long window {w.long}", BLUE), (f"short window {w.short}", ORANGE), ("episodes (shaded)", SHADE)]
    if a.fired is not None:
        keys.append(("fired (Prometheus)", ORANGE))
    title = f"{s.slo.name}: {w.severity} alert, burn rate over {w.long} and {w.short} against {_factor(w.burn_rate)} (log scale)"
    return f.chart("".join(body), title, keys)


def charts(s: SLOReview, review: Review) -> list[str]:
    """One SLO's charts: the burn-down, the SLI, and one per alert."""
    return [_burn_down(s, review), _sli(s, review), *(_alert(s, a, review) for a in s.alerts)]


# ---- files -------------------------------------------------------------------------------------


def write_review(review: Review, out_dir: Path) -> dict[str, Path]:
    """Write ``review.json``, ``review.md`` and ``review.html`` into ``out_dir``; their paths by
    ``json``, ``md`` and ``html``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / REVIEW_JSON, "md": out / REVIEW_MD, "html": out / REVIEW_HTML}
    paths["json"].write_text(review.to_json(), encoding="utf-8")
    paths["md"].write_text(render_markdown(review), encoding="utf-8")
    paths["html"].write_text(render_html(review), encoding="utf-8")
    return paths
