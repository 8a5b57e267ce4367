"""CLIPScore and RefCLIPScore (reference_model/clip.py, harness clipscore): the same figures as
torchmetrics' CLIPScore on a tiny randomly initialised CLIP built from a config and saved with an
offline tokenizer, Hessel's definitions (w = 2.5, harmonic mean), the embedded shapes encoder, and
the command's errors. Nothing is downloaded."""

from __future__ import annotations

import json
import math
import sys

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from cli_run import run_cli  # noqa: E402
from harness.datasets import generate_shapes  # noqa: E402
from harness.text import one_line  # noqa: E402
from reference_model.clip import ClipScorer, NotAClipError, W, harmonic  # noqa: E402
from reference_model.clip_eval import torchmetrics_clipscore  # noqa: E402
from reference_model.train_clip import build_processor, build_tokenizer  # noqa: E402

pytestmark = pytest.mark.slow  # transformers models built and run

WORDS = "a red blue green circle square triangle small large left of above the and".split()
CAPTIONS = [
    "a small red circle",
    "a large blue square",
    "a green triangle above a red circle",
    "a small blue circle left of a large green square",
    "the red square",
    "a large triangle and a small circle",
    "a blue circle",
    "a green square above the blue triangle",
]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A tiny random CLIP saved with its tokenizer and image processor, as a hub folder would hold."""
    from transformers import CLIPConfig, CLIPModel

    folder = tmp_path_factory.mktemp("tiny-clip")
    tok = build_tokenizer(WORDS)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    cfg = CLIPConfig(
        text_config=dict(small, vocab_size=len(tok), max_position_embeddings=32, **ids),
        vision_config=dict(small, image_size=32, patch_size=8),
        projection_dim=16,
    )
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(folder)
    build_processor(tok, side=32).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def images():
    return [s.image for s in generate_shapes(len(CAPTIONS), seed=3)]


def _chw(image):
    import numpy as np

    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)


def test_clipscore_equals_torchmetrics_on_a_tiny_random_clip(tiny_clip, images, monkeypatch):
    pytest.importorskip("torchmetrics")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ours = ClipScorer(tiny_clip, device="cpu", batch=3).score(
        images, CAPTIONS
    )  # batches of 3: batching changes nothing
    assert ours.clip_score == [W * max(c, 0.0) for c in ours.cosine]  # Hessel: w = 2.5
    metric = torchmetrics_clipscore(tiny_clip)
    assert metric is not None, "torchmetrics is a dev dependency"
    with torch.inference_mode():
        for image, caption, mine in zip(images, CAPTIONS, ours.clip_score):  # per caption
            metric.reset()
            metric.update(_chw(image), caption)
            # torchmetrics: max(100 * cos, 0), 100 / w = 40 times Hessel's CLIPScore
            assert float(metric.compute()) == pytest.approx(100 / W * mine, abs=1e-4)
        metric.reset()
        metric.update([_chw(i) for i in images], CAPTIONS)  # the corpus: max(100 * mean cos, 0)
        corpus = float(metric.compute())
    assert corpus == pytest.approx(ours.torchmetrics, abs=1e-4)
    # The corpus figures differ only where a cosine is negative: torchmetrics clips the mean,
    # Hessel each caption (here the random model gives both signs, so both are checked).
    mean_of_clipped = 100 / W * sum(ours.clip_score) / len(CAPTIONS)
    if min(ours.cosine) >= 0:
        assert corpus == pytest.approx(mean_of_clipped, abs=1e-4)
    else:
        assert mean_of_clipped > corpus - 1e-6


def test_refclipscore_is_the_harmonic_mean_of_the_image_side_and_the_best_reference(tiny_clip, images):
    scorer = ClipScorer(tiny_clip, device="cpu")
    refs = [[CAPTIONS[(i + 1) % 8], CAPTIONS[(i + 2) % 8]] for i in range(8)]
    got = scorer.score(images, CAPTIONS, refs)
    cand, img = scorer.embed_texts(CAPTIONS), scorer.embed_images(images)
    for i in range(8):
        a = W * max(float(img[i] @ cand[i]), 0.0)
        b = max(max(float(x) for x in scorer.embed_texts(refs[i]) @ cand[i]), 0.0)
        assert got.clip_score[i] == pytest.approx(a, abs=1e-6)
        assert got.ref_score[i] == pytest.approx(b, abs=1e-6)
        expect = 0.0 if a == 0 or b == 0 else 2 * a * b / (a + b)
        assert got.ref_clip_score[i] == pytest.approx(expect, abs=1e-6)
    # A reference equal to the caption: the text side is exactly 1, RefCLIPScore 2a / (a + 1).
    same = scorer.score(images, CAPTIONS, [[c, "a large red square"] for c in CAPTIONS])
    for a, b, r in zip(same.clip_score, same.ref_score, same.ref_clip_score):
        assert b == pytest.approx(1.0, abs=1e-6)
        assert r == pytest.approx(0.0 if a == 0 else 2 * a / (a + 1), abs=1e-6)
    assert harmonic(2.5 * 0.8, 0.6) == pytest.approx(2 * 2.0 * 0.6 / 2.6) and harmonic(0.0, 0.9) == 0.0


class _Fixed(ClipScorer):
    """The scorer's arithmetic on embeddings chosen by hand (unit vectors by name)."""

    def __init__(self, vectors):
        self.vectors = {k: torch.tensor(v, dtype=torch.float32) for k, v in vectors.items()}

    def embed_images(self, images):
        return torch.stack([self.vectors[i] for i in images])

    embed_texts = embed_images


