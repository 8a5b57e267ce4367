"""Image statistics (brightness, contrast, colourfulness, size) and their drift (feature-wise KS).

Brightness is the mean Rec. 601 luma and contrast its standard deviation (RMS contrast), both on
0..1; colourfulness is the Hasler-Süsstrunk metric on 0..255 RGB; size is the pixel count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
from PIL import Image

from harness.drift.base import subsample
from harness.drift.ks import KSDrift
from harness.errors import DataError, InputMissingError

__all__ = ["IMAGE_STATS", "image_statistics", "folder_statistics", "ImageStatsDrift", "IMAGE_SUFFIXES"]

IMAGE_STATS: tuple[str, ...] = ("brightness", "contrast", "colourfulness", "pixels")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_MAX_SIDE = 512


def _one(img: Image.Image) -> tuple[float, float, float, float]:
    w, h = img.size
    img = img.convert("RGB")
    if max(w, h) > _MAX_SIDE:
        img = img.resize((max(1, w * _MAX_SIDE // max(w, h)), max(1, h * _MAX_SIDE // max(w, h))), Image.BILINEAR)
    a = np.asarray(img, dtype=np.float64)
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    luma = (0.299 * r + 0.587 * g + 0.114 * b) / 255.0
    rg = r - g
    yb = 0.5 * (r + g) - b
    colourful = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    return float(luma.mean()), float(luma.std()), float(colourful), float(w * h)


def image_statistics(images: Iterable[Image.Image]) -> np.ndarray:
    """An (n, 4) array of ``IMAGE_STATS`` for each image."""
    rows = [_one(img) for img in images]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(IMAGE_STATS))


def folder_statistics(folder: str | Path, max_images: int | None = None, seed: int = 0) -> np.ndarray:
    """``image_statistics`` of the image files under ``folder`` (a seeded subsample of
    ``max_images`` when there are more); undecodable files are skipped."""
    from harness.image import ImageDecodeError, ImageTooLargeError, read_image

    root = Path(folder)
    if not root.is_dir():
        raise InputMissingError(f"{root}: images folder not found")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if max_images is not None and len(files) > max_images:
        files = [files[i] for i in subsample(len(files), max_images, np.random.default_rng(seed))]
    images = []
    for p in files:
        try:
            images.append(read_image(p))
        except (ImageDecodeError, ImageTooLargeError, OSError):
            continue
    if not images:
        raise DataError(f"{root}: no readable images ({', '.join(IMAGE_SUFFIXES[:4])}, ...)")
    return image_statistics(images)


class ImageStatsDrift(KSDrift):
    """KS on each image statistic, Bonferroni-corrected; accepts images or a table of statistics."""

    kind: ClassVar[str] = "image_stats"
    method: ClassVar[str] = "image statistics, Kolmogorov-Smirnov per statistic (Bonferroni)"

    def __init__(self, feature: str = "image", *, features: Sequence[str] | None = IMAGE_STATS, **kw: Any):
        super().__init__(feature, features=features, **kw)

    def preprocess(self, data: Any, side: str) -> np.ndarray:
        if isinstance(data, (list, tuple)) and data and isinstance(data[0], Image.Image):
            data = image_statistics(data)
        return super().preprocess(data, side)
