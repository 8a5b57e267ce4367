"""Drift: each detector's verdict on canary outputs against baseline outputs, and the drift report."""

import altair as alt
import pandas as pd
import streamlit as st

from board import artifact, board, data_url, not_in_run, read_json
from harness.report.markdown import code_span

# Chromium refuses URLs over 2 MiB; base64 makes a page 4/3 as long.
MAX_EMBEDDED_BYTES = 1_500_000

b = board()
rec = b.decision
st.title("Drift")
st.caption(f"Run `{b.run.name}`: canary outputs against baseline outputs")

summary = rec.get("drift") or {}
path = artifact(b.run, "drift")
doc, err = read_json(path) if path is not None else (None, None)
if err:
    st.error(err)
if path is None:
    not_in_run("drift.json")

results = []
if isinstance(doc, dict) and isinstance(doc.get("results"), list):
    results = doc["results"]
    drifted = doc.get("drifted") or [r.get("detector") for r in results if r.get("drift")]
elif isinstance(summary.get("detectors"), list):
    results = summary["detectors"]
    drifted = [r.get("detector", r.get("name")) for r in results if r.get("drift")]
else:
    drifted = []

if results:
    if drifted:
        st.error(f"Drift found by {len(drifted)} of {len(results)} detectors: {', '.join(map(str, drifted))}")
    else:
        st.success(f"No drift found by {len(results)} detectors")
    df = pd.DataFrame(results).rename(columns={"name": "detector"})
    cols = [
        c
        for c in (
            "detector",
            "method",
            "feature",
            "statistic_name",
            "statistic",
            "p_value",
            "alpha",
            "threshold",
            "drift",
            "n_reference_used",
            "n_current_used",
            "min_detectable",
            "note",
        )
        if c in df.columns
    ]
    st.dataframe(df[cols], hide_index=True)
    if "p_value" in df.columns and df["p_value"].notna().any():
        pv = df.dropna(subset=["p_value"])
        chart = (
            alt.Chart(pv, title="p-value per detector")
            .mark_circle(size=140)
            .encode(
                x=alt.X("p_value:Q", scale=alt.Scale(type="log"), title="p-value (log scale)"),
                y=alt.Y("detector:N", title=None),
                color=alt.Color("drift:N", scale=alt.Scale(domain=[False, True], range=["#1b7f3b", "#b00020"])),
                tooltip=["detector:N", "p_value:Q", "drift:N"],
            )
            .properties(height=max(90, 32 * len(pv)))
        )
        alpha = doc.get("alpha_per_detector") if isinstance(doc, dict) else None
        if alpha:
            chart = alt.layer(
                chart,
                alt.Chart(pd.DataFrame({"alpha": [alpha]}))
                .mark_rule(strokeDash=[4, 3], color="#555")
                .encode(x="alpha:Q", tooltip=["alpha:Q"]),
            )
        st.altair_chart(chart, width="stretch")
else:
    not_in_run("drift verdicts")

st.subheader("Drift report")
html = artifact(b.run, "drift_html")
if html is None:
    not_in_run("drift.html")
else:
    st.caption(code_span(html, 300))
    page = html.read_bytes()
    # As a data: URL the report gets an opaque origin of its own: it can reach neither the app nor
    # its cookies, whatever sandbox flags the iframe carries; its own CSP lets no script run.
    if len(page) <= MAX_EMBEDDED_BYTES:
        st.iframe(data_url(page), height=900, alt="Drift report of this run")
    else:
        st.info(f"drift.html is {len(page) / 1e6:.1f} MB, too large to embed: download it to read it.")
    st.download_button("Download drift.html", page, file_name="drift.html", mime="text/html")
