"""A small fault-injecting HTTP/1.1 reverse proxy, for chaos against a target that has no fault
endpoint of its own: added latency (fixed plus jitter), error answers, hangs, connection resets
and a bandwidth limit, all drawn from seeded streams.

It also rehearses partial regressions of a captioning service (the "flaw zoo"): on a fraction of
the answers of ``POST /v1/caption`` (contract v1) it rewrites what the service said.

- ``caption_fault`` (``replace``, ``reorder``, ``truncate``, ``repeat``, ``blank``, ``append``,
  ``add_object``; null: off), on a ``caption_fault_rate`` fraction of the 2xx JSON answers:
  ``replace`` swaps one attribute or relation word for another of its group in ``SWAP_GROUPS``
  (red -> blue, large -> small, left -> right; a word of ``FILLER_WORDS`` where none is found);
  ``reorder`` shuffles the words; ``truncate`` keeps the first half of them; ``repeat`` ends the
  caption with its last two or three words repeated three to five times; ``blank`` answers ``""``;
  ``append`` adds ``append_text`` (by default a contact e-mail and phone number: personal data);
  ``add_object`` appends " and a COLOUR SHAPE", a colour the shapes world draws and a shape it never
  draws (``harness.quality.chair.NEVER_DRAWN_SHAPES``), so the object is in no image: a
  hallucinated object.
- ``confidence_value`` overwrites ``confidence`` on a ``confidence_rate`` fraction of them, or,
  with ``confidence_on_fault``, on exactly the answers whose caption was faulted (confidence
  pinned high while captions degrade).
- ``status_code`` (400-599) on a ``status_rate`` fraction of the captioning requests: the
  request is relayed first (the answer comes after a real service time), then its answer is
  replaced by ``{"error": {"code": "injected_status", ...}}`` with that status.
- ``slow_ms`` added on a ``slow_rate`` fraction of the captioning requests (``latency_ms`` and
  ``jitter_ms`` apply to every request).

A streamed answer (a 2xx ``text/event-stream``, as ``openai-chat`` with ``stream: true`` gets) is
relayed as it comes, one server-sent event per chunk, never buffered whole; on it two faults move
the tokens a client times (``harness.protocols.sse``):

- ``first_token_ms`` before the first event, on a ``first_token_rate`` fraction of the streamed
  answers: a canary slower to its first token (queueing, a slower prefill);
- ``token_gap_ms`` before each event after the first, on a ``token_gap_rate`` fraction of them:
  a canary whose stream slows once it has begun (a slower decode).

Other routes, non-2xx and non-JSON answers are relayed as they came; a chunked answer that is
rewritten goes out with a ``Content-Length``, a streamed one chunked. Each kind draws from its own
stream, seeded ``f"{seed}:{kind}"`` (``slow``, ``status``, ``caption`` for which answers,
``caption_text`` for how, ``confidence``, ``first_token``, ``token_gap``), and every injected fault
is counted in ``FaultProxy.counts``.

In a test or a benchmark, one line puts a proxy in front of a service:
``with FaultProxy(srv.url, faults=ProxyFaults(caption_fault="blank", caption_fault_rate=0.2), seed=1) as proxy:``
(``faults`` may also be a dict of fields). It serves the same ``/admin/faults`` API as the
reference server (``X-Admin-Token``), so a scenario sets faults the same way wherever they are
injected. Run alone:
``python -m harness.load.proxy --upstream http://127.0.0.1:8000 --port 9000 --admin-token T``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import socket
import struct
import threading
from http import HTTPStatus
from typing import Annotated, Any, AsyncIterator, Callable, Literal, Mapping, NamedTuple, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import Field

from harness.faults import OFF_WHEN_EMPTY, FaultFields, Millis, Rate, Text
from harness.load.background import BackgroundServer

__all__ = [
    "ProxyFaults",
    "FaultProxy",
    "ProxyProcess",
    "CAPTION_FAULTS",
    "CAPTION_PATH",
    "DEFAULT_APPEND_TEXT",
    "SWAP_GROUPS",
    "FILLER_WORDS",
    "flaw_caption",
    "dechunk",
    "rewrite_json_answer",
]

_MAX_HEAD = 64 * 1024
_HANG_MAX_S = 600.0

CAPTION_PATH = "/v1/caption"
CaptionFault = Literal["replace", "reorder", "truncate", "repeat", "blank", "append", "add_object"]
CAPTION_FAULTS: tuple[str, ...] = get_args(CaptionFault)
DEFAULT_APPEND_TEXT = " contact jane.doe@example.com or +1 650 253 0000"
# Words a ``replace`` fault swaps for another of their group: the caption keeps its shape but
# says the wrong thing.
SWAP_GROUPS: tuple[tuple[str, ...], ...] = (
    ("red", "green", "blue", "yellow", "purple", "white", "black", "orange", "pink", "cyan", "brown", "grey"),
    ("large", "small"),
    ("big", "little"),
    ("tall", "short"),
    ("wide", "narrow"),
    ("left", "right"),
    ("above", "below"),
    ("top", "bottom"),
    ("over", "under"),
    ("inside", "outside"),
    ("one", "two", "three", "four"),
)
# What ``replace`` puts in place of a word when the caption has none of the groups' words.
FILLER_WORDS: tuple[str, ...] = ("dog", "car", "tree", "person", "boat", "house", "bird", "clock")
_SWAPS = {w: group for group in SWAP_GROUPS for w in group}
_AFFIX = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)


class ProxyFaults(FaultFields):
    """What the proxy injects (checked on construction: ``ValueError`` names a bad field; the rules
    are ``harness.faults``'). Rates are per request; ``bandwidth_bps`` (0: unlimited) caps bytes
    per second each way on each connection. ``unsafe_rate`` and ``slow_start_s`` are accepted for
    API compatibility with the reference server and have no effect here. The flaw fields (from
    ``caption_fault`` on) act on the captioning route only: see the module's docstring."""

    reset_rate: Rate = Field(0.0, description="share of connections reset")
    bandwidth_bps: float = Field(0.0, ge=0.0, le=1e12, description="bytes per second each way (0: unlimited)")
    caption_fault: Annotated[CaptionFault | None, OFF_WHEN_EMPTY] = Field(
        None, description="how a faulted caption is rewritten"
    )
    caption_fault_rate: Rate = Field(0.0, description="fraction of 2xx captions rewritten")
    append_text: Text = Field(DEFAULT_APPEND_TEXT, description="what caption_fault=append adds")
    confidence_value: float | None = Field(None, ge=0.0, le=1.0, description="confidence written over the service's")
    confidence_rate: Rate = Field(0.0, description="fraction of 2xx answers given confidence_value")
    confidence_on_fault: bool = Field(
        False, description="give confidence_value to exactly the answers whose caption was faulted"
    )
    status_code: int = Field(503, ge=400, le=599, description="status of injected error answers")
    status_rate: Rate = Field(0.0, description="fraction of captioning requests answered status_code")
    slow_rate: Rate = Field(0.0, description="fraction of captioning requests slowed by slow_ms")
    slow_ms: Millis = Field(0.0, description="latency added to the slowed requests")
    first_token_ms: Millis = Field(0.0, description="delay before the first event of a delayed streamed answer")
    first_token_rate: Rate = Field(0.0, description="fraction of streamed answers delayed by first_token_ms")
    token_gap_ms: Millis = Field(0.0, description="delay before each event after the first of a slowed stream")
    token_gap_rate: Rate = Field(0.0, description="fraction of streamed answers slowed by token_gap_ms")

    @property
    def delays_first_token(self) -> bool:
        return bool(self.first_token_rate and self.first_token_ms)

    @property
    def widens_token_gaps(self) -> bool:
        return bool(self.token_gap_rate and self.token_gap_ms)

    @property
    def faults_captions(self) -> bool:
        return bool(self.caption_fault and self.caption_fault_rate)

    @property
    def overrides_confidence(self) -> bool:
        if self.confidence_value is None:
            return False
        return self.faults_captions if self.confidence_on_fault else bool(self.confidence_rate)

    @property
    def active(self) -> bool:
        """Whether anything is injected (settings that only shape a fault, such as ``append_text``
        or ``status_code``, inject nothing alone)."""
        plain = (
            "latency_ms",
            "jitter_ms",
            "error_rate",
            "hang_rate",
            "reset_rate",
            "bandwidth_bps",
            "unsafe_rate",
            "slow_start_s",
            "status_rate",
        )
        return (
            any(getattr(self, name) for name in plain)
            or self.faults_captions
            or self.overrides_confidence
            or bool(self.slow_rate and self.slow_ms)
            or self.delays_first_token
            or self.widens_token_gaps
        )


def _swap_word(word: str, pick: Callable[[str], str]) -> str:
    prefix, core, suffix = _AFFIX.match(word).groups()
    new = pick(core.lower())
    if core[:1].isupper():
        new = new[:1].upper() + new[1:]
    return prefix + new + suffix


def flaw_caption(caption: str, kind: str, rng: random.Random, append_text: str = DEFAULT_APPEND_TEXT) -> str:
    """``caption`` with the flaw ``kind`` (one of ``CAPTION_FAULTS``) applied; the same ``rng``
    state gives the same result. Words are split on white space and joined by single spaces."""
    words = caption.split()
    if kind == "blank":
        return ""
    if kind == "append":
        return caption + append_text
    if kind == "add_object":
        from harness.datasets.scene import COLOURS
        from harness.quality.chair import NEVER_DRAWN_SHAPES

        return f"{caption} and a {rng.choice(list(COLOURS))} {rng.choice(NEVER_DRAWN_SHAPES)}".lstrip()
    if kind == "truncate":
        return " ".join(words[: max(1, len(words) // 2)]) if len(words) >= 2 else caption
    if kind == "reorder":
        if len(set(words)) < 2:
            return caption
        shuffled = list(words)
        rng.shuffle(shuffled)
        if shuffled == words:
            shuffled = words[1:] + words[:1]
        return " ".join(shuffled)
    if kind == "repeat":
        if not words:
            return caption
        tail = words[-min(len(words), rng.choice((2, 3))) :]
        return " ".join(words + tail * rng.randint(3, 5))
    if kind == "replace":
        if not words:
            return rng.choice(FILLER_WORDS)
        cores = [_AFFIX.match(w).group(2).lower() for w in words]
        swappable = [i for i, c in enumerate(cores) if c in _SWAPS]
        if swappable:
            i = rng.choice(swappable)
            words[i] = _swap_word(words[i], lambda c: rng.choice([w for w in _SWAPS[c] if w != c]))
        else:
            i = rng.choice([j for j, c in enumerate(cores) if c] or range(len(words)))
            words[i] = _swap_word(words[i], lambda c: rng.choice([w for w in FILLER_WORDS if w != c]))
        return " ".join(words)
    raise ValueError(f"caption fault must be one of {', '.join(CAPTION_FAULTS)} (got {kind!r})")


def _split_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[str, str]], until_close: bool) -> bytes:
    """The raw body bytes (chunked framing kept as it came)."""
    te = (_get(headers, "transfer-encoding") or "").lower()
    if "chunked" in te:
        parts = []
        while True:
            line = await reader.readuntil(b"\r\n")
            parts.append(line)
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while True:  # trailers up to the empty line
                    t = await reader.readuntil(b"\r\n")
                    parts.append(t)
                    if t == b"\r\n":
                        return b"".join(parts)
            parts.append(await reader.readexactly(size + 2))
    length = _get(headers, "content-length")
    if length is not None:
        return await reader.readexactly(int(length))
    if until_close:
        return await reader.read()
    return b""


async def _body_pieces(
    reader: asyncio.StreamReader, headers: list[tuple[str, str]], until_close: bool
) -> AsyncIterator[bytes]:
    """The payload of a body as it arrives: each chunk of a chunked body (framing, extensions and
    trailers dropped), else each read; ``IncompleteReadError`` when it breaks off."""
    if "chunked" in (_get(headers, "transfer-encoding") or "").lower():
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers up to the empty line
                    pass
                return
            data = await reader.readexactly(size + 2)
            yield data[:-2]
    length = _get(headers, "content-length")
    if length is not None:
        left = int(length)
        while left > 0:
            data = await reader.read(min(left, 65536))
            if not data:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(data)
            yield data
        return
    while until_close and (data := await reader.read(65536)):
        yield data


_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")


def _event_end(buf: bytes) -> int:
    """Where the first whole server-sent event of ``buf`` ends (after its blank line), or -1."""
    ends = [i + len(sep) for sep in _EVENT_ENDS if (i := buf.find(sep)) >= 0]
    return min(ends) if ends else -1


def _is_event_stream(code: int, headers: list[tuple[str, str]]) -> bool:
    """A 2xx answer in server-sent events, not content-encoded: relayed event by event."""
    if not 200 <= code < 300:
        return False
    if not (_get(headers, "content-type") or "").lower().startswith("text/event-stream"):
        return False
    return (_get(headers, "content-encoding") or "identity").lower() == "identity"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def dechunk(raw: bytes) -> bytes:
    """The payload of a body in chunked transfer coding (extensions and trailers dropped);
    ``ValueError`` when the framing is broken."""
    out, pos = [], 0
    while True:
        end = raw.index(b"\r\n", pos)
        size = int(raw[pos:end].split(b";")[0].strip(), 16)
        if size < 0:
            raise ValueError("negative chunk size")
        pos = end + 2
        if size == 0:
            return b"".join(out)
        if raw[pos + size : pos + size + 2] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        out.append(raw[pos : pos + size])
        pos += size + 2


def rewrite_json_answer(
    head: bytes, body: bytes, edit: Callable[[dict[str, Any]], dict[str, Any] | None]
) -> bytes | None:
    """The answer ``head`` + ``body`` (as read: a chunked body is decoded) with its JSON object
    passed through ``edit``, re-framed with a ``Content-Length`` and no ``Transfer-Encoding``.
    None, to relay it as it came, when it is not a 2xx JSON object (or is content-encoded), or
    when ``edit`` returns None."""
    status_line, headers = _split_head(head)
    parts = status_line.split(" ")
    if len(parts) < 2 or not parts[1].startswith("2") or "json" not in (_get(headers, "content-type") or "").lower():
        return None
    if (_get(headers, "content-encoding") or "identity").lower() != "identity":
        return None
    try:
        if "chunked" in (_get(headers, "transfer-encoding") or "").lower():
            body = dechunk(body)
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    new = edit(doc)
    if new is None:
        return None
    payload = json.dumps(new).encode()
    kept = "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in ("content-length", "transfer-encoding"))
    return f"{status_line}\r\n{kept}Content-Length: {len(payload)}\r\n\r\n".encode("latin-1") + payload


def _json_response(status: int, doc: Any, extra: str = "") -> bytes:
    body = json.dumps(doc).encode()
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Status"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class _Draw(NamedTuple):
    """What happens to one request: a connection fault, the delay, and an injected status."""

    fault: str | None
    delay_s: float
    slow: bool = False
    status: int | None = None


class FaultProxy(BackgroundServer):
    """Relay HTTP/1.1 from ``host``:``port`` to ``upstream``, injecting the current faults."""

    name = "fault proxy"

    def __init__(
        self,
        upstream: str,
        host: str = "127.0.0.1",
        port: int = 0,
        admin_token: str | None = None,
        seed: int = 0,
        faults: ProxyFaults | Mapping[str, Any] | None = None,
    ):
        super().__init__()
        u = urlsplit(upstream if "://" in upstream else "http://" + upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be an http:// URL (got {upstream!r})")
        self.upstream_host, self.upstream_port = u.hostname, u.port or 80
        self.host, self.port = host, port
        self.admin_token = admin_token
        self.default_seed = seed
        self.faults = faults if isinstance(faults, ProxyFaults) else ProxyFaults().with_updates(faults or {})
        self.counts = {
            "requests": 0,
            "errors": 0,
            "hangs": 0,
            "resets": 0,
            "slowdowns": 0,
            "statuses": 0,
            "captions": 0,
            "confidences": 0,
            "first_tokens": 0,
            "token_gaps": 0,
        }
        self._lock = threading.Lock()
        self._reseed()
        self._conns: set[asyncio.Task] = set()

    def _reseed(self) -> None:
        seed = self.default_seed if self.faults.seed is None else self.faults.seed
        kinds = (
            "latency",
            "error",
            "hang",
            "reset",
            "slow",
            "status",
            "caption",
            "caption_text",
            "confidence",
            "first_token",
            "token_gap",
        )
        self._rng = {k: random.Random(f"{seed}:{k}") for k in kinds}

    def set_faults(self, data: Mapping[str, Any]) -> ProxyFaults:
        with self._lock:
            self.faults = self.faults.with_updates(data)
            self._reseed()
            return self.faults

    def clear_faults(self) -> ProxyFaults:
        with self._lock:
            self.faults = ProxyFaults()
            self._reseed()
            return self.faults

    def _draw(self, captioning: bool) -> _Draw:
        with self._lock:
            f = self.faults
            delay = f.latency_ms / 1000.0
            if f.jitter_ms:
                delay += self._rng["latency"].uniform(0.0, f.jitter_ms) / 1000.0
            if f.reset_rate and self._rng["reset"].random() < f.reset_rate:
                return _Draw("reset", delay)
            if f.hang_rate and self._rng["hang"].random() < f.hang_rate:
                return _Draw("hang", delay)
            if f.error_rate and self._rng["error"].random() < f.error_rate:
                return _Draw("error", delay)
            if not captioning:
                return _Draw(None, delay)
            slow = bool(f.slow_rate and f.slow_ms) and self._rng["slow"].random() < f.slow_rate
            status = f.status_code if f.status_rate and self._rng["status"].random() < f.status_rate else None
            return _Draw(None, delay + (f.slow_ms / 1000.0 if slow else 0.0), slow, status)

    def _draw_stream(self) -> tuple[float, float]:
        """The delays of one streamed answer: before its first event, before each later one (s)."""
        with self._lock:
            f = self.faults
            first = f.delays_first_token and self._rng["first_token"].random() < f.first_token_rate
            gap = f.widens_token_gaps and self._rng["token_gap"].random() < f.token_gap_rate
            self.counts["first_tokens"] += first
            self.counts["token_gaps"] += gap
            return (f.first_token_ms / 1000.0 if first else 0.0), (f.token_gap_ms / 1000.0 if gap else 0.0)

    async def _relay_stream(
        self, ur: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes, headers: list[tuple[str, str]]
    ) -> None:
        """Relay a streamed answer as it comes, one event per chunk, with its drawn delays: the
        first event after ``first_token_ms``, each later one ``token_gap_ms`` after it would have
        gone. ``IncompleteReadError`` (or ``ConnectionError``) when the upstream breaks off."""
        status_line, _ = _split_head(head)
        kept = "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in ("content-length", "transfer-encoding"))
        await self._send(writer, f"{status_line}\r\n{kept}Transfer-Encoding: chunked\r\n\r\n".encode("latin-1"))
        first_s, gap_s = self._draw_stream()
        sent, pending = 0, b""
        async for piece in _body_pieces(ur, headers, until_close=True):
            pending += piece
            while (cut := _event_end(pending)) >= 0:
                event, pending = pending[:cut], pending[cut:]
                wait = first_s if sent == 0 else gap_s
                if wait:
                    await asyncio.sleep(wait)
                await self._send(writer, _chunk(event))
                sent += 1
        if pending:  # a last event without its blank line: relayed as it came
            await self._send(writer, _chunk(pending))
        await self._send(writer, b"0\r\n\r\n")

    def _flaw_answer(self, doc: dict[str, Any]) -> dict[str, Any] | None:
        """The captioning answer ``doc`` with its drawn caption and confidence faults, or None."""
        if not isinstance(doc.get("caption"), str):
            return None
        with self._lock:
            f = self.faults
            faulted = f.faults_captions and self._rng["caption"].random() < f.caption_fault_rate
            if f.confidence_value is None:
                pinned = False
            elif f.confidence_on_fault:
                pinned = faulted
            else:
                pinned = bool(f.confidence_rate) and self._rng["confidence"].random() < f.confidence_rate
            if not (faulted or pinned):
                return None
            if faulted:
                doc["caption"] = flaw_caption(doc["caption"], f.caption_fault, self._rng["caption_text"], f.append_text)
                self.counts["captions"] += 1
            if pinned:
                doc["confidence"] = f.confidence_value
                self.counts["confidences"] += 1
            return doc

    @staticmethod
    def _status_answer(code: int) -> bytes:
        extra = "Retry-After: 1\r\n" if code in (429, 503) else ""
        return _json_response(
            code, {"error": {"code": "injected_status", "message": f"status {code} injected by the fault proxy"}}, extra
        )

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        bw = self.faults.bandwidth_bps
        if not bw:
            writer.write(data)
            await writer.drain()
            return
        step = max(1024, int(bw / 20))
        for i in range(0, len(data), step):
            piece = data[i : i + step]
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(len(piece) / bw)

    def _admin(self, method: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        if self.admin_token is None:
            return _json_response(404, {"error": {"code": "not_found", "message": "fault API is off (no admin token)"}})
        if (_get(headers, "x-admin-token") or "") != self.admin_token:
            return _json_response(401, {"error": {"code": "unauthorized", "message": "missing or wrong admin token"}})
        try:
            if method == "POST":
                data = json.loads(body or b"{}")
                if not isinstance(data, dict):
                    raise ValueError("body must be a JSON object of fault fields")
                self.set_faults(data)
            elif method == "DELETE":
                self.clear_faults()
            elif method != "GET":
                return _json_response(400, {"error": {"code": "bad_method", "message": method}})
        except (ValueError, UnicodeDecodeError) as exc:
            return _json_response(400, {"error": {"code": "invalid_faults", "message": str(exc)}})
        return _json_response(
            200, {"faults": self.faults.model_dump(), "active": self.faults.active, "counts": dict(self.counts)}
        )

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_line, headers = _split_head(head)
                parts = request_line.split(" ")
                if len(parts) != 3:
                    writer.write(_json_response(400, {"error": {"code": "bad_request", "message": "bad request line"}}))
                    return
                method, target, _ = parts
                body = await _read_body(reader, headers, until_close=False)
                client_close = (_get(headers, "connection") or "").lower() == "close"
                if target.split("?")[0] == "/admin/faults":
                    writer.write(self._admin(method, headers, body))
                    await writer.drain()
                    if client_close:
                        return
                    continue
                self.counts["requests"] += 1
                captioning = method == "POST" and target.split("?")[0] == CAPTION_PATH
                draw = self._draw(captioning)
                fault, delay = draw.fault, draw.delay_s
                if fault == "reset":
                    self.counts["resets"] += 1
                    self._reset(writer)
                    return
                if fault == "hang":
                    self.counts["hangs"] += 1
                    try:
                        await asyncio.wait_for(reader.read(), _HANG_MAX_S)
                    except (asyncio.TimeoutError, ConnectionError):
                        pass
                    return
                if draw.slow:
                    self.counts["slowdowns"] += 1
                if delay:
                    await asyncio.sleep(delay)
                if fault == "error":
                    self.counts["errors"] += 1
                    await self._send(
                        writer,
                        _json_response(
                            500, {"error": {"code": "injected_fault", "message": "error injected by the fault proxy"}}
                        ),
                    )
                    if client_close:
                        return
                    continue
                if up is None:
                    try:
                        up = await asyncio.open_connection(self.upstream_host, self.upstream_port)
                    except OSError as exc:
                        await self._send(
                            writer,
                            _json_response(
                                502, {"error": {"code": "bad_gateway", "message": f"upstream unreachable: {exc}"}}
                            ),
                        )
                        if client_close:
                            return
                        continue
                ur, uw = up
                try:
                    await self._send(uw, head + body)
                    resp_head = await ur.readuntil(b"\r\n\r\n")
                    status_line, resp_headers = _split_head(resp_head)
                    code = int(status_line.split(" ")[1]) if len(status_line.split(" ")) > 1 else 0
                    no_body = method == "HEAD" or code in (204, 304) or 100 <= code < 200
                    server_close = (_get(resp_headers, "connection") or "").lower() == "close"
                    streamed = draw.status is None and not no_body and _is_event_stream(code, resp_headers)
                    if streamed:
                        await self._relay_stream(ur, writer, resp_head, resp_headers)
                        server_close = server_close or not (
                            _get(resp_headers, "content-length")
                            or "chunked" in (_get(resp_headers, "transfer-encoding") or "").lower()
                        )
                    resp_body = b"" if no_body or streamed else await _read_body(ur, resp_headers, until_close=True)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
                    self._reset(writer)  # the upstream broke mid-answer: so does the client's connection
                    return
                if streamed:
                    if server_close:
                        uw.close()
                        up = None
                    if client_close:
                        return
                    continue
                answer = resp_head + resp_body
                if draw.status is not None:
                    self.counts["statuses"] += 1
                    answer = self._status_answer(draw.status)
                elif captioning and not no_body:
                    answer = rewrite_json_answer(resp_head, resp_body, self._flaw_answer) or answer
                await self._send(writer, answer)
                if server_close:
                    uw.close()
                    up = None
                if client_close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if up is not None:
                up[1].close()
            if not writer.transport.is_closing():
                writer.close()

    async def _tracked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            await self._handle(reader, writer)
        finally:
            self._conns.discard(task)

    async def serve(self) -> None:
        """Run in the current event loop until cancelled (open connections are closed then)."""
        server = await asyncio.start_server(self._tracked, self.host, self.port, limit=_MAX_HEAD, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)


class ProxyProcess:
    """A fault proxy in a process of its own (``python -m harness.load.proxy``), for measurements
    where a proxy sharing the caller's interpreter (and its lock) would add latency of its own:
    ``with ProxyProcess(url, faults={...}, seed=1) as proxy: proxy.url``."""

    def __init__(
        self,
        upstream: str,
        faults: "ProxyFaults | Mapping[str, Any] | None" = None,
        seed: int = 0,
        admin_token: str | None = None,
    ):
        import sys

        doc = faults.model_dump() if isinstance(faults, ProxyFaults) else dict(faults or {})
        doc.pop("seed", None)
        self.cmd = [
            sys.executable,
            "-m",
            "harness.load.proxy",
            "--upstream",
            upstream,
            "--port",
            "0",
            "--seed",
            str(seed),
            "--exit-with-parent",
            "--faults",
            json.dumps(doc),
        ]
        if admin_token:
            self.cmd += ["--admin-token", admin_token]
        self.url = ""
        self._proc = None

    def __enter__(self) -> "ProxyProcess":
        import subprocess

        self._proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        line = self._proc.stdout.readline() if self._proc.stdout else ""
        try:
            self.url = json.loads(line)["url"]
        except (ValueError, KeyError, TypeError):
            self.__exit__()
            raise RuntimeError(f"fault proxy did not start: {line.strip()[:200]}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except Exception:  # noqa: BLE001 - a proxy that does not stop is killed
                self._proc.kill()
                self._proc.wait()
            if self._proc.stdout:
                self._proc.stdout.close()
            self._proc = None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.load.proxy", description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="base URL of the target, e.g. http://127.0.0.1:8000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--admin-token", default=None, help="token of the proxy's /admin/faults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    p.add_argument("--faults", default=None, metavar="JSON", help="fault fields as a JSON object (over the flags)")
    flags = [name for name in ProxyFaults.model_fields if name != "seed"]
    for name in flags:
        info = ProxyFaults.model_fields[name]
        flag = "--" + name.replace("_", "-")
        # A flag's text becomes the field's type (null aside), a choice one of its Literal's; the
        # model checks the value.
        types = (info.annotation, *get_args(info.annotation))
        kind = next((t for t in types if t in (bool, int, float)), str)
        choices = next((get_args(t) for t in types if get_origin(t) is Literal), None)
        if kind is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=info.description)
        else:
            p.add_argument(flag, type=kind, choices=choices, default=None, help=info.description)
    args = p.parse_args(argv)
    try:
        faults = ProxyFaults.parse({n: getattr(args, n) for n in flags if getattr(args, n) is not None})
        if args.faults:
            extra = json.loads(args.faults)
            if not isinstance(extra, dict):
                raise ValueError("--faults must be a JSON object of fault fields")
            faults = faults.with_updates(extra)
        proxy = FaultProxy(args.upstream, args.host, args.port, args.admin_token, args.seed, faults)
    except ValueError as exc:  # json.JSONDecodeError is one
        print(f"harness.load.proxy: error: {exc}", flush=True)
        return 64

    failed = proxy.run_foreground(lambda: print(json.dumps({"url": proxy.url}), flush=True), args.exit_with_parent)
    if failed is not None:
        print(f"harness.load.proxy: error: cannot listen on {args.host}:{args.port}: {failed}", flush=True)
        return 64
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
