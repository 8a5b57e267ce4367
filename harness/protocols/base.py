"""What every protocol shares: the request to send, what a successful answer holds, the base
class a protocol subclasses (``request`` and ``parse``), and credentials read from the environment."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, NamedTuple

from harness.errors import UsageError
from harness.traceparent import TRACEPARENT, traceparent

__all__ = [
    "HttpRequest",
    "ParsedCaption",
    "InvalidResponse",
    "Adapter",
    "ImageBodyAdapter",
    "Auth",
    "json_body",
    "unit_interval",
    "whole",
    "ERROR_MAX",
]

ERROR_MAX = 300


class HttpRequest(NamedTuple):
    """One request to send: ``path`` carries the query string; ``content`` is the whole body.
    (A named tuple, not a dataclass: one is built per request sent, and a tuple is built fastest.)"""

    method: str
    path: str
    headers: Mapping[str, str]
    content: bytes


class ParsedCaption(NamedTuple):
    """What a protocol reads from a successful answer; ``None`` is "the answer did not say".
    (A named tuple, not a dataclass: one is built per answer read, and a tuple is built fastest.)"""

    caption: str
    confidence: float | None = None
    model_version: str | None = None
    request_id: str | None = None
    safety_flagged: bool | None = None
    embedding: list[float] | None = None
    server_latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    itl_s: list[float] | None = None
    tpot_s: float | None = None

    def __repr__(self) -> str:  # the embedding (hundreds of numbers) is left out
        shown = ", ".join(f"{k}={v!r}" for k, v in zip(self._fields, self) if k not in ("embedding", "itl_s"))
        return f"ParsedCaption({shown})"


class InvalidResponse(ValueError):
    """A 2xx answer that does not hold what the protocol promises."""


@dataclass(frozen=True)
class Auth:
    """Credentials named by an environment variable: ``bearer`` sends ``Authorization: Bearer
    VALUE``, ``header`` sends ``HEADER: VALUE``. Only the variable's name is ever stored or shown."""

    env: str
    type: str = "bearer"
    header: str = "Authorization"

    def __post_init__(self) -> None:
        if self.type not in ("bearer", "header"):
            raise UsageError(f"auth type must be 'bearer' or 'header' (got {self.type!r})")
        if not self.env or not isinstance(self.env, str):
            raise UsageError("auth needs the name of an environment variable (env: NAME)")
        if self.type == "header" and (not self.header or self.header.lower() == "authorization"):
            raise UsageError("auth type 'header' needs a header name other than Authorization (e.g. X-API-Key)")

    def headers(self, environ: Mapping[str, str] | None = None) -> dict[str, str]:
        """The headers to send; ``UsageError`` when the variable is unset or empty."""
        value = (os.environ if environ is None else environ).get(self.env)
        if not value:
            raise UsageError(f"environment variable {self.env} (named for auth) is not set or empty")
        if not (value.isascii() and value.isprintable()):  # an HTTP client's error would quote the value
            raise UsageError(f"environment variable {self.env} (named for auth) must hold printable ASCII")
        if self.type == "bearer":
            return {"Authorization": f"Bearer {value}"}
        return {self.header: value}

    def describe(self) -> dict[str, str]:
        """What a report may say about these credentials: the kind and the variable's name."""
        out = {"type": self.type, "env": self.env}
        if self.type == "header":
            out["header"] = self.header
        return out


class Adapter:
    """How to ask a service for a caption and read its answer; a subclass must define ``parse``.

    An adapter whose ``streams`` is true also gives ``stream_reader(t0)`` (an object with
    ``feed(data, t)``) and ``finish_stream(reader, t)``: the client feeds it the body as it arrives.

    ``health_path``, ``info_path`` and ``ready_path`` are where the gate probes a target before
    a run (``None``: the protocol has no such endpoint); ``read_info`` reads the info answer."""

    name: ClassVar[str] = "adapter"
    api_key_header = "Authorization"
    health_path: str | None = None
    info_path: str | None = None
    ready_path: str | None = None
    auth: Auth | None = None
    streams: bool = False  # answers are read as a stream (``stream_reader``, ``finish_stream``)
    _credentials: Mapping[str, str] = {}

    def request(
        self,
        image: bytes,
        content_type: str,
        request_id: str,
        return_embedding: bool = False,
        api_key: str | None = None,
    ) -> HttpRequest:
        raise NotImplementedError

    def parse(self, status: int, headers: Mapping[str, str], body: bytes) -> ParsedCaption:
        """Read a 2xx answer; raise ``InvalidResponse`` when it is not what the service promises."""
        raise NotImplementedError

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers for an API key given directly, then the credentials of ``use_auth``."""
        out: dict[str, str] = {}
        if api_key:
            if self.api_key_header.lower() == "authorization":
                out["Authorization"] = f"Bearer {api_key}"
            else:
                out[self.api_key_header] = api_key
        out.update(self._credentials)
        return out

    def use_auth(self, auth: Auth | None, environ: Mapping[str, str] | None = None) -> "Adapter":
        """Send ``auth``'s credentials with every request (read from the environment now)."""
        self.auth = auth
        self._credentials = auth.headers(environ) if auth is not None else {}
        return self

    def read_info(self, doc: Any) -> dict[str, Any]:
        """Model name and version from the answer at ``info_path`` (empty when it says neither)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The protocol and its settings, for reports (never the credentials themselves)."""
        out: dict[str, Any] = {"protocol": self.name}
        if self.auth is not None:
            out["auth"] = self.auth.describe()
        return out


class ImageBodyAdapter(Adapter):
    """A protocol that POSTs the image bytes as the body to ``self.path``, with ``self.headers``
    (set by the subclass) and the request id."""

    path: str = "/"
    headers: Mapping[str, str] = {}

    def request(self, image, content_type, request_id, return_embedding=False, api_key=None) -> HttpRequest:
        headers = {
            **self.headers,
            "Content-Type": content_type,
            "X-Request-Id": request_id,
            TRACEPARENT: traceparent(request_id),
        }
        headers.update(self.auth_headers(api_key))
        return HttpRequest("POST", self.path, headers, image)


try:  # optional (the load extra): parses answers several times faster than the json module
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - same results, slower
    _loads = json.loads


def json_body(body: bytes) -> Any:
    """The JSON document of a body; ``InvalidResponse`` when it is empty or not JSON."""
    if not body:
        raise InvalidResponse("empty body where JSON was expected")
    try:
        return _loads(body)
    except (UnicodeDecodeError, ValueError):
        head = body[:40].decode("utf-8", "replace")
        raise InvalidResponse(f"body is not JSON: {head!r}") from None


def unit_interval(value: Any, what: str) -> float:
    """``value`` as a float in [0, 1]; ``InvalidResponse`` naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidResponse(f"{what} is not a number: {value!r}"[:ERROR_MAX])
    if not 0.0 <= value <= 1.0:
        raise InvalidResponse(f"{what} {value!r} is outside [0, 1]")
    return float(value)


def whole(value: Any) -> int | None:
    """A token count as an int, or ``None`` when the answer did not give a whole number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() and value >= 0 else None
