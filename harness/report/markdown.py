"""The decision record as markdown, ready to paste into a pull request.

Whatever a target or a person supplied (captions, model names and versions, URLs, error
messages, reasons that quote them, finding examples) is made inert for GitHub-flavoured markdown
before it is written: ``inline_text`` escapes it as plain text, ``code_span`` shows it verbatim in a
code span no backtick can close early. Both flatten newlines, drop control characters and clip."""

from __future__ import annotations

import re
from typing import Any, Mapping

from harness.text import one_line
from harness.verdicts import SHARE_OF_IMAGES

__all__ = ["render_markdown", "inline_text", "code_span"]

_ICON = {"PROMOTE": "✅", "HOLD": "⏸️", "ROLLBACK": "⛔"}
_CLASS = {"Pass": "pass", "High": "**HIGH**", "Low": "**LOW**", "NoData": "no data", "Info": "info"}
FINDING_EXAMPLES = 3

# ASCII punctuation that can start markup in GitHub's markdown or in Streamlit's (``$`` maths,
# ``:red[...]`` directives); ``<``, ``>`` and ``&`` become entities. ``@``, ``://`` and ``www.`` are
# escaped so that no e-mail address or URL is turned into a link, and ``_`` unless it stands
# between two letters or digits (where it cannot start emphasis: ``error_rate`` stays readable).
_ESCAPE = {ord(c): "\\" + c for c in "\\`*[]()!|~@$"} | {ord("<"): "&lt;", ord(">"): "&gt;", ord("&"): "&amp;"}
_LEADING = re.compile(r"^([-+#=])|^(\d+)([.)])")
_CONTEXTUAL = re.compile(r"(?i)\b(www)\.|:(?=//)|(?<![^\W_])_|_(?![^\W_])")


def inline_text(value: Any, limit: int = 300) -> str:
    """``value`` as inert inline markdown text (also safe in a table cell): no HTML, link, image,
    emphasis, code span, autolink or list marker can come out of it."""
    if value is None:
        return "–"
    s = one_line(value, limit).translate(_ESCAPE)
    s = _CONTEXTUAL.sub(lambda m: m.group(1) + "\\." if m.group(1) else "\\" + m.group(0), s)
    return _LEADING.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(2) + "\\" + m.group(3), s)


