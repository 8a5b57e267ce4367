"""Debug view: per-target distributions of latency, confidence and per-image quality, and the
worst captions with their images (captions and references shown as plain text)."""

import altair as alt
import pandas as pd
import streamlit as st

from board import artifact, board, fmt, not_in_run, read_json, read_records, show_image
from charts import TARGET_COLOURS, histogram
from harness.report.markdown import code_span, inline_text

b = board()
rec = b.decision
st.title("Debug view")
st.caption(f"Run `{b.run.name}`")

st.subheader("Per-request distributions")
records, err = read_records(b.run)
if err:
    st.error(err)
elif records is None or len(records) == 0:
    not_in_run("request records (records.parquet)")
else:
    ok = records[records["outcome"] == "ok"]
    left, right = st.columns(2)
    left.altair_chart(
        histogram(ok, "latency_s", "Latency of answered requests", "latency (ms)", 1000.0), width="stretch"
    )
    if ok["confidence"].notna().any():
        right.altair_chart(histogram(ok, "confidence", "Confidence", "confidence"), width="stretch")
    else:
        right.info("confidence: not in this run")
    st.altair_chart(
        alt.Chart(records[["target", "outcome"]], title="Outcomes")
        .mark_bar()
        .encode(
            x=alt.X("count():Q", title="requests"),
            y=alt.Y("outcome:N", title=None),
            color=alt.Color("target:N", scale=TARGET_COLOURS),
            yOffset="target:N",
            tooltip=["target:N", "outcome:N", "count():Q"],
        ),
        width="stretch",
    )

st.subheader("Per-image quality")
qpath = artifact(b.run, "quality")
if qpath is None:
    not_in_run("quality.json")
else:
    doc, qerr = read_json(qpath)
    if qerr:
        st.error(qerr)
    else:
        per_target = {
            k: v
            for k, v in (doc.get("targets", doc) if isinstance(doc, dict) else {}).items()
            if isinstance(v, dict) and isinstance(v.get("per_image"), list)
        }
        if not per_target and isinstance(doc, dict) and isinstance(doc.get("per_image"), list):
            per_target = {"–": doc}
        rows = [dict(r, target=t) for t, d in per_target.items() for r in d["per_image"] if isinstance(r, dict)]
        qdf = pd.DataFrame(rows)
        if len(qdf) and "CIDEr-D" in qdf.columns:
            qdf = qdf.rename(columns={"CIDEr-D": "cider_d"})
            st.altair_chart(
                histogram(qdf, "cider_d", "CIDEr-D per image", "CIDEr-D", bins=30, count="images"), width="stretch"
            )
        else:
            not_in_run("per-image CIDEr-D")

st.subheader("Worst captions")
worst = rec.get("worst_captions") or []
if not worst:
    not_in_run("worst captions")
for w in worst:
    left, right = st.columns([1, 3])
    show_image(left, b.run, w.get("image_path"), 160)
    refs = w.get("references") or []
    right.markdown(
        f"**{inline_text(w.get('target'))}** · image {code_span(w.get('image_id'))} · "
        f"CIDEr-D {fmt(w.get('cider_d'))} · confidence {fmt(w.get('confidence'))}"
    )
    right.text(w.get("caption") or "(no caption)")
    if refs:
        right.text("references: " + "; ".join(map(str, refs[:5])))
