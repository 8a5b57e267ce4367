"""Renderings of a drift report: ``drift.json`` (the record), a self-contained HTML page with inline
SVG plots, and a markdown summary. Both renderings read only the record; nothing is computed here."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from harness.report.svg import PAGE_CSP, legend, svg

__all__ = ["write_report", "render_html", "render_markdown", "DRIFT_JSON", "DRIFT_HTML", "DRIFT_MD"]

DRIFT_JSON, DRIFT_HTML, DRIFT_MD = "drift.json", "drift.html", "drift.md"
REF_COLOUR, CUR_COLOUR = "#3b6ea5", "#e07b24"
_TITLES = {
    "confidence": "Confidence",
    "caption_length": "Caption length (words)",
    "embedding": "Embeddings on the reference's two principal axes",
    "caption_tokens": "Tokens with the largest change in share",
}


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v == 0:
            return "0"
        return f"{v:.{digits}g}" if abs(v) < 1e-3 or abs(v) >= 1e5 else f"{v:.{digits}f}".rstrip("0").rstrip(".")
    return str(v)


def _decision(r: dict) -> str:
    if r.get("p_value") is not None:
        return f"p = {_fmt(r['p_value'])} (alpha {_fmt(r['alpha'])})"
    return f"threshold {_fmt(r.get('threshold'))}"


def _count(side: dict) -> str:
    n, used = side["n_records"], side.get("n_sampled")
    return f"{n} records" if used is None else f"a seeded sample of {used} of {n} records"


def _headline(d: dict) -> str:
    if d["drift"]:
        return f"DRIFT FOUND by {len(d['drifted'])} of {len(d['results'])} detectors: {', '.join(d['drifted'])}"
    return f"no drift found by {len(d['results'])} detectors"


# -- markdown --------------------------------------------------------------------------------
def render_markdown(d: dict) -> str:
    """A markdown summary of a drift record (``DriftReport.to_dict()``)."""
    from harness.report.markdown import code_span

    lines = [
        f"# Drift: {_headline(d)}",
        "",
        f"Reference: {code_span(d['reference']['source'], 300)} ({_count(d['reference'])}); "
        f"current: {code_span(d['current']['source'], 300)} ({_count(d['current'])}). "
        f"Family-wise false-alarm rate {_fmt(d['alpha'])}, {d['correction']}: each detector at {_fmt(d['alpha_per_detector'])}.",
        "",
        "| detector | method | statistic | decision | smallest detectable | n (ref / cur) | drift |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in d["results"]:
        lines.append(
            f"| {r['detector']} | {r['method']} | {r['statistic_name']} = {_fmt(r['statistic'])} | {_decision(r)} | "
            f"{_fmt(r['min_detectable'])} | {r['n_reference_used']} / {r['n_current_used']} | "
            f"{'**DRIFT**' if r['drift'] else 'no'} |"
        )
    notes = [f"- {r['detector']}: {r['note']}" for r in d["results"] if r.get("note")]
    if notes:
        lines += ["", "Subsampling:", *notes]
    if d.get("skipped"):
        lines += ["", "Not run:", *[f"- {s}" for s in d["skipped"]]]
    q = d.get("quality")
    if q:
        lines += [
            "",
            f"Label-free quality estimate ({q['method']}): reference {_fmt(q['reference']['estimate'])}, "
            f"current {_fmt(q['current']['estimate'])}, change {_fmt(q['change'])} "
            f"(held-out error {_fmt(q['held_out_error'])}).",
        ]
    lines += _label_free_markdown(d.get("label_free"))
    return "\n".join(lines) + "\n"


# -- label-free quality ----------------------------------------------------------------------
_WINDOW_COLUMNS = (
    "window",
    "records",
    "scored",
    "mean CLIPScore [95% CI]",
    "checked",
    "hallucination rate [95% CI]",
    "mean confidence",
    "quality estimate",
)
_TREND_COLUMNS = (
    "window",
    "from (UTC)",
    "scored",
    "mean CLIPScore",
    "checked",
    "hallucination rate",
    "mean confidence",
    "quality estimate",
)


def _ci(v: Any, ci: Any, pct: bool = False) -> str:
    if v is None:
        return "–"
    f = (lambda x: f"{x * 100:.2f}%") if pct else (lambda x: _fmt(float(x)))  # noqa: E731
    return f(v) + (f" [{f(ci[0])}, {f(ci[1])}]" if ci else "")


def _window_count(w: dict) -> str:
    sampled = w.get("n_sampled")
    return f"{w['n_records']}" + (f" ({sampled} sampled)" if sampled else "")


def _window_row(name: str, w: dict) -> list[str]:
    return [
        name,
        _window_count(w),
        str(w["n_scored"]),
        _ci(w["clip_score"], w["clip_score_ci"]),
        str(w["n_checked"]),
        _ci(w["hallucination_rate"], w["hallucination_rate_ci"], pct=True),
        _fmt(w["mean_confidence"]),
        _fmt(w["quality_estimate"]),
    ]


def _change(c: dict | None, pct: bool = False) -> str:
    if not c:
        return "–"
    f = (lambda x: f"{x * 100:+.2f} points") if pct else (lambda x: f"{x:+.4g}")  # noqa: E731
    size = f(c["min_detectable"]).lstrip("+")
    mark = "**" if c["significant"] else ""
    return f"{mark}{f(c['effect'])}{mark} ({c['test']} p={_fmt(c['p_value'])}; detects ±{size})"


def _change_row(lf: dict) -> list[str] | None:
    ch = lf.get("change") or {}
    if not ch:
        return None
    return ["change", "", "", _change(ch.get("clip_score")), "", _change(ch.get("hallucination_rate"), True), "", ""]


def _trend_rows(lf: dict) -> list[list[str]]:
    import time as _time

    return [
        [
            b["window"],
            _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(b["start_unix"])),
            str(b["n_scored"]),
            _fmt(b["clip_score"]),
            str(b["n_checked"]),
            "–" if b["hallucination_rate"] is None else f"{b['hallucination_rate'] * 100:.2f}%",
            _fmt(b["mean_confidence"]),
            _fmt(b["quality_estimate"]),
        ]
        for b in (lf.get("trend") or {}).get("bins") or []
    ]


def _step(lf: dict) -> str:
    from harness.duration import format_duration

    return format_duration(float(lf["trend"]["step_s"]))


def _label_free_notes(lf: dict) -> list[str]:
    """What the section rests on and what it lacks, one sentence each (plain text)."""
    notes = []
    clip, store = lf.get("clip"), lf.get("store")
    if clip:
        notes.append(f"CLIPScore encoder: {clip.get('version')} (2.5 x max(cos(image, caption), 0)).")
    if store:
        notes.append(
            f"Images: {store.get('folder')} ({store.get('kind')}); objects: {store.get('objects') or 'unknown'}."
        )
    for key in ("clip_reason", "hallucination_reason", "not_comparable"):
        if lf.get(key):
            notes.append(f"{lf[key]}.")
    return notes


def _label_free_intro(lf: dict) -> str:
    return (
        f"Each answered caption against the image its record names: CLIPScore (reference-free) and whether it "
        f"names an object the image does not hold (CHAIR_s); beside them the mean confidence and the "
        f"confidence-based estimate. Changes tested at alpha {_fmt(lf['alpha'])}; 'detects' is the smallest "
        f"change the two windows show with {lf['power']:.0%} power. None of it changes the drift verdict."
    )


def _label_free_markdown(lf: dict | None) -> list[str]:
    from harness.report.markdown import inline_text

    if lf is None:
        return []
    lines = ["", "## Label-free quality", ""]
    if lf.get("reason"):
        return lines + [f"No data: {inline_text(lf['reason'], 500)}."]
    lines += [_label_free_intro(lf), ""]
    lines += [f"- {inline_text(n, 500)}" for n in _label_free_notes(lf)]
    rows = [_window_row(name, w) for name, w in lf["windows"].items()]
    if (change := _change_row(lf)) is not None:
        rows.append(change)
    lines += ["", "| " + " | ".join(_WINDOW_COLUMNS) + " |", "|" + " --- |" * len(_WINDOW_COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    trend = _trend_rows(lf)
    if trend:
        lines += ["", f"Trend, bins of {_step(lf)} (UTC):", ""]
        lines += ["| " + " | ".join(_TREND_COLUMNS) + " |", "|" + " --- |" * len(_TREND_COLUMNS)]
        lines += ["| " + " | ".join(r) + " |" for r in trend]
    return lines


# -- SVG ---------------------------------------------------------------------------------------
W, H, PAD = 440, 224, 36
TOP = 40  # room for the title and, under it, the legend


def _svg(body: str, title: str) -> str:
    return svg(body, title, W, H)


def _legend() -> str:
    return legend((("reference", REF_COLOUR), ("current", CUR_COLOUR)), W - 150, 20, 75)


def _histogram_svg(p: dict, title: str) -> str:
    edges, ref, cur = p["edges"], p["reference"], p["current"]
    top = max(max(ref, default=0), max(cur, default=0)) or 1.0
    x0, x1, y0, y1 = PAD, W - 10, H - 24, TOP
    span = (edges[-1] - edges[0]) or 1.0
    sx = lambda v: x0 + (v - edges[0]) / span * (x1 - x0)  # noqa: E731
    sy = lambda v: y0 - v / top * (y0 - y1)  # noqa: E731
    parts = []
    for i in range(len(ref)):
        a, b = sx(edges[i]), sx(edges[i + 1])
        half = (b - a) / 2
        for j, (vals, colour) in enumerate(((ref, REF_COLOUR), (cur, CUR_COLOUR))):
            h = y0 - sy(vals[i])
            if h > 0:
                parts.append(
                    f'<rect x="{a + j * half:.1f}" y="{sy(vals[i]):.1f}" width="{max(half - 0.3, 0.3):.1f}" '
                    f'height="{h:.1f}" fill="{colour}"/>'
                )
    axes = (
        f'<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#444"/>'
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#444"/>'
        f'<text x="{x0}" y="{H - 8}" font-size="10">{_fmt(edges[0], 3)}</text>'
        f'<text x="{x1}" y="{H - 8}" font-size="10" text-anchor="end">{_fmt(edges[-1], 3)}</text>'
        f'<text x="{x0 - 4}" y="{y1 + 4}" font-size="10" text-anchor="end">{_fmt(top, 2)}</text>'
        f'<text x="{x0}" y="15" font-size="12" font-weight="bold">{html.escape(title)}</text>'
    )
    return _svg(axes + "".join(parts) + _legend(), title)


def _scatter_svg(p: dict, title: str) -> str:
    pts = p["reference"] + p["current"]
    if not pts:
        return ""
    xs, ys = [q[0] for q in pts], [q[1] for q in pts]
    lo_x, hi_x, lo_y, hi_y = min(xs), max(xs), min(ys), max(ys)
    x0, x1, y0, y1 = PAD, W - 10, H - 24, TOP
    sx = lambda v: x0 + (v - lo_x) / ((hi_x - lo_x) or 1) * (x1 - x0)  # noqa: E731
    sy = lambda v: y0 - (v - lo_y) / ((hi_y - lo_y) or 1) * (y0 - y1)  # noqa: E731
    dots = []
    for key, colour in (("reference", REF_COLOUR), ("current", CUR_COLOUR)):
        dots += [
            f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="1.6" fill="{colour}" fill-opacity="0.55"/>'
            for a, b in p[key]
        ]
    axes = (
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#444"/>'
        f'<text x="{x0}" y="{H - 8}" font-size="10">{html.escape(p["axes"][0])}</text>'
        f'<text x="12" y="{y0}" font-size="10" transform="rotate(-90 12 {y0})">{html.escape(p["axes"][1])}</text>'
        f'<text x="{x0}" y="15" font-size="12" font-weight="bold">{html.escape(title)}</text>'
    )
    return _svg(axes + "".join(dots) + _legend(), title)


def _bars_svg(p: dict, title: str) -> str:
    labels = p["labels"]
    if not labels:
        return ""
    top = max(p["reference"] + p["current"]) or 1.0
    x0, x1, y = 110, W - 10, TOP
    row = (H - TOP - 8) / len(labels)
    parts = [f'<text x="4" y="15" font-size="12" font-weight="bold">{html.escape(title)}</text>']
    for i, lab in enumerate(labels):
        yy = y + i * row
        parts.append(
            f'<text x="{x0 - 4}" y="{yy + row * 0.7:.1f}" font-size="10" text-anchor="end">{html.escape(lab)}</text>'
        )
        for j, (key, colour) in enumerate((("reference", REF_COLOUR), ("current", CUR_COLOUR))):
            w = p[key][i] / top * (x1 - x0)
            parts.append(
                f'<rect x="{x0}" y="{yy + j * row * 0.45:.1f}" width="{w:.1f}" height="{row * 0.42:.1f}" fill="{colour}"/>'
            )
    return _svg("".join(parts) + _legend(), title)


def _plot(key: str, p: dict) -> str:
    title = _TITLES.get(key, key.replace("image_", "image ").replace("_", " "))
    if p["type"] == "histogram":
        return _histogram_svg(p, title)
    if p["type"] == "scatter":
        return _scatter_svg(p, title)
    if p["type"] == "bars":
        return _bars_svg(p, title)
    return ""


def _trend_svg(lf: dict, key: str, title: str, scale: float = 1.0) -> str:
    """One label-free figure per trend bin, a line per window, on a shared time axis."""
    from harness.report.svg import polylines

    bins = [b for b in (lf.get("trend") or {}).get("bins") or [] if b.get(key) is not None]
    if not bins:
        return ""
    ts = [b["start_unix"] for b in bins]
    vs = [b[key] * scale for b in bins]
    t0, t1 = min(ts), max(ts)
    lo, hi = min(vs), max(vs)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5 * (abs(lo) or 1.0) * 0.1, hi + 0.5 * (abs(hi) or 1.0) * 0.1
    x0, x1, y0, y1 = PAD + 8, W - 10, H - 24, TOP
    sx = lambda v: x0 + (v - t0) / ((t1 - t0) or 1.0) * (x1 - x0)  # noqa: E731
    sy = lambda v: y0 - (v - lo) / (hi - lo) * (y0 - y1)  # noqa: E731
    parts = []
    for name, colour in (("reference", REF_COLOUR), ("current", CUR_COLOUR)):
        mine = [b for b in bins if b["window"] == name]
        if mine:
            parts.append(polylines([sx(b["start_unix"]) for b in mine], [sy(b[key] * scale) for b in mine], colour))
            parts += [
                f'<circle cx="{sx(b["start_unix"]):.1f}" cy="{sy(b[key] * scale):.1f}" r="2.5" fill="{colour}"/>'
                for b in mine
            ]
    import time as _time

    day = lambda t: _time.strftime("%Y-%m-%d %H:%M", _time.gmtime(t))  # noqa: E731
    axes = (
        f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" fill="none" stroke="#444"/>'
        f'<text x="{x0}" y="{H - 8}" font-size="10">{html.escape(day(t0))}</text>'
        f'<text x="{x1}" y="{H - 8}" font-size="10" text-anchor="end">{html.escape(day(t1))}</text>'
        f'<text x="{x0 - 4}" y="{y1 + 4}" font-size="10" text-anchor="end">{_fmt(hi, 3)}</text>'
        f'<text x="{x0 - 4}" y="{y0}" font-size="10" text-anchor="end">{_fmt(lo, 3)}</text>'
        f'<text x="{x0}" y="15" font-size="12" font-weight="bold">{html.escape(title)}</text>'
    )
    return _svg(axes + "".join(parts) + _legend(), title)


def _label_free_html(lf: dict | None) -> str:
    e = html.escape
    if lf is None:
        return ""
    head = "<h2>Label-free quality</h2>"
    if lf.get("reason"):
        return f"{head}<p>No data: {e(lf['reason'])}.</p>"
    notes = "".join(f"<li>{e(n)}</li>" for n in _label_free_notes(lf))
    cells = lambda r: "".join(f"<td>{e(c)}</td>" for c in r)  # noqa: E731
    rows = [_window_row(name, w) for name, w in lf["windows"].items()]
    if (change := _change_row(lf)) is not None:
        rows.append([c.replace("**", "") for c in change])
    table = (
        "<table><tr>"
        + "".join(f"<th>{e(c)}</th>" for c in _WINDOW_COLUMNS)
        + "</tr>"
        + "".join(f"<tr>{cells(r)}</tr>" for r in rows)
        + "</table>"
    )
    trend = _trend_rows(lf)
    trend_table = ""
    if trend:
        trend_table = (
            f"<p>Trend, bins of {e(_step(lf))} (UTC):</p><table><tr>"
            + "".join(f"<th>{e(c)}</th>" for c in _TREND_COLUMNS)
            + "</tr>"
            + "".join(f"<tr>{cells(r)}</tr>" for r in trend)
            + "</table>"
        )
    charts = "".join(
        f"<figure>{svg_}</figure>"
        for svg_ in (
            _trend_svg(lf, "clip_score", "Mean CLIPScore per bin"),
            _trend_svg(lf, "hallucination_rate", "Hallucination rate per bin (%)", 100.0),
            _trend_svg(lf, "mean_confidence", "Mean confidence per bin"),
        )
        if svg_
    )
    return (
        f"{head}<p>{e(_label_free_intro(lf))}</p>"
        + (f"<ul>{notes}</ul>" if notes else "")
        + table
        + trend_table
        + (f'<div class="plots">{charts}</div>' if charts else "")
    )


# -- HTML --------------------------------------------------------------------------------------
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
.drift{color:#b00020;font-weight:bold}.ok{color:#1b7f3b}.plots{display:flex;flex-wrap:wrap;gap:12px}
.plots figure{margin:0;border:1px solid #ddd;padding:4px}h1.drift,h1.ok{font-size:22px}"""


