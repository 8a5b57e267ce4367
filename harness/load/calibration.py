"""A fixed-answer HTTP target for calibrating the load generator: it answers every request at
once with the same response, so what limits a run against it is the client, not the server.

It also plays the misbehaving targets a harness must survive: ``garbage=True`` answers bytes
that are not HTTP at all, and a JSON body that is not contract v1 gives ``invalid_response``.
Run alone: ``python -m harness.load.calibration --port 8089``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Callable

from harness.load.background import BackgroundServer

__all__ = ["FixedResponseServer", "CONTRACT_V1_BODY"]

CONTRACT_V1_BODY = json.dumps(
    {
        "request_id": "fixed",
        "caption": "a large red circle",
        "confidence": 0.9,
        "model_version": "fixed-1",
        "server_latency_ms": 0.0,
        "safety": {"flagged": False, "reasons": []},
    }
).encode()

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class _Protocol(asyncio.Protocol):
    def __init__(self, server: "FixedResponseServer"):
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1")
            length, rid = 0, None
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                lname = name.strip().lower()
                if lname == "content-length":
                    length = int(value.strip() or 0)
                elif lname == "x-request-id":
                    rid = value.strip()
            if len(self.buf) < end + 4 + length:
                return
            del self.buf[: end + 4 + length]
            self.server._answer(self.transport, rid)


class FixedResponseServer(BackgroundServer):
    """Serve ``status``/``body`` to every request on ``host``:``port`` (0 picks a free port).

    ``on_answer(request_id, unix_time)`` is called after each answer is handed to the socket."""

    name = "fixed-response server"

    def __init__(
        self,
        body: bytes = CONTRACT_V1_BODY,
        status: int = 200,
        content_type: str = "application/json",
        host: str = "127.0.0.1",
        port: int = 0,
        garbage: bool = False,
        on_answer: Callable[[str | None, float], None] | None = None,
    ):
        super().__init__()
        self.host, self.port = host, port
        self.garbage = garbage
        self.on_answer = on_answer
        self.answered = 0
        reason = _REASONS.get(status, "Status")
        self._response = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self._server: asyncio.AbstractServer | None = None

    def _answer(self, transport, rid: str | None) -> None:
        if self.garbage:
            transport.write(b"\x00\xffthis is not HTTP at all\r\n\r\n")
            transport.close()
        else:
            transport.write(self._response)
        self.answered += 1
        if self.on_answer is not None:
            self.on_answer(rid, time.time())

    async def serve(self) -> None:
        """Run in the current event loop until cancelled."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Protocol(self), self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        async with self._server:
            await self._server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.load.calibration", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--garbage", action="store_true", help="answer bytes that are not HTTP")
    args = p.parse_args(argv)
    server = FixedResponseServer(host=args.host, port=args.port, garbage=args.garbage)

    async def run() -> None:
        task = asyncio.create_task(server.serve())
        while not server._ready.is_set():
            await asyncio.sleep(0.01)
        print(json.dumps({"url": server.url}), flush=True)
        await task

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
