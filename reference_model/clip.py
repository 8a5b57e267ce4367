"""CLIPScore and RefCLIPScore (Hessel et al., EMNLP 2021) with an image-text dual encoder that
transformers loads from a local folder (a ``CLIPModel`` or another model with ``get_image_features``
and ``get_text_features``), batched, on the model's device. Nothing is downloaded: every load is
``local_files_only``.

Definitions, as in the paper and its reference code (github.com/jmhessel/clipscore):

- ``cos(a, b)``: the cosine of the two L2-normalised projected embeddings;
- CLIPScore of a caption c of an image v: ``W * max(cos(v, c), 0)`` with ``W = 2.5``;
- RefCLIPScore with references R: the harmonic mean of CLIPScore(c, v) and
  ``max(max over r in R of cos(c, r), 0)``; ``W`` applies to the image side only, as in the
  reference code (``2 * a * b / (a + b)`` with ``a`` the image side already scaled by ``W``); the
  text side is clipped at 0 as the paper writes it (the reference code does not clip it, which
  differs only when every reference points away from the caption), and the harmonic mean of a 0 is 0.

torchmetrics' ``CLIPScore`` reports ``max(100 * mean(cos), 0)``: 40 times Hessel's figure per caption
(100 / W) where the cosine is not negative, and for a corpus the clip applied to the mean, not to each
caption. ``ClipScores.torchmetrics`` gives that figure beside Hessel's.

``EMBEDDED`` (``weights/clip-shapes``) is a small CLIP trained on the shapes world by
``python -m reference_model.train_clip``; its card is in ``MODEL_CARD.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image

from reference_model.device import pick_device

__all__ = [
    "W",
    "EMBEDDED",
    "EMBEDDED_DIR",
    "NotAClipError",
    "ClipScorer",
    "ClipScores",
    "clip_folder",
    "harmonic",
    "load_clip",
]

W = 2.5  # Hessel et al.'s weight of the image side (CLIP-S = W * max(cos, 0))
EMBEDDED = "embedded"
EMBEDDED_DIR = Path(__file__).parent / "weights" / "clip-shapes"


class NotAClipError(ValueError):
    """The folder exists but holds no image-text dual encoder transformers can load."""


def clip_folder(model: str | Path) -> Path:
    """The folder of ``model``: ``embedded`` is the shipped shapes encoder, anything else a path.
    A path that is not there is a ``FileNotFoundError`` naming it; a file, a ``NotAClipError``."""
    path = EMBEDDED_DIR if str(model) == EMBEDDED else Path(model).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{'the embedded CLIP' if str(model) == EMBEDDED else 'CLIP folder'} {path} not found")
    if not path.is_dir():
        raise NotAClipError(f"{path}: a file, not a model folder")
    return path


def harmonic(a: float, b: float) -> float:
    """The harmonic mean of two non-negative numbers; 0 when either is 0."""
    return 0.0 if a <= 0 or b <= 0 else 2 * a * b / (a + b)


@dataclass(frozen=True)
class ClipScores:
    """Per caption, in the order given: the image-caption cosine, CLIPScore (``W * max(cos, 0)``)
    and, with references, the best reference cosine (clipped at 0) and RefCLIPScore."""

    cosine: list[float]
    clip_score: list[float]
    ref_score: list[float] | None = None
    ref_clip_score: list[float] | None = None

    @property
    def mean_clip_score(self) -> float:
        return _mean(self.clip_score)

    @property
    def mean_ref_clip_score(self) -> float | None:
        return None if self.ref_clip_score is None else _mean(self.ref_clip_score)

    @property
    def torchmetrics(self) -> float:
        """What torchmetrics' ``CLIPScore`` computes on the same pairs: ``max(100 * mean(cos), 0)``."""
        return max(100.0 * _mean(self.cosine), 0.0)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values) if values else float("nan")


