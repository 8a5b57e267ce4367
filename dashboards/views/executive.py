"""Executive view: usage, cost per 1,000 captions, quality across runs, safety, verdict history."""

import streamlit as st

from board import TARGETS, board, figure, fmt, history, not_in_run, verdict_banner
from charts import trend, verdicts

b = board()
rec = b.decision
st.title("Executive view")
st.caption(f"Run `{b.run.name}`; trends over the {len(b.runs)} runs in {b.root}")
verdict_banner(rec)

hist = history(b.runs)
if not (rec.get("figures") or {}):
    not_in_run("figures")

# Each tile: this run's figure, with a sparkline of the same figure over the runs.
TILES = (
    ("requests", "Requests", ""),
    ("throughput_rps", "Throughput", "rps"),
    ("cost_per_1000", "Cost per 1,000 captions", "$"),
    ("safety_flag_rate", "Safety flag rate", "%"),
    ("cider_d", "Quality (CIDEr-D)", ""),
    ("hybrid_score", "Hybrid quality (0-100)", ""),
)
for target in TARGETS:
    if not (rec.get("figures") or {}).get(target):
        continue
    st.subheader(target.capitalize())
    cols = st.columns(len(TILES))
    past = hist[hist["target"] == target] if len(hist) else hist
    for col, (key, label, unit) in zip(cols, TILES):
        spark = past[key].dropna().tolist() if key in past.columns else []
        col.metric(label, fmt(figure(rec, target, key), unit), chart_data=spark if len(spark) > 1 else None)

st.subheader("Across runs")
if len(hist) == 0:
    not_in_run("figures")
else:
    left, right = st.columns(2)
    if "cider_d" in hist.columns:
        left.altair_chart(
            trend(hist, "cider_d", "Quality (CIDEr-D, 95% CI)", "CIDEr-D", "cider_d_low", "cider_d_high", ".3f"),
            width="stretch",
        )
    else:
        left.info("CIDEr-D: not in these runs")
    if "hybrid_score" in hist.columns:
        right.altair_chart(trend(hist, "hybrid_score", "Hybrid quality", "0-100", fmt=".1f"), width="stretch")
    else:
        right.info("hybrid score: not in these runs")
    for (key, title, axis, f), col in zip(
        (
            ("requests", "Requests", "requests", "d"),
            ("throughput_rps", "Throughput", "requests/s", ".2f"),
            ("cost_per_1000", "Cost per 1,000 captions", "$", ".4f"),
            ("safety_flag_rate", "Safety flag rate", "share", ".2%"),
        ),
        st.columns(2) + st.columns(2),
    ):
        if key in hist.columns:
            col.altair_chart(trend(hist, key, title, axis, fmt=f), width="stretch")
        else:
            col.info(f"{title}: not in these runs")
    th = rec.get("thresholds") or {}
    st.altair_chart(verdicts(hist, th.get("pass"), th.get("marginal")), width="stretch")
    st.dataframe(hist.drop_duplicates("run")[["run", "created", "verdict", "score"]].iloc[::-1], hide_index=True)
