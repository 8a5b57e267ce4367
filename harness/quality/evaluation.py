"""An evaluation run: every image of a labelled set sent to a target with bounded concurrency,
one request record per request, then the captions it returned, ready to score.

Retries happen only where repeating a request cannot double its effect or hide a failure: a
connection that never opened (nothing was sent), and 429/503 answers that name a Retry-After.
Each attempt is recorded, with its own request id.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator

from harness.client import CaptionResult, to_record
from harness.errors import UsageError
from harness.records import RecordWriter

__all__ = [
    "EvalImage",
    "EvalSet",
    "RetryPolicy",
    "RunSummary",
    "parse_dataset",
    "run_evaluation",
    "captions_from_records",
    "SAFE_BEFORE_SEND",
]

# Transport failures that happen before any byte of the request left (httpx exception names).
SAFE_BEFORE_SEND: tuple[str, ...] = ("ConnectError", "ConnectTimeout", "PoolTimeout")
_CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


@dataclass(frozen=True)
class EvalImage:
    """One image to send, with its reference captions and, where the set says, what it holds
    (``harness.quality.chair.ImageObjects`` or category names) and its segment."""

    image_id: Any
    content: bytes
    content_type: str
    references: tuple[str, ...]
    width: int | None = None
    height: int | None = None
    objects: Any = None
    segment: str | None = None


@dataclass(frozen=True)
class EvalSet:
    """A labelled set: its name, its size, and a lazy iterator of its images; ``objects`` names
    the CHAIR vocabulary of its images' objects ("shapes", "coco"), None when it does not say
    what is in each image."""

    name: str
    size: int
    images: Callable[[], Iterator[EvalImage]]
    objects: str | None = None


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def parse_dataset(text: str, seed: int = 12345) -> EvalSet:
    """``shapes:N[:shift[:severity][@fraction]]`` (the shapes world ``seed``; a shift on a fraction
    of the images gives each image its segment) or ``coco:DIR`` (a COCO folder; with
    ``instances.json``, what each image holds: a shapes-world file's objects, else COCO categories;
    without ``captions.json``, no references; an image entry's ``segment``, its segment)."""
    kind, _, rest = text.partition(":")
    if kind == "shapes":
        from harness.datasets import generate_shapes, parse_shapes_spec
        from harness.quality.chair import shapes_objects

        n, shift = parse_shapes_spec(rest)

        def images() -> Iterator[EvalImage]:
            for s in generate_shapes(n, seed, shift):
                yield EvalImage(
                    s.image_id,
                    _png(s.image),
                    "image/png",
                    tuple(s.captions),
                    s.image.width,
                    s.image.height,
                    shapes_objects(s.scene),
                    s.segment,
                )

        name = f"shapes:{n}" + (f":{shift}" if shift else "") + f" (seed {seed})"
        return EvalSet(name, n, images, "shapes")
    if kind == "coco":
        from harness.datasets import load_coco
        from harness.quality.chair import load_objects

        if not rest:
            raise UsageError("--dataset coco:DIR needs a folder (captions.json and images/)")
        ds = load_coco(rest)
        loaded = load_objects(rest)
        kind, instances = loaded if loaded is not None else (None, None)

        def images() -> Iterator[EvalImage]:
            from PIL import Image

            for it in ds.items:
                data = it.path.read_bytes()
                try:
                    with Image.open(io.BytesIO(data)) as im:
                        w, h = im.size
                except Exception:  # an undecodable file is still sent: the target must answer 400
                    w = h = None
                ctype = _CONTENT_TYPES.get(it.path.suffix.lower(), "application/octet-stream")
                objects = None if instances is None else instances.get(it.image_id, ())
                yield EvalImage(it.image_id, data, ctype, it.captions, w, h, objects, it.segment)

        return EvalSet(f"coco:{Path(rest)}", len(ds), images, kind)
    raise UsageError(f"unknown --dataset {text!r}; use shapes:N[:shift] or coco:DIR")


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``max_retries`` retries of an image: after a connection that never opened (with
    exponential back-off from ``backoff_s``), or a 429/503 with Retry-After (waiting that long,
    up to ``max_wait_s``)."""

    max_retries: int = 3
    backoff_s: float = 0.25
    max_wait_s: float = 30.0

    def delay(self, result: CaptionResult, attempt: int) -> float | None:
        """Seconds to wait before retrying ``result`` (attempt 0 is the first), or ``None``."""
        if attempt >= self.max_retries or result.ok:
            return None
        if result.outcome == "connection_error" and (result.error or "").startswith(SAFE_BEFORE_SEND):
            return min(self.backoff_s * 2**attempt, self.max_wait_s)
        if result.status in (429, 503) and result.retry_after_s is not None:
            return min(max(result.retry_after_s, 0.0), self.max_wait_s)
        return None


@dataclass(frozen=True)
class RunSummary:
    """What a run sent: counts, and the reference captions, objects and segments (where the set
    gives them) of every image sent (by image id)."""

    run_id: str
    target: str
    dataset: str
    n_images: int
    n_requests: int
    n_retries: int
    n_ok: int
    wall_s: float
    references: dict = field(default_factory=dict, repr=False)
    objects: dict = field(default_factory=dict, repr=False)
    segments: dict = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("references", "objects", "segments")
        }


async def _evaluate(
    client_factory,
    images: Iterable[EvalImage],
    writer: RecordWriter,
    *,
    run_id: str,
    target: str,
    scenario: str,
    concurrency: int,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    progress,
    references: dict,
    objects: dict,
    segments: dict,
) -> dict[str, int]:
    it = iter(images)
    counts = {"images": 0, "requests": 0, "retries": 0, "ok": 0}
    client = client_factory()

    async def worker() -> None:
        while True:
            try:
                img = next(it)
            except StopIteration:
                return
            references[img.image_id] = list(img.references)
            if img.objects is not None:
                objects[img.image_id] = img.objects
            if img.segment is not None:
                segments[img.image_id] = img.segment
            for attempt in range(policy.max_retries + 1):
                rid = f"{run_id}-{img.image_id}-{attempt}"
                result = await client.caption(img.content, img.content_type, rid, return_embedding=True)
                writer.write(
                    to_record(
                        result,
                        run_id=run_id,
                        target=target,
                        scenario=scenario,
                        image_id=str(img.image_id),
                        image_bytes=len(img.content),
                        image_w=img.width,
                        image_h=img.height,
                        segment=img.segment,
                    )
                )
                counts["requests"] += 1
                wait = policy.delay(result, attempt)
                if wait is None:
                    counts["ok"] += int(result.ok)
                    break
                counts["retries"] += 1
                await sleep(wait)
            counts["images"] += 1
            if progress is not None:
                progress(counts["images"])

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.aclose()
    return counts


def run_evaluation(
    client_factory: Callable[[], Any],
    dataset: EvalSet,
    writer: RecordWriter,
    *,
    run_id: str,
    target: str = "target",
    scenario: str = "evaluate",
    concurrency: int = 8,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    progress=None,
    clock: Callable[[], float] = time.monotonic,
) -> RunSummary:
    """Send every image of ``dataset`` through a client made by ``client_factory`` (an
    ``AsyncCaptionClient``, made and closed inside the run's event loop), at most ``concurrency``
    at a time, writing a record per request to ``writer``."""
    if concurrency < 1:
        raise UsageError(f"--concurrency must be at least 1 (got {concurrency})")
    t0 = clock()
    refs: dict = {}
    objs: dict = {}
    segs: dict = {}
    c = asyncio.run(
        _evaluate(
            client_factory,
            dataset.images(),
            writer,
            run_id=run_id,
            target=target,
            scenario=scenario,
            concurrency=concurrency,
            policy=policy,
            sleep=sleep,
            progress=progress,
            references=refs,
            objects=objs,
            segments=segs,
        )
    )
    return RunSummary(
        run_id, target, dataset.name, c["images"], c["requests"], c["retries"], c["ok"], clock() - t0, refs, objs, segs
    )


def captions_from_records(df, references: dict[Any, list[str]]) -> dict[Any, str]:
    """Image id (as the references key it) -> the caption of its ok record (the last, if several),
    in the order of ``references``."""
    by_text: dict[str, str] = {}
    ok = df[(df["outcome"] == "ok") & df["caption"].notna()]
    for image_id, caption in zip(ok["image_id"], ok["caption"]):
        by_text[str(image_id)] = caption
    return {k: by_text[str(k)] for k in references if str(k) in by_text}
