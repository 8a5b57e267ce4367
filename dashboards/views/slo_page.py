"""SLO review, one SLO: its budget's burn-down over the window with the exhaustion projection, the
SLI and its good and total events, each alert of the multiwindow set with its long and short burn
rates now and over time against its factor (episodes shaded), when the alerts fired, and the
deploys and drift reports as vertical rules on every chart's time axis. ``?slo=NAME`` picks it."""

import pandas as pd
import streamlit as st

from charts import burn_down, burn_rates, event_lines, sli_line
from harness.duration import format_duration
from harness.report.markdown import inline_text
from review_data import (
    TREND_ARROWS,
    budget_left,
    coverage,
    markers_frame,
    objective_text,
    pct,
    reviewed,
    series,
    sli_text,
    source_text,
    span,
    times,
    when,
)

PROJECTION_HORIZON = 0.25  # the burn-down's axis runs on past the window's end by at most this share of it

r = reviewed()
names = [s.slo.name for s in r.slos]
wanted = st.query_params.get("slo")
if wanted is not None and wanted not in names:
    st.warning(inline_text(f"The spec has no SLO named {wanted}; showing {names[0]}.", 400))
name = st.selectbox("SLO", names, index=names.index(wanted) if wanted in names else 0, key="slo_review_slo")
if st.query_params.get("slo") != name:
    st.query_params["slo"] = name
s = r.slos[names.index(name)]
slo = s.slo

st.title(inline_text(f"SLO {slo.name}", 200))
if slo.description:
    st.text(slo.description)
st.caption(
    inline_text(
        f"{r.service} · {slo.sli} · objective {objective_text(slo.objective)} over {slo.period} · reviewed over "
        f"{span(r.end - r.start)}, {when(r.start)} to {when(r.end)}, from {source_text(r)}",
        1000,
    )
)

if s.exhaustion_s is None:
    exhausted = "not at this rate" if s.recent_burn is not None else "–"
elif s.exhaustion_s <= 0:
    exhausted = "spent"
else:
    exhausted = span(s.exhaustion_s)
tiles = st.columns(6)
tiles[0].metric("SLI over the window", sli_text(s))
tiles[1].metric("Budget left", budget_left(s))
tiles[2].metric("Budget runs out in", exhausted, help="at the last day's burn rate and traffic")
tiles[3].metric("Burn rate, last day", "–" if s.recent_burn is None else f"{s.recent_burn:.2f}x")
tiles[4].metric(
    "Trend", TREND_ARROWS.get(s.trend, s.trend), help="the window's last quarter (at most 7 days) against the rest"
)
tiles[5].metric("Alerts firing", ", ".join(s.firing_now) or "none")

marks = markers_frame(r)
mine = [d for d in r.decisions if d.slo == slo.name]
if not s.has_data:
    st.info(inline_text(s.note or "no data", 1000))
else:
    covered = coverage(r)
    if covered:
        st.info(covered)
    data = series(r, s)
    domain = (r.start, r.end)

    # the burn-down, and where the budget runs out at the last day's rate (dashed)
    rem = s.remaining[-1] if len(s.remaining) else float("nan")
    projection = pd.DataFrame({"time": times([]), "remaining": [], "what": []})
    axis_end = r.end
    if s.exhaustion_s is not None and s.exhaustion_s > 0 and rem == rem:
        horizon = r.end + PROJECTION_HORIZON * (r.end - r.start)
        out = min(r.end + s.exhaustion_s, horizon)
        left = rem * (1.0 - (out - r.end) / s.exhaustion_s)
        projection = pd.DataFrame(
            {
                "time": times([r.end, out]),
                "remaining": [rem, left],
                "what": ["now", f"budget gone in {span(s.exhaustion_s)}"],
            }
        )
        axis_end = out
    st.altair_chart(burn_down(data["budget"], projection, marks, (r.start, axis_end)), width="stretch")
    left_col, right_col = st.columns(2)
    left_col.altair_chart(sli_line(data["events"], slo.objective, marks, domain), width="stretch")
    step = format_duration(r.grid.step_s)
    right_col.altair_chart(event_lines(data["events"], marks, domain, step), width="stretch")

    st.subheader("Alerts")
    for i, a in enumerate(s.alerts):
        w = a.window
        st.markdown(f"**{inline_text(w.severity)}**: {inline_text(f'{w.burn_rate:g}x over {w.long} and {w.short}')}")
        cols = st.columns(4)
        cols[0].metric(f"Long burn ({w.long}) now", "–" if a.long_now is None else f"{a.long_now:.2f}x")
        cols[1].metric(f"Short burn ({w.short}) now", "–" if a.short_now is None else f"{a.short_now:.2f}x")
        firing = a.firing_now if a.firing_now is not None else a.met_now
        cols[2].metric(
            "Firing now" if a.firing_now is not None else "Condition met now",
            "yes" if firing else "no",
            help="Prometheus' alerts API" if a.firing_now is not None else "both burn rates at or over the factor",
        )
        cols[3].metric("Peak long burn", "–" if a.peak is None else f"{a.peak:.2f}x")
        episodes = pd.DataFrame(
            {
                "time": times([e.start for e in a.episodes]),
                "end": times([r.end if e.end is None else e.end for e in a.episodes]),
            }
        )
        title = f"{w.severity}: burn rates against {w.burn_rate:g}x"
        st.altair_chart(
            burn_rates(data[f"burn/{w.severity}/{i}"], w.burn_rate, episodes, marks, domain, title), width="stretch"
        )
    st.caption("Vertical rules: deploys (purple, solid) and drift reports (brown, dashed); shaded: alert episodes.")

st.subheader("When alerts fired")
fired = []
for a in s.alerts:
    w = a.window
    for e in (*a.episodes, *(a.fired or ())):
        fired.append(
            {
                "severity": w.severity,
                "factor": f"{w.burn_rate:g}x",
                "windows": f"{w.long} / {w.short}",
                "from": when(e.start),
                "to": "still firing" if e.end is None else when(e.end),
                "lasted": span((r.end if e.end is None else e.end) - e.start),
                "budget spent": pct(e.spent),
                "alert's share": pct(e.share),
                "noisy": e.noisy,
                "source": e.source,
            }
        )
if fired:
    st.dataframe(pd.DataFrame(fired), hide_index=True)
else:
    st.info("No alert condition was met over the window.")

st.subheader("What to decide")
if mine:
    st.text("\n".join(f"• {d.text}" for d in mine))
else:
    st.success("Nothing to decide for this SLO.")

st.subheader("Deploys and drift reports in the window")
if len(marks):
    st.dataframe(marks, hide_index=True)
else:
    st.info("No decision record or drift report falls in the window.")
