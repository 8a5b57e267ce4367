"""Altair renderings of the rows and figures runs wrote: histograms of raw per-request values,
trends across runs, bars against thresholds. Charts only plot; they never derive a figure."""

from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd

__all__ = ["TARGET_COLOURS", "VERDICT_COLOURS", "histogram", "trend", "bars", "timeline", "verdicts"]

TARGET_COLOURS = alt.Scale(domain=["baseline", "canary"], range=["#3b6ea5", "#e07b24"])
VERDICT_COLOURS = alt.Scale(domain=["PROMOTE", "HOLD", "ROLLBACK"], range=["#1b7f3b", "#d69e00", "#b00020"])


def _target_colour(df: pd.DataFrame) -> alt.Color:
    known = set(df["target"].dropna().astype(str)) <= {"baseline", "canary"}
    return alt.Color("target:N", scale=TARGET_COLOURS if known else alt.Undefined, title="target")


def histogram(
    df: pd.DataFrame, field: str, title: str, axis: str, scale: float = 1.0, bins: int = 40, count: str = "requests"
) -> alt.Chart:
    """Overlaid histograms of one per-row column, one colour per target (``scale`` converts units)."""
    data = df[["target", field]].dropna()
    value = f"{field}_shown"
    return (
        alt.Chart(data, title=title)
        .transform_calculate(**{value: f"datum['{field}'] * {scale}"})
        .mark_bar(opacity=0.55, binSpacing=0)
        .encode(
            x=alt.X(f"{value}:Q", bin=alt.Bin(maxbins=bins), title=axis),
            y=alt.Y("count():Q", stack=None, title=count),
            color=_target_colour(data),
            tooltip=["target:N", "count():Q"],
        )
    )


def trend(
    df: pd.DataFrame, field: str, title: str, axis: str, low: str | None = None, high: str | None = None, fmt: str = ""
) -> alt.LayerChart:
    """A figure across runs, one line per target; ``low``/``high`` columns draw its interval."""
    cols = ["created", "run", "target", field] + [c for c in (low, high) if c]
    data = df[[c for c in cols if c in df.columns]].dropna(subset=[field])
    base = alt.Chart(data, title=title).encode(
        x=alt.X("created:T", title="run"),
        color=_target_colour(data),
        tooltip=["run:N", "target:N", alt.Tooltip(f"{field}:Q", format=fmt)],
    )
    yaxis = alt.Axis(format=fmt) if fmt else alt.Axis()
    layers = [base.mark_line(point=True).encode(y=alt.Y(f"{field}:Q", title=axis, axis=yaxis))]
    if low and high and low in data.columns and high in data.columns:
        layers.append(
            base.mark_errorbar(ticks=True).encode(y=alt.Y(f"{low}:Q", title=axis, axis=yaxis), y2=f"{high}:Q")
        )
    return alt.layer(*layers)


def bars(
    df: pd.DataFrame,
    category: str,
    value: str,
    title: str,
    axis: str,
    rules: Sequence[tuple[float, str]] = (),
    colour: str | None = "target",
    fmt: str = ".3g",
) -> alt.LayerChart:
    """Horizontal bars (one row per ``category``, one bar per ``colour``) labelled with their value,
    and labelled vertical rules (thresholds)."""
    enc = dict(
        y=alt.Y(f"{category}:N", title=None),
        x=alt.X(f"{value}:Q", title=axis),
        tooltip=[f"{category}:N", alt.Tooltip(f"{value}:Q", format=fmt)],
    )
    if colour:
        enc["yOffset"] = f"{colour}:N"
        enc["color"] = _target_colour(df) if colour == "target" else alt.Color(f"{colour}:N")
        enc["tooltip"] = [*enc["tooltip"], f"{colour}:N"]
    base = alt.Chart(df, title=title).encode(**enc)
    layers = [
        base.mark_bar(),
        base.mark_text(align="left", dx=3, color="#333").encode(text=alt.Text(f"{value}:Q", format=fmt)),
    ]
    if rules:
        r = pd.DataFrame({"value": [v for v, _ in rules], "label": [lab for _, lab in rules]})
        layers.append(alt.Chart(r).mark_rule(strokeDash=[4, 3], color="#555").encode(x="value:Q", tooltip=["label:N"]))
        layers.append(
            alt.Chart(r)
            .mark_text(align="left", baseline="bottom", dx=3, color="#555")
            .encode(x="value:Q", y=alt.value(0), text="label:N")
        )
    return alt.layer(*layers)


def timeline(df: pd.DataFrame) -> alt.Chart:
    """Per-request latency against send time, one colour per target."""
    data = df[["target", "t_start", "latency_s", "outcome"]].dropna(subset=["t_start", "latency_s"]).copy()
    data["sent"] = pd.to_datetime(data["t_start"], unit="s")
    return (
        alt.Chart(data.drop(columns=["t_start"]), title="Latency of each request")
        .transform_calculate(latency_ms="datum.latency_s * 1000")
        .mark_circle(size=14, opacity=0.6)
        .encode(
            x=alt.X("sent:T", title="sent"),
            y=alt.Y("latency_ms:Q", title="latency (ms)"),
            color=_target_colour(data),
            shape="outcome:N",
            tooltip=["target:N", "outcome:N", "latency_ms:Q"],
        )
    )


def verdicts(df: pd.DataFrame, pass_at: float | None, marginal_at: float | None) -> alt.LayerChart:
    """The score of each run, coloured by its verdict, with the promote and hold thresholds."""
    data = df[["run", "created", "verdict", "score"]].drop_duplicates("run")
    layers = [
        alt.Chart(data, title="Verdicts")
        .mark_point(size=120, filled=True)
        .encode(
            x=alt.X("created:T", title="run"),
            y=alt.Y("score:Q", title="score", scale=alt.Scale(domain=[0, 100])),
            color=alt.Color("verdict:N", scale=VERDICT_COLOURS),
            tooltip=["run:N", "verdict:N", "score:Q"],
        )
    ]
    rules = [(v, lab) for v, lab in ((pass_at, "promote"), (marginal_at, "hold")) if v is not None]
    if rules:
        r = pd.DataFrame({"value": [v for v, _ in rules], "label": [lab for _, lab in rules]})
        layers.append(alt.Chart(r).mark_rule(strokeDash=[4, 3], color="#555").encode(y="value:Q", tooltip=["label:N"]))
    return alt.layer(*layers)
