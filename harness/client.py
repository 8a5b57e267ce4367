"""The captioning client and the one place that turns an HTTP answer (or the lack of one) into a
``CaptionResult`` and a request record.

Transports differ (httpx here, Locust's FastHttp client in load runs), but every caller builds
its request with an ``Adapter`` (a protocol of ``harness.protocols``: contract v1 by default) and
classifies what came back with ``result_from_response`` / ``result_from_exception``, so a load run
and a batch evaluation record requests the same way, whatever the protocol.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping

from harness.protocols import ProtocolChoice, load_adapter
from harness.protocols.base import ERROR_MAX as _ERROR_MAX
from harness.protocols.base import Adapter, HttpRequest, InvalidResponse, ParsedCaption
from harness.protocols.sse import BrokenStream
from harness.protocols.template import TemplateAdapter, json_path
from harness.protocols.v1 import ContractV1Adapter
from harness.records import RequestRecord
from harness.redaction import credential_values
from harness.traceparent import trace_ids

__all__ = [
    "HttpRequest",
    "ParsedCaption",
    "CaptionResult",
    "InvalidResponse",
    "Adapter",
    "ContractV1Adapter",
    "TemplateAdapter",
    "ProtocolChoice",
    "load_adapter",
    "json_path",
    "result_from_response",
    "result_from_exception",
    "result_from_stream",
    "StreamRead",
    "outcome_of_exception",
    "to_record",
    "record_row",
    "CaptionClient",
    "AsyncCaptionClient",
]


@dataclass(frozen=True, slots=True)
class CaptionResult:
    """The outcome of one request: ``status`` is the HTTP code, 0 when no answer came."""

    outcome: str
    status: int
    latency_s: float
    t_start: float
    request_id: str
    caption: str | None = None
    confidence: float | None = None
    model_version: str | None = None
    safety_flagged: bool | None = None
    embedding: list[float] | None = field(default=None, repr=False)
    error: str | None = None
    retry_after_s: float | None = None
    server_latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    itl_s: list[float] | None = field(default=None, repr=False)
    tpot_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


# --------------------------------------------------------------------------------------------
# classification, shared by every transport


_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def _clip(text: str) -> str:
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 3] + "..."


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = _header(headers, "Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error_text(status: int, body: bytes) -> str:
    try:
        doc = json.loads(body) if body else None
    except (UnicodeDecodeError, json.JSONDecodeError):
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("error"), dict):
        err = doc["error"]
        return _clip(f"HTTP {status}: {err.get('code', '')}: {err.get('message', '')}")
    head = body[:80].decode("utf-8", "replace").strip() if body else ""
    return _clip(f"HTTP {status}" + (f": {head}" if head else ""))


def result_from_response(
    adapter: Adapter,
    request_id: str,
    t_start: float,
    latency_s: float,
    status: int,
    headers: Mapping[str, str] | None,
    body: bytes,
) -> CaptionResult:
    """Classify an HTTP answer: 2xx that parses is ``ok``, 2xx that does not is
    ``invalid_response``, anything else is ``http_error`` (the status says which)."""
    if not 200 <= status < 300:
        return CaptionResult(
            "http_error",
            status,
            latency_s,
            t_start,
            request_id,
            error=_error_text(status, body),
            retry_after_s=_retry_after(headers),
        )
    try:
        p = adapter.parse(status, headers or _NO_HEADERS, body)
    except InvalidResponse as exc:
        return CaptionResult("invalid_response", status, latency_s, t_start, request_id, error=_clip(str(exc)))
    return result_from_parsed(p, request_id, t_start, latency_s, status)


def result_from_stream(
    adapter: Adapter,
    reader: Any,
    request_id: str,
    t_start: float,
    latency_s: float,
    status: int,
    t_end: float | None = None,
    exc: BaseException | None = None,
    timeout_s: float | None = None,
) -> CaptionResult:
    """Classify a streamed 2xx answer read as it arrived (``reader``: the adapter's
    ``stream_reader``). A whole stream is read by ``finish_stream`` (``ok`` or
    ``invalid_response``); one cut by ``exc`` (a transport error: classified as
    ``outcome_of_exception`` does), by a malformed event (``InvalidResponse``) or by the client's
    timeout (``timeout_s``, the timeout it ran past) is recorded with the tokens and timings it delivered."""
    if exc is None and timeout_s is None:
        try:
            p = adapter.finish_stream(reader, t_end)
        except InvalidResponse as bad:
            exc = bad
        else:
            return result_from_parsed(p, request_id, t_start, latency_s, status)
    if timeout_s is not None:
        outcome, error = "timeout", reader.broken(f"the stream ran past the {timeout_s:g}s timeout")
    elif isinstance(exc, InvalidResponse):
        outcome, error = (
            "invalid_response",
            _clip(str(exc) if isinstance(exc, BrokenStream) else reader.broken(str(exc))),
        )
    else:
        outcome, text = outcome_of_exception(exc)
        error = reader.broken(f"the stream broke ({text})")
    timing = reader.timings()
    return CaptionResult(
        outcome,
        status,
        latency_s,
        t_start,
        request_id,
        error=error,
        completion_tokens=reader.tokens,
        ttft_s=timing.ttft_s,
        itl_s=timing.itl_s,
    )


class StreamRead:
    """One streamed answer read as its bytes arrive, whatever the transport: the one place that
    times a stream (httpx's clients here, the Locust user in load runs). ``t0`` is when the request
    was sent (``perf``'s clock); ``feed`` each piece of the body as it comes; ``result`` classifies
    the stream (whole, broken by ``exc``, or past ``timeout_s``) with ``result_from_stream``."""

    __slots__ = ("adapter", "reader", "t0", "timeout_s", "perf", "received")

    def __init__(self, adapter: Adapter, t0: float, timeout_s: float, perf: Callable[[], float] = time.perf_counter):
        self.adapter, self.t0, self.timeout_s, self.perf = adapter, t0, timeout_s, perf
        self.reader = adapter.stream_reader(t0)
        self.received = 0  # body bytes read

    @property
    def done(self) -> bool:
        """Whether the stream's ``[DONE]`` came."""
        return self.reader.done

    def feed(self, data: bytes) -> bool:
        """Read ``data``, timed now; whether the stream is over (its ``[DONE]`` came, or it ran past
        the timeout, which a transport checks only between reads). ``InvalidResponse`` for a
        malformed event: pass it to ``result`` as ``exc``."""
        t = self.perf()
        self.received += len(data)
        self.reader.feed(data, t)
        return self.reader.done or t - self.t0 > self.timeout_s

    def result(self, request_id: str, t_start: float, status: int, exc: BaseException | None = None) -> CaptionResult:
        """The stream's result, its latency ending now."""
        t = self.perf()
        reader, latency = self.reader, t - self.t0
        if exc is None and not reader.done and latency > self.timeout_s:
            return result_from_stream(
                self.adapter, reader, request_id, t_start, latency, status, timeout_s=self.timeout_s
            )
        return result_from_stream(self.adapter, reader, request_id, t_start, latency, status, t_end=t, exc=exc)


def result_from_parsed(
    p: ParsedCaption, request_id: str, t_start: float, latency_s: float, status: int
) -> CaptionResult:
    """The ``ok`` result of an answer ``p`` read by a protocol."""
    # One unpacking and positional fields: this runs once per answer of a load run.
    caption, confidence, version, _, flagged, embedding, server_ms, prompt, completion, ttft, itl, tpot = p
    return CaptionResult(
        "ok",
        status,
        latency_s,
        t_start,
        request_id,
        caption,
        confidence,
        version,
        flagged,
        embedding,
        None,  # error
        None,  # retry_after_s
        server_ms,
        prompt,
        completion,
        ttft,
        itl,
        tpot,
    )


def outcome_of_exception(exc: BaseException) -> tuple[str, str]:
    """``(outcome, error)`` for a request that got no usable HTTP answer, whatever the transport."""
    for _ in range(4):  # a wrapper (retries exhausted, a transport's own error) is judged by its cause
        inner = getattr(exc, "original", None) or exc.__cause__
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    names = {k.__name__ for k in type(exc).__mro__}
    text = _clip(f"{type(exc).__name__}: {exc}".rstrip(": "))
    if isinstance(exc, TimeoutError) or any("Timeout" in n for n in names):
        return "timeout", text
    if names & {"HTTPConnectionClosed", "EmptyResponse"} or isinstance(exc, ConnectionError):
        return "connection_error", text
    if "HTTPParseError" in names or "DecodingError" in names:
        return "invalid_response", text
    if "RemoteProtocolError" in names or "LocalProtocolError" in names:
        msg = str(exc).lower()
        if "disconnected" in msg or "without sending" in msg or "peer closed" in msg:
            return "connection_error", text
        return "invalid_response", text
    return "connection_error", text


def result_from_exception(request_id: str, t_start: float, latency_s: float, exc: BaseException) -> CaptionResult:
    """The result of a request that raised instead of answering (status 0)."""
    outcome, error = outcome_of_exception(exc)
    return CaptionResult(outcome, 0, latency_s, t_start, request_id, error=error)


def record_row(
    result: CaptionResult,
    run_id: str,
    target: str,
    scenario: str,
    image_id: str | None = None,
    image_bytes: int | None = None,
    image_w: int | None = None,
    image_h: int | None = None,
    keep_embedding: bool = True,
    segment: str | None = None,
) -> dict[str, Any]:
    """The request record of ``result`` as a dict in column order (what the writer stores); its
    ``trace_id`` is the one every adapter sends in ``traceparent`` for the request id; ``segment``:
    the image's segment in its data set, where it names one."""
    return {
        "run_id": run_id,
        "target": target,
        "scenario": scenario,
        "request_id": result.request_id,
        "image_id": image_id,
        "t_start": result.t_start,
        "latency_s": result.latency_s,
        "status": result.status,
        "outcome": result.outcome,
        "error": result.error,
        "caption": result.caption,
        "confidence": result.confidence,
        "model_version": result.model_version,
        "image_bytes": image_bytes,
        "image_w": image_w,
        "image_h": image_h,
        "safety_flagged": result.safety_flagged,
        "embedding": result.embedding if keep_embedding else None,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "ttft_s": result.ttft_s,
        "itl_s": result.itl_s,
        "tpot_s": result.tpot_s,
        "trace_id": trace_ids(result.request_id)[0],
        "segment": segment,
    }


def to_record(
    result: CaptionResult,
    *,
    run_id: str,
    target: str,
    scenario: str,
    image_id: str | None = None,
    image_bytes: int | None = None,
    image_w: int | None = None,
    image_h: int | None = None,
    keep_embedding: bool = True,
    segment: str | None = None,
) -> RequestRecord:
    """The request record of ``result`` (see ``harness.records``)."""
    return RequestRecord(
        **record_row(result, run_id, target, scenario, image_id, image_bytes, image_w, image_h, keep_embedding, segment)
    )


# --------------------------------------------------------------------------------------------
# httpx clients


def _event_stream(headers: Mapping[str, str]) -> bool:
    return (headers.get("content-type") or "").lower().startswith("text/event-stream")


def _new_request_id() -> str:
    return uuid.uuid4().hex


class _Client:
    """What the sync and async clients share: settings, the adapter, request preparation."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        api_key: str | None,
        adapter: Adapter | None,
        http: Any,
        clock: Callable[[], float],
        perf: Callable[[], float],
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key
        self.adapter = adapter or ContractV1Adapter()
        self._own = http is None
        self._clock, self._perf = clock, perf

    @property
    def secrets(self) -> tuple[str, ...]:
        """The credential values this client sends (its ``api_key``, its adapter's credentials):
        what a ``RecordWriter`` of its records redacts (``RecordWriter(out, secrets=client.secrets)``)."""
        return credential_values(self.adapter, self.api_key)

    def _prepare(
        self, image: bytes, content_type: str, request_id: str | None, return_embedding: bool
    ) -> tuple[str, HttpRequest]:
        rid = request_id or _new_request_id()
        return rid, self.adapter.request(image, content_type, rid, return_embedding, self.api_key)

    def _result(
        self, rid: str, t_start: float, t0: float, resp: Any = None, exc: BaseException | None = None
    ) -> CaptionResult:
        if exc is not None:
            return result_from_exception(rid, t_start, self._perf() - t0, exc)
        return result_from_response(
            self.adapter, rid, t_start, self._perf() - t0, resp.status_code, resp.headers, resp.content
        )


class CaptionClient(_Client):
    """A synchronous client: ``caption`` never raises for a transport failure, it classifies it."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        api_key: str | None = None,
        adapter: Adapter | None = None,
        *,
        http: Any = None,
        clock: Callable[[], float] = time.time,
        perf: Callable[[], float] = time.perf_counter,
    ):
        import httpx

        super().__init__(base_url, timeout, api_key, adapter, http, clock, perf)
        self.http = http or httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout))

    def caption(
        self,
        image: bytes,
        content_type: str = "image/png",
        request_id: str | None = None,
        return_embedding: bool = False,
    ) -> CaptionResult:
        rid, req = self._prepare(image, content_type, request_id, return_embedding)
        t_start, t0 = self._clock(), self._perf()
        if self.adapter.streams:
            return self._caption_stream(rid, req, t_start, t0)
        try:
            resp = self.http.request(req.method, req.path, headers=dict(req.headers), content=req.content)
        except Exception as exc:  # every transport failure becomes a classified result
            return self._result(rid, t_start, t0, exc=exc)
        return self._result(rid, t_start, t0, resp)

    def _caption_stream(self, rid: str, req: HttpRequest, t_start: float, t0: float) -> CaptionResult:
        """A streamed answer, read as it arrives (an answer that is no event stream: read whole)."""
        reader, status = None, 0
        try:
            with self.http.stream(req.method, req.path, headers=dict(req.headers), content=req.content) as resp:
                status = resp.status_code
                if not (200 <= status < 300 and _event_stream(resp.headers)):
                    resp.read()
                    return self._result(rid, t_start, t0, resp)
                reader = StreamRead(self.adapter, t0, self.timeout, self._perf)
                for data in resp.iter_bytes():
                    if reader.feed(data):
                        break
        except Exception as exc:  # a transport failure or a malformed event: classified
            if reader is None:
                return self._result(rid, t_start, t0, exc=exc)
            return reader.result(rid, t_start, status, exc)
        return reader.result(rid, t_start, status)

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> "CaptionClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncCaptionClient(_Client):
    """The asyncio twin of ``CaptionClient`` (same results, same classification)."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 30.0,
        api_key: str | None = None,
        adapter: Adapter | None = None,
        *,
        http: Any = None,
        max_connections: int = 64,
        clock: Callable[[], float] = time.time,
        perf: Callable[[], float] = time.perf_counter,
    ):
        import httpx

        super().__init__(base_url, timeout, api_key, adapter, http, clock, perf)
        self.http = http or httpx.AsyncClient(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def caption(
        self,
        image: bytes,
        content_type: str = "image/png",
        request_id: str | None = None,
        return_embedding: bool = False,
    ) -> CaptionResult:
        rid, req = self._prepare(image, content_type, request_id, return_embedding)
        t_start, t0 = self._clock(), self._perf()
        if self.adapter.streams:
            return await self._caption_stream(rid, req, t_start, t0)
        try:
            resp = await self.http.request(req.method, req.path, headers=dict(req.headers), content=req.content)
        except Exception as exc:  # every transport failure becomes a classified result
            return self._result(rid, t_start, t0, exc=exc)
        return self._result(rid, t_start, t0, resp)

    async def _caption_stream(self, rid: str, req: HttpRequest, t_start: float, t0: float) -> CaptionResult:
        """As ``CaptionClient._caption_stream``."""
        reader, status = None, 0
        try:
            async with self.http.stream(req.method, req.path, headers=dict(req.headers), content=req.content) as resp:
                status = resp.status_code
                if not (200 <= status < 300 and _event_stream(resp.headers)):
                    await resp.aread()
                    return self._result(rid, t_start, t0, resp)
                reader = StreamRead(self.adapter, t0, self.timeout, self._perf)
                async for data in resp.aiter_bytes():
                    if reader.feed(data):
                        break
        except Exception as exc:  # a transport failure or a malformed event: classified
            if reader is None:
                return self._result(rid, t_start, t0, exc=exc)
            return reader.result(rid, t_start, status, exc)
        return reader.result(rid, t_start, status)

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def __aenter__(self) -> "AsyncCaptionClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