def code_span(value: Any, limit: int = 120, cell: bool = False) -> str:
    """``value`` verbatim in a code span whose fence is longer than any run of backticks in it;
    ``cell``: escape pipes for a table cell (GitHub and markdown-it unescape them there)."""
    if value is None:
        return "–"
    s = one_line(value, limit)
    if not s:
        return "–"
    if cell:
        s = s.replace("|", "\\|")
    fence = "`" * (max((len(r) for r in re.findall("`+", s)), default=0) + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def _num(v: Any, unit: str = "") -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if unit == "s":
            return f"{v * 1000:.1f} ms"
        if abs(v) < 1 and v != 0 and unit == "":
            return f"{v:.4g}"
        return f"{v:.4g}{(' ' + unit) if unit else ''}"
    return f"{v}{(' ' + unit) if unit else ''}"


def _plain(v: Any) -> str:
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={x:g}" if isinstance(x, float) else f"{k}={x}" for k, x in v.items() if x is not None)
    return str(v)


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<1e-300" if p == 0 else f"{p:.3g}"


def _scaled(v: float, unit: str, signed: bool = True) -> str:
    scale = 1000 if unit == "s" else 100 if unit == SHARE_OF_IMAGES else 1
    return f"{v * scale:+.3g}" if signed else f"{v * scale:.3g}"


def _unit(unit: str) -> str:
    u = "ms" if unit == "s" else "% of images" if unit == SHARE_OF_IMAGES else unit
    return f" {inline_text(u)}" if u else ""


def _effect(m: Mapping[str, Any]) -> str:
    e = m.get("effect")
    if e is None:
        return "–"
    unit = m.get("effect_unit") or m.get("unit", "")
    lo, hi = m.get("effect_low"), m.get("effect_high")
    txt = _scaled(e, unit)
    if lo is not None and hi is not None:
        txt += f" [{_scaled(lo, unit)}, {_scaled(hi, unit)}]"
    return txt + _unit(unit)


def _size(v: float | None, unit: str) -> str:
    return "–" if v is None else _scaled(v, unit, signed=False) + _unit(unit)


def _power(rec: Mapping[str, Any]) -> list[str]:
    power = rec.get("power") or []
    if not power:
        return []
    units = {m.get("name"): m.get("effect_unit") or m.get("unit", "") for m in rec.get("metrics", [])}
    key = [p for p in power if p.get("must_detect") is not None]
    rows = key + [p for p in power if p.get("must_detect") is None]
    lines = [
        "",
        "### What this run could detect",
        "",
        "| metric | could detect (80% power) | smallest effect | must detect | adequate |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in rows:
        unit = units.get(p.get("metric"), "")
        adequate = {True: "yes", False: "**no**"}.get(p.get("adequate"), "–")
        lines.append(
            f"| {inline_text(p.get('metric'))} | {inline_text(p.get('detectable'))} | "
            f"{_size(p.get('mde'), unit)} | {_size(p.get('must_detect'), unit)} | {adequate} |"
        )
    return lines


def _findings(rec: Mapping[str, Any]) -> list[str]:
    found = rec.get("findings") or []
    if not found:
        return []
    lines = ["", "### Findings", "", "Answers the harness's output checks flagged, with a few examples:", ""]
    for f in found:
        lines.append(
            f"- **{inline_text(f.get('target'))} · {inline_text(f.get('check'))}**: "
            f"{f.get('count', 0)} of {f.get('answers', 0)} answers"
        )
        for ex in (f.get("examples") or [])[:FINDING_EXAMPLES]:
            match = f" (matched {code_span(ex.get('match'))})" if ex.get("match") else ""
            lines.append(f"  - image {code_span(ex.get('image_id'))}: {code_span(ex.get('caption'), 200)}{match}")
    return lines


_PIPELINE_ROWS = (
    ("lag_p50_s", "P50 pipeline lag", "s"),
    ("lag_p95_s", "P95 pipeline lag", "s"),
    ("lag_p99_s", "P99 pipeline lag", "s"),
    ("drain_s", "drain time", "s whole"),
    ("missing_captions", "missing captions", ""),
)


def _pipeline(rec: Mapping[str, Any]) -> list[str]:
    """An asynchronous load's pipeline figures, baseline beside canary (none for a synchronous run)."""
    figs = rec.get("figures") or {}
    b, c = figs.get("baseline") or {}, figs.get("canary") or {}
    rows = [(key, label, unit) for key, label, unit in _PIPELINE_ROWS if key in b or key in c]
    if not rows:
        return []
    lines = ["", "### Pipeline (asynchronous jobs)", "", "| figure | baseline | canary |", "| --- | --- | --- |"]
    for key, label, unit in rows:
        bv, cv = b.get(key), c.get(key)
        shown = [_num(v, unit) if unit != "s whole" or v is None else f"{v:.1f} s" for v in (_number(bv), _number(cv))]
        lines.append(f"| {label} | {shown[0]} | {shown[1]} |")
    return lines


def _number(v: Any) -> Any:
    """A figure as a number, or None (the record is read, not trusted: anything else is not shown)."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def render_markdown(rec: Mapping[str, Any]) -> str:
    """Render ``decision.json``; every figure comes from the record, every text from a target or a
    person is escaped."""
    v = rec["verdict"]
    score = rec.get("score")
    inputs = rec.get("inputs", {})
    lines = [
        f"## Canary decision: {_ICON.get(v, '')} {inline_text(v)}"
        + (f" (score {score:g})" if score is not None else ""),
        "",
    ]
    targets = inputs.get("targets", {})
    if targets:
        lines.append("| | baseline | canary |")
        lines.append("| --- | --- | --- |")
        b, c = targets.get("baseline") or {}, targets.get("canary") or {}
        named = b.get("model") is not None or c.get("model") is not None
        spoken = {b.get("protocol"), c.get("protocol")} - {None, "v1"}  # shown when not both contract v1
        keys = ("url",) + (("protocol",) if spoken else ()) + (("model",) if named else ()) + ("model_version",)
        for key in keys:
            lines.append(
                f"| {key.replace('_', ' ')} | {code_span(b.get(key), cell=True)} | {code_span(c.get(key), cell=True)} |"
            )
        lines.append("")
    what = [
        f"{k}: {code_span(_plain(inputs[k]), 200)}"
        for k in ("scenario", "load", "dataset", "spec", "faults")
        if inputs.get(k)
    ]
    if what:
        lines += ["Ran " + "; ".join(what) + ".", ""]
    a = rec.get("analysis")
    if a:
        lines += [
            f"Live analysis: look {a['look']} of {a['looks']} (every {a['interval_s']:g} s for {a['lifetime_s']:g} s); "
            f"this look tests at level {a['level']:.3g}, and each metric's false-failure rate over the whole "
            f"analysis is at most {a['alpha']:g} ({inline_text(a['spending'])} spending, {a['alpha_spent']:.3g} "
            f"spent so far)." + ("" if a["final"] else " PROMOTE comes only at the last look."),
            "",
        ]
    lines.append("**Why**")
    lines += [f"- {inline_text(r, 500)}" for r in rec.get("reasons", [])] or ["- (no reasons recorded)"]
    th = rec.get("thresholds") or {}
    ci = f"{th['confidence']:.0%} CI" if th else "CI"
    lines += [
        "",
        "### Metrics",
        "",
        f"| metric | group | baseline | canary | effect [{ci}] | test | p | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in rec.get("metrics", []):
        unit = m.get("unit", "")
        crit = " (critical)" if m.get("critical") else ""
        cls = m.get("classification")
        lines.append(
            f"| {inline_text(m['name'])}{crit} | {inline_text(m.get('group', ''))} | {_num(m.get('baseline'), unit)} "
            f"| {_num(m.get('canary'), unit)} | {_effect(m)} | {inline_text(m.get('test', ''))} | {_p(m.get('p_value'))} "
            f"| {_CLASS.get(cls) or inline_text(cls)} |"
        )
    groups = rec.get("groups", [])
    if groups:
        lines += ["", "| group | weight | score |", "| --- | --- | --- |"]
        for g in groups:
            gs = "no data" if g["score"] is None else f"{g['score']:.0f}"
            lines.append(f"| {inline_text(g['name'])} | {g['weight']:g} | {gs} |")
    lines += _power(rec)
    lines += _pipeline(rec)
    slos = rec.get("slos", [])
    if slos:
        lines += [
            "",
            "### SLOs",
            "",
            "| target | SLO | objective | SLI | budget left | projected burn (page) | would page |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in slos:
            sli = s.get("sli")
            lines.append(
                f"| {inline_text(s.get('target', ''))} | {inline_text(s.get('name', ''))} | {_num(s.get('objective'))} | "
                f"{'no data' if sli is None else f'{sli:.4f}'} | {_num(s.get('budget_remaining'))} | "
                f"{_num(s.get('projected_burn_rate'))} | {'yes' if s.get('would_page') else 'no'} |"
            )
    lines += _findings(rec)
    if th:
        lines += [
            "",
            f"Thresholds: promote at {th['pass']:g}, hold from {th['marginal']:g}; "
            f"tests at {th['confidence']:.0%} confidence. Run {code_span(rec.get('run_id', ''))}.",
        ]
    return "\n".join(lines) + "\n"
