"""A streamed chat completion (``stream: true``) read as its server-sent events arrive, and the
token timings it gives: time to first token, every inter-token gap, time per output token.

``ChatStream.feed(data, t)`` takes the bytes as they come off the wire with ``t``, the reader's
clock when they came (``time.perf_counter``, or an injected clock in tests); ``finish`` reads what
the stream said. Every event is timed at the arrival of the bytes that complete it, so events that
arrive in one read share a time (as in vLLM's benchmark client).

The definitions (vLLM's serving benchmark, ``vllm/benchmarks/lib/endpoint_request_func.py`` and
``vllm/benchmarks/serve.py``; NVIDIA genai-perf), with ``t0`` the time the request was sent:

- a *token event* is a ``chat.completion.chunk`` whose ``choices[0].delta.content`` is non-empty
  text (a chunk with only the role, only a finish reason, or only ``usage`` is not one);
- ``ttft_s``: the first token event's time less ``t0``;
- ``itl_s``: the gaps between consecutive token events (none for one event);
- ``tpot_s``: (last token event - first token event) / (tokens - 1), tokens being
  ``usage.completion_tokens`` when the stream gave it, else the token events; ``None`` for fewer
  than two tokens. (vLLM: ``(latency - ttft) / (output_len - 1)`` where its latency ends at the last
  token chunk; genai-perf calls the same quantity its inter-token latency.)

A stream that breaks the format (an event that is not JSON, not an object, a ``choices`` that is
not a list, an ``error`` event) raises ``InvalidResponse`` at once; one that ends without
``data: [DONE]`` raises it at ``finish``. ``tokens``, ``text`` and the timings so far stay readable
after either, so a broken stream is recorded with what it delivered."""

from __future__ import annotations

import math
from typing import Any

from harness.protocols.base import ERROR_MAX, InvalidResponse, ParsedCaption, json_body, whole

__all__ = ["ChatStream", "StreamTimings", "BrokenStream"]

_MAX_EVENT = 1 << 20  # bytes of one event (a line never ending is a broken stream, not memory to fill)


class BrokenStream(InvalidResponse):
    """A stream that ended before its ``[DONE]``; the message says what it delivered."""


class StreamTimings:
    """The token timings of a stream so far (seconds; ``None`` where there is nothing to time)."""

    __slots__ = ("ttft_s", "itl_s", "tpot_s")

    def __init__(self, ttft_s: float | None, itl_s: list[float] | None, tpot_s: float | None):
        self.ttft_s, self.itl_s, self.tpot_s = ttft_s, itl_s, tpot_s