class ClipScorer:
    """An image-text dual encoder from a local folder and the scores above.

    ``prefix``: text put before every caption and reference (Hessel's code uses ``"A photo depicts"``;
    torchmetrics and the default here use none). ``batch``: images or texts per forward pass."""

    def __init__(self, model: str | Path = EMBEDDED, device: str | None = None, batch: int = 64, prefix: str = ""):
        if batch < 1:
            raise ValueError(f"batch must be at least 1 (got {batch})")
        self.folder = clip_folder(model)
        self.device = pick_device(device)
        self.model, self.image_processor, self.tokenizer = load_clip(self.folder)
        self.model = self.model.to(self.device).eval()
        self.batch = batch
        self.prefix = prefix.strip() + " " if prefix.strip() else ""
        self.max_tokens = _max_positions(self.model.config)
        self.name = EMBEDDED if self.folder == EMBEDDED_DIR else self.folder.name
        self.version = f"{self.name}-{_digest(self.folder)}"

    def describe(self) -> dict:
        return {
            "model": str(self.folder),
            "name": self.name,
            "version": self.version,
            "architecture": type(self.model).__name__,
            "device": self.device,
            "prefix": self.prefix.strip(),
            "w": W,
        }

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """L2-normalised image embeddings, one row per image (float32, on the CPU)."""
        rows = []
        for i in range(0, len(images), self.batch):
            chunk = [im.convert("RGB") for im in images[i : i + self.batch]]
            pixels = self.image_processor(images=chunk, return_tensors="pt")["pixel_values"]
            pixels = pixels.to(self.device, dtype=self.model.dtype)  # a checkpoint may load in float16
            rows.append(_features(self.model.get_image_features(pixel_values=pixels)))
        return _normalise(rows, self.model)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised text embeddings, one row per text (float32, on the CPU). A text longer than
        the model's positions is cut to them with its end-of-text token kept."""
        rows = []
        for i in range(0, len(texts), self.batch):
            chunk = [self.prefix + t for t in texts[i : i + self.batch]]
            enc = self.tokenizer(
                chunk,
                padding=True,
                truncation=self.max_tokens is not None,
                max_length=self.max_tokens,
                return_tensors="pt",
            )
            enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            rows.append(_features(self.model.get_text_features(**enc)))
        return _normalise(rows, self.model)

    def score(
        self,
        images: Sequence[Image.Image],
        captions: Sequence[str],
        references: Sequence[Sequence[str]] | None = None,
    ) -> ClipScores:
        """CLIPScore of ``captions[i]`` for ``images[i]``, and RefCLIPScore against ``references[i]``
        (at least one each) when given."""
        if len(images) != len(captions):
            raise ValueError(f"{len(images)} images but {len(captions)} captions")
        if references is not None and len(references) != len(captions):
            raise ValueError(f"{len(captions)} captions but {len(references)} reference lists")
        if not captions:
            return ClipScores([], [], [] if references is not None else None, [] if references is not None else None)
        cand = self.embed_texts(list(captions))
        cos = (self.embed_images(images) * cand).sum(dim=-1).tolist()
        clip = [W * max(c, 0.0) for c in cos]
        if references is None:
            return ClipScores(cos, clip)
        if any(len(r) == 0 for r in references):
            raise ValueError("every caption needs at least one reference for RefCLIPScore")
        flat = [r for refs in references for r in refs]
        ref_emb = self.embed_texts(flat)
        ref_side, at = [], 0
        for i, refs in enumerate(references):
            sims = ref_emb[at : at + len(refs)] @ cand[i]
            at += len(refs)
            ref_side.append(max(float(sims.max()), 0.0))
        return ClipScores(cos, clip, ref_side, [harmonic(a, b) for a, b in zip(clip, ref_side)])


def load_clip(folder: Path):
    """``(model, image_processor, tokenizer)`` from ``folder``, offline. ``NotAClipError`` when the
    folder is not a transformers model, or its model cannot embed both images and texts."""
    import transformers
    from transformers import AutoConfig, AutoModel

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise NotAClipError(f"{folder}: no config.json (not a transformers model folder)")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
        raise NotAClipError(f"{folder}: config.json unreadable: {_first_line(exc)}") from None
    kind = getattr(config, "model_type", None) or "unknown"
    try:
        model = AutoModel.from_pretrained(folder, local_files_only=True)
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise NotAClipError(f"{folder}: cannot load its {kind!r} model: {_first_line(exc)}") from None
    if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
        raise NotAClipError(
            f"{folder}: a {kind!r} model ({type(model).__name__}), not an image-text dual encoder such as CLIP"
        )
    image_processor, tokenizer = _processors(folder)
    return model, image_processor, tokenizer


def _processors(folder: Path):
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    kw = {"local_files_only": True}
    try:
        proc = AutoProcessor.from_pretrained(folder, **kw)
        if hasattr(proc, "image_processor") and hasattr(proc, "tokenizer"):
            return proc.image_processor, proc.tokenizer
    except (ValueError, KeyError, OSError, TypeError):
        pass
    try:
        return AutoImageProcessor.from_pretrained(folder, **kw), AutoTokenizer.from_pretrained(folder, **kw)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise NotAClipError(f"{folder}: no image processor and tokenizer: {_first_line(exc)}") from None


def _features(out) -> torch.Tensor:
    """The projected embedding: transformers 5 returns a model output holding it as ``pooler_output``
    (earlier versions return the tensor itself)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _normalise(rows: list[torch.Tensor], model) -> torch.Tensor:
    if not rows:
        dim = getattr(model.config, "projection_dim", 0) or 0
        return torch.zeros((0, dim))
    x = torch.cat(rows).float()
    return (x / x.norm(p=2, dim=-1, keepdim=True)).cpu()


def _max_positions(config) -> int | None:
    text = getattr(config, "text_config", None)
    n = getattr(text, "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def _digest(folder: Path) -> str:
    """The first 8 hex digits of the SHA-256 of the folder's weight files (names and contents)."""
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin")):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:8]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
