"""The captioning contract v1 client, adapters for other captioning APIs, and the one place that
turns an HTTP answer (or the lack of one) into a ``CaptionResult`` and a request record.

Transports differ (httpx here, Locust's FastHttp client in load runs), but every caller builds
its request with an ``Adapter`` and classifies what came back with ``result_from_response`` /
``result_from_exception``, so a load run and a batch evaluation record requests the same way.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from harness.errors import DataError, InputMissingError, UsageError
from harness.records import RequestRecord

__all__ = [
    "HttpRequest",
    "ParsedCaption",
    "CaptionResult",
    "InvalidResponse",
    "Adapter",
    "ContractV1Adapter",
    "TemplateAdapter",
    "load_adapter",
    "json_path",
    "result_from_response",
    "result_from_exception",
    "outcome_of_exception",
    "to_record",
    "record_row",
    "CaptionClient",
    "AsyncCaptionClient",
]

_ERROR_MAX = 300


@dataclass(frozen=True)
class HttpRequest:
    """One request to send: ``path`` carries the query string; ``content`` is the whole body."""

    method: str
    path: str
    headers: Mapping[str, str]
    content: bytes


@dataclass(frozen=True, slots=True)
class ParsedCaption:
    """What an adapter reads from a successful answer."""

    caption: str
    confidence: float | None = None
    model_version: str | None = None
    request_id: str | None = None
    safety_flagged: bool | None = None
    embedding: list[float] | None = field(default=None, repr=False)
    server_latency_ms: float | None = None


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

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class InvalidResponse(ValueError):
    """A 2xx answer that does not hold what the contract promises."""


# --------------------------------------------------------------------------------------------
# adapters


class Adapter:
    """How to ask a service for a caption and read its answer; a subclass must define ``parse``."""

    name = "adapter"
    api_key_header = "Authorization"

    def request(
        self, image: bytes, content_type: str, request_id: str, return_embedding: bool = False,
        api_key: str | None = None,
    ) -> HttpRequest:
        raise NotImplementedError

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ParsedCaption:
        """Read a 2xx answer; raise ``InvalidResponse`` when it is not what the service promises."""
        raise NotImplementedError

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        if not api_key:
            return {}
        if self.api_key_header.lower() == "authorization":
            return {"Authorization": f"Bearer {api_key}"}
        return {self.api_key_header: api_key}


try:  # optional (the load extra): parses answers several times faster than the json module
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - same results, slower
    _loads = json.loads


def _json_body(body: bytes) -> Any:
    if not body:
        raise InvalidResponse("empty body where JSON was expected")
    try:
        return _loads(body)
    except (UnicodeDecodeError, ValueError):
        head = body[:40].decode("utf-8", "replace")
        raise InvalidResponse(f"body is not JSON: {head!r}") from None


def _unit_interval(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidResponse(f"{what} is not a number: {value!r}"[:_ERROR_MAX])
    if not 0.0 <= value <= 1.0:
        raise InvalidResponse(f"{what} {value!r} is outside [0, 1]")
    return float(value)


class ContractV1Adapter(Adapter):
    """The harness's own contract: ``POST /v1/caption`` with the image as the body."""

    name = "contract-v1"

    def __init__(self, path: str = "/v1/caption", api_key_header: str = "Authorization"):
        self.path = path
        self.api_key_header = api_key_header
        self._embedding_path = path + "?return_embedding=true"

    def request(self, image, content_type, request_id, return_embedding=False, api_key=None) -> HttpRequest:
        headers = {"Content-Type": content_type, "X-Request-Id": request_id}
        if api_key:
            headers.update(self.auth_headers(api_key))
        return HttpRequest("POST", self._embedding_path if return_embedding else self.path, headers, image)

    def parse(self, status, headers, body) -> ParsedCaption:
        doc = _json_body(body)
        if not isinstance(doc, dict):
            raise InvalidResponse(f"expected a JSON object, got {type(doc).__name__}")
        caption = doc.get("caption")
        if not isinstance(caption, str):
            raise InvalidResponse("no string 'caption' in the answer")
        confidence = doc.get("confidence")
        if type(confidence) is not float or not 0.0 <= confidence <= 1.0:  # the common case, checked first
            confidence = _unit_interval(confidence, "confidence")
        safety = doc.get("safety")
        flagged = safety.get("flagged") if isinstance(safety, dict) else None
        if flagged is not None and not isinstance(flagged, bool):
            raise InvalidResponse("safety.flagged is not a boolean")
        emb = doc.get("embedding")
        if emb is not None and not (isinstance(emb, list) and all(isinstance(x, (int, float)) for x in emb)):
            raise InvalidResponse("embedding is not a list of numbers")
        version = doc.get("model_version")
        lat = doc.get("server_latency_ms")
        rid = doc.get("request_id")
        return ParsedCaption(
            caption,
            confidence,
            version if type(version) is str else (str(version) if version is not None else None),
            rid if type(rid) is str else (str(rid) if rid is not None else None),
            flagged,
            [float(x) for x in emb] if emb is not None else None,
            float(lat) if isinstance(lat, (int, float)) and not isinstance(lat, bool) else None,
        )


