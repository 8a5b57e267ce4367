"""A weighted traffic-splitting HTTP/1.1 reverse proxy that logs each captioning request as a request
record, for rehearsing a canary on live traffic on one machine.

A rollout controller (Argo Rollouts, Flagger, an Istio weighted route) sends a share of production
traffic to a canary and judges it from what the ingress logged. ``SplitProxy`` plays that ingress:
each request goes to one upstream, chosen by a seeded weighted draw (one draw per request, in the
order requests arrive, from ``random.Random(f"{seed}:split")``), its answer is relayed unchanged
plus an ``X-Upstream: NAME`` header, and each ``POST /v1/caption`` (contract v1) becomes one record
of ``harness.records`` in ``records.jsonl`` with ``target`` set to the upstream's name and
``scenario`` to ``production``. A judge then reads the folder and compares the records of each
target (``load_records(folder)``, filtered on ``target``).

The record is what the harness's own client would have recorded for the same answer: a 2xx answer
is read with contract v1's parser (``ok``, or ``invalid_response`` when it does not hold a caption),
any other status is ``http_error``. When the upstream does not answer within ``timeout_s`` the
client gets 504 and the record says ``timeout`` (status 0); when it cannot be reached or breaks off
its answer, 502 and ``connection_error``; when what it sends is not HTTP, 502 and
``invalid_response``. ``request_id`` is the request's ``X-Request-Id``, else the one the upstream
echoed (header, then body), else a new one; ``image_id`` is the request's ``X-Image-Id``;
``trace_id`` the trace id of the request's ``traceparent`` (relayed unchanged), else null. Each
record is written to the operating system as soon as its answer is in, so a reader of the file sees
it at once. Other routes (``/healthz``, ``/readyz``, ``/metrics``, ``/v1/model``...) are split and
relayed the same way, not recorded. ``SplitProxy.counts`` holds the requests routed to each upstream.

Client connections are kept alive; each request opens a connection of its own to its upstream.
In a test: ``with SplitProxy({"stable": a.url, "canary": b.url}, {"canary": 0.2}, out, seed=1) as
proxy:`` (one upstream may leave out its weight: it takes the remainder). Run alone:
``python -m harness.load.split --upstream stable=http://127.0.0.1:8000 --upstream
canary=http://127.0.0.1:8001 --weight canary=0.2 --records DIR --port 0 --seed 1``; the first line
on stdout is ``listening on http://127.0.0.1:PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import re
import sys
import time
import uuid
import zlib
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import urlsplit

from harness.client import CaptionResult, record_row, result_from_response
from harness.load.background import BackgroundServer
from harness.load.proxy import _MAX_HEAD, CAPTION_PATH, _get, _json_response, _read_body, _split_head, dechunk
from harness.protocols.base import ERROR_MAX, InvalidResponse
from harness.protocols.v1 import ContractV1Adapter
from harness.records import RecordWriter
from harness.traceparent import parse_traceparent

__all__ = ["SplitProxy", "resolve_weights", "SCENARIO", "DEFAULT_RUN_ID", "UPSTREAM_HEADER"]

log = logging.getLogger(__name__)

SCENARIO = "production"
DEFAULT_RUN_ID = "production"
UPSTREAM_HEADER = "X-Upstream"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Headers that describe one connection, not the message: the proxy speaks for itself on each side.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection"})
_STATUS_LINE = re.compile(r"^HTTP/1\.[01] (\d{3})(?: .*)?$")
_TOLERANCE = 1e-9


class _BadAnswer(ValueError):
    """What the upstream sent is not an HTTP answer."""


class _UsageError(Exception):
    """A command-line argument the parser refused."""


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ERROR_MAX else text[: ERROR_MAX - 3] + "..."


def resolve_weights(names: Sequence[str], weights: Mapping[str, float]) -> dict[str, float]:
    """Each upstream's share of the traffic, in the order of ``names``. Every weight is a number in
    [0, 1] and together they sum to 1 (within 1e-9); one upstream may be left out of ``weights``
    and takes the remainder. ``ValueError`` (one line) otherwise."""
    names = list(names)
    if not names:
        raise ValueError("a split needs at least one upstream")
    unknown = [n for n in weights if n not in names]
    if unknown:
        raise ValueError(f"weight for unknown upstream {unknown[0]!r} (upstreams: {', '.join(names)})")
    out: dict[str, float] = {}
    for name, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or not 0.0 <= w <= 1.0:
            raise ValueError(f"weight of {name} must be a number between 0 and 1 (got {w!r})")
        out[name] = float(w)
    missing = [n for n in names if n not in out]
    given = math.fsum(out.values())
    if len(missing) > 1:
        raise ValueError(f"upstreams {', '.join(missing)} have no weight: at most one may take the remainder")
    if missing:
        if given > 1.0 + _TOLERANCE:
            raise ValueError(f"weights sum to {given:g}, over 1: nothing is left for {missing[0]}")
        out[missing[0]] = max(0.0, 1.0 - given)
    elif abs(given - 1.0) > _TOLERANCE:
        shown = ", ".join(f"{n}={out[n]:g}" for n in names)
        raise ValueError(f"weights must sum to 1 (got {given:.10g}: {shown})")
    return {n: out[n] for n in names}


def _upstream_address(name: str, url: str) -> tuple[str, int]:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"upstream name must be letters, digits, '.', '_' or '-' (got {name!r})")
    u = urlsplit(url if "://" in url else "http://" + url)
    try:
        port = u.port or 80
    except ValueError:
        port = -1
    if u.scheme != "http" or not u.hostname or port < 0 or u.path not in ("", "/") or u.query:
        raise ValueError(f"upstream {name} must be an http:// URL with no path (got {url!r})")
    return u.hostname, port


def _status_of(status_line: str) -> int:
    m = _STATUS_LINE.match(status_line)
    if m is None:
        raise _BadAnswer(f"not an HTTP status line: {status_line[:60]!r}")
    return int(m.group(1))


def _payload(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The message's content: the chunked framing removed (``ValueError`` when broken)."""
    if "chunked" in (_get(headers, "transfer-encoding") or "").lower():
        return dechunk(body)
    return body