class ChatStream:
    """One streamed chat completion; ``t0`` is when the request was sent (``None``: untimed, as
    when the whole body was read at once)."""

    def __init__(self, t0: float | None = None):
        self.t0 = t0
        self._buf = b""
        self._data: list[str] = []
        self.done = False
        self.events = 0
        self.parts: list[str] = []
        self.token_times: list[float] = []
        self.logprobs: list[Any] = []
        self.usage: dict[str, Any] = {}
        self.model: str | None = None
        self.id: str | None = None
        self.finish_reason: str | None = None

    # ---------------------------------------------------------------------------- reading
    def feed(self, data: bytes, t: float | None = None) -> None:
        """Bytes of the body as they came, at ``t``; ``InvalidResponse`` for a malformed event."""
        if self.done or not data:
            return
        buf = self._buf + data
        start = 0
        while True:
            end = buf.find(b"\n", start)
            if end < 0:
                break
            line = buf[start:end]
            start = end + 1
            self._line(line[:-1] if line.endswith(b"\r") else line, t)
            if self.done:
                self._buf = b""
                return
        self._buf = buf[start:]
        if len(self._buf) > _MAX_EVENT:
            raise InvalidResponse(f"an event line longer than {_MAX_EVENT} bytes in the stream")

    def _line(self, line: bytes, t: float | None) -> None:
        if not line:  # a blank line ends an event
            if self._data:
                data, self._data = "\n".join(self._data), []
                self._event(data, t)
            return
        if line.startswith(b":"):  # a comment (a keep-alive ping)
            return
        name, _, value = line.partition(b":")
        if name == b"data":
            text = value[1:] if value.startswith(b" ") else value
            try:
                self._data.append(text.decode("utf-8"))
            except UnicodeDecodeError:
                raise InvalidResponse("an event in the stream is not UTF-8") from None
            if sum(map(len, self._data)) > _MAX_EVENT:
                raise InvalidResponse(f"an event longer than {_MAX_EVENT} bytes in the stream")
        # other fields (event, id, retry) say nothing a chat completion needs

    def _event(self, data: str, t: float | None) -> None:
        if data.strip() == "[DONE]":
            self.done = True
            return
        self.events += 1
        doc = json_body(data.encode("utf-8"))
        if not isinstance(doc, dict):
            raise InvalidResponse(f"a stream event is not a JSON object: {data[:40]!r}")
        if "error" in doc:
            err = doc["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            raise InvalidResponse(f"the stream sent an error: {msg}"[:ERROR_MAX])
        if isinstance(doc.get("model"), str):
            self.model = doc["model"]
        if isinstance(doc.get("id"), str):
            self.id = doc["id"]
        if isinstance(doc.get("usage"), dict):
            self.usage = doc["usage"]
        choices = doc.get("choices", [])
        if not isinstance(choices, list):
            raise InvalidResponse("a stream event's choices is not a list")
        if not choices:
            return
        choice = choices[0]
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            raise InvalidResponse("a stream event has no choices[0].delta object")
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise InvalidResponse(f"a stream event's delta.content is not text: {content!r}"[:ERROR_MAX])
        if isinstance(choice.get("finish_reason"), str):
            self.finish_reason = choice["finish_reason"]
        lp = choice.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            self.logprobs.extend(lp["content"])
        if content:
            self.parts.append(content)
            if t is not None:
                self.token_times.append(t)

    # ---------------------------------------------------------------------------- results
    @property
    def tokens(self) -> int:
        """Token events received so far."""
        return len(self.parts)

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def completion_tokens(self) -> int | None:
        """``usage.completion_tokens`` when the stream gave it, else the token events received."""
        given = whole(self.usage.get("completion_tokens"))
        return given if given is not None else self.tokens

    def timings(self) -> StreamTimings:
        """TTFT, the inter-token gaps and TPOT of the tokens received so far (see the module)."""
        times = self.token_times
        if self.t0 is None or not times or len(times) != len(self.parts):
            return StreamTimings(None, None, None)
        ttft = max(0.0, times[0] - self.t0)
        gaps = [max(0.0, b - a) for a, b in zip(times, times[1:])]
        n = self.completion_tokens() or 0
        tpot = (times[-1] - times[0]) / (n - 1) if n > 1 and len(times) > 1 else None
        return StreamTimings(ttft, gaps, tpot if tpot is None or math.isfinite(tpot) else None)

    def broken(self, why: str) -> str:
        """An error text: ``why`` and what the stream delivered before."""
        return f"{why} after {self.tokens} token(s) ({len(self.text)} characters)"[:ERROR_MAX]

    def finish(self, confidence: Any = None, t: float | None = None) -> ParsedCaption:
        """What a complete stream said; ``InvalidResponse`` when it ended without ``[DONE]`` (the
        end of the body completes an event whose blank line never came) or held no choice at all.
        ``confidence``: a function of the token log-probabilities (``OpenAIChat._confidence``);
        ``t``: when the body ended (the time of an event it completes)."""
        if not self.done and self._buf.strip():
            tail, self._buf = self._buf, b""
            self._line(tail.rstrip(b"\r"), t)
        if not self.done and self._data:
            data, self._data = "\n".join(self._data), []
            self._event(data, t)
        if not self.done:
            raise BrokenStream(self.broken("the stream ended without data: [DONE]"))
        if not self.events:
            raise InvalidResponse("the stream held no chat.completion.chunk before [DONE]")
        timing = self.timings()
        return ParsedCaption(
            caption=self.text.strip(),
            confidence=confidence({"content": self.logprobs}) if confidence is not None else None,
            model_version=self.model,
            request_id=self.id,
            prompt_tokens=whole(self.usage.get("prompt_tokens")),
            completion_tokens=self.completion_tokens(),
            ttft_s=timing.ttft_s,
            itl_s=timing.itl_s,
            tpot_s=timing.tpot_s,
        )
