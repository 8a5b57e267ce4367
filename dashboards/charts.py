"""Altair renderings of the rows and figures runs wrote: histograms of raw per-request values,
trends across runs, bars against thresholds, and the SLO review's series on one time axis with the
deploys and drift reports as rules. Charts only plot; they never derive a figure."""

from __future__ import annotations

from typing import Sequence

import altair as alt
import pandas as pd

__all__ = [
    "TARGET_COLOURS",
    "VERDICT_COLOURS",
    "MARKER_COLOURS",
    "histogram",
    "trend",
    "bars",
    "timeline",
    "verdicts",
    "burn_down",
    "sli_line",
    "event_lines",
    "burn_rates",
]

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


# ---- the SLO review: every chart on one time axis (UTC), with the deploys and drift reports ------

MARKER_COLOURS = {"deploy": "#6a3d9a", "drift": "#b15928"}
_ALERT_SHADE = "#b00020"


def _instant(t: float) -> alt.DateTime:
    """Unix seconds as a Vega-Lite date-time in UTC (a domain given as numbers is not drawn)."""
    import time

    g = time.gmtime(t)
    ms = int(round((t - int(t)) * 1000)) % 1000
    return alt.DateTime(
        year=g.tm_year,
        month=g.tm_mon,
        date=g.tm_mday,
        hours=g.tm_hour,
        minutes=g.tm_min,
        seconds=g.tm_sec,
        milliseconds=ms,
        utc=True,
    )


def _time_axis(domain: tuple[float, float], title: str | None = None) -> alt.X:
    """The review's time axis: ``domain`` as unix seconds, shown in UTC."""
    return alt.X(
        "time:T",
        title=title,
        scale=alt.Scale(type="utc", domain=[_instant(domain[0]), _instant(domain[1])]),
        axis=alt.Axis(format="%b %d %H:%M", labelOverlap=True),
    )


def _markers(markers: pd.DataFrame, domain: tuple[float, float]) -> list[alt.Chart]:
    """Vertical rules for the markers (columns ``time``, ``kind``, ``label``, ``detail``): deploys
    solid purple, drift reports dashed brown; their text only in tooltips (data, never markup)."""
    layers = []
    for kind, colour in MARKER_COLOURS.items():
        rows = markers[markers["kind"] == kind] if len(markers) else markers
        if not len(rows):
            continue
        layers.append(
            alt.Chart(rows)
            .mark_rule(color=colour, strokeWidth=1.5, strokeDash=[] if kind == "deploy" else [5, 3])
            .encode(
                x=_time_axis(domain),
                tooltip=[
                    alt.Tooltip("time:T", title="time (UTC)", format="%Y-%m-%d %H:%M", formatType="utc"),
                    "kind:N",
                    "label:N",
                    "detail:N",
                ],
            )
        )
    return layers


def burn_down(
    df: pd.DataFrame, projection: pd.DataFrame, markers: pd.DataFrame, domain: tuple[float, float]
) -> alt.LayerChart:
    """The error budget left over the events from the window's start (``remaining``), a rule at
    0 (spent) and the exhaustion projection, dashed (``projection``: two rows, or none)."""
    y = alt.Y("remaining:Q", title="budget left", axis=alt.Axis(format="%"))
    layers = [
        alt.Chart(df, title="Error budget burn-down")
        .mark_line(color="#3b6ea5")
        .encode(x=_time_axis(domain), y=y, tooltip=[alt.Tooltip("remaining:Q", format=".2%")]),
        alt.Chart(pd.DataFrame({"remaining": [0.0]}))
        .mark_rule(color="#555", strokeDash=[4, 3])
        .encode(y="remaining:Q"),
    ]
    if len(projection):
        layers.append(
            alt.Chart(projection)
            .mark_line(color="#b00020", strokeDash=[6, 4], clip=True)
            .encode(x=_time_axis(domain), y=y, tooltip=["what:N", alt.Tooltip("remaining:Q", format=".2%")])
        )
    return alt.layer(*layers, *_markers(markers, domain))


