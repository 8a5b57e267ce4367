"""CLIPScore and RefCLIPScore of captions (Hessel et al., EMNLP 2021) with a local CLIP: the
harness's side. The model runs in ``reference_model.clip``, imported only when something is
scored, so ``import harness`` never brings torch or transformers.

Per caption: the image-caption cosine, CLIPScore = 2.5 * max(cos, 0), and, with references, the
best reference cosine (clipped at 0) and RefCLIPScore, their harmonic mean; for the corpus, the
means, and torchmetrics' figure on the same pairs (max(100 * mean cos, 0)). The model is
``embedded`` (the shapes encoder shipped with the reference model) or a local folder.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from harness.errors import DataError, InputMissingError, MissingExtraError, UsageError, require_extra

__all__ = [
    "CLIPSCORE_JSON",
    "W",
    "CaptionClipScore",
    "ClipScoreReport",
    "load_clip_scorer",
    "shared_scorer",
    "clip_scores",
    "score_pairs",
    "score_items",
    "score_sent_images",
    "write_clipscore",
]

CLIPSCORE_JSON = "clipscore.json"
W = 2.5  # = reference_model.clip.W, Hessel et al.'s weight (kept here so no torch is imported to say it)
DEFINITIONS = {
    "clip_score": "2.5 * max(cos(image, caption), 0), per caption; the corpus figure is the mean (Hessel et al. 2021)",
    "ref_score": "max(max over references of cos(caption, reference), 0)",
    "ref_clip_score": "harmonic mean of clip_score and ref_score (0 when either is 0)",
    "torchmetrics_clip_score": "max(100 * mean cos(image, caption), 0): torchmetrics' CLIPScore on the same pairs",
}


@dataclass(frozen=True)
class CaptionClipScore:
    image_id: Any
    caption: str
    cosine: float
    clip_score: float
    ref_score: float | None = None
    ref_clip_score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "caption": self.caption,
            "cosine": round(self.cosine, 6),
            "clip_score": round(self.clip_score, 6),
            "ref_score": None if self.ref_score is None else round(self.ref_score, 6),
            "ref_clip_score": None if self.ref_clip_score is None else round(self.ref_clip_score, 6),
        }


@dataclass(frozen=True)
class ClipScoreReport:
    """Every caption's scores, the corpus means and the model that gave them."""

    model: dict[str, Any]  # ClipScorer.describe()
    captions: list[CaptionClipScore]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.captions)

    @property
    def clip_score(self) -> float | None:
        return _mean([c.clip_score for c in self.captions])

    @property
    def ref_clip_score(self) -> float | None:
        values = [c.ref_clip_score for c in self.captions if c.ref_clip_score is not None]
        return _mean(values) if values and len(values) == self.n else None

    @property
    def mean_cosine(self) -> float | None:
        return _mean([c.cosine for c in self.captions])

    @property
    def torchmetrics_clip_score(self) -> float | None:
        cos = self.mean_cosine
        return None if cos is None else max(100.0 * cos, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": "clipscore",
            "model": self.model,
            "w": W,
            "definitions": DEFINITIONS,
            "n_captions": self.n,
            "clip_score": _round(self.clip_score),
            "ref_clip_score": _round(self.ref_clip_score),
            "mean_cosine": _round(self.mean_cosine),
            "torchmetrics_clip_score": _round(self.torchmetrics_clip_score),
            "seconds": round(self.seconds, 3),
            "images_per_s": round(self.n / self.seconds, 1) if self.seconds > 0 else None,
            "notes": list(self.notes),
            "captions": [c.to_dict() for c in self.captions],
        }

    def table(self) -> str:
        name = self.model.get("name", "?")
        lines = [
            f"CLIPScore ({name}, w = {W}): {self.clip_score:.4f} over {self.n} captions"
            f"  (torchmetrics' scale, 100 * mean cos: {self.torchmetrics_clip_score:.2f})"
        ]
        if self.ref_clip_score is not None:
            lines.append(f"RefCLIPScore: {self.ref_clip_score:.4f}")
        return "\n".join(lines + self.notes)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 6)


