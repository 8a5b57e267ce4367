"""The decision record as markdown, ready to paste into a pull request."""

from __future__ import annotations

from typing import Any, Mapping

__all__ = ["render_markdown"]

_ICON = {"PROMOTE": "✅", "HOLD": "⏸️", "ROLLBACK": "⛔"}
_CLASS = {"Pass": "pass", "High": "**HIGH**", "Low": "**LOW**", "NoData": "no data"}


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


def _effect(m: Mapping[str, Any]) -> str:
    e = m.get("effect")
    if e is None:
        return "–"
    unit = m.get("unit", "")
    lo, hi = m.get("effect_low"), m.get("effect_high")
    scale = 1000 if unit == "s" else 1
    u = "ms" if unit == "s" else unit
    txt = f"{e * scale:+.3g}"
    if lo is not None and hi is not None:
        txt += f" [{lo * scale:+.3g}, {hi * scale:+.3g}]"
    return txt + (f" {u}" if u else "")


def render_markdown(rec: Mapping[str, Any]) -> str:
    """Render ``decision.json``; every figure comes from the record."""
    v = rec["verdict"]
    score = rec.get("score")
    inputs = rec.get("inputs", {})
    lines = [f"## Canary decision: {_ICON.get(v, '')} {v}" + (f" (score {score:g})" if score is not None else ""), ""]
    targets = inputs.get("targets", {})
    if targets:
        lines.append("| | baseline | canary |")
        lines.append("| --- | --- | --- |")
        b, c = targets.get("baseline", {}), targets.get("canary", {})
        for key in ("url", "model_version"):
            lines.append(f"| {key.replace('_', ' ')} | `{b.get(key, '–')}` | `{c.get(key, '–')}` |")
        lines.append("")
    what = [f"{k}: `{_plain(inputs[k])}`" for k in ("scenario", "load", "dataset", "spec", "faults") if inputs.get(k)]
    if what:
        lines += ["Ran " + "; ".join(what) + ".", ""]
    lines.append("**Why**")
    lines += [f"- {r}" for r in rec.get("reasons", [])] or ["- (no reasons recorded)"]
    lines += ["", "### Metrics", "", "| metric | group | baseline | canary | effect [98% CI] | test | p | result |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in rec.get("metrics", []):
        unit = m.get("unit", "")
        p = m.get("p_value")
        crit = " (critical)" if m.get("critical") else ""
        lines.append(
            f"| {m['name']}{crit} | {m.get('group', '')} | {_num(m.get('baseline'), unit)} | {_num(m.get('canary'), unit)} "
            f"| {_effect(m)} | {m.get('test', '')} | {_p(p)} "
            f"| {_CLASS.get(m.get('classification'), m.get('classification'))} |"
        )
    groups = rec.get("groups", [])
    if groups:
        lines += ["", "| group | weight | score |", "| --- | --- | --- |"]
        for g in groups:
            gs = "no data" if g["score"] is None else f"{g['score']:.0f}"
            lines.append(f"| {g['name']} | {g['weight']:g} | {gs} |")
    slos = rec.get("slos", [])
    if slos:
        lines += ["", "### SLOs", "", "| target | SLO | objective | SLI | budget left | projected burn (page) | would page |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for s in slos:
            sli = s.get("sli")
            lines.append(
                f"| {s.get('target', '')} | {s.get('name', '')} | {_num(s.get('objective'))} | "
                f"{'no data' if sli is None else f'{sli:.4f}'} | {_num(s.get('budget_remaining'))} | "
                f"{_num(s.get('projected_burn_rate'))} | {'yes' if s.get('would_page') else 'no'} |"
            )
    th = rec.get("thresholds", {})
    if th:
        lines += ["", f"Thresholds: promote at {th.get('pass', 90):g}, hold from {th.get('marginal', 75):g}; "
                      f"tests at {th.get('confidence', 0.98):.0%} confidence. Run `{rec.get('run_id', '')}`."]
    return "\n".join(lines) + "\n"
