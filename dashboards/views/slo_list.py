"""SLO review, the list: every SLO of the spec over the review window, from Prometheus or records:
objective, SLI, budget left, alerts firing now, trend and what the review meeting should decide.
Choosing an SLO (its row, or the box below the table) opens its page."""

import pandas as pd
import streamlit as st

from harness.report.markdown import inline_text
from review_data import (
    TREND_ARROWS,
    budget_left,
    coverage,
    markers_frame,
    objective_text,
    reviewed,
    sli_text,
    source_text,
    span,
    when,
)

SLO_PAGE = "views/slo_page.py"

r = reviewed()
st.title("SLO review")
st.caption(
    inline_text(
        f"{r.service}: {len(r.slos)} SLOs over {span(r.end - r.start)}, {when(r.start)} to {when(r.end)}, "
        f"from {source_text(r)}",
        1000,
    )
)
covered = coverage(r)
if covered:
    st.info(covered)

decisions = r.decisions
tiles = st.columns(4)
tiles[0].metric("SLOs", len(r.slos))
tiles[1].metric("Over budget", sum(1 for s in r.slos if (s.budget.remaining or 0.0) < 0))
tiles[2].metric("Alerting now", sum(1 for s in r.slos if s.firing_now))
tiles[3].metric("Points to decide", len(decisions))

rows = []
for s in r.slos:
    rows.append(
        {
            "SLO": s.slo.name,
            "objective": objective_text(s.slo.objective),
            "window": s.slo.period,
            "SLI": sli_text(s),
            "budget left": budget_left(s),
            "alerts firing": ", ".join(s.firing_now) or "none",
            "trend": TREND_ARROWS.get(s.trend, s.trend),
            "what to decide": " ".join(d.text for d in decisions if d.slo == s.slo.name),
            "note": s.note,
        }
    )
table = pd.DataFrame(rows)
event = st.dataframe(
    table,
    hide_index=True,
    key="slo_review_table",
    on_select="rerun",
    selection_mode="single-row",
    column_config={"what to decide": st.column_config.TextColumn(width="large")},
)
picked = list(getattr(getattr(event, "selection", None), "rows", None) or [])
names = [s.slo.name for s in r.slos]
chosen = st.selectbox(
    "Open an SLO's page", names, index=None, key="slo_review_open", placeholder="Choose an SLO (or its row above)"
)
if picked:
    chosen = names[picked[0]]
if chosen is not None:
    st.switch_page(SLO_PAGE, query_params={"slo": chosen})

st.subheader("What to decide")
if decisions:
    st.text("\n".join(f"• {d.text}" for d in decisions))
else:
    st.success("Nothing to decide: every SLO spent some of its budget, none overspent, no alert was noisy.")

st.subheader("Deploys and drift reports in the window")
marks = markers_frame(r)
if len(marks):
    st.dataframe(marks, hide_index=True)
else:
    st.info("No decision record or drift report falls in the window.")
