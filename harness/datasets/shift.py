"""Named distribution shifts with a severity in (0, 1], as a production camera or catalogue drifts."""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from harness.errors import UsageError

__all__ = ["Shift", "SHIFTS", "parse_shift", "parse_shapes_spec"]

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
    """A shift applied to scenes (``unseen_*``, ``high_res``) or to pixels (the others)."""

    name: str
    severity: float

    def __str__(self) -> str:
        return f"{self.name}:{self.severity:g}"

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


def parse_shift(text: str | None) -> Shift | None:
    """Parse ``name`` or ``name:severity``; a one-line error names a bad name or severity."""
    if not text:
        return None
    name, _, sev = text.partition(":")
    name = name.strip().replace("-", "_")
    if name == "unseen_color":
        name = "unseen_colour"
    if name not in SHIFTS:
        raise UsageError(f"unknown shift {name!r}; known shifts: {', '.join(SHIFTS)}")
    if not sev:
        return Shift(name, SHIFTS[name])
    try:
        severity = float(sev)
    except ValueError:
        raise UsageError(f"shift severity {sev!r} is not a number (expected 0 < severity <= 1)") from None
    if not 0.0 < severity <= 1.0:
        raise UsageError(f"shift severity {severity:g} is out of range (expected 0 < severity <= 1)")
    return Shift(name, severity)


def parse_shapes_spec(text: str) -> tuple[int, Shift | None]:
    """``N[:shift[:severity]]`` (the part after ``shapes:`` in a ``--dataset``) as (N, shift)."""
    n_text, _, shift_text = text.partition(":")
    try:
        n = int(n_text)
    except ValueError:
        raise UsageError(f"--dataset shapes:N needs a number of images (got {n_text!r})") from None
    if n < 1:
        raise UsageError(f"--dataset shapes:N needs at least 1 image (got {n})")
    return n, parse_shift(shift_text) if shift_text else None
