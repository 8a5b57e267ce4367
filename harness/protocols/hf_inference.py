"""``hf-inference``: a Hugging Face inference endpoint or the serverless API's image-to-text task:
the raw image as the body, the answer ``[{"generated_text": "..."}]``.

The path is ``/models/{model}`` when a model is named (the serverless API), else the endpoint's
root. The task answers no confidence (recorded as null: the confidence, calibration and
confidence-drift metrics have no data and say so), no model version and no token counts."""

from __future__ import annotations

from typing import Any, Mapping

from harness.protocols.base import ImageBodyAdapter, InvalidResponse, ParsedCaption, json_body

__all__ = ["HFInference"]


class HFInference(ImageBodyAdapter):
    """``POST /models/{model}`` (or ``path``) with the image bytes as the body."""

    name = "hf-inference"

    def __init__(
        self,
        model: str | None = None,
        *,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
        api_key_header: str = "Authorization",
    ):
        self.model = model
        chosen = path or (f"/models/{model}" if model else "/")
        self.path = chosen if chosen.startswith("/") else "/" + chosen
        self.headers = dict(headers or {})
        self.api_key_header = api_key_header

    def parse(self, status, headers, body) -> ParsedCaption:
        doc = json_body(body)
        first = doc[0] if isinstance(doc, list) and doc else doc
        text = first.get("generated_text") if isinstance(first, dict) else None
        if not isinstance(text, str):
            raise InvalidResponse('no generated_text in the answer (expected [{"generated_text": ...}])')
        return ParsedCaption(caption=text.strip())

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": self.path, "model": self.model}