def test_refclipscore_on_a_constructed_case():
    s = _Fixed(
        {
            "img": (1.0, 0.0),
            "cand": (0.6, 0.8),  # cos(img, cand) = 0.6: CLIPScore 2.5 * 0.6 = 1.5
            "ref1": (0.0, 1.0),  # cos(cand, ref1) = 0.8, the best reference
            "ref2": (1.0, 0.0),  # 0.6
            "away": (-0.6, -0.8),  # cos(cand, away) = -1
            "img2": (-1.0, 0.0),  # cos(img2, cand) = -0.6: CLIPScore 0
        }
    )
    got = s.score(["img", "img", "img2"], ["cand", "cand", "cand"], [["ref1", "ref2"], ["away"], ["ref1"]])
    assert got.cosine == pytest.approx([0.6, 0.6, -0.6])
    assert got.clip_score == pytest.approx([1.5, 1.5, 0.0])
    # The text side is the best reference, clipped at 0 (Hessel's paper; his code leaves -1 here).
    assert got.ref_score == pytest.approx([0.8, 0.0, 0.8])
    # RefCLIPScore: the harmonic mean, w on the image side only: 2 * 1.5 * 0.8 / 2.3; a 0 side gives 0.
    assert got.ref_clip_score == pytest.approx([2 * 1.5 * 0.8 / 2.3, 0.0, 0.0])
    assert got.mean_clip_score == pytest.approx(1.0)
    assert got.torchmetrics == pytest.approx(100 * 0.2)  # max(100 * mean cos, 0): 0.6, 0.6, -0.6


def test_a_caption_longer_than_the_model_keeps_its_end_token(tiny_clip, images):
    scorer = ClipScorer(tiny_clip, device="cpu")
    long = " and ".join(["a small red circle"] * 20)  # far past the 32 positions
    got = scorer.score(images[:1], [long])
    assert math.isfinite(got.cosine[0]) and -1.0 <= got.cosine[0] <= 1.0


def test_a_folder_that_is_not_a_clip_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ClipScorer(tmp_path / "absent", device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotAClipError, match="no config.json"):
        ClipScorer(tmp_path / "empty", device="cpu")
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ).save_pretrained(tmp_path / "bert")
    with pytest.raises(NotAClipError, match="'bert' model .*not an image-text dual encoder"):
        ClipScorer(tmp_path / "bert", device="cpu")


# --- the embedded encoder and the command --------------------------------------------------------


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory):
    """A shapes data set folder, and captions: the right one for half the images, another image's
    for the rest."""
    folder = tmp_path_factory.mktemp("shapes")
    code, _, err = run_cli(["dataset", "export", "--n", "24", "--seed", "777", "--out", folder / "set"])
    assert code == 0, err
    samples = list(generate_shapes(24, seed=777))
    rows = []
    for k, s in enumerate(samples):
        caption = s.captions[0] if k % 2 == 0 else samples[(k + 5) % 24].captions[0]
        rows.append({"image_id": s.image_id, "caption": caption})
    (folder / "captions.json").write_text(json.dumps(rows))
    return folder


def test_clipscore_command_with_the_embedded_encoder(shapes_set, tmp_path):
    code, out, err = run_cli(
        [
            "clipscore",
            "--captions", shapes_set / "captions.json",
            "--images", shapes_set / "set",
            "--references", shapes_set / "set",
            "--device", "cpu",
            "--batch", "5",
            "--out", tmp_path / "out",
        ]
    )  # fmt: skip
    assert code == 0, err
    assert "CLIPScore (embedded, w = 2.5)" in out and "RefCLIPScore" in out
    doc = json.loads((tmp_path / "out" / "clipscore.json").read_text())
    assert doc["n_captions"] == 24 and doc["w"] == 2.5 and doc["model"]["name"] == "embedded"
    rows = doc["captions"]
    right = [r["clip_score"] for k, r in enumerate(rows) if k % 2 == 0]
    wrong = [r["clip_score"] for k, r in enumerate(rows) if k % 2 == 1]
    assert sum(right) / len(right) > sum(wrong) / len(wrong) + 0.5  # the embedded encoder tells them apart
    assert doc["clip_score"] == pytest.approx(sum(r["clip_score"] for r in rows) / 24, abs=1e-5)
    assert doc["ref_clip_score"] == pytest.approx(sum(r["ref_clip_score"] for r in rows) / 24, abs=1e-5)
    for r in rows:
        assert r["clip_score"] == pytest.approx(W * max(r["cosine"], 0), abs=1e-5)
        assert r["ref_clip_score"] == pytest.approx(harmonic(r["clip_score"], r["ref_score"]), abs=1e-5)


