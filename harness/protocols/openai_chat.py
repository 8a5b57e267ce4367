"""``openai-chat``: an OpenAI-compatible chat completions API (vLLM, TGI, llama.cpp's server,
Ollama, hosted APIs) serving a vision-language model.

The image goes as a base64 data URL in one user message beside a text prompt; the caption is
``choices[0].message.content``. With ``logprobs`` (asked for by default) the confidence is the
geometric mean of the token probabilities, ``exp(mean(logprob))`` over
``choices[0].logprobs.content``, the reference model's own definition. When the answer carries
no log-probabilities the record's confidence is null, never zero: the confidence, calibration and
confidence-drift metrics then have no data and say so. ``usage.prompt_tokens`` and
``usage.completion_tokens`` are recorded when given (null otherwise).

With ``stream: true`` (an adapter file's option) the request asks for a streamed answer
(``stream: true``, ``stream_options: {include_usage: true}``) and the client reads its server-sent
events as they arrive (``harness.protocols.sse``): the record gains the time to first token, the
inter-token gaps and the time per output token. A server that answers a stream request with one
JSON document is read as before, untimed."""

from __future__ import annotations

import base64
import json
import math
from typing import Any, Mapping

from harness.errors import UsageError
from harness.protocols.base import (
    ERROR_MAX,
    Adapter,
    HttpRequest,
    InvalidResponse,
    ParsedCaption,
    json_body,
    whole,
)
from harness.protocols.sse import ChatStream
from harness.traceparent import TRACEPARENT, traceparent

__all__ = ["OpenAIChat", "DEFAULT_PROMPT", "confidence_from_logprobs"]

DEFAULT_PROMPT = "Describe this image in one short sentence."


def confidence_from_logprobs(logprobs: list[float]) -> float:
    """The geometric mean of the token probabilities: ``exp`` of the mean log-probability."""
    if not logprobs:
        raise ValueError("no log-probabilities")
    return min(1.0, math.exp(math.fsum(logprobs) / len(logprobs)))


class OpenAIChat(Adapter):
    """``POST {path}`` (``/v1/chat/completions``) with the image as a data URL; ``model`` is the
    name the server knows the model by."""

    name = "openai-chat"
    info_path = "/v1/models"

    def __init__(
        self,
        model: str | None = None,
        prompt: str = DEFAULT_PROMPT,
        *,
        path: str = "/v1/chat/completions",
        max_tokens: int = 64,
        temperature: float = 0.0,
        logprobs: bool = True,
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        api_key_header: str = "Authorization",
    ):
        if not model or not isinstance(model, str):
            raise UsageError("protocol openai-chat needs a model name (--model NAME, or model: in the adapter file)")
        if not isinstance(prompt, str):
            raise UsageError("openai-chat prompt must be text")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise UsageError(f"openai-chat max_tokens must be a whole number >= 1 (got {max_tokens!r})")
        self.model, self.prompt, self.max_tokens = model, prompt, max_tokens
        self.temperature, self.logprobs = float(temperature), bool(logprobs)
        if not isinstance(stream, bool):
            raise UsageError(f"openai-chat stream must be true or false (got {stream!r})")
        self.stream = self.streams = stream
        self.path = path if path.startswith("/") else "/" + path
        self.headers = dict(headers or {})
        self.api_key_header = api_key_header

    def request(self, image, content_type, request_id, return_embedding=False, api_key=None) -> HttpRequest:
        url = f"data:{content_type};base64,{base64.b64encode(image).decode('ascii')}"
        doc: dict[str, Any] = {
            "model": self.model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": self.prompt},
                        {"type": "image_url", "image_url": {"url": url}},
                    ],
                }
            ],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.logprobs:
            doc["logprobs"] = True
        if self.stream:
            doc["stream"] = True
            doc["stream_options"] = {"include_usage": True}
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "X-Request-Id": request_id,
            TRACEPARENT: traceparent(request_id),
        }
        headers.update(self.auth_headers(api_key))
        return HttpRequest("POST", self.path, headers, json.dumps(doc, separators=(",", ":")).encode())

    def stream_reader(self, t0: float | None) -> ChatStream:
        """A reader of a streamed answer whose request was sent at ``t0``."""
        return ChatStream(t0)

    def finish_stream(self, reader: ChatStream, t: float | None = None) -> ParsedCaption:
        """What a stream read to its end said (``InvalidResponse`` when it is not whole)."""
        return reader.finish(self._confidence, t)

    def parse(self, status, headers, body) -> ParsedCaption:
        if self.stream and not body.lstrip().startswith(b"{"):  # a stream read whole: untimed
            reader = ChatStream(None)
            reader.feed(body)
            return self.finish_stream(reader)
        doc = json_body(body)
        if not isinstance(doc, dict):
            raise InvalidResponse(f"expected a JSON object, got {type(doc).__name__}")
        choices = doc.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise InvalidResponse("no choices[0] in the answer")
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise InvalidResponse("no string choices[0].message.content in the answer")
        usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
        model = doc.get("model")
        return ParsedCaption(
            caption=content.strip(),
            confidence=self._confidence(choices[0].get("logprobs")),
            model_version=model if isinstance(model, str) else None,
            request_id=doc.get("id") if isinstance(doc.get("id"), str) else None,
            prompt_tokens=whole(usage.get("prompt_tokens")),
            completion_tokens=whole(usage.get("completion_tokens")),
        )

    @staticmethod
    def _confidence(logprobs: Any) -> float | None:
        """None when the answer has no token log-probabilities; ``InvalidResponse`` when it has
        malformed ones."""
        tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
        if not isinstance(tokens, list) or not tokens:
            return None
        values = []
        for i, tok in enumerate(tokens):
            lp = tok.get("logprob") if isinstance(tok, dict) else None
            if isinstance(lp, bool) or not isinstance(lp, (int, float)) or not math.isfinite(lp):
                raise InvalidResponse(f"choices[0].logprobs.content[{i}].logprob is not a number: {lp!r}"[:ERROR_MAX])
            if lp > 1e-6:
                raise InvalidResponse(f"choices[0].logprobs.content[{i}].logprob {lp!r} is above 0")
            values.append(min(float(lp), 0.0))
        return confidence_from_logprobs(values)

    def read_info(self, doc: Any) -> dict[str, Any]:
        data = doc.get("data") if isinstance(doc, dict) else None
        for entry in data if isinstance(data, list) else []:
            if isinstance(entry, dict) and entry.get("id") == self.model:
                return {"model": self.model, "model_version": None}
        return {"model": self.model}

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": self.path,
            "model": self.model,
            "prompt": self.prompt,
            "logprobs": self.logprobs,
            **({"stream": True} if self.stream else {}),
        }
