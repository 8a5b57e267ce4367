"""``torchserve``: TorchServe's inference API, ``POST /predictions/{model}[/{version}]`` with the
raw image as the body.

A handler's answer is read as a JSON object (the caption at ``caption_field``, the confidence at
``confidence_field`` when present), a JSON string or list of one, or plain text (the caption).
No confidence in the answer records null (the metrics that need it say so); no model version
(TorchServe does not send one) and no token counts."""

from __future__ import annotations

from typing import Any, Mapping

from harness.errors import UsageError
from harness.protocols.base import ImageBodyAdapter, InvalidResponse, ParsedCaption, unit_interval

__all__ = ["TorchServe"]


class TorchServe(ImageBodyAdapter):
    """``POST /predictions/{model}`` with the image bytes as the body."""

    name = "torchserve"
    health_path = "/ping"

    def __init__(
        self,
        model: str | None = None,
        *,
        version: str | None = None,
        caption_field: str = "caption",
        confidence_field: str | None = "confidence",
        headers: Mapping[str, str] | None = None,
        api_key_header: str = "Authorization",
    ):
        if not model or not isinstance(model, str):
            raise UsageError("protocol torchserve needs a model name (--model NAME, or model: in the adapter file)")
        self.model, self.version = model, version
        self.caption_field, self.confidence_field = caption_field, confidence_field or None
        self.path = f"/predictions/{model}" + (f"/{version}" if version else "")
        self.headers = dict(headers or {})
        self.api_key_header = api_key_header

    def parse(self, status, headers, body) -> ParsedCaption:
        import json

        if not body:
            raise InvalidResponse("empty answer")
        try:
            doc: Any = json.loads(body)
        except (UnicodeDecodeError, ValueError):
            try:
                return ParsedCaption(caption=body.decode("utf-8").strip())
            except UnicodeDecodeError:
                raise InvalidResponse("answer is neither JSON nor UTF-8 text") from None
        if isinstance(doc, list) and len(doc) == 1:
            doc = doc[0]
        if isinstance(doc, str):
            return ParsedCaption(caption=doc)
        if not isinstance(doc, dict):
            raise InvalidResponse(f"expected a JSON object, a string or text, got {type(doc).__name__}")
        caption = doc.get(self.caption_field)
        if not isinstance(caption, str):
            raise InvalidResponse(f"no string {self.caption_field!r} in the answer")
        confidence = None
        if self.confidence_field is not None and doc.get(self.confidence_field) is not None:
            confidence = unit_interval(doc[self.confidence_field], self.confidence_field)
        return ParsedCaption(caption=caption, confidence=confidence)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": self.path, "model": self.model}