def test_the_harness_api_scores_pil_images(shapes_set):
    from harness.quality.clipscore import clip_scores

    samples = list(generate_shapes(4, seed=777))
    report = clip_scores([s.image for s in samples], [s.captions[0] for s in samples], [s.captions for s in samples])
    assert report.n == 4 and report.clip_score > 0 and report.ref_clip_score is not None
    assert report.to_dict()["torchmetrics_clip_score"] == pytest.approx(report.torchmetrics_clip_score, abs=1e-5)


def _argv(shapes_set, tmp_path, clip):
    return [
        "clipscore", "--captions", shapes_set / "captions.json", "--images", shapes_set / "set",
        "--clip", clip, "--device", "cpu", "--out", tmp_path / "out",
    ]  # fmt: skip


def test_a_missing_clip_folder_is_one_line_and_exit_66(shapes_set, tmp_path):
    code, _, err = run_cli(_argv(shapes_set, tmp_path, tmp_path / "no-such-clip"))
    assert code == 66, err
    assert one_line(err) == f"harness clipscore: error: CLIP folder {tmp_path / 'no-such-clip'} not found"
    assert not (tmp_path / "out" / "clipscore.json").exists()


def test_a_folder_of_another_architecture_is_one_line_and_exit_65(shapes_set, tmp_path):
    from transformers import BertConfig, BertModel

    BertModel(
        BertConfig(vocab_size=16, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8)
    ).save_pretrained(tmp_path / "bert")
    code, _, err = run_cli(_argv(shapes_set, tmp_path, tmp_path / "bert"))
    assert code == 65, err
    assert len(err.strip().splitlines()) == 1
    assert "'bert' model (BertModel), not an image-text dual encoder such as CLIP" in err


def test_without_torch_it_is_one_line_naming_the_extra_and_exit_69(shapes_set, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # as if not installed
    code, _, err = run_cli(_argv(shapes_set, tmp_path, "embedded"))
    assert code == 69, err
    assert one_line(err) == (
        "harness clipscore: error: CLIPScore needs the 'model' extra (torch is not installed): "
        "pip install 'caption-slo-harness[model]'"
    )


def test_import_harness_brings_no_torch():
    import subprocess

    code = "import sys, harness, harness.quality.clipscore, harness.cli.clipscore; print('torch' in sys.modules, 'transformers' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False False", done.stderr


def test_the_images_an_evaluation_sent_are_scored_and_an_undecodable_one_left_out():
    import io
    from types import SimpleNamespace

    from harness.quality.clipscore import load_clip_scorer, score_sent_images

    samples = list(generate_shapes(3, seed=777))

    def png(image):
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return buf.getvalue()

    sent = [SimpleNamespace(image_id=s.image_id, content=png(s.image)) for s in samples]
    sent.append(SimpleNamespace(image_id=99, content=b"not an image"))
    candidates = {s.image_id: s.captions[0] for s in samples[:2]} | {99: "a red circle"}  # image 2: no caption
    references = {s.image_id: s.captions for s in samples} | {99: ["a red circle"]}
    report = score_sent_images(load_clip_scorer("embedded", "cpu"), sent, candidates, references)
    assert [c.image_id for c in report.captions] == [0, 1]
    assert report.ref_clip_score is not None
    assert report.notes == ["CLIPScore: 1 images not decodable, left out (first: 99)"]


def test_the_training_script_writes_a_folder_the_loader_reads(tmp_path):
    from reference_model.train_clip import shapes_words, train

    tok = build_tokenizer(shapes_words())  # every word of the world one token, any other text bytes
    assert tok.convert_ids_to_tokens(tok("a hexagon, zebra")["input_ids"])[1:-1] == [
        "a</w>",
        "hexagon</w>",
        ",</w>",
        "z",
        "e",
        "b",
        "r",
        "a</w>",
    ]
    summary = train(steps=2, batch=8, out=tmp_path / "clip", log=lambda _: None)
    assert summary["steps"] == 2 and 0 <= summary["held_out"]["retrieval_i2t_top1"] <= 1
    assert json.loads((tmp_path / "clip" / "training.json").read_text())["parameters"] == summary["parameters"]
    got = ClipScorer(tmp_path / "clip", device="cpu").score([s.image for s in generate_shapes(2, seed=1)], ["a", "b"])
    assert len(got.clip_score) == 2
