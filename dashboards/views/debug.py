"""Debug view: per-target distributions of latency, confidence and per-image quality, the slowest
requests with their trace ids and, when the run folder holds the server's spans (``spans.jsonl``),
the steps each spent its time in, and the worst captions with their images (captions, references,
ids and span names shown as plain text)."""

import altair as alt
import pandas as pd
import streamlit as st

from board import artifact, board, fmt, not_in_run, read_json, read_records, show_image
from charts import TARGET_COLOURS, histogram
from harness.report.markdown import code_span, inline_text
from harness.report.spans import SPANS_JSONL, read_spans, server_span, span_tree

SLOWEST = 10  # the slowest requests listed with their traces


@st.cache_data(show_spinner=False, max_entries=8)
def _spans(path: str, mtime: int, size: int, trace_ids: tuple[str, ...]):
    """The spans of ``trace_ids`` in the spans file, cached by path, stamp and traces."""
    return read_spans(path, trace_ids)


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

if records is not None and len(records):
    st.subheader("Slowest requests")
    slow = records.sort_values("latency_s", ascending=False, kind="stable").head(SLOWEST)
    traces = [t for t in slow["trace_id"] if isinstance(t, str)] if "trace_id" in slow else []
    spans_path = artifact(b.run, "spans")
    spans: dict = {}
    if spans_path is not None and traces:
        stat = spans_path.stat()
        try:
            spans = _spans(str(spans_path), stat.st_mtime_ns, stat.st_size, tuple(traces))
        except OSError as exc:
            st.warning(f"{SPANS_JSONL}: unreadable ({inline_text(exc, 200)})")
    rows = []
    for r in slow.itertuples(index=False):
        trace = getattr(r, "trace_id", None)
        trace = trace if isinstance(trace, str) else None
        root = server_span(spans.get(trace, [])) if trace else None
        rows.append(
            {
                "target": r.target,
                "request_id": r.request_id,
                "outcome": r.outcome,
                "status": r.status,
                "latency (ms)": round(float(r.latency_s) * 1000.0, 1),
                "server (ms)": round(root.duration_ms, 1) if root is not None else None,
                "trace_id": trace,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    if not traces:
        st.caption("These records carry no trace ids (written before the harness sent traceparent).")
    elif spans_path is None:
        st.caption(
            f"No {SPANS_JSONL} in this run: start the reference server with `--spans-file RUN/{SPANS_JSONL}` "
            "(or read the trace ids in your tracing backend)."
        )
    for row in rows:
        found = spans.get(row["trace_id"]) if row["trace_id"] else None
        if not found:
            continue
        with st.expander(f"{inline_text(row['request_id'], 80)} · {row['latency (ms)']} ms · {len(found)} spans"):
            st.dataframe(pd.DataFrame(span_tree(found)), hide_index=True, width="stretch")

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
