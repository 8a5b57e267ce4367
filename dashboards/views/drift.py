"""Drift: each detector's verdict on canary outputs against baseline outputs, and the drift report;
the label-free quality of a drift report (CLIPScore and hallucination rate per window and time
bin, beside the confidence-based estimate), and its trend over the drift reports under the report
folder (``harness drift --image-store``, run on a schedule)."""

from pathlib import Path

import altair as alt
import pandas as pd
import streamlit as st

from board import artifact, board, data_url, not_in_run, read_json
from harness.report.markdown import code_span, inline_text
from harness.report.run import OutsideRoot, inside_root

# Chromium refuses URLs over 2 MiB; base64 makes a page 4/3 as long.
MAX_EMBEDDED_BYTES = 1_500_000


def _run_part(b) -> dict | None:
    """The run's drift: each detector's verdict, the p-values, drift.html; returns drift.json."""
    rec = b.decision
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

    return doc if isinstance(doc, dict) else None


def _report_frame(b) -> None:
    """The run's drift.html, embedded from a data: URL."""
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


def _when(t) -> pd.Timestamp | None:
    return None if t is None else pd.to_datetime(float(t), unit="s", utc=True)


def _trend_chart(bins: pd.DataFrame, key: str, title: str, colour: str = "window:N") -> None:
    rows = bins.dropna(subset=[key])
    if not len(rows):
        return
    chart = (
        alt.Chart(rows, title=title)
        .mark_line(point=True)
        .encode(
            x=alt.X("from:T", title="bin start (UTC)"),
            y=alt.Y(f"{key}:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.Color(colour, title=None),
            tooltip=["from:T", f"{key}:Q", colour],
        )
        .properties(height=220)
    )
    st.altair_chart(chart, width="stretch")


def _label_free(lf: dict) -> None:
    """A drift report's label-free section: each window's figures, their change, the trend."""
    st.subheader("Label-free quality")
    if lf.get("reason"):
        st.info(f"Label-free quality: no data: {inline_text(lf['reason'], 500)}")
        return
    clip = lf.get("clip") or {}
    st.caption(
        inline_text(
            "Each answered caption against the image its record names: CLIPScore "
            f"({clip.get('version') or 'not scored'}) and whether it names an object the image does not hold "
            "(hallucination rate); beside them the mean confidence and the confidence-based estimate. "
            f"Changes tested at alpha {lf.get('alpha')}; 'min_detectable' is the smallest change the two "
            "windows show with 80% power. None of it changes the drift verdict.",
            1000,
        )
    )
    for key in ("clip_reason", "hallucination_reason", "not_comparable"):
        if lf.get(key):
            st.caption(inline_text(lf[key], 500))
    windows = pd.DataFrame([{"window": k, **w} for k, w in (lf.get("windows") or {}).items()])
    if len(windows):
        keep = [
            "window",
            "n_records",
            "n_scored",
            "clip_score",
            "n_checked",
            "hallucination_rate",
            "mean_confidence",
            "quality_estimate",
            "no_image",
        ]
        st.dataframe(windows[[c for c in keep if c in windows.columns]], hide_index=True)
    change = [{"figure": k, **c} for k, c in (lf.get("change") or {}).items() if c]
    if change:
        st.dataframe(pd.DataFrame(change), hide_index=True)
    bins = pd.DataFrame((lf.get("trend") or {}).get("bins") or [])
    if len(bins):
        bins["from"] = pd.to_datetime(bins["start_unix"], unit="s", utc=True)
        _trend_chart(bins, "clip_score", "Mean CLIPScore per bin")
        _trend_chart(bins, "hallucination_rate", "Hallucination rate per bin")
        _trend_chart(bins, "mean_confidence", "Mean confidence per bin")


def _reports(root: Path) -> list[tuple[str, dict]]:
    """The drift reports directly under the report folder that carry label-free figures, oldest
    first (a report that is a link out of the root is not opened)."""
    found = []
    for path in sorted(root.glob("*/drift.json")):
        try:
            path = inside_root(root, path)
        except OutsideRoot:
            continue
        doc, _ = read_json(path)
        lf = doc.get("label_free") if isinstance(doc, dict) else None
        if isinstance(lf, dict) and lf.get("windows"):
            made = doc.get("created_unix")  # a report written before it had one: its file's time
            made = float(made) if isinstance(made, (int, float)) else path.stat().st_mtime
            found.append((path.parent.name, {**doc, "created_unix": made}))
    return sorted(found, key=lambda r: (r[1]["created_unix"], r[0]))


def _over_time(root: Path) -> None:
    """The label-free figures of every drift report under the report folder: a row per report,
    and the current windows' bins on one time axis."""
    found = _reports(root)
    if not found:
        st.caption(
            "Label-free quality over time: no drift report under the report folder carries it "
            "(harness drift --image-store DIR --out REPORTS/drift-DATE)."
        )
        return
    st.subheader("Label-free quality over time")
    st.caption(f"{len(found)} drift reports under the report folder, oldest first; the current window of each.")
    rows, bins = [], []
    for name, doc in found:
        lf = doc["label_free"]
        cur = (lf.get("windows") or {}).get("current") or {}
        change = lf.get("change") or {}
        rows.append(
            {
                "report": name,
                "made": _when(doc.get("created_unix")),
                "records": cur.get("n_records"),
                "clip_score": cur.get("clip_score"),
                "hallucination_rate": cur.get("hallucination_rate"),
                "mean_confidence": cur.get("mean_confidence"),
                "clip_score_change_p": (change.get("clip_score") or {}).get("p_value"),
                "hallucination_change_p": (change.get("hallucination_rate") or {}).get("p_value"),
            }
        )
        for b in (lf.get("trend") or {}).get("bins") or []:
            if b.get("window") == "current":
                bins.append({**b, "report": name})
    st.dataframe(pd.DataFrame(rows), hide_index=True)
    if bins:
        frame = pd.DataFrame(bins).drop_duplicates(subset=["start_unix"], keep="last")  # a later report's bin wins
        frame["from"] = pd.to_datetime(frame["start_unix"], unit="s", utc=True)
        _trend_chart(frame, "clip_score", "Mean CLIPScore, every report's current window", "report:N")
        _trend_chart(frame, "hallucination_rate", "Hallucination rate, every report's current window", "report:N")


b = board(need_run=False)
st.title("Drift")
doc = _run_part(b) if b.run is not None and b.run.record is not None else None
if b.run is None:
    st.info("No run to show: the report folder holds no run folder with a decision.json.")
if doc is not None:
    if isinstance(doc.get("label_free"), dict):
        _label_free(doc["label_free"])
    else:
        st.caption(
            "Label-free quality per window: not in this drift report (harness drift --image-store DIR adds it); "
            "a gate judges it image by image (the clipscore and hallucination metrics)."
        )
if b.run is not None:
    _report_frame(b)
_over_time(b.root)
