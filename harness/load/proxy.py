"""A small fault-injecting HTTP/1.1 reverse proxy, for chaos against a target that has no fault
endpoint of its own: added latency (fixed plus jitter), error answers, hangs, connection resets
and a bandwidth limit, all drawn from seeded streams.

It serves the same ``/admin/faults`` API as the reference server (``X-Admin-Token``), so a
scenario sets faults the same way wherever they are injected. Run alone:
``python -m harness.load.proxy --upstream http://127.0.0.1:8000 --port 9000 --admin-token T``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import struct
import threading
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Mapping
from urllib.parse import urlsplit

from harness.faults import clean_fault_fields
from harness.load.background import BackgroundServer

__all__ = ["ProxyFaults", "FaultProxy"]

_MAX_HEAD = 64 * 1024
_HANG_MAX_S = 600.0


@dataclass(frozen=True)
class ProxyFaults:
    """What the proxy injects. Rates are per request; ``bandwidth_bps`` (0: unlimited) caps bytes
    per second each way on each connection. ``unsafe_rate`` and ``slow_start_s`` are accepted for
    API compatibility with the reference server and have no effect here."""

    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    hang_rate: float = 0.0
    reset_rate: float = 0.0
    bandwidth_bps: float = 0.0
    unsafe_rate: float = 0.0
    slow_start_s: float = 0.0
    seed: int | None = None

    def with_updates(self, data: Mapping[str, Any]) -> "ProxyFaults":
        """A copy with ``data``'s fields replaced; ``ValueError`` names a bad one."""
        clean = clean_fault_fields(data, (f.name for f in fields(self)), max_hour=False)
        return replace(self, **clean)

    @property
    def active(self) -> bool:
        return replace(self, seed=None) != ProxyFaults()


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


def _json_response(status: int, doc: Any, reason: str = "") -> bytes:
    body = json.dumps(doc).encode()
    reason = reason or {200: "OK", 401: "Unauthorized", 404: "Not Found", 400: "Bad Request",
                        500: "Internal Server Error", 502: "Bad Gateway"}.get(status, "Status")
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class FaultProxy(BackgroundServer):
    """Relay HTTP/1.1 from ``host``:``port`` to ``upstream``, injecting the current faults."""

    name = "fault proxy"

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0, admin_token: str | None = None,
                 seed: int = 0, faults: ProxyFaults | None = None):
        super().__init__()
        u = urlsplit(upstream if "://" in upstream else "http://" + upstream)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"upstream must be an http:// URL (got {upstream!r})")
        self.upstream_host, self.upstream_port = u.hostname, u.port or 80
        self.host, self.port = host, port
        self.admin_token = admin_token
        self.default_seed = seed
        self.faults = faults or ProxyFaults()
        self.counts = {"requests": 0, "errors": 0, "hangs": 0, "resets": 0}
        self._lock = threading.Lock()
        self._reseed()
        self._conns: set[asyncio.Task] = set()

    def _reseed(self) -> None:
        seed = self.default_seed if self.faults.seed is None else self.faults.seed
        self._rng = {k: random.Random(f"{seed}:{k}") for k in ("latency", "error", "hang", "reset")}

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

    def _draw(self) -> tuple[str | None, float]:
        with self._lock:
            f = self.faults
            delay = f.latency_ms / 1000.0
            if f.jitter_ms:
                delay += self._rng["latency"].uniform(0.0, f.jitter_ms) / 1000.0
            if f.reset_rate and self._rng["reset"].random() < f.reset_rate:
                return "reset", delay
            if f.hang_rate and self._rng["hang"].random() < f.hang_rate:
                return "hang", delay
            if f.error_rate and self._rng["error"].random() < f.error_rate:
                return "error", delay
            return None, delay

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
        return _json_response(200, {"faults": asdict(self.faults), "active": self.faults.active,
                                    "counts": dict(self.counts)})

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
                fault, delay = self._draw()
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
                if delay:
                    await asyncio.sleep(delay)
                if fault == "error":
                    self.counts["errors"] += 1
                    await self._send(writer, _json_response(
                        500, {"error": {"code": "injected_fault", "message": "error injected by the fault proxy"}}))
                    if client_close:
                        return
                    continue
                if up is None:
                    try:
                        up = await asyncio.open_connection(self.upstream_host, self.upstream_port)
                    except OSError as exc:
                        await self._send(writer, _json_response(
                            502, {"error": {"code": "bad_gateway", "message": f"upstream unreachable: {exc}"}}))
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
                    resp_body = b"" if no_body else await _read_body(ur, resp_headers, until_close=True)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
                    self._reset(writer)  # the upstream broke mid-answer: so does the client's connection
                    return
                await self._send(writer, resp_head + resp_body)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.load.proxy", description=__doc__.splitlines()[0])
    p.add_argument("--upstream", required=True, help="base URL of the target, e.g. http://127.0.0.1:8000")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--admin-token", default=None, help="token of the proxy's /admin/faults")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    for f in fields(ProxyFaults):
        if f.name != "seed":
            p.add_argument("--" + f.name.replace("_", "-"), type=float, default=0.0)
    args = p.parse_args(argv)
    faults = ProxyFaults(**{f.name: getattr(args, f.name) for f in fields(ProxyFaults) if f.name != "seed"})
    try:
        proxy = FaultProxy(args.upstream, args.host, args.port, args.admin_token, args.seed, faults)
    except ValueError as exc:
        print(f"harness.load.proxy: error: {exc}", flush=True)
        return 64

    async def run() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(proxy.serve())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        if args.exit_with_parent:
            parent = os.getppid()

            async def watch() -> None:
                while os.getppid() == parent:
                    await asyncio.sleep(0.5)
                task.cancel()

            asyncio.create_task(watch())
        while not proxy._ready.is_set() and not task.done():
            await asyncio.sleep(0.01)
        print(json.dumps({"url": proxy.url}), flush=True)
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