_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w\-]*)|\[(\d+)\]|\[['\"]([^'\"]*)['\"]\]")


def _compile_path(path: str) -> tuple[str | int, ...]:
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and text[0] not in ".[":
        text = "." + text
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_TOKEN.match(text, pos)
        if not m:
            raise UsageError(f"bad JSON path {path!r} at {text[pos:]!r} (use e.g. $.predictions[0].caption)")
        name, index, quoted = m.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = m.end()
    return tuple(steps)


_MISSING = object()


def json_path(doc: Any, path: str | Sequence[str | int]) -> Any:
    """The value at ``path`` (``$.a.b[0]``, ``a.b[0]`` or ``$['a b']``), or ``None`` if absent."""
    steps = _compile_path(path) if isinstance(path, str) else path
    cur = doc
    for step in steps:
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                return None
            cur = cur[step]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(step, _MISSING)
            if cur is _MISSING:
                return None
    return cur


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        for k, v in values.items():
            template = template.replace("{" + k + "}", v)
        return template
    if isinstance(template, list):
        return [_fill(x, values) for x in template]
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


class TemplateAdapter(Adapter):
    """Any JSON captioning API: a request template and the JSON paths of caption and confidence.

    ``body`` is ``"raw"`` (the image bytes), ``"multipart:FIELD"`` or a JSON template whose strings
    may hold ``{image_base64}``, ``{content_type}`` and ``{request_id}``; headers may too. A
    missing ``confidence_path`` leaves confidence ``None`` (SLIs that need it say so)."""

    name = "template"

    def __init__(
        self,
        caption_path: str,
        confidence_path: str | None = None,
        *,
        method: str = "POST",
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        body: Any = "raw",
        model_version_path: str | None = None,
        request_id_header: str | None = "X-Request-Id",
        api_key_header: str = "Authorization",
    ):
        self.caption_steps = _compile_path(caption_path)
        self.caption_path = caption_path
        self.confidence_steps = _compile_path(confidence_path) if confidence_path else None
        self.confidence_path = confidence_path
        self.version_steps = _compile_path(model_version_path) if model_version_path else None
        self.method = method.upper()
        self.path = path if path.startswith("/") else "/" + path
        self.headers = dict(headers or {})
        if isinstance(body, str) and body != "raw" and not body.startswith("multipart:"):
            raise UsageError(f"adapter body must be 'raw', 'multipart:FIELD' or a JSON template (got {body!r})")
        self.body = body
        self.request_id_header = request_id_header
        self.api_key_header = api_key_header

    def request(self, image, content_type, request_id, return_embedding=False, api_key=None) -> HttpRequest:
        values = {"content_type": content_type, "request_id": request_id}
        headers = {k: _fill(v, values) for k, v in self.headers.items()}
        if self.request_id_header:
            headers.setdefault(self.request_id_header, request_id)
        if api_key:
            headers.update(self.auth_headers(api_key))
        if self.body == "raw":
            headers.setdefault("Content-Type", content_type)
            content = image
        elif isinstance(self.body, str):
            boundary = uuid.uuid4().hex
            field_name = self.body.split(":", 1)[1] or "image"
            ext = content_type.rsplit("/", 1)[-1]
            content = (
                f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
                f"filename=\"image.{ext}\"\r\nContent-Type: {content_type}\r\n\r\n"
            ).encode() + image + f"\r\n--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        else:
            values["image_base64"] = base64.b64encode(image).decode("ascii")
            content = json.dumps(_fill(self.body, values), separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        return HttpRequest(self.method, self.path, headers, content)

    def parse(self, status, headers, body) -> ParsedCaption:
        doc = _json_body(body)
        caption = json_path(doc, self.caption_steps)
        if not isinstance(caption, str):
            raise InvalidResponse(f"no string caption at {self.caption_path}")
        confidence = None
        if self.confidence_steps is not None:
            raw = json_path(doc, self.confidence_steps)
            if raw is None:
                raise InvalidResponse(f"no confidence at {self.confidence_path}")
            confidence = _unit_interval(raw, f"confidence at {self.confidence_path}")
        version = json_path(doc, self.version_steps) if self.version_steps else None
        return ParsedCaption(caption=caption, confidence=confidence,
                             model_version=str(version) if version is not None else None)


def load_adapter(path: str | Path) -> TemplateAdapter:
    """Read an adapter spec (JSON or YAML): ``request`` (method, path, headers, body), ``caption``,
    and optionally ``confidence`` and ``model_version`` JSON paths."""
    p = Path(path)
    if not p.exists():
        raise InputMissingError(f"{p}: adapter file not found")
    text = p.read_text(encoding="utf-8", errors="replace")
    try:
        if p.suffix in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as exc:  # yaml and json raise different types for the same problem
        raise DataError(f"{p}: not valid {'YAML' if p.suffix in ('.yaml', '.yml') else 'JSON'} "
                        f"({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("caption"), str):
        raise DataError(f"{p}: an adapter needs a 'caption' JSON path (e.g. \"$.caption\")")
    req = doc.get("request") or {}
    if not isinstance(req, dict):
        raise DataError(f"{p}: 'request' must be an object (method, path, headers, body)")
    unknown = sorted(set(req) - {"method", "path", "headers", "body", "request_id_header"})
    if unknown:
        raise DataError(f"{p}: unknown request field(s): {', '.join(unknown)}")
    try:
        return TemplateAdapter(
            doc["caption"],
            doc.get("confidence"),
            method=req.get("method", "POST"),
            path=req.get("path", "/"),
            headers=req.get("headers") or {},
            body=req.get("body", "raw"),
            model_version_path=doc.get("model_version"),
            request_id_header=req.get("request_id_header", "X-Request-Id"),
            api_key_header=doc.get("api_key_header", "Authorization"),
        )
    except UsageError as exc:
        raise DataError(f"{p}: {exc}") from None


# --------------------------------------------------------------------------------------------
# classification, shared by every transport


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
        return CaptionResult("http_error", status, latency_s, t_start, request_id,
                             error=_error_text(status, body), retry_after_s=_retry_after(headers))
    try:
        p = adapter.parse(status, headers or {}, body)
    except InvalidResponse as exc:
        return CaptionResult("invalid_response", status, latency_s, t_start, request_id, error=_clip(str(exc)))
    return CaptionResult(
        "ok", status, latency_s, t_start, request_id,
        caption=p.caption, confidence=p.confidence, model_version=p.model_version,
        safety_flagged=p.safety_flagged, embedding=p.embedding, server_latency_ms=p.server_latency_ms,
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
) -> dict[str, Any]:
    """The request record of ``result`` as a dict in column order (what the writer stores)."""
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
) -> RequestRecord:
    """The request record of ``result`` (see ``harness.records``)."""
    return RequestRecord(**record_row(result, run_id, target, scenario, image_id, image_bytes, image_w, image_h,
                                      keep_embedding))


# --------------------------------------------------------------------------------------------
# httpx clients


def _new_request_id() -> str:
    return uuid.uuid4().hex


class _Client:
    """What the sync and async clients share: settings, the adapter, request preparation."""

    def __init__(self, base_url: str, timeout: float, api_key: str | None, adapter: Adapter | None,
                 http: Any, clock: Callable[[], float], perf: Callable[[], float]):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.api_key = api_key
        self.adapter = adapter or ContractV1Adapter()
        self._own = http is None
        self._clock, self._perf = clock, perf

    def _prepare(self, image: bytes, content_type: str, request_id: str | None,
                 return_embedding: bool) -> tuple[str, HttpRequest]:
        rid = request_id or _new_request_id()
        return rid, self.adapter.request(image, content_type, rid, return_embedding, self.api_key)

    def _result(self, rid: str, t_start: float, t0: float, resp: Any = None, exc: BaseException | None = None) -> CaptionResult:
        if exc is not None:
            return result_from_exception(rid, t_start, self._perf() - t0, exc)
        return result_from_response(self.adapter, rid, t_start, self._perf() - t0, resp.status_code, resp.headers,
                                    resp.content)


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
        self, image: bytes, content_type: str = "image/png", request_id: str | None = None,
        return_embedding: bool = False,
    ) -> CaptionResult:
        rid, req = self._prepare(image, content_type, request_id, return_embedding)
        t_start, t0 = self._clock(), self._perf()
        try:
            resp = self.http.request(req.method, req.path, headers=dict(req.headers), content=req.content)
        except Exception as exc:  # every transport failure becomes a classified result
            return self._result(rid, t_start, t0, exc=exc)
        return self._result(rid, t_start, t0, resp)

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
            base_url=self.base_url, timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def caption(
        self, image: bytes, content_type: str = "image/png", request_id: str | None = None,
        return_embedding: bool = False,
    ) -> CaptionResult:
        rid, req = self._prepare(image, content_type, request_id, return_embedding)
        t_start, t0 = self._clock(), self._perf()
        try:
            resp = await self.http.request(req.method, req.path, headers=dict(req.headers), content=req.content)
        except Exception as exc:  # every transport failure becomes a classified result
            return self._result(rid, t_start, t0, exc=exc)
        return self._result(rid, t_start, t0, resp)

    async def aclose(self) -> None:
        if self._own:
            await self.http.aclose()

    async def __aenter__(self) -> "AsyncCaptionClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()