def sli_line(df: pd.DataFrame, objective: float, markers: pd.DataFrame, domain: tuple[float, float]) -> alt.LayerChart:
    """The SLI per bucket (good over total events) against the objective."""
    y = alt.Y("sli:Q", title="SLI", axis=alt.Axis(format="%"), scale=alt.Scale(zero=False))
    layers = [
        alt.Chart(df.dropna(subset=["sli"]), title="SLI")
        .mark_line(color="#3b6ea5")
        .encode(x=_time_axis(domain), y=y, tooltip=[alt.Tooltip("sli:Q", format=".3%"), "good:Q", "total:Q"]),
        alt.Chart(pd.DataFrame({"sli": [objective], "what": ["objective"]}))
        .mark_rule(color="#1b7f3b", strokeDash=[4, 3])
        .encode(y="sli:Q", tooltip=["what:N", alt.Tooltip("sli:Q", format=".3%")]),
    ]
    return alt.layer(*layers, *_markers(markers, domain))


def event_lines(df: pd.DataFrame, markers: pd.DataFrame, domain: tuple[float, float], step: str) -> alt.LayerChart:
    """Good and total events per ``step`` (the review's resolution)."""
    long = df.melt(id_vars=["time"], value_vars=["total", "good"], var_name="events", value_name="count")
    lines = (
        alt.Chart(long, title=f"Events per {step} (good / total)")
        .mark_line()
        .encode(
            x=_time_axis(domain),
            y=alt.Y("count:Q", title=f"events per {step}"),
            color=alt.Color("events:N", scale=alt.Scale(domain=["total", "good"], range=["#888888", "#1b7f3b"])),
            tooltip=["events:N", alt.Tooltip("count:Q", format=".4g")],
        )
    )
    return alt.layer(lines, *_markers(markers, domain))


def burn_rates(
    df: pd.DataFrame,
    factor: float,
    episodes: pd.DataFrame,
    markers: pd.DataFrame,
    domain: tuple[float, float],
    title: str,
) -> alt.LayerChart:
    """An alert's long and short burn rates over time (``window``: which) against its factor (a
    rule), the episodes when both met it shaded (``start``, ``end``); a symlog scale keeps both the
    factor and the peaks readable."""
    layers = []
    if len(episodes):
        layers.append(
            alt.Chart(episodes)
            .mark_rect(color=_ALERT_SHADE, opacity=0.15)
            .encode(
                x=_time_axis(domain),
                x2="end:T",
                tooltip=[
                    alt.Tooltip("time:T", title="from (UTC)", format="%Y-%m-%d %H:%M", formatType="utc"),
                    alt.Tooltip("end:T", title="to (UTC)", format="%Y-%m-%d %H:%M", formatType="utc"),
                ],
            )
        )
    names = list(dict.fromkeys(df["window"]))  # the long window's name, then the short's
    colour = alt.Color("window:N", title="window", scale=alt.Scale(domain=names, range=["#1f4e79", "#8fb8de"]))
    base = alt.Chart(df.dropna(subset=["burn rate"]), title=title).encode(
        x=_time_axis(domain),
        y=alt.Y("burn rate:Q", title="burn rate (x budget)", scale=alt.Scale(type="symlog")),
        color=colour,
        tooltip=["window:N", alt.Tooltip("burn rate:Q", format=".2f")],
    )
    # the short window underneath, thin; the long one over it
    layers.append(base.transform_filter(alt.datum.window == names[-1]).mark_line(strokeWidth=1, opacity=0.8))
    layers.append(base.transform_filter(alt.datum.window == names[0]).mark_line(strokeWidth=2))
    layers.append(
        alt.Chart(pd.DataFrame({"burn rate": [factor], "what": [f"factor {factor:g}x"]}))
        .mark_rule(color=_ALERT_SHADE, strokeDash=[4, 3])
        .encode(y="burn rate:Q", tooltip=["what:N"])
    )
    return alt.layer(*layers, *_markers(markers, domain))
