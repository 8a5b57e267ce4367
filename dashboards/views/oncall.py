"""On-call view: tail latency, errors, queue depth, pipeline lag and drain time (asynchronous
loads), projected burn rates and budgets, the last verdict."""

import pandas as pd
import streamlit as st

from board import TARGETS, board, figure, fmt, not_in_run, read_records, verdict_banner
from charts import bars, timeline

b = board()
rec = b.decision
st.title("On-call view")
newest = b.runs[0]
if newest.decision:
    verdict_banner(newest.decision, prefix=f"Last verdict (run {newest.name})")
if newest.name != b.run.name:
    st.caption(f"Showing run `{b.run.name}`; its verdict is {b.run.verdict}.")

figs = rec.get("figures") or {}
if not figs:
    not_in_run("figures")
for target in TARGETS:
    if target not in figs:
        continue
    st.subheader(target.capitalize())
    queue = {k: v for k, v in figs[target].items() if "queue" in k}
    cols = st.columns(5)
    cols[0].metric("P95 latency", fmt(figure(rec, target, "p95_s"), "s"))
    cols[1].metric("P99 latency", fmt(figure(rec, target, "p99_s"), "s"))
    cols[2].metric("Error rate", fmt(figure(rec, target, "error_rate"), "%"))
    cols[3].metric("Timeout rate", fmt(figure(rec, target, "timeout_rate"), "%"))
    if queue:
        key = sorted(queue)[0]
        cols[4].metric("Queue depth", fmt(queue[key]), help=f"figure {key} of the decision record")
    else:
        cols[4].caption("Queue depth: not in this run")
    if any(figure(rec, target, k) is not None for k in ("lag_p50_s", "drain_s", "missing_captions")):
        lag = st.columns(5)  # an asynchronous load: pipeline lag, drain time, missing captions
        lag[0].metric("P50 pipeline lag", fmt(figure(rec, target, "lag_p50_s"), "s"))
        lag[1].metric("P95 pipeline lag", fmt(figure(rec, target, "lag_p95_s"), "s"))
        lag[2].metric("P99 pipeline lag", fmt(figure(rec, target, "lag_p99_s"), "s"))
        drain = figure(rec, target, "drain_s")
        lag[3].metric(
            "Drain time",
            "–" if drain is None else f"{fmt(drain)} s",
            help="from the first image's arrival to the last caption available",
        )
        lag[4].metric(
            "Missing captions",
            fmt(figure(rec, target, "missing_captions")),
            help="refused, failed, expired or never finished",
        )

st.subheader("SLOs")
slos = rec.get("slos") or []
if not slos:
    not_in_run("SLO evaluations")
else:
    sdf = pd.DataFrame(slos)
    if "target" not in sdf.columns:
        sdf["target"] = "–"
    left, right = st.columns(2)
    if "projected_burn_rate" in sdf.columns and sdf["projected_burn_rate"].notna().any():
        left.altair_chart(
            bars(
                sdf.dropna(subset=["projected_burn_rate"]),
                "name",
                "projected_burn_rate",
                "Projected burn rate",
                "x budget",
                [(1.0, "budget spent at period end")],
            ),
            width="stretch",
        )
    else:
        left.info("projected burn rates: not in this run")
    if "budget_remaining" in sdf.columns and sdf["budget_remaining"].notna().any():
        right.altair_chart(
            bars(
                sdf.dropna(subset=["budget_remaining"]),
                "name",
                "budget_remaining",
                "Error budget remaining",
                "share of budget",
                [(0.0, "exhausted")],
            ),
            width="stretch",
        )
    else:
        right.info("budget remaining: not in this run")
    for s in slos:
        what = (
            f"{s.get('target', '–')} · {s.get('name', '?')}: burn {fmt(s.get('projected_burn_rate'))}x, "
            f"budget left {fmt(s.get('budget_remaining'), '%')}"
        )
        if s.get("would_page"):
            st.error(f"Would page — {what}")
        elif s.get("would_ticket"):
            st.warning(f"Would open a ticket — {what}")
    cols = [
        c
        for c in (
            "target",
            "name",
            "kind",
            "objective",
            "sli",
            "good",
            "total",
            "budget_remaining",
            "projected_burn_rate",
            "would_page",
            "would_ticket",
        )
        if c in sdf.columns
    ]
    st.dataframe(sdf[cols], hide_index=True)

st.subheader("Requests")
records, err = read_records(b.run)
if err:
    st.error(err)
elif records is None or len(records) == 0:
    not_in_run("request records")
else:
    st.altair_chart(timeline(records), width="stretch")
