"""From untrusted image bytes to the small image the model needs, without stalling the event loop
or letting decoded pixels pile up: the header is read first and its declared size checked, the
decoded pixels in flight are bounded (past the bound: ``IntakeBusy``, answered 503), decoding and
shrinking run in a bounded thread pool (Pillow releases the GIL there), and only the image
``Captioner.prepare`` returns goes on to the batch queue. After a burst the C heap is trimmed."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from PIL import Image

from harness.image import load_rgb, open_image

__all__ = ["ImageIntake", "IntakeBusy", "INLINE_HEADER_BYTES", "trim_heap", "map_large_blocks"]

# Headers of bodies up to this size are read on the event loop (under a few ms even for crafted
# files); larger bodies are read, checked and decoded in the pool.
INLINE_HEADER_BYTES = 256 * 1024
# Trim the C heap once the pool is idle after decoding at least this many pixels.
_TRIM_AFTER_PIXELS = 4096 * 4096


class IntakeBusy(Exception):
    """The decoded pixels in flight would pass the bound; ``retry_after_s`` is a hint."""

    def __init__(self, pixels: int, in_flight: int, limit: int):
        super().__init__(f"{pixels} more pixels would put {in_flight + pixels} in decoding, over the limit of {limit}")
        self.retry_after_s = 1


def _libc_function(name: str, argtypes: list) -> Callable[..., int] | None:
    lib = ctypes.util.find_library("c")
    try:
        func = getattr(ctypes.CDLL(lib), name) if lib else None
    except (OSError, AttributeError):  # not glibc
        return None
    if func is not None:
        func.argtypes, func.restype = argtypes, ctypes.c_int
    return func


_malloc_trim = _libc_function("malloc_trim", [ctypes.c_size_t])
_mallopt = _libc_function("mallopt", [ctypes.c_int, ctypes.c_int])
_M_MMAP_THRESHOLD = -3


def map_large_blocks(threshold: int = 4 * 1024 * 1024) -> bool:
    """Have glibc serve every allocation of ``threshold`` bytes or more with its own mapping, given
    back to the system when freed. (By default glibc raises this threshold up to 32 MB after the
    first large free, so decoded images then come from the heap and stay resident after a
    burst.) Process-wide; False where unsupported."""
    if _mallopt is None:
        return False
    return bool(_mallopt(_M_MMAP_THRESHOLD, threshold))


def trim_heap() -> bool:
    """Give free C-heap memory back to the system (glibc ``malloc_trim``); False where unsupported."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class ImageIntake:
    """``await intake.image(data)`` -> the prepared RGB image, or ``ImageDecodeError`` (400),
    ``ImageTooLargeError`` (413), ``IntakeBusy`` (503).

    ``prepare`` shrinks a decoded image to what the model needs; ``draft_side`` lets JPEG decode
    at a reduced scale that keeps at least three times that side; ``max_pixels`` bounds one image
    and ``max_pixels_in_flight`` all images being decoded (at least ``max_pixels``)."""

    def __init__(
        self,
        prepare: Callable[[Image.Image], Image.Image],
        *,
        max_pixels: int,
        max_pixels_in_flight: int,
        threads: int,
        draft_side: int | None = None,
    ):
        if threads < 1 or max_pixels < 1:
            raise ValueError("threads and max_pixels must be at least 1")
        self.prepare = prepare
        self.max_pixels = max_pixels
        self.max_pixels_in_flight = max(max_pixels_in_flight, max_pixels)
        self.threads = threads
        self.draft_side = draft_side
        self._lock = threading.Lock()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._since_trim = 0
        self._pool: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="decode")

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def warm_up(self) -> None:
        """Import every image plugin now (Pillow does it on the first unrecognised image, which
        would stall the event loop) and take one small image of each format through the pool."""
        Image.init()
        for fmt in ("PNG", "JPEG", "WEBP"):
            buf = io.BytesIO()
            try:
                Image.new("RGB", (64, 64), (127, 127, 127)).save(buf, format=fmt)
            except (KeyError, OSError):  # a format this Pillow cannot write
                continue
            await self.image(buf.getvalue())

    async def image(self, data: bytes) -> Image.Image:
        """Decode and prepare ``data``; the event loop only ever reads a small body's header."""
        self.start()
        assert self._pool is not None
        if len(data) <= INLINE_HEADER_BYTES:
            img = self._open(data)
            pixels = self._reserve(img)
            job = self._pool.submit(self._decode, img, pixels)
            job.add_done_callback(lambda f: f.cancelled() and self._release(pixels))
        else:
            job = self._pool.submit(self._open_and_decode, data)
        return await asyncio.wrap_future(job)

    # ------------------------------------------------------------------ the steps, in any thread

    def _open(self, data: bytes) -> Image.Image:
        img = open_image(data, self.max_pixels)
        if self.draft_side and img.format == "JPEG":
            side = 3 * self.draft_side
            img.draft("RGB", (side, side))
        return img

    def _reserve(self, img: Image.Image) -> int:
        w, h = img.size
        pixels = w * h
        with self._lock:
            if self.in_flight and self.in_flight + pixels > self.max_pixels_in_flight:
                raise IntakeBusy(pixels, self.in_flight, self.max_pixels_in_flight)
            self.in_flight += pixels
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return pixels

    def _release(self, pixels: int) -> None:
        with self._lock:
            self.in_flight -= pixels
            self._since_trim += pixels
            trim = self.in_flight == 0 and self._since_trim >= _TRIM_AFTER_PIXELS
            if trim:
                self._since_trim = 0
        if trim:
            trim_heap()

    def _decode(self, img: Image.Image, pixels: int) -> Image.Image:
        rgb = out = None
        try:
            rgb = load_rgb(img)
            out = self.prepare(rgb)
            return out
        finally:
            for used in (img, rgb):  # free the full-size pixels now, not when the request ends
                if used is not None and used is not out:
                    used.close()
            self._release(pixels)

    def _open_and_decode(self, data: bytes) -> Image.Image:
        img = self._open(data)
        return self._decode(img, self._reserve(img))
