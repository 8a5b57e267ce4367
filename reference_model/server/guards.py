"""Guards against slow and greedy clients, around uvicorn's HTTP/1.1 protocol:

- a header deadline: a request's headers must all arrive within ``header_timeout_s`` of its first
  byte (or of the connection, for its first request), else 408 and the connection is closed;
  uvicorn has keep-alive idling only, and no bound on a request that trickles in;
- a bound on a request's header bytes, 431 past it: the bytes up to the blank line that ends the
  headers, however many reads they arrive in, and (httptools) the parsed request line and header
  fields of every request, pipelined ones included;
- uvicorn's own answer to a request its parser refuses (malformed request line or header) in the
  server's JSON error shape: 400 ``invalid_http_request``;
- a cap on open connections: one past the cap is answered 503 and closed at once;
- a connection whose response went out before its body was read is closed, so trickling the
  rest of a body cannot hold it;
- ``BodyDeadline``, an ASGI middleware: the body must arrive within ``body_timeout_s`` of the
  request's start, else 408 (``BodyTimeout`` for the app to answer, or the middleware does).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

__all__ = ["guarded_protocol", "canned_answer", "BodyDeadline", "BodyTimeout", "MAX_HEADER_BYTES"]

MAX_HEADER_BYTES = 64 * 1024


class _HeadersTooLarge(Exception):
    """Raised in a parser callback to stop parsing a request whose headers pass the bound."""


class BodyTimeout(Exception):
    """The request body did not arrive within its deadline."""

    def __init__(self, seconds: float):
        super().__init__(f"request body not received within {seconds:g} s")
        self.seconds = seconds


def canned_answer(status: int, reason: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    """A whole HTTP/1.1 answer in the JSON error shape that closes the connection."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def guarded_protocol(header_timeout_s: float, max_connections: int, max_header_bytes: int = MAX_HEADER_BYTES) -> type:
    """uvicorn's HTTP protocol class (httptools where installed, else h11) with the guards above."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Base
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol as Base

    timeout_answer = canned_answer(
        408, "Request Timeout", "header_timeout", f"request headers not received within {header_timeout_s:g} s"
    )
    large_answer = canned_answer(
        431, "Request Header Fields Too Large", "headers_too_large", f"request headers over {max_header_bytes} bytes"
    )
    bad_request_answer = canned_answer(
        400, "Bad Request", "invalid_http_request", "malformed HTTP request (request line or headers)"
    )
    full_answer = canned_answer(
        503,
        "Service Unavailable",
        "too_many_connections",
        f"{max_connections} connections open, the most served at once",
        retry_after=1,
    )

    def _say_close_when_body_unread(cycle) -> None:
        """A response that starts before its request's body was all read closes the connection
        (``on_response_complete``): it says so (``Connection: close``), so a client does not send
        its next request on a connection about to close."""
        send = cycle.send

        async def send_saying_close(message) -> None:
            if message["type"] == "http.response.start" and cycle.more_body:
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"connection" for k, _ in headers):
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        cycle.send = send_saying_close

    class GuardedProtocol(Base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _header_bytes = 0  # raw bytes of the headers of the request awaited
        _header_tail = b""  # the last bytes of the previous read (the blank line may straddle reads)
        _parsed_bytes = 0  # the parsed request line and fields of the message being parsed
        _too_large = False

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(full_answer)
                transport.close()
                return
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle  # the last request whose headers were parsed
            waiting = cycle is None or cycle.response_complete
            if waiting:
                self._arm()
            if waiting or not cycle.more_body:  # what arrives now is a new request's headers
                # Only the bytes up to the end of the headers count: a body may share the read.
                end = (self._header_tail + data).find(b"\r\n\r\n")
                self._header_bytes += len(data) if end < 0 else end + 4 - len(self._header_tail)
                self._header_tail = data[-3:]
                if self._header_bytes > max_header_bytes:
                    if waiting:
                        self._refuse(large_answer)
                    else:  # pipelined behind a request in flight: read no more, close after it
                        cycle.keep_alive = False
                        self.flow.pause_reading()
                    return
            super().data_received(data)
            if self.cycle is not cycle:  # a new request's headers are in: count the next one's
                self._header_bytes, self._header_tail = 0, b""
                if self.cycle is not None:
                    _say_close_when_body_unread(self.cycle)
            if self.transport.is_closing():
                self._disarm()
            elif self.cycle is not None and not self.cycle.response_complete:
                self._disarm()  # the headers are in: the app has the request

        # httptools' callbacks, per message (never called on h11): a field past the bound stops the
        # parser, which uvicorn answers through ``send_400_response``, answered 431 below.
        def on_message_begin(self) -> None:
            self._parsed_bytes = 0
            super().on_message_begin()

        def on_url(self, url: bytes) -> None:
            self._count_parsed(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count_parsed(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count_parsed(self, n: int) -> None:
            self._parsed_bytes += n
            if self._parsed_bytes > max_header_bytes:
                self._too_large = True
                raise _HeadersTooLarge()

        def send_400_response(self, msg: str) -> None:
            """uvicorn's answer to what its parser refuses, in the JSON error shape (uvicorn logs
            its own warning line, which the server's log formats as JSON)."""
            if self._too_large:
                self._refuse(large_answer)
                return
            self._refuse(bad_request_answer)

        def on_response_complete(self) -> None:
            unread = self.cycle is not None and self.cycle.more_body
            super().on_response_complete()
            if unread and not self.transport.is_closing():
                self.transport.close()

        def _arm(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            self._header_timer = None
            if self.cycle is None or self.cycle.response_complete:
                self._refuse(timeout_answer)

        def _refuse(self, answer: bytes) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.write(answer)
                self.transport.close()

    GuardedProtocol.__name__ = GuardedProtocol.__qualname__ = f"Guarded{Base.__name__}"
    return GuardedProtocol


class BodyDeadline:
    """ASGI middleware bounding the time to receive a request's body. The app sees ``BodyTimeout``
    from ``receive``; if it lets it out before answering, the middleware answers 408."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not self.seconds:
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        body_done = False
        started = False

        async def timed_receive() -> dict[str, Any]:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except BodyTimeout as exc:
            if started:
                raise
            body = json.dumps({"error": {"code": "body_timeout", "message": str(exc)}}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ]
            await send({"type": "http.response.start", "status": 408, "headers": headers})
            await send({"type": "http.response.body", "body": body})
