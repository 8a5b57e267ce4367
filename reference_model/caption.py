"""The captioner interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

from PIL import Image

__all__ = ["Caption", "Captioner"]


@dataclass(frozen=True)
class Caption:
    """A caption with its confidence: the geometric mean of the chosen tokens' probabilities
    (end-of-sequence token included), so it lies in [0, 1] and does not shrink with length."""

    text: str
    confidence: float
    tokens: int
    embedding: list[float] = field(default_factory=list, repr=False)


class Captioner(ABC):
    """Turns a batch of images into captions. ``name`` and ``version`` identify the model."""

    name: str = "captioner"
    version: str = "0"
    device: str = "cpu"

    @abstractmethod
    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """Caption ``images`` as one batch, in order."""

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "device": self.device}
