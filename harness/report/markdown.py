"""The decision record as markdown, ready to paste into a pull request.

Whatever a target or a person supplied (captions, model names and versions, URLs, error
messages, reasons that quote them, finding examples) is made inert for GitHub-flavoured markdown
before it is written: ``inline_text`` escapes it as plain text, ``code_span`` shows it verbatim in a
code span no backtick can close early. Both flatten newlines, drop control characters and clip."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Mapping

from harness.text import one_line
from harness.verdicts import SHARE_OF_IMAGES

if TYPE_CHECKING:
    from harness.report.model import Analysis, DecisionRecord, Inputs, MetricRecord, TargetFigures, TargetInfo

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
    """An input as ``key=value`` pairs (a mapping, or a part of the record such as the load shape:
    a model iterates as its field names and values), else as text."""
    pairs = v.items() if isinstance(v, Mapping) else v if hasattr(v, "__pydantic_fields__") else None
    if pairs is not None:
        return ", ".join(f"{k}={x:g}" if isinstance(x, float) else f"{k}={x}" for k, x in pairs if x is not None)
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


def _effect(m: MetricRecord) -> str:
    if m.effect is None:
        return "–"
    unit = m.effect_unit or m.unit
    txt = _scaled(m.effect, unit)
    if m.effect_low is not None and m.effect_high is not None:
        txt += f" [{_scaled(m.effect_low, unit)}, {_scaled(m.effect_high, unit)}]"
    return txt + _unit(unit)


def _size(v: float | None, unit: str) -> str:
    return "–" if v is None else _scaled(v, unit, signed=False) + _unit(unit)


def _adequate(v: bool | None) -> str:
    return "–" if v is None else "yes" if v else "**no**"


def _power(rec: DecisionRecord) -> list[str]:
    if not rec.power:
        return []
    # power is derived from the metrics (the model checks it): each entry names one of them
    units = {m.name: m.effect_unit or m.unit for m in rec.metrics}
    rows = [p for p in rec.power if p.must_detect is not None] + [p for p in rec.power if p.must_detect is None]
    lines = [
        "",
        "### What this run could detect",
        "",
        "| metric | could detect (80% power) | smallest effect | must detect | adequate |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in rows:
        unit = units[p.metric]
        lines.append(
            f"| {inline_text(p.metric)} | {inline_text(p.detectable)} | "
            f"{_size(p.mde, unit)} | {_size(p.must_detect, unit)} | {_adequate(p.adequate)} |"
        )
    return lines


def _segments(rec: DecisionRecord) -> list[str]:
    """The paired metrics' tests within each segment of the data set (where it names segments)."""
    rows = [(m, s) for m in rec.metrics for s in m.segments]
    if not rows:
        return []
    lines = [
        "",
        "### By segment",
        "",
        "Each paired metric's test within each segment of the data set; p-values Holm-adjusted over the "
        "segments tested for the metric. A failed segment fails the metric.",
        "",
        "| metric | segment | pairs | baseline | canary | effect | p (Holm) | result | could detect (80% power) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m, s in rows:
        unit = m.effect_unit or m.unit
        effect = "–" if s.effect is None else _scaled(s.effect, unit) + _unit(unit)
        lines.append(
            f"| {inline_text(m.name)} | {inline_text(s.segment, 80)} | {s.pairs} | {_num(s.baseline, m.unit)} "
            f"| {_num(s.canary, m.unit)} | {effect} | {_p(s.p_value)} | {_CLASS[s.classification]} "
            f"| {inline_text(s.detectable)} |"
        )
    return lines


def _findings(rec: DecisionRecord) -> list[str]:
    if not rec.findings:
        return []
    lines = ["", "### Findings", "", "Answers the harness's output checks flagged, with a few examples:", ""]
    for f in rec.findings:
        lines.append(f"- **{inline_text(f.target)} · {inline_text(f.check)}**: {f.count} of {f.answers} answers")
        for ex in f.examples[:FINDING_EXAMPLES]:
            match = f" (matched {code_span(ex.match)})" if ex.match else ""
            lines.append(f"  - image {code_span(ex.image_id)}: {code_span(ex.caption, 200)}{match}")
    return lines


_PIPELINE_ROWS = (
    ("lag_p50_s", "P50 pipeline lag", "s"),
    ("lag_p95_s", "P95 pipeline lag", "s"),
    ("lag_p99_s", "P99 pipeline lag", "s"),
    ("drain_s", "drain time", "s whole"),
    ("missing_captions", "missing captions", ""),
)


def _figure(figs: TargetFigures | None, key: str) -> tuple[bool, Any]:
    """Whether a target's figures hold ``key`` (a documented figure, or one of the open figures
    added beside them), and its value."""
    if figs is None:
        return False, None
    held = key in type(figs).model_fields or key in (figs.model_extra or {})
    return held, getattr(figs, key, None)


_CHAIR_ROWS = (
    ("chair_i", "CHAIR_i: mentioned objects not in the image / mentioned objects"),
    ("chair_s", "CHAIR_s: captions naming an object not in the image / captions"),
)


def _chair(rec: DecisionRecord) -> list[str]:
    """Object hallucination over the evaluation set, baseline beside canary (where the data set
    says what its images hold)."""
    b, c = (rec.figures[t] if t in rec.figures else None for t in ("baseline", "canary"))
    values = [(label, *(_number(getattr(f, key, None)) for f in (b, c))) for key, label in _CHAIR_ROWS]
    if all(bv is None and cv is None for _, bv, cv in values):
        return []
    lines = ["", "### Object hallucination (CHAIR)", "", "| figure | baseline | canary |", "| --- | --- | --- |"]
    lines += [f"| {label} | {_num(bv)} | {_num(cv)} |" for label, bv, cv in values]
    return lines


def _clipscore(rec: DecisionRecord) -> list[str]:
    """Mean CLIPScore of the evaluation set's captions, baseline beside canary, and the encoder
    that scored them (where they were scored)."""
    b, c = (_number(getattr(rec.figures.get(t), "clip_score", None)) for t in ("baseline", "canary"))
    if b is None and c is None:
        return []
    return [
        "",
        "### CLIPScore (reference-free)",
        "",
        f"Each caption against its own image, 2.5 x max(cos, 0), encoder {code_span(rec.inputs.clip)}.",
        "",
        "| figure | baseline | canary |",
        "| --- | --- | --- |",
        f"| mean CLIPScore | {_num(b)} | {_num(c)} |",
    ]


def _pipeline(rec: DecisionRecord) -> list[str]:
    """An asynchronous load's pipeline figures, baseline beside canary (none for a synchronous run)."""
    b, c = (rec.figures[t] if t in rec.figures else None for t in ("baseline", "canary"))
    shown_rows = []
    for key, label, unit in _PIPELINE_ROWS:
        (b_held, bv), (c_held, cv) = _figure(b, key), _figure(c, key)
        if b_held or c_held:
            shown_rows.append((label, unit, bv, cv))
    if not shown_rows:
        return []
    lines = ["", "### Pipeline (asynchronous jobs)", "", "| figure | baseline | canary |", "| --- | --- | --- |"]
    for label, unit, bv, cv in shown_rows:
        shown = [_num(v, unit) if unit != "s whole" or v is None else f"{v:.1f} s" for v in (_number(bv), _number(cv))]
        lines.append(f"| {label} | {shown[0]} | {shown[1]} |")
    return lines


def _number(v: Any) -> Any:
    """A figure as a number, or None (an open figure may hold anything: anything else is not shown)."""
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _targets(inputs: Inputs) -> list[str]:
    """The targets compared, baseline beside canary: URL, protocol (when not both contract v1),
    model (when one reported it) and model version."""
    if not inputs.targets:
        return []
    b, c = (inputs.targets[t] if t in inputs.targets else None for t in ("baseline", "canary"))

    def value(info: TargetInfo | None, key: str) -> Any:
        return None if info is None else getattr(info, key)

    named = value(b, "model") is not None or value(c, "model") is not None
    spoken = {value(b, "protocol"), value(c, "protocol")} - {None, "v1"}  # shown when not both contract v1
    keys = ("url",) + (("protocol",) if spoken else ()) + (("model",) if named else ()) + ("model_version",)
    lines = ["| | baseline | canary |", "| --- | --- | --- |"]
    for key in keys:
        lines.append(
            f"| {key.replace('_', ' ')} | {code_span(value(b, key), cell=True)} | "
            f"{code_span(value(c, key), cell=True)} |"
        )
    return lines + [""]


def _analysis(a: Analysis | None) -> list[str]:
    if a is None:
        return []
    return [
        f"Live analysis: look {a.look} of {a.looks} (every {a.interval_s:g} s for {a.lifetime_s:g} s); "
        f"this look tests at level {a.level:.3g}, and each metric's false-failure rate over the whole "
        f"analysis is at most {a.alpha:g} ({inline_text(a.spending)} spending, {a.alpha_spent:.3g} "
        f"spent so far)." + ("" if a.final else " PROMOTE comes only at the last look."),
        "",
    ]


def render_markdown(rec: DecisionRecord) -> str:
    """Render the decision record (``build_decision``, or ``load_decision`` for one on disk); every
    figure comes from the record, every text from a target or a person is escaped."""
    inputs = rec.inputs
    lines = [
        f"## Canary decision: {_ICON[rec.verdict]} {inline_text(rec.verdict)}"
        + (f" (score {rec.score:g})" if rec.score is not None else ""),
        "",
    ]
    lines += _targets(inputs)
    ran = (
        ("scenario", inputs.scenario),
        ("load", inputs.load),
        ("dataset", inputs.dataset),
        ("spec", inputs.spec),
        ("faults", inputs.faults),
    )
    what = [f"{k}: {code_span(_plain(v), 200)}" for k, v in ran if v]
    if what:
        lines += ["Ran " + "; ".join(what) + ".", ""]
    lines += _analysis(rec.analysis)
    lines.append("**Why**")
    lines += [f"- {inline_text(r, 500)}" for r in rec.reasons] or ["- (no reasons recorded)"]
    th = rec.thresholds
    ci = f"{th.confidence:.0%} CI" if th else "CI"
    lines += [
        "",
        "### Metrics",
        "",
        f"| metric | group | baseline | canary | effect [{ci}] | test | p | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in rec.metrics:
        crit = " (critical)" if m.critical else ""
        lines.append(
            f"| {inline_text(m.name)}{crit} | {inline_text(m.group)} | {_num(m.baseline, m.unit)} "
            f"| {_num(m.canary, m.unit)} | {_effect(m)} | {inline_text(m.test)} | {_p(m.p_value)} "
            f"| {_CLASS[m.classification]} |"
        )
    no_data = [m for m in rec.metrics if m.classification == "NoData"]
    if no_data:
        lines += [
            "",
            "No data: " + "; ".join(f"{inline_text(m.name)} ({inline_text(m.reason)})" for m in no_data) + ".",
        ]
    if rec.groups:
        lines += ["", "| group | weight | score |", "| --- | --- | --- |"]
        for g in rec.groups:
            gs = "no data" if g.score is None else f"{g.score:.0f}"
            lines.append(f"| {inline_text(g.name)} | {g.weight:g} | {gs} |")
    lines += _segments(rec)
    lines += _power(rec)
    lines += _chair(rec)
    lines += _clipscore(rec)
    lines += _pipeline(rec)
    if rec.slos:
        lines += [
            "",
            "### SLOs",
            "",
            "| target | SLO | objective | SLI | budget left | projected burn (page) | would page |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in rec.slos:
            name = inline_text(s.name) + (f" (segment {inline_text(s.segment, 80)})" if s.segment else "")
            lines.append(
                f"| {inline_text(s.target)} | {name} | {_num(s.objective)} | "
                f"{'no data' if s.sli is None else f'{s.sli:.4f}'} | {_num(s.budget_remaining)} | "
                f"{_num(s.projected_burn_rate)} | {'yes' if s.would_page else 'no'} |"
            )
    lines += _findings(rec)
    if th:
        lines += [
            "",
            f"Thresholds: promote at {th.pass_:g}, hold from {th.marginal:g}; "
            f"tests at {th.confidence:.0%} confidence. Run {code_span(rec.run_id)}.",
        ]
    return "\n".join(lines) + "\n"