def load_clip_scorer(model: str | Path = "embedded", device: str | None = None, batch: int = 64, prefix: str = ""):
    """A ``reference_model.clip.ClipScorer``. A folder that is not there is ``InputMissingError``
    (66); one that is not an image-text encoder, ``DataError`` (65); without torch or transformers,
    ``MissingExtraError`` (69); a device that is not there, ``UsageError`` (64). One line each."""
    if batch < 1:
        raise UsageError(f"--batch must be at least 1 (got {batch})")
    require_extra("torch", "CLIPScore")
    require_extra("transformers", "CLIPScore")
    try:
        from reference_model.clip import ClipScorer, NotAClipError
    except ImportError as exc:
        raise MissingExtraError.from_import_error(exc, "CLIPScore") or exc from None
    try:
        return ClipScorer(model, device=device, batch=batch, prefix=prefix)
    except FileNotFoundError as exc:
        raise InputMissingError(_line(exc)) from None
    except NotAClipError as exc:
        raise DataError(_line(exc)) from None
    except ImportError as exc:
        raise MissingExtraError.from_import_error(exc, f"CLIP model {model}") or DataError(
            f"{model}: cannot load: {_line(exc)}"
        ) from None
    except ValueError as exc:  # pick_device: CUDA asked for where there is none
        raise UsageError(_line(exc)) from None


_SHARED: dict[str, Any] = {}


