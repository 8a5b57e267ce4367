"""Canary decision: the verdict, why, every metric's comparison, the group scores, what the run
could detect, the output checks' findings, summary.md. Text that came from a target is shown as
plain text, never as markdown."""

import json

import pandas as pd
import streamlit as st

from board import artifact, board, fmt, not_in_run, read_text, verdict_banner
from charts import bars
from harness.report.markdown import code_span, inline_text

b = board()
rec = b.decision
st.title("Canary decision")
st.caption(f"Run `{b.run.name}`")
verdict_banner(rec)

targets = (rec.get("inputs") or {}).get("targets") or {}
cols = st.columns(3)
cols[0].metric("Score", fmt(rec.get("score")))
for col, name in zip(cols[1:], ("baseline", "canary")):
    t = targets.get(name) or {}
    # A metric's value is markdown: the version a target reported is escaped to plain text.
    spoken = [
        f"{label} {code_span(t[key], 300)}"
        for key, label in (("url", "at"), ("protocol", "protocol"), ("model", "model"))
        if t.get(key)
    ]
    col.metric(
        f"{name.capitalize()} model",
        inline_text(t.get("model_version"), 120),
        help=", ".join(spoken) or None,  # where it was reached and how (the protocol, the model asked for)
    )

st.subheader("Why")
reasons = rec.get("reasons") or []
st.text("\n".join(f"• {r}" for r in reasons) if reasons else "No reasons recorded.")

st.subheader("Metrics")
metrics = rec.get("metrics") or []
if metrics:
    order = [
        "name",
        "group",
        "classification",
        "critical",
        "baseline",
        "canary",
        "effect",
        "effect_low",
        "effect_high",
        "tolerance",
        "direction",
        "unit",
        "test",
        "p_value",
        "n_baseline",
        "n_canary",
        "reason",
        "detectable",
        "mde",
        "must_detect",
        "adequate",
    ]
    df = pd.DataFrame(metrics)
    if "details" in df.columns:
        df["details"] = df["details"].map(lambda d: json.dumps(d, sort_keys=True) if d else "")
    if "segments" in df.columns:  # each paired metric's tests per segment: a table of their own below
        df["segments"] = df["segments"].map(
            lambda segs: ", ".join(f"{s['segment']}: {s['classification']}" for s in segs) if segs else ""
        )
    df = df[[c for c in order if c in df.columns] + [c for c in df.columns if c not in order]]
    st.dataframe(
        df,
        hide_index=True,
        column_config={
            "effect_low": st.column_config.NumberColumn("CI low", format="%.4g"),
            "effect_high": st.column_config.NumberColumn("CI high", format="%.4g"),
            "p_value": st.column_config.NumberColumn("p", format="%.3g"),
            "baseline": st.column_config.NumberColumn(format="%.4g"),
            "canary": st.column_config.NumberColumn(format="%.4g"),
            "effect": st.column_config.NumberColumn(format="%.4g"),
            "tolerance": st.column_config.NumberColumn(format="%.4g"),
        },
    )
    by_segment = [
        {"metric": m["name"], **{k: v for k, v in seg.items() if k != "details"}}
        for m in metrics
        for seg in m.get("segments") or []
    ]
    if by_segment:
        st.subheader("By segment")
        st.caption(
            "Each paired metric's test within each segment of the data set; p Holm-adjusted over the "
            "segments tested. A failed segment fails the metric."
        )
        st.dataframe(
            pd.DataFrame(by_segment),
            hide_index=True,
            column_config={
                "p_value": st.column_config.NumberColumn("p (Holm)", format="%.3g"),
                "p_unadjusted": st.column_config.NumberColumn("p (own)", format="%.3g"),
                "baseline": st.column_config.NumberColumn(format="%.4g"),
                "canary": st.column_config.NumberColumn(format="%.4g"),
                "effect": st.column_config.NumberColumn(format="%.4g"),
            },
        )
else:
    not_in_run("metrics")

groups = rec.get("groups") or []
th = rec.get("thresholds") or {}
if groups:
    gdf = pd.DataFrame(groups).dropna(subset=["score"])
    rules = [(th[k], lab) for k, lab in (("pass", "promote"), ("marginal", "hold")) if th.get(k) is not None]
    if len(gdf):
        st.altair_chart(
            bars(gdf, "name", "score", "Group scores", "score (0-100)", rules, colour=None, fmt=".0f"), width="stretch"
        )
    empty = [g["name"] for g in groups if g.get("score") is None]
    if empty:
        st.caption("No data for group " + ", ".join(empty))
else:
    not_in_run("group scores")
if th:
    st.caption(
        f"Promote at {th.get('pass', '–')}, hold from {th.get('marginal', '–')}; "
        f"tests at {fmt(th.get('confidence'), '%')} confidence."
    )

st.subheader("What this run could detect")
power = rec.get("power") or []
if power:
    st.dataframe(
        pd.DataFrame(power),
        hide_index=True,
        column_config={
            "mde": st.column_config.NumberColumn("smallest effect", format="%.4g"),
            "must_detect": st.column_config.NumberColumn("must detect", format="%.4g"),
        },
    )
else:
    not_in_run("power figures")

figures = rec.get("figures") or {}
label_free = [
    {
        "target": t,
        "clip_score": (figures.get(t) or {}).get("clip_score"),
        "chair_s": (figures.get(t) or {}).get("chair_s"),
        "chair_i": (figures.get(t) or {}).get("chair_i"),
    }
    for t in ("baseline", "canary")
]
if any(v is not None for row in label_free for k, v in row.items() if k != "target"):
    st.subheader("Reference-free quality")
    clip = (rec.get("inputs") or {}).get("clip")
    st.caption(
        "Over the evaluation set, without reference captions: mean CLIPScore of each caption against its own "
        f"image (encoder {code_span(clip)}), and CHAIR (objects named that the image does not hold). "
        "The clipscore and hallucination metrics above judge them image by image."
    )
    st.dataframe(
        pd.DataFrame(label_free),
        hide_index=True,
        column_config={k: st.column_config.NumberColumn(format="%.4g") for k in ("clip_score", "chair_s", "chair_i")},
    )

found = rec.get("findings") or []
if found:
    st.subheader("Findings")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "target": f["target"],
                    "check": f["check"],
                    "answers flagged": f["count"],
                    "answers": f["answers"],
                    "image_id": ex.get("image_id"),
                    "caption": ex.get("caption"),
                    "match": ex.get("match"),
                }
                for f in found
                for ex in (f.get("examples") or [{}])
            ]
        ),
        hide_index=True,
    )

with st.expander("What ran"):
    st.json(rec.get("inputs") or {})

st.subheader("summary.md")
summary = artifact(b.run, "summary_md")
if summary is None:
    not_in_run("summary.md")
else:
    st.markdown(read_text(summary))
