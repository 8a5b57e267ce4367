"""Image to tensor, the same way in training and in serving."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from reference_model.network import INPUT_SIZE

__all__ = ["to_tensor", "fit"]


def fit(img: Image.Image) -> Image.Image:
    """The RGB image of INPUT_SIZE x INPUT_SIZE the network sees (unchanged when it already is one)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (INPUT_SIZE, INPUT_SIZE):
        img = img.resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR, reducing_gap=3.0)
    return img


def _one(img: Image.Image) -> np.ndarray:
    return np.asarray(fit(img), dtype=np.uint8)


def to_tensor(images: Sequence[Image.Image]) -> torch.Tensor:
    """A batch (B, 3, 64, 64) scaled to [-1, 1]."""
    arr = np.stack([_one(i) for i in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
