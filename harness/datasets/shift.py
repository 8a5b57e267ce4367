"""Named distribution shifts with a severity in (0, 1], as a production camera or catalogue drifts;
on every image, or on a fraction of them (``low_light@0.1``): a set whose images carry a segment
each, the shift's name or ``unshifted``."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.errors import UsageError

__all__ = ["Shift", "SHIFTS", "UNSHIFTED", "parse_shift", "parse_shapes_spec"]

# The segment of the images a shift on a fraction of a set leaves as they are.
UNSHIFTED = "unshifted"

# Default severity of each shift, used when ``name`` is given without ``:severity``.
SHIFTS: dict[str, float] = {
    "low_light": 0.8,
    "noise": 0.5,
    "blur": 0.5,
    "occlusion": 0.5,
    "unseen_colour": 0.5,
    "unseen_shape": 0.5,
    "high_res": 1.0,
}


@dataclass(frozen=True)
class Shift:
    """A shift applied to scenes (``unseen_*``, ``high_res``) or to pixels (the others), on every
    image or on a ``fraction`` of them: image ``i`` is shifted when ``floor((i + 1) f) > floor(i f)``,
    so the first ``n`` images hold exactly ``floor(n f)`` shifted ones, spread evenly, whatever ``n``."""

    name: str
    severity: float
    fraction: float = 1.0

    def __str__(self) -> str:
        return f"{self.name}:{self.severity:g}" + (f"@{self.fraction:g}" if self.fraction < 1 else "")

    def applies(self, index: int) -> bool:
        """Whether image ``index`` carries the shift."""
        if self.fraction >= 1:
            return True
        f = Fraction(repr(self.fraction))  # the decimal as written: exact, no float rounding
        return math.floor((index + 1) * f) > math.floor(index * f)

    def segment(self, index: int) -> str | None:
        """Image ``index``'s segment: the shift's name or ``unshifted`` when the shift is on a
        fraction of the set; None when every image carries it (one segment is the whole set)."""
        if self.fraction >= 1:
            return None
        return self.name if self.applies(index) else UNSHIFTED

    @property
    def seed_salt(self) -> int:
        return zlib.crc32(self.name.encode())

    def render_size(self, default: int) -> int:
        """Side in pixels: 1024 at severity 0 up to 4096 at severity 1 for ``high_res``."""
        if self.name == "high_res":
            return int(round(1024 + 3072 * self.severity))
        return default

    def apply_pixels(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        s = self.severity
        if self.name == "low_light":
            arr = np.asarray(img, dtype=np.float32) / 255.0
            arr = (arr ** (1.0 + 0.8 * s)) * (1.0 - 0.85 * s)
            arr += rng.normal(0.0, 0.01 + 0.02 * s, size=arr.shape)
            return Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8), "RGB")
        if self.name == "noise":
            arr = np.asarray(img, dtype=np.float32)
            arr += rng.normal(0.0, 70.0 * s, size=arr.shape)
            return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
        if self.name == "blur":
            return img.filter(ImageFilter.GaussianBlur(radius=0.035 * img.width * s))
        if self.name == "occlusion":
            out = img.copy()
            w = img.width
            side = w * np.sqrt(0.3 * s)
            x0, y0 = rng.uniform(0, w - side, size=2)
            grey = int(rng.integers(60, 200))
            ImageDraw.Draw(out).rectangle([x0, y0, x0 + side, y0 + side], fill=(grey, grey, grey))
            return out
        return img


def _in_unit_interval(text: str, what: str) -> float:
    """``text`` as a number in (0, 1]; a one-line error names the shift's ``what`` (severity, fraction)."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"shift {what} {text!r} is not a number (expected 0 < {what} <= 1)") from None
    if not 0.0 < value <= 1.0:
        raise UsageError(f"shift {what} {value:g} is out of range (expected 0 < {what} <= 1)")
    return value


def parse_shift(text: str | None) -> Shift | None:
    """Parse ``name``, ``name:severity``, each optionally with ``@fraction`` (the share of the images
    that carry it, e.g. ``low_light@0.1``); a one-line error names a bad name, severity or fraction."""
    if not text:
        return None
    text, at, frac = text.partition("@")
    fraction = _in_unit_interval(frac, "fraction") if at else 1.0
    name, _, sev = text.partition(":")
    name = name.strip().replace("-", "_")
    if name == "unseen_color":
        name = "unseen_colour"
    if name not in SHIFTS:
        raise UsageError(f"unknown shift {name!r}; known shifts: {', '.join(SHIFTS)}")
    severity = _in_unit_interval(sev, "severity") if sev else SHIFTS[name]
    return Shift(name, severity, fraction)


def parse_shapes_spec(text: str) -> tuple[int, Shift | None]:
    """``N[:shift[:severity][@fraction]]`` (the part after ``shapes:`` in a ``--dataset``) as (N, shift)."""
    n_text, _, shift_text = text.partition(":")
    try:
        n = int(n_text)
    except ValueError:
        raise UsageError(f"--dataset shapes:N needs a number of images (got {n_text!r})") from None
    if n < 1:
        raise UsageError(f"--dataset shapes:N needs at least 1 image (got {n})")
    return n, parse_shift(shift_text) if shift_text else None
