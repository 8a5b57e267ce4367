"""Rate captions: a person rates sampled captions of the run 1 to 5, appended to
``<run>/ratings.csv`` (read by the hybrid quality score), and accepts, corrects or rejects each,
appended to ``<run>/feedback.csv`` (read by the correction-rate SLI)."""

import zlib

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from board import artifact, board, not_in_run, read_records, show_image
from harness.report.markdown import code_span, inline_text
from harness.report.run import OutsideRoot
from harness.text import from_csv_cell
from ratings import FEEDBACK_NAME, RATINGS_NAME, FeedbackRow, RatingRow, append_feedback, append_rating

SAMPLE = 24

b = board()
run = b.run
st.title("Rate captions")
st.caption(
    f"Run `{run.name}`. Rate how well each caption describes its image: 1 (wrong) to 5 (perfect). "
    "Which model wrote the caption is not shown, so ratings stay blind."
)


@st.cache_data(show_spinner=False, max_entries=8)
def _dataset_images(folder: str) -> dict[str, str]:
    from harness.datasets import load_coco

    return {str(it.image_id): str(it.path) for it in load_coco(folder).items}


def candidates() -> list[dict]:
    """Captions with an image on disk: a seeded sample of the run's answered requests (images from
    the run's dataset folder), then the worst captions of the decision record."""
    out, seen = [], set()
    records, _ = read_records(run)
    dataset = artifact(run, "dataset")
    if records is not None and len(records) and dataset is not None and dataset.is_dir():
        try:
            images = _dataset_images(str(dataset))
        except Exception as exc:  # a damaged dataset folder: rate what the record names instead
            st.warning(f"{dataset}: {exc}")
            images = {}
        ok = records[(records["outcome"] == "ok") & records["caption"].notna()]
        ok = ok[ok["image_id"].astype(str).isin(images)].drop_duplicates(["image_id", "target"])
        if len(ok):
            rng = np.random.default_rng(zlib.crc32(run.name.encode()))
            pick = ok.iloc[rng.permutation(len(ok))[:SAMPLE]]
            for r in pick.itertuples():
                request_id = getattr(r, "request_id", None)
                out.append(
                    {
                        "image_id": str(r.image_id),
                        "target": str(r.target),
                        "caption": str(r.caption),
                        "image": images[str(r.image_id)],
                        "request_id": "" if request_id is None or pd.isna(request_id) else str(request_id),
                    }
                )
                seen.add((str(r.image_id), str(r.target)))
    for w in b.decision.get("worst_captions") or []:
        try:
            img = run.resolve(w.get("image_path"))
        except OutsideRoot:  # never opened, so never offered for rating
            continue
        key = (str(w.get("image_id")), str(w.get("target")))
        if img is not None and w.get("caption") and key not in seen:
            out.append(
                {
                    "image_id": key[0],
                    "target": key[1],
                    "caption": str(w["caption"]),
                    "image": str(img),
                    "request_id": "",
                }
            )
            seen.add(key)
    return out


items = candidates()
if not items:
    not_in_run("captions with images to rate")
    st.stop()

rater = st.text_input("Your name", key="rater", placeholder="who is rating")
pos_key = f"rate_pos::{run.path}"
pos = st.session_state.get(pos_key, 0) % len(items)
item = items[pos]

nav = st.columns([1, 1, 6])
if nav[0].button("◀ Previous", key="rate_prev"):
    st.session_state[pos_key] = (pos - 1) % len(items)
    st.rerun()
if nav[1].button("Next ▶", key="rate_next"):
    st.session_state[pos_key] = (pos + 1) % len(items)
    st.rerun()
nav[2].markdown(f"Caption **{pos + 1}** of {len(items)} · image {code_span(item['image_id'])}")

with st.form("rate_form", clear_on_submit=True):
    show_image(st, run, item["image"], 256)
    st.text(item["caption"])
    stars = st.feedback("stars", key="rate_stars")
    saved = st.form_submit_button("Save rating")


def _save(write, name: str, note: str) -> None:
    """Write a rating or a feedback row, then show ``note`` and move to the next caption; a file
    that cannot be written (e.g. a link: never written through) is an error on the page."""
    try:
        write()
    except OSError as exc:
        st.error(f"{name}: not saved ({inline_text(exc.strerror or exc)})")
    else:
        st.session_state["rate_note"] = note
        st.session_state[pos_key] = (pos + 1) % len(items)
        st.rerun()


if saved:
    if not rater.strip():
        st.error("Enter your name before saving a rating.")
    elif stars is None:
        st.error("Pick 1 to 5 stars before saving.")
    else:
        row = RatingRow(item["image_id"], rater.strip(), int(stars) + 1, item["target"], item["caption"])
        _save(lambda: append_rating(run.path, row), RATINGS_NAME, f"Saved {row.rating}/5 for image {row.image_id}.")
st.caption(
    "Would you publish this caption? Accept it, write a better one, or reject it "
    "(the correction-rate SLI counts these)."
)
with st.form("feedback_form", clear_on_submit=True):
    fixed = st.text_input("Your caption (to correct it)", key="feedback_caption")
    acts = st.columns(3)
    chosen = {
        "accepted": acts[0].form_submit_button("Accept caption"),
        "corrected": acts[1].form_submit_button("Save correction"),
        "rejected": acts[2].form_submit_button("Reject caption"),
    }
action = next((a for a, pressed in chosen.items() if pressed), None)
if action is not None:
    if not rater.strip():
        st.error("Enter your name before accepting, correcting or rejecting a caption.")
    elif action == "corrected" and not fixed.strip():
        st.error("Write your caption before saving a correction.")
    else:
        feedback = FeedbackRow(item["image_id"], item["request_id"], action, fixed, rater.strip(), item["target"])
        _save(
            lambda: append_feedback(run.path, feedback),
            FEEDBACK_NAME,
            f"Saved: {action} the caption of image {item['image_id']}.",
        )
note = st.session_state.pop("rate_note", None)
if note:
    st.success(note)

st.subheader("Ratings of this run")
path = artifact(run, "ratings")
if path is None:
    not_in_run(RATINGS_NAME)
else:
    try:
        ratings = pd.read_csv(path, dtype={"image_id": str, "rater": str})
        ratings = ratings.apply(lambda col: col.map(from_csv_cell) if col.dtype == object else col)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        st.error(f"{path}: unreadable ({exc})")
    else:
        st.caption(f"{len(ratings)} ratings by {ratings['rater'].nunique()} raters in `{path}`")
        if len(ratings):
            st.altair_chart(
                alt.Chart(ratings, title="Ratings")
                .mark_bar()
                .encode(
                    x=alt.X("rating:O", title="rating", scale=alt.Scale(domain=[1, 2, 3, 4, 5])),
                    y=alt.Y("count():Q", title="ratings"),
                    color="target:N",
                    xOffset="target:N",
                ),
                width="stretch",
            )
