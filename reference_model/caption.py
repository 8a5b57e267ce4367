"""The captioner interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Sequence

from PIL import Image

__all__ = ["Caption", "Captioner", "Preparation", "PREPARED_SIDE", "PREPARED_PIXELS"]

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


@dataclass(frozen=True)
class Preparation:
    """What ``Captioner.prepare`` does to an image, as data that another process can apply (the
    server's front-end workers prepare images without loading the model). ``square``: RGB,
    resized to ``side`` x ``side`` (bilinear) unless it has that size already; otherwise RGB,
    the shorter side shrunk to at most ``side`` and the whole to at most ``pixels`` pixels
    (bicubic), never enlarged."""

    side: int
    square: bool = False
    pixels: int = PREPARED_PIXELS

    def __call__(self, image: Image.Image) -> Image.Image:
        if image.mode != "RGB":
            image = image.convert("RGB")
        w, h = image.size
        if self.square:
            if (w, h) != (self.side, self.side):
                image = image.resize((self.side, self.side), Image.BILINEAR, reducing_gap=3.0)
            return image
        scale = min(1.0, self.side / min(w, h), (self.pixels / (w * h)) ** 0.5)
        if scale < 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = image.resize(size, Image.BICUBIC, reducing_gap=3.0)
        return image

    @property
    def max_pixels(self) -> int:
        """The pixels of a prepared image, at most (a rounded shrink may pass it by a few rows)."""
        return self.side * self.side if self.square else self.pixels


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
        return Preparation(2 * self.input_side if self.input_side else PREPARED_SIDE)(image)

    def preparation(self) -> Preparation | None:
        """``prepare`` as data, for a process without the model; None when a backend's own
        ``prepare`` cannot be described so (its server then cannot prepare images elsewhere).
        A backend that overrides ``prepare`` overrides this too."""
        if type(self).prepare is not Captioner.prepare:
            return None
        return Preparation(2 * self.input_side if self.input_side else PREPARED_SIDE)

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "device": self.device}