def _decoded(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The answer's content as an HTTP client reads it: framing removed, gzip/deflate undone."""
    data = _payload(headers, body)
    coding = (_get(headers, "content-encoding") or "identity").lower().strip()
    if coding in ("gzip", "x-gzip"):
        return zlib.decompress(data, 16 + zlib.MAX_WBITS)
    if coding == "deflate":
        try:
            return zlib.decompress(data)
        except zlib.error:
            return zlib.decompress(data, -zlib.MAX_WBITS)
    return data


def _forward_head(request_line: str, headers: list[tuple[str, str]]) -> bytes:
    """The request's head for the upstream: one request on its own connection."""
    kept = "".join(f"{k}: {v}\r\n" for k, v in headers if k.lower() not in _HOP_BY_HOP and k.lower() != "expect")
    return f"{request_line}\r\n{kept}Connection: close\r\n\r\n".encode("latin-1")


class SplitProxy(BackgroundServer):
    """Split HTTP/1.1 from ``host``:``port`` between ``upstreams`` (name -> base URL) by ``weights``
    (name -> share; see ``resolve_weights``), writing a request record per captioning request to
    ``records`` (a folder, or a ``.jsonl`` file; None: no records)."""

    name = "split proxy"

    def __init__(
        self,
        upstreams: Mapping[str, str],
        weights: Mapping[str, float],
        records: str | Path | None,
        seed: int = 0,
        *,
        run_id: str = DEFAULT_RUN_ID,
        timeout_s: float = 10.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        super().__init__()
        if not upstreams:
            raise ValueError("a split needs at least one upstream")
        self.upstreams = {name: _upstream_address(name, url) for name, url in upstreams.items()}
        self.weights = resolve_weights(list(self.upstreams), weights)
        if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s):
            raise ValueError(f"timeout_s must be a finite number of seconds (got {timeout_s!r})")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive (got {timeout_s!r})")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be a whole number 0..65535 (got {port!r})")
        if not isinstance(run_id, str) or not run_id:
            raise ValueError("run_id must be a non-empty string")
        self.timeout_s = float(timeout_s)
        self.run_id = run_id
        self.host, self.port = host, port
        self.seed = seed
        self.records_path: Path | None = None
        if records is not None:
            try:  # created now, so a reader finds the file (and a bad path is said) before any traffic
                with RecordWriter(records) as w:
                    self.records_path = w.path
            except OSError as exc:
                raise ValueError(f"records: cannot write {records}: {exc.strerror or exc}") from None
        self.counts: dict[str, int] = dict.fromkeys(self.upstreams, 0)
        self.recorded = 0
        self._rng = random.Random(f"{seed}:split")
        acc, table = 0.0, []
        for name, w in self.weights.items():
            if w > 0:
                acc += w
                table.append((acc, name))
        self._table = table
        self._adapter = ContractV1Adapter()
        self._writer: RecordWriter | None = None
        self._conns: set[asyncio.Task] = set()

    def choose(self) -> str:
        """The upstream of the next request (one draw of the seeded stream)."""
        x = self._rng.random()
        for edge, name in self._table:
            if x < edge:
                return name
        return self._table[-1][1]  # the weights' sum fell a rounding short of 1

    # -- one request ----------------------------------------------------------------------------

    async def _exchange(self, name: str, request: bytes, method: str) -> tuple[str, list[tuple[str, str]], bytes]:
        """Send ``request`` to upstream ``name`` on a new connection; its full answer."""
        host, port = self.upstreams[name]
        ur, uw = await asyncio.open_connection(host, port, limit=_MAX_HEAD)
        try:
            uw.write(request)
            await uw.drain()
            while True:
                head = await ur.readuntil(b"\r\n\r\n")
                status_line, headers = _split_head(head)
                code = _status_of(status_line)
                if not (100 <= code < 200 and code != 101):
                    break  # an interim answer (100 Continue, 103 Early Hints) is read past
            no_body = method == "HEAD" or code in (204, 304) or 100 <= code < 200
            body = b"" if no_body else await _read_body(ur, headers, until_close=True)
            return status_line, headers, body
        finally:
            uw.close()

    def _answer(
        self, name: str, status_line: str, headers: list[tuple[str, str]], body: bytes, keep: bool, no_body: bool
    ) -> bytes:
        """The upstream's answer for the client: as it came, but for the connection's own headers."""
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        framed = _get(headers, "content-length") is not None or _get(headers, "transfer-encoding") is not None
        if not framed and not no_body:  # the upstream ended its body by closing: the client needs a length
            kept.append(("Content-Length", str(len(body))))
        if not keep:
            kept.append(("Connection", "close"))
        kept.append((UPSTREAM_HEADER, name))
        head = status_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept) + "\r\n"
        return head.encode("latin-1") + body

    def _error_answer(self, name: str, status: int, code: str, message: str, keep: bool) -> bytes:
        extra = f"{UPSTREAM_HEADER}: {name}\r\n" + ("" if keep else "Connection: close\r\n")
        return _json_response(status, {"error": {"code": code, "message": message}}, extra)

    def _request_id(self, req_headers, resp_headers, status: int, content: bytes | None) -> str:
        rid = _get(req_headers, "x-request-id") or (_get(resp_headers, "x-request-id") if resp_headers else None)
        if not rid and content is not None and 200 <= status < 300:
            try:
                rid = self._adapter.parse(status, {}, content).request_id
            except InvalidResponse:
                pass
        return rid or uuid.uuid4().hex

    def _record(self, result: CaptionResult, name: str, req_headers: list[tuple[str, str]], body: bytes) -> None:
        if self._writer is None:
            return
        try:
            image_bytes = len(_payload(req_headers, body))
        except ValueError:
            image_bytes = len(body)
        row = record_row(
            result, self.run_id, name, SCENARIO, image_id=_get(req_headers, "x-image-id"), image_bytes=image_bytes
        )
        ids = parse_traceparent(_get(req_headers, "traceparent"))  # the client's trace, relayed unchanged
        row["trace_id"] = ids[0] if ids else None
        try:
            self._writer.write(row)
        except (OSError, ValueError) as exc:  # a full disk loses the record, never the answer
            log.warning("split proxy: record of %s not written: %s", result.request_id, exc)
            return
        self.recorded += 1

    async def _proxy_one(
        self,
        method: str,
        target: str,
        request_line: str,
        headers: list[tuple[str, str]],
        body: bytes,
        keep: bool,
        arrived: tuple[float, float],
    ) -> bytes:
        """Route one request (its head ``arrived`` at unix time, perf counter), record it when it
        asks for a caption, and return the client's answer."""
        t_start, t0 = arrived
        name = self.choose()
        self.counts[name] += 1
        captioning = method == "POST" and target.split("?", 1)[0] == CAPTION_PATH
        request = _forward_head(request_line, headers) + body
        failure: tuple[str, int, str, str] | None = None  # outcome, client status, error code, message
        try:
            status_line, resp_headers, resp_body = await asyncio.wait_for(
                self._exchange(name, request, method), self.timeout_s
            )
        except asyncio.TimeoutError:
            failure = ("timeout", 504, "upstream_timeout", f"upstream {name} did not answer in {self.timeout_s:g} s")
        except (OSError, asyncio.IncompleteReadError) as exc:
            said = f"{type(exc).__name__}: {exc}".rstrip(": ")
            failure = ("connection_error", 502, "bad_gateway", f"upstream {name} unreachable or cut off: {said}")
        except (asyncio.LimitOverrunError, ValueError) as exc:  # _BadAnswer is one
            failure = ("invalid_response", 502, "bad_gateway", f"upstream {name} did not answer HTTP: {exc}")
        latency = time.perf_counter() - t0
        if failure is not None:
            outcome, status, code, message = failure
            message = _clip(message)
            if captioning:
                rid = self._request_id(headers, None, 0, None)
                self._record(CaptionResult(outcome, 0, latency, t_start, rid, error=message), name, headers, body)
            return self._error_answer(name, status, code, message, keep)
        code = _status_of(status_line)
        no_body = method == "HEAD" or code in (204, 304) or 100 <= code < 200
        if captioning:
            resp_map = {k.lower(): v for k, v in resp_headers}
            try:
                content = _decoded(resp_headers, resp_body)
            except (ValueError, zlib.error) as exc:
                rid = self._request_id(headers, resp_headers, code, None)
                error = _clip(f"answer body could not be decoded: {exc}")
                result = CaptionResult("invalid_response", code, latency, t_start, rid, error=error)
            else:
                rid = self._request_id(headers, resp_headers, code, content)
                result = result_from_response(self._adapter, rid, t_start, latency, code, resp_map, content)
            self._record(result, name, headers, body)
        return self._answer(name, status_line, resp_headers, resp_body, keep, no_body)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                arrived = time.time(), time.perf_counter()
                request_line, headers = _split_head(head)
                parts = request_line.split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                    writer.write(_json_response(400, {"error": {"code": "bad_request", "message": "bad request line"}}))
                    await writer.drain()
                    return
                method, target, version = parts
                if "100-continue" in (_get(headers, "expect") or "").lower():
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                try:
                    body = await _read_body(reader, headers, until_close=False)
                except ValueError:  # a length or chunk size that is not a number
                    writer.write(_json_response(400, {"error": {"code": "bad_request", "message": "bad body framing"}}))
                    await writer.drain()
                    return
                conn = (_get(headers, "connection") or "").lower()
                keep = "close" not in conn and (version == "HTTP/1.1" or "keep-alive" in conn)
                writer.write(await self._proxy_one(method, target, request_line, headers, body, keep, arrived))
                await writer.drain()
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def _tracked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._conns.add(task)
        try:
            await self._handle(reader, writer)
        except asyncio.CancelledError:  # the server is stopping: the connection ends quietly
            pass
        finally:
            self._conns.discard(task)

    async def serve(self) -> None:
        """Run in the current event loop until cancelled (open connections are closed then)."""
        server = await asyncio.start_server(self._tracked, self.host, self.port, limit=_MAX_HEAD, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._writer = RecordWriter(self.records_path) if self.records_path is not None else None
        self._ready.set()
        try:
            async with server:
                await server.serve_forever()
        finally:
            for task in list(self._conns):
                task.cancel()
            await asyncio.gather(*self._conns, return_exceptions=True)
            if self._writer is not None:
                self._writer.close()
                self._writer = None


# -- command line ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ValueError(f"{flag} takes NAME=VALUE (got {value!r})")
        if name in out:
            raise ValueError(f"{flag} {name} given twice")
        out[name] = rest
    return out


def _weight(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--weight {name}={text}: not a number") from None


def main(argv: list[str] | None = None) -> int:
    prog = "python -m harness.load.split"
    p = _Parser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--upstream", action="append", required=True, metavar="NAME=URL", help="an upstream (repeat)")
    p.add_argument("--weight", action="append", default=[], metavar="NAME=W", help="an upstream's share (0..1)")
    p.add_argument("--records", default=None, metavar="DIR", help="folder of records.jsonl (none: no records)")
    p.add_argument("--run-id", default=DEFAULT_RUN_ID, help="run_id of the records")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds an upstream has to answer (then 504)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the process that started it ends")
    try:
        args = p.parse_args(argv)
        upstreams = _pairs(args.upstream, "--upstream")
        weights = {name: _weight(name, text) for name, text in _pairs(args.weight, "--weight").items()}
        proxy = SplitProxy(
            upstreams,
            weights,
            args.records,
            args.seed,
            run_id=args.run_id,
            timeout_s=args.timeout,
            host=args.host,
            port=args.port,
        )
    except (_UsageError, ValueError) as exc:
        print(f"harness.load.split: error: {_clip(str(exc))}", file=sys.stderr, flush=True)
        return 64

    failed = proxy.run_foreground(lambda: print(f"listening on {proxy.url}", flush=True), args.exit_with_parent)
    if failed is not None:
        print(f"harness.load.split: error: cannot listen on {args.host}:{args.port}: {failed}", file=sys.stderr)
        return 64
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
