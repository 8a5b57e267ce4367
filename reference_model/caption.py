"""The captioner interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

from PIL import Image

__all__ = ["Caption", "Captioner", "PREPARED_SIDE", "PREPARED_PIXELS"]

# What ``Captioner.prepare`` keeps by default: the shorter side and the pixels of an image.
PREPARED_SIDE = 768
PREPARED_PIXELS = 1024 * 1024


@dataclass(frozen=True)
class Caption:
    """A caption with its confidence: the geometric mean of the chosen tokens' probabilities
    (end-of-sequence token included), so it lies in [0, 1] and does not shrink with length.
    ``token_logprobs`` are those tokens as (text, natural log of the probability), the
    end-of-sequence token last with empty text: their texts joined are ``text`` and the exp of
    their mean log-probability is ``confidence`` (empty when the backend does not give them)."""

    text: str
    confidence: float
    tokens: int
    embedding: list[float] = field(default_factory=list, repr=False)
    token_logprobs: tuple[tuple[str, float], ...] = field(default=(), repr=False)


class Captioner(ABC):
    """Turns a batch of images into captions. ``name`` and ``version`` identify the model."""

    name: str = "captioner"
    version: str = "0"
    device: str = "cpu"
    # The side, in pixels, of the square the model looks at; None: unknown.
    input_side: int | None = None

    @abstractmethod
    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """Caption ``images`` as one batch, in order."""

    def prepare(self, image: Image.Image) -> Image.Image:
        """``image`` in RGB and no larger than the model needs, so that ``caption`` sees the same
        pixels (or nearly): a server calls it once per image before batching, so large images do
        not wait at full size. By default the shorter side shrinks to twice ``input_side`` (or
        ``PREPARED_SIDE``) and the whole to at most ``PREPARED_PIXELS`` pixels."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        side = 2 * self.input_side if self.input_side else PREPARED_SIDE
        scale = min(1.0, side / min(w, h), (PREPARED_PIXELS / (w * h)) ** 0.5)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = image.resize(size, Image.BICUBIC, reducing_gap=3.0)
        return image

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "device": self.device}
