"""What a load run sends: a pool of encoded images (the shapes world or a COCO-format folder),
and a corpus of malformed inputs that a well-run service must answer with a 4xx."""

from __future__ import annotations

import io
import random
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from harness.errors import DataError, UsageError

__all__ = [
    "Payload",
    "PayloadPool",
    "encode_png",
    "shapes_pool",
    "coco_pool",
    "pool_from_dataset",
    "check_dataset",
    "malformed_payloads",
    "MALFORMED_PREFIX",
]

MALFORMED_PREFIX = "malformed:"

_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}


@dataclass(frozen=True)
class Payload:
    """One request body: ``image_id`` names it on the record (``malformed:KIND`` for bad inputs)."""

    image_id: str
    body: bytes = field(repr=False)
    content_type: str
    width: int | None = None
    height: int | None = None

    @property
    def malformed(self) -> bool:
        return self.image_id.startswith(MALFORMED_PREFIX)


@dataclass(frozen=True)
class PayloadPool:
    """A fixed list of payloads; ``pick`` draws from it with the caller's seeded generator."""

    items: tuple[Payload, ...]
    name: str

    def __post_init__(self) -> None:
        if not self.items:
            raise DataError(f"payload pool {self.name!r} is empty")

    def __len__(self) -> int:
        return len(self.items)

    def pick(self, rng: random.Random) -> Payload:
        return rng.choice(self.items)  # the draw of rng.randrange(len(items)), without its argument checks

    def plus(self, other: Iterable[Payload], name: str | None = None) -> "PayloadPool":
        return PayloadPool(self.items + tuple(other), name or self.name)


def encode_png(image, compress_level: int = 6) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=compress_level)
    return buf.getvalue()


def shapes_pool(n: int, seed: int = 0, size: int = 128, shift: str | None = None) -> PayloadPool:
    """``n`` images of the shapes world ``seed`` as PNG (``shift`` e.g. ``high_res:1``)."""
    from harness.datasets import generate_shapes, parse_shift

    if n < 1:
        raise UsageError(f"the payload pool needs at least 1 image (got {n})")
    sh = parse_shift(shift) if shift else None
    items = []
    for s in generate_shapes(n, seed, sh, size):
        w, h = s.image.size
        items.append(Payload(str(s.image_id), encode_png(s.image, 1 if w * h > 1 << 20 else 6), "image/png", w, h))
    return PayloadPool(tuple(items), f"shapes:{seed}" + (f":{shift}" if shift else ""))


def _coco_items(folder: str | Path, limit: int | None):
    """The data set of a COCO-format folder and the first ``limit`` of its images with the content
    type each is sent as; an image of a type the pool does not send is refused (one line)."""
    from harness.datasets import load_coco

    ds = load_coco(folder)
    items = []
    for it in ds.items[: limit or None]:
        ctype = _TYPES.get(it.path.suffix.lower())
        if ctype is None:
            raise DataError(f"{it.path}: unsupported image type {it.path.suffix!r} (png, jpeg or webp)")
        items.append((it, ctype))
    return ds, items


def check_dataset(dataset: str, n: int) -> None:
    """Refuse (one line) a ``--dataset`` the payload pool of ``n`` images could not be built from,
    without building it: a shift that is not known, or a COCO-format folder that is missing,
    malformed, or whose first ``n`` images include one of a type the pool does not send. The run's
    processes build the pool; this lets ``harness load`` refuse before Locust starts."""
    from harness.datasets import parse_shift

    if n < 1:
        raise UsageError(f"the payload pool needs at least 1 image (got {n})")
    if dataset == "shapes":
        return
    if dataset.startswith("shapes:"):
        parse_shift(dataset.split(":", 1)[1])
        return
    _coco_items(dataset, n)


def coco_pool(folder: str | Path, limit: int | None = None) -> PayloadPool:
    """The images of a COCO-format folder (the first ``limit``), sent as their files' bytes."""
    from PIL import Image

    from harness.datasets.coco import read_image_file

    ds, chosen = _coco_items(folder, limit)
    items = []
    for it, ctype in chosen:
        data = read_image_file(it.path, ds.images_dir)
        if data is None:  # changed since the data set was checked
            raise DataError(f"{it.path}: no longer a regular file of the data set's images folder")
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        except Exception:  # the pool keeps what the folder holds; the target judges it
            w = h = None
        items.append(Payload(str(it.image_id), data, ctype, w, h))
    return PayloadPool(tuple(items), f"coco:{ds.name}")


def pool_from_dataset(dataset: str, n: int, seed: int, size: int) -> PayloadPool:
    """``shapes``, ``shapes:SHIFT[:SEVERITY]`` or the path of a COCO-format folder."""
    if dataset == "shapes":
        return shapes_pool(n, seed, size)
    if dataset.startswith("shapes:"):
        return shapes_pool(n, seed, size, dataset.split(":", 1)[1])
    return coco_pool(dataset, n)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(side: int = 20000) -> bytes:
    """A small PNG whose header declares ``side`` x ``side`` pixels (a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (side + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", rows) + _png_chunk(b"IEND", b"")


def malformed_payloads(seed: int = 0, max_body_bytes: int | None = 10 * 1024 * 1024) -> tuple[Payload, ...]:
    """The malformed corpus: truncated PNG and JPEG, 0 bytes, text sent as an image, a
    20000x20000 bomb, a wrong content type and (when ``max_body_bytes`` is given) an oversize body."""
    from harness.datasets import shapes_sample

    img = shapes_sample(0, seed).image
    png = encode_png(img)
    jpg = io.BytesIO()
    img.save(jpg, "JPEG", quality=85)
    jpeg = jpg.getvalue()
    p = MALFORMED_PREFIX
    items = [
        Payload(p + "truncated_png", png[: len(png) // 2], "image/png"),
        Payload(p + "truncated_jpeg", jpeg[: len(jpeg) // 2], "image/jpeg"),
        Payload(p + "empty", b"", "image/png"),
        Payload(p + "text_as_image", b"this is a text file, not an image\n" * 8, "image/png"),
        Payload(p + "bomb", _bomb_png(), "image/png"),
        Payload(p + "wrong_type", png, "text/plain"),
    ]
    if max_body_bytes:
        size = max_body_bytes + 1  # one byte over the limit, starting as a real PNG
        items.append(Payload(p + "oversize", (png + b"\x00" * size)[:size], "image/png"))
    return tuple(items)
