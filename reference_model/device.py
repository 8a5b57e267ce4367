"""Where a model runs: CUDA when present unless told otherwise."""

from __future__ import annotations

import torch

__all__ = ["pick_device"]


def pick_device(device: str | None = None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available here")
    return device
