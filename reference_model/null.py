"""The ``null`` backend: a model that answers at once, the same caption for every image, with no
computation; what a server spends with it is the server's own cost outside the model
(``harness serve --model null``, ``benchmarks/server.py --backend null``). It prepares images as
``tiny`` does (64 x 64), so the server's decoding work is the same as with the real model."""

from __future__ import annotations

from typing import Sequence

from PIL import Image

from reference_model.caption import Caption, Captioner, Preparation

__all__ = ["NullCaptioner", "NULL_CAPTION"]

NULL_CAPTION = "a null caption"
_TOKENS: tuple[tuple[str, float], ...] = (("a", 0.0), (" null", 0.0), (" caption", 0.0), ("", 0.0))
_EMBEDDING: list[float] = [0.0] * 8


class NullCaptioner(Captioner):
    """``caption`` returns ``NULL_CAPTION`` (confidence 1, every token of log-probability 0) for
    each image of the batch, at once."""

    name = "null"
    version = "null-0"
    device = "cpu"
    input_side = 64

    def __init__(self) -> None:
        self._prepare = Preparation(self.input_side, square=True)

    def prepare(self, image: Image.Image) -> Image.Image:
        return self._prepare(image)

    def preparation(self) -> Preparation:
        return self._prepare

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        return [Caption(NULL_CAPTION, 1.0, 3, list(_EMBEDDING), _TOKENS) for _ in images]