# The page needs nothing but its inline style: no script runs and nothing loads, even if a caption
# token ever slipped past the escaping.
CSP = PAGE_CSP


def render_html(d: dict) -> str:
    """A self-contained HTML page (inline CSS and SVG, no external resources, a CSP that allows
    nothing else) for a drift record; every text in it is escaped."""
    e = html.escape
    cls = "drift" if d["drift"] else "ok"
    rows = "".join(
        f"<tr><td>{e(r['detector'])}</td><td>{e(r['method'])}</td><td>{e(r['statistic_name'])} = {e(_fmt(r['statistic']))}</td>"
        f"<td>{e(_decision(r))}</td><td>{e(_fmt(r['min_detectable']))}</td>"
        f"<td>{e(str(r['n_reference_used']))} / {e(str(r['n_current_used']))}</td>"
        f'<td class="{"drift" if r["drift"] else "ok"}">{"DRIFT" if r["drift"] else "no drift"}</td>'
        f"<td>{e(r.get('note') or '')}</td></tr>"
        for r in d["results"]
    )
    plots = "".join(f"<figure>{_plot(k, p)}</figure>" for k, p in d.get("distributions", {}).items())
    skipped = "".join(f"<li>{e(s)}</li>" for s in d.get("skipped", []))
    q = d.get("quality")
    quality = _label_free_html(d.get("label_free"))
    if q:
        quality = (
            f"<h2>Label-free quality estimate</h2><p>{e(q['method'])}: reference {_fmt(q['reference']['estimate'])}, "
            f"current {_fmt(q['current']['estimate'])}, change {_fmt(q['change'])} (held-out error {_fmt(q['held_out_error'])}).</p>"
        ) + quality
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>Drift report</title><style>{_CSS}</style></head>
<body>
<h1 class="{cls}">Drift: {e(_headline(d))}</h1>
<p>Reference <code>{e(str(d["reference"]["source"]))}</code> ({_count(d["reference"])}) vs current
<code>{e(str(d["current"]["source"]))}</code> ({_count(d["current"])}). Family-wise false-alarm rate
{_fmt(d["alpha"])} ({e(d["correction"])}: each detector at {_fmt(d["alpha_per_detector"])}); took {_fmt(d["seconds"], 3)} s.</p>
<table><tr><th>detector</th><th>method</th><th>statistic</th><th>decision</th><th>smallest detectable</th><th>n used (ref / cur)</th><th>verdict</th><th>note</th></tr>
{rows}</table>
{f"<h2>Not run</h2><ul>{skipped}</ul>" if skipped else ""}
{quality}
<h2>Distributions</h2><div class="plots">{plots}</div>
</body></html>
"""


def write_report(record: dict, out_dir: str | Path) -> dict[str, Path]:
    """Write drift.json, drift.html and drift.md for ``record`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / DRIFT_JSON, "html": out / DRIFT_HTML, "markdown": out / DRIFT_MD}
    paths["json"].write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    paths["html"].write_text(render_html(record))
    paths["markdown"].write_text(render_markdown(record))
    return paths