def shared_scorer(model: str | Path = "embedded"):
    """``load_clip_scorer(model)`` once per process and model (the judgement of every look, run and
    test in one process loads the encoder, and imports torch, once); errors as ``load_clip_scorer``."""
    key = str(model)
    if key not in _SHARED:
        _SHARED[key] = load_clip_scorer(model)
    return _SHARED[key]


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block, then put back (None, or no torch: as
    they are)."""
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    if n is None or torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def score_pairs(
    scorer: Any,
    pairs: Iterable[tuple[str, str]],
    read: Callable[[str], Any],
    chunk: int = 256,
    threads: int | None = 1,
) -> tuple[dict[tuple[str, str], float], list[str]]:
    """CLIPScore of each distinct ``(image id, caption)`` pair, the image read once by
    ``read(image_id)`` (a PIL image, or None when it cannot be had: its pairs are left out and the
    id is in the second value, in order). Pairs are scored once each, in sorted order, so the same
    caption of the same image gets one score wherever it appears (two targets that gave the same
    caption get the very same figure). ``threads``: torch's threads while scoring (None: as they
    are); one by default: the embedded encoder's batches are small, one thread scores them as fast
    on an idle machine (0.9 ms an image on 2 cores) and does not thrash a busy one (two threads
    took 3 to 17 ms an image beside a test suite)."""
    todo = sorted({(str(i), str(c)) for i, c in pairs})
    images: dict[str, Any] = {}
    missing: list[str] = []
    for image_id in sorted({i for i, _ in todo}):
        picture = read(image_id)
        if picture is None:
            missing.append(image_id)
        else:
            images[image_id] = picture
    todo = [(i, c) for i, c in todo if i in images]
    out: dict[tuple[str, str], float] = {}
    with _torch_threads(threads if todo else None):
        for at in range(0, len(todo), chunk):
            part = todo[at : at + chunk]
            found = scorer.score([images[i] for i, _ in part], [c for _, c in part])
            out.update({pair: float(v) for pair, v in zip(part, found.clip_score)})
    return out, missing


def clip_scores(
    images: Sequence[Any],
    captions: Sequence[str],
    references: Sequence[Sequence[str]] | None = None,
    model: str | Path | Any = "embedded",
    *,
    image_ids: Sequence[Any] | None = None,
    device: str | None = None,
    batch: int = 64,
    prefix: str = "",
) -> ClipScoreReport:
    """CLIPScore (and RefCLIPScore, given references) of ``captions[i]`` for the PIL image
    ``images[i]``. ``model``: ``embedded``, a folder, or a scorer ``load_clip_scorer`` gave."""
    scorer = model if hasattr(model, "score") else load_clip_scorer(model, device, batch, prefix)
    ids = list(image_ids) if image_ids is not None else list(range(len(captions)))
    t0 = time.perf_counter()
    found = scorer.score(list(images), list(captions), None if references is None else [list(r) for r in references])
    return ClipScoreReport(_describe(scorer), _rows(ids, list(captions), found), time.perf_counter() - t0)


def score_items(
    scorer: Any,
    items: Iterable[tuple[Any, str, Callable[[], Any]]],
    references: Mapping[Any, Sequence[str]] | None = None,
    chunk: int = 256,
    progress: Callable[[int], None] | None = None,
) -> ClipScoreReport:
    """Score ``(image_id, caption, read)`` items ``chunk`` images at a time (``read()`` gives the
    PIL image), so a large set is never held in memory whole; with ``references`` (image id ->
    references), RefCLIPScore too."""
    rows: list[CaptionClipScore] = []
    seconds = 0.0
    pending: list[tuple[Any, str, Callable[[], Any]]] = []

    def flush() -> None:
        nonlocal seconds
        images = [read() for _, _, read in pending]
        refs = None if references is None else [list(references[i]) for i, _, _ in pending]
        t0 = time.perf_counter()
        found = scorer.score(images, [c for _, c, _ in pending], refs)
        seconds += time.perf_counter() - t0
        rows.extend(_rows([i for i, _, _ in pending], [c for _, c, _ in pending], found))
        pending.clear()
        if progress is not None:
            progress(len(rows))

    for item in items:
        pending.append(item)
        if len(pending) >= chunk:
            flush()
    if pending:
        flush()
    return ClipScoreReport(_describe(scorer), rows, seconds)


def score_sent_images(
    scorer: Any,
    images: Iterable[Any],
    candidates: Mapping[Any, str],
    references: Mapping[Any, Sequence[str]] | None = None,
    chunk: int = 256,
) -> ClipScoreReport:
    """CLIPScore of the captions a target gave for images it was sent: ``images`` yields objects
    with ``image_id`` and ``content`` (the bytes sent, as ``harness.quality.evaluation.EvalImage``),
    ``candidates`` maps image id to caption (images without one are skipped), ``references`` image
    id to references (RefCLIPScore where every scored image has some). An image the harness cannot
    decode is left out and counted in the notes."""
    from harness.image import ImageDecodeError, ImageTooLargeError, decode_image

    undecodable: list[Any] = []
    refs = references
    if refs is not None and any(not refs.get(k) for k in candidates):
        refs = None

    def items():
        for im in images:
            if im.image_id not in candidates:
                continue
            try:
                picture = decode_image(im.content)
            except (ImageDecodeError, ImageTooLargeError, OSError):
                undecodable.append(im.image_id)
                continue
            yield im.image_id, candidates[im.image_id], lambda p=picture: p

    report = score_items(scorer, items(), refs, chunk=chunk)
    if undecodable:
        report.notes.append(f"CLIPScore: {len(undecodable)} images not decodable, left out (first: {undecodable[0]!r})")
    if references is not None and refs is None:
        report.notes.append("RefCLIPScore: not every captioned image has reference captions")
    return report


def _rows(ids: Sequence[Any], captions: Sequence[str], found: Any) -> list[CaptionClipScore]:
    """One row per caption from a ``reference_model.clip.ClipScores``."""
    refs, refclip = found.ref_score, found.ref_clip_score
    return [
        CaptionClipScore(
            image_id,
            caption,
            float(found.cosine[k]),
            float(found.clip_score[k]),
            None if refs is None else float(refs[k]),
            None if refclip is None else float(refclip[k]),
        )
        for k, (image_id, caption) in enumerate(zip(ids, captions))
    ]


def _describe(scorer: Any) -> dict[str, Any]:
    return scorer.describe() if hasattr(scorer, "describe") else {"name": type(scorer).__name__}


def write_clipscore(report: ClipScoreReport, out_dir: str | Path) -> Path:
    """Write ``clipscore.json`` in ``out_dir`` (replaced whole)."""
    from harness.quality.report import write_quality

    return write_quality(report.to_dict(), out_dir, CLIPSCORE_JSON)


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
