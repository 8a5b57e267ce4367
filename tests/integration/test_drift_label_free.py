"""Label-free quality of traffic in the drift report, on records built from data whose images are
known: 20 images of the shapes world exported with their objects (``instances.json``), records
naming them by ``image_id``. The reference window's captions are the images' own; in the current
window a quarter of the captions add "and a green heart" (a shape the world never draws), all in
its last day. The hallucination rate, its Fisher test and its trend are exact; CLIPScore with the
embedded encoder is each distinct caption's score against its image, averaged over the records.
Without an image store, or without image ids, the section says why it has no data."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.datasets import generate_shapes, write_coco
from harness.drift.label_free import (
    NO_IMAGE_IDS,
    NO_STORE,
    WindowScores,
    label_free_section,
    score_window,
    trend_step,
)
from harness.quality.image_store import ImageStore
from harness.records import RecordWriter, RequestRecord

pytest.importorskip("torch")
pytestmark = pytest.mark.slow  # the embedded encoder, and whole drift runs

N_IMAGES, PER_WINDOW, DAY = 20, 40, 86400.0
T0 = 1_700_006_400.0  # a midnight, UTC
SAMPLES = list(generate_shapes(N_IMAGES, seed=1))
HEART = " and a green heart"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("store") / "<b>store"  # a folder name that is markup
    write_coco(SAMPLES, folder, {"name": "shapes", "seed": 1, "n": N_IMAGES})
    return folder


def _frame(start_day: float, hearts: int) -> pd.DataFrame:
    """One window of 40 answered records over four days, image i % 20 in record i: 30 records
    over its first three days, 10 in its last; the last ``hearts`` records (in its last day) add a
    green heart to their caption."""
    rows = []
    for i in range(PER_WINDOW):
        s = SAMPLES[i % N_IMAGES]
        day = start_day + (i / 10 if i < 30 else 3 + (i - 30) / 10)
        caption = s.captions[0] + (HEART if i >= PER_WINDOW - hearts else "")
        rows.append({"t_start": T0 + day * DAY, "image_id": str(s.image_id), "caption": caption, "confidence": 0.9})
    return pd.DataFrame(rows)


def _write(path: Path, df: pd.DataFrame, run: str, image_ids: bool = True) -> Path:
    with RecordWriter(path) as w:
        for i, r in enumerate(df.itertuples()):
            w.write(
                RequestRecord(
                    run_id=run,
                    target="production",
                    scenario="traffic",
                    request_id=f"{run}-{i}",
                    image_id=r.image_id if image_ids else None,
                    t_start=r.t_start,
                    latency_s=0.02,
                    status=200,
                    outcome="ok",
                    caption=r.caption,
                    confidence=r.confidence,
                    model_version="tiny",
                )
            )
    return path


def test_the_windows_figures_tests_and_trend_are_those_of_the_records(store):
    from harness.quality.clipscore import shared_scorer

    scorer = shared_scorer("embedded")
    s = ImageStore.open(store)
    assert s.objects is not None and s.objects.vocabulary.name == "shapes"
    ref, cur = score_window(_frame(0, 0), s, scorer), score_window(_frame(4, 10), s, scorer)
    assert (ref.n_records, ref.named, ref.no_image, len(ref.clip), len(ref.hallucinated)) == (40, 40, 0, 40, 40)
    assert ref.hallucinated.sum() == 0 and cur.hallucinated.sum() == 10
    # CLIPScore per record: its (image, caption) scored once, as the encoder scores it alone.
    direct = scorer.score([s.read(str(x.image_id)) for x in SAMPLES], [x.captions[0] for x in SAMPLES]).clip_score
    assert ref.clip == pytest.approx(np.tile(direct, 2), abs=1e-5)
    lf = label_free_section(
        {"reference": ref, "current": cur},
        store=s.describe(),
        clip=scorer.describe(),
        clip_reason=None,
        hallucination_reason=None,
        alpha=0.05,
    )
    w = lf["windows"]
    assert w["reference"]["hallucination_rate"] == 0.0 and w["current"]["hallucination_rate"] == 0.25
    assert w["reference"]["hallucination_rate_ci"][0] == 0.0
    h = lf["change"]["hallucination_rate"]
    # Fisher's exact test, equal row totals: both tails of C(40,10)C(40,0)/C(80,10).
    assert h["effect"] == 0.25 and h["p_value"] == pytest.approx(2 * comb(40, 10) / comb(80, 10), rel=1e-9)
    assert h["significant"] and 0 < h["min_detectable"] < 0.25
    c = lf["change"]["clip_score"]
    assert c["test"] == "welch_t" and c["effect"] == pytest.approx(float(cur.clip.mean() - ref.clip.mean()))
    assert c["effect"] < 0 and c["min_detectable"] > 0
    # The trend: four days a window, bins of 6 h (the first step giving at most 24 bins a window).
    assert lf["trend"]["step_s"] == trend_step([(0.0, 4 * DAY)]) == 6 * 3600
    bins = lf["trend"]["bins"]
    for name in ("reference", "current"):
        mine = [b for b in bins if b["window"] == name]
        assert sum(b["n_checked"] for b in mine) == 40 and sum(b["n_scored"] for b in mine) == 40
        assert [b["start_unix"] for b in mine] == sorted(b["start_unix"] for b in mine)
    late = [b for b in bins if b["window"] == "current" and b["hallucination_rate"]]
    assert late and all(b["start_unix"] >= T0 + 7 * DAY for b in late)  # only the last day's bins


def test_harness_drift_writes_the_section_in_every_rendering(store, tmp_path):
    ref = _write(tmp_path / "ref" / "records.jsonl", _frame(0, 0), "ref")
    cur = _write(tmp_path / "cur" / "records.jsonl", _frame(4, 10), "cur")
    args = ["--image-store", str(store), "--no-sentence-embeddings"]
    assert main(["drift", "--reference", str(ref), "--current", str(cur), "--out", str(tmp_path / "r"), *args]) == 0
    d = json.loads((tmp_path / "r" / "drift.json").read_text())
    assert isinstance(d["created_unix"], float)
    lf = d["label_free"]
    assert lf["reason"] is None and lf["store"]["objects"] == "shapes" and lf["clip"]["version"].startswith("embedded-")
    assert lf["windows"]["current"]["hallucinated"] == 10 and lf["change"]["hallucination_rate"]["significant"]
    md = (tmp_path / "r" / "drift.md").read_text()
    assert "## Label-free quality" in md and "| current | 40 | 40 |" in md and "25.00% [" in md
    assert "Trend, bins of 6h (UTC):" in md and "\\<b\\>store" not in md and "&lt;b&gt;store" in md
    page = (tmp_path / "r" / "drift.html").read_text()
    assert "<h2>Label-free quality</h2>" in page and "Mean CLIPScore per bin" in page
    assert "<b>store" not in page and "&lt;b&gt;store" in page  # the store's name, escaped
    # A saved reference keeps the reference window's figures for the runs that load it.
    assert (
        main(
            [
                "drift",
                "--reference",
                str(ref),
                "--current",
                str(cur),
                "--out",
                str(tmp_path / "s"),
                "--save-reference",
                str(tmp_path / "saved"),
                *args,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "drift",
                "--reference",
                str(tmp_path / "saved"),
                "--current",
                str(cur),
                "--out",
                str(tmp_path / "t"),
                *args,
                "--clip",
                "off",
            ]
        )
        == 0
    )
    again = json.loads((tmp_path / "t" / "drift.json").read_text())["label_free"]
    assert again["windows"]["reference"] == lf["windows"]["reference"]
    assert again["windows"]["current"]["n_scored"] == 0 and again["clip_reason"] == "CLIPScore: turned off (--clip off)"
    assert (
        again["change"]["clip_score"] is None
        and again["change"]["hallucination_rate"] == lf["change"]["hallucination_rate"]
    )


def test_without_a_store_or_image_ids_the_section_says_why(store, tmp_path):
    ref = _write(tmp_path / "ref" / "records.jsonl", _frame(0, 0), "ref")
    bare = _write(tmp_path / "bare" / "records.jsonl", _frame(4, 0), "bare", image_ids=False)
    assert (
        main(
            [
                "drift",
                "--reference",
                str(ref),
                "--current",
                str(ref),
                "--out",
                str(tmp_path / "a"),
                "--no-sentence-embeddings",
            ]
        )
        == 0
    )
    lf = json.loads((tmp_path / "a" / "drift.json").read_text())["label_free"]
    assert lf["reason"] == NO_STORE and lf["windows"] == {}
    said = NO_STORE.replace("(", "\\(").replace(")", "\\)")  # as markdown escapes it
    assert f"No data: {said}." in (tmp_path / "a" / "drift.md").read_text()
    assert (
        main(
            [
                "drift",
                "--reference",
                str(ref),
                "--current",
                str(bare),
                "--out",
                str(tmp_path / "b"),
                "--image-store",
                str(store),
                "--clip",
                "off",
                "--no-sentence-embeddings",
            ]
        )
        == 0
    )
    lf = json.loads((tmp_path / "b" / "drift.json").read_text())["label_free"]
    assert lf["windows"]["current"]["named"] == 0 and lf["windows"]["current"]["n_checked"] == 0
    assert (
        main(
            [
                "drift",
                "--reference",
                str(bare),
                "--current",
                str(bare),
                "--out",
                str(tmp_path / "c"),
                "--no-sentence-embeddings",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "c" / "drift.json").read_text())["label_free"]["reason"] == NO_IMAGE_IDS


def test_a_plain_image_folder_is_looked_up_by_plain_names_only(tmp_path):
    from PIL import Image

    folder, outside = tmp_path / "plain", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    for name in ("7.png", "8.jpg"):
        Image.new("RGB", (8, 8)).save(folder / name)
    Image.new("RGB", (8, 8)).save(outside / "9.png")
    (folder / "9.png").symlink_to(outside / "9.png")
    s = ImageStore.open(folder)
    assert s.objects is None and s.kind == "plain"
    assert s.path("7") == folder / "7.png" and s.path("8") == folder / "8.jpg"
    assert [s.path(i) for i in ("../outside/9", "/etc/passwd", ".hidden", "missing")] == [None] * 4
    assert s.read("7").size == (8, 8) and s.read("9") is None  # a link out of the folder is not read
    df = pd.DataFrame(
        {
            "t_start": [T0] * 4,
            "image_id": ["7", "9", "../outside/9", None],
            "caption": ["a"] * 4,
            "confidence": [0.5] * 4,
        }
    )
    w = score_window(df, s, None)
    assert (w.named, w.no_image, len(w.clip), len(w.hallucinated)) == (3, 1, 0, 0)
    assert isinstance(w, WindowScores) and len(w.confidence) == 4


def test_a_missing_store_or_clip_folder_stops_before_any_work(store, tmp_path):
    from cli_run import run_cli

    ref = _write(tmp_path / "ref" / "records.jsonl", _frame(0, 0), "ref")
    drift = ["drift", "--reference", ref, "--current", ref, "--out", tmp_path / "d"]
    code, _, err = run_cli([*drift, "--image-store", tmp_path / "nowhere"])
    assert code == 66 and "images folder not found" in err
    code, _, err = run_cli([*drift, "--image-store", store, "--clip", tmp_path / "no-clip"])
    assert code == 66 and "CLIP folder" in err and not (tmp_path / "d" / "drift.json").exists()
    gate = ["gate", "--baseline", "http://127.0.0.1:9", "--canary", "http://127.0.0.1:9", "--out", tmp_path / "g"]
    code, _, err = run_cli([*gate, "--clip", tmp_path / "no-clip"])
    assert code == 66 and "CLIP folder" in err and not (tmp_path / "g" / "decision.json").exists()
