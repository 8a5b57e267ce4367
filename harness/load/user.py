"""The recording Locust user every scenario builds on: it sends images from the payload pool
through the run's adapter and records one ``RequestRecord`` per request sent, answer or not.

Closed loop by default (each user sends as soon as its last answer came); with a rate
(``--rate`` or a scenario's ``default_rate``) users take start times from an open-loop
arrival clock and the user count only caps concurrency.

Each request is classified once, where Locust reports it: the same outcome goes to Locust's
stats (ok is a success, anything else a failure named by its outcome) and to the record.

A streamed answer (an adapter that ``streams``: ``openai-chat`` with ``stream: true``) is read as
its bytes arrive, each read timed and fed to ``harness.client.StreamRead``, the httpx clients' own
reader, so a load run records the same ``ttft_s``, ``itl_s`` and ``tpot_s`` as ``harness
evaluate`` and a broken stream the same outcome and error. Locust's own response time stays end to
end: the request is reported to its stats once the stream has ended (or broken, or run past the
timeout), with the bytes read as its length.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import locust
from gevent import GreenletExit
from geventhttpclient.response import HTTPConnectionClosed, HTTPParseError
from locust import FastHttpUser, task
from locust.contrib.fasthttp import LocustBadStatusCode
from locust.exception import CatchResponseError, StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from harness.client import (
    Adapter,
    CaptionResult,
    StreamRead,
    outcome_of_exception,
    result_from_exception,
    result_from_response,
)
from harness.load.capture import LoadRecorder, install
from harness.load.payload import MALFORMED_PREFIX, Payload, PayloadPool
from harness.load.summary import ABORTED_ERROR

__all__ = ["CaptionUser"]

install(locust.events)

_STOPPING = (STATE_CLEANUP, STATE_STOPPING, STATE_STOPPED)


@functools.lru_cache(maxsize=64)
def _stat_name(path: str, malformed: bool) -> str:
    """The name Locust's stats group a request under: its path, malformed inputs apart."""
    return path.split("?")[0] + (" (malformed)" if malformed else "")


@functools.lru_cache(maxsize=256)
def _failure(outcome: str, status: int) -> str:
    return f"{outcome} {status}" if status else outcome


def _event_stream(resp: Any) -> bool:
    """Whether ``resp`` (a FastResponse whose body is unread) is an event stream this user can time:
    ``text/event-stream``, not content-encoded, and a geventhttpclient response underneath."""
    headers = resp.headers
    if headers is None or not (headers.get("content-type") or "").lower().startswith("text/event-stream"):
        return False
    if (headers.get("content-encoding") or "identity").lower() != "identity":
        return False  # a compressed stream is read whole, untimed (as the protocol's parse reads it)
    ghc = getattr(resp, "_response", None)
    return all(hasattr(ghc, a) for a in ("_body_buffer", "_sock", "message_complete", "feed", "block_size"))


def _closed_midway() -> HTTPConnectionClosed:
    return HTTPConnectionClosed("the connection closed before the end of the answer")


def _recv(ghc: Any) -> None:
    """One read off the socket of ``ghc`` (a geventhttpclient response) into its parser: the body
    bytes it brings land in ``ghc._body_buffer`` (chunked framing removed). The end of a body
    delimited by the connection's close completes it; any other early close is a broken answer."""
    sock = ghc._sock
    if sock is None:
        raise _closed_midway()
    data = sock.recv(ghc.block_size)
    if data:
        ghc.feed(data)
        return
    try:
        ghc.feed(b"")
    except HTTPParseError:
        raise _closed_midway() from None
    if not ghc.message_complete:
        raise _closed_midway()


def _read_stream(ghc: Any, stream: StreamRead) -> BaseException | None:
    """Feed ``stream`` the body of ``ghc`` as each read brings it (every read timed when it came,
    as the httpx clients time theirs) until its ``[DONE]``, its end, the timeout, or a failure,
    which is returned (a transport error, a malformed event), never raised."""
    buf = ghc._body_buffer
    try:
        while True:
            if buf:
                data = bytes(buf)
                del buf[:]
                if stream.feed(data):
                    return None
            if ghc.message_complete:
                return None
            _recv(ghc)
    except Exception as exc:  # classified by StreamRead.result, with what came before
        return exc


def _discard(ghc: Any) -> None:
    """Close the connection of ``ghc`` instead of giving it back to the pool (its answer was not
    read to the end, so the next request must not read the rest)."""
    sock, pool = ghc._sock, getattr(ghc, "_pool", None)
    ghc._sock = None
    if hasattr(ghc, "_pool"):
        ghc._pool = None
    if sock is None:
        return
    if pool is not None:
        pool.release_socket(sock)
    else:
        sock.close()


def _end_stream(ghc: Any, stream: StreamRead, exc: BaseException | None) -> None:
    """After the record's end: read what follows a ``[DONE]`` (the body's last chunk) so the
    connection can serve the next request, within the timeout; otherwise close it."""
    if ghc.message_complete and ghc._sock is None:
        return
    if exc is None and stream.done:
        try:
            while not ghc.message_complete and stream.perf() - stream.t0 <= stream.timeout_s:
                _recv(ghc)
                del ghc._body_buffer[:]
        except Exception:  # noqa: BLE001 - the answer was already recorded; the connection goes
            pass
        if ghc.message_complete:
            return  # the parser gave the connection back to the pool (or closed it)
    _discard(ghc)


class _Classifier:
    """Stands in for the request event of a user's HTTP session: classifies the answer of the
    request now in flight, marks it ok or failed for Locust, then fires the real event."""

    __slots__ = ("event", "adapter", "request_id", "result", "t0", "timeout_s")

    def __init__(self, event: Any):
        self.event = event
        self.adapter: Adapter | None = None
        self.request_id: str | None = None
        self.result: CaptionResult | None = None
        self.t0: float | None = None
        self.timeout_s = 0.0

    def arm(self, adapter: Adapter, request_id: str, t0: float | None = None, timeout_s: float = 0.0) -> None:
        """The next request reported is ``request_id``'s; with ``t0`` (when it was sent) its answer
        may be a stream, read and timed here (the request was sent with ``stream=True``)."""
        self.adapter, self.request_id, self.result = adapter, request_id, None
        self.t0, self.timeout_s = t0, timeout_s

    def fire(self, **meta: Any) -> None:
        if self.request_id is None:  # a request the user made for its own reasons: passed on as is
            self.event.fire(**meta)
            return
        rid, self.request_id = self.request_id, None
        resp, exc = meta.get("response"), meta.get("exception")
        latency, t_start = meta["response_time"] / 1000.0, meta["start_time"]
        status = resp.status_code if resp is not None else 0
        result = None
        t0 = self.t0
        if t0 is not None and status and exc is None and 200 <= status < 300 and _event_stream(resp):
            result = self._stream(resp, rid, t_start, status, t0, meta)
        elif status and (exc is None or isinstance(exc, LocustBadStatusCode)):
            try:
                body = resp.content or b""
            except Exception as read_exc:  # the body broke off after the status line
                result = result_from_exception(rid, t_start, latency, read_exc)
            else:
                if t0 is not None:  # sent with stream=True: Locust timed the head only
                    latency = time.perf_counter() - t0
                    meta["response_time"], meta["response_length"] = latency * 1000.0, len(body)
                result = result_from_response(
                    self.adapter, rid, t_start, latency, status, resp.headers if status >= 300 else None, body
                )
        if result is None:
            result = result_from_exception(rid, t_start, latency, exc or ConnectionError("no response"))
        meta["exception"] = (
            None if result.outcome == "ok" else CatchResponseError(_failure(result.outcome, result.status))
        )
        self.result = result
        self.event.fire(**meta)

    def _stream(self, resp: Any, rid: str, t_start: float, status: int, t0: float, meta: dict) -> CaptionResult:
        """Read the event stream of ``resp`` as it arrives; Locust's response time becomes the
        record's end-to-end latency and its length the body bytes read."""
        ghc = resp._response
        stream = StreamRead(self.adapter, t0, self.timeout_s)
        exc = _read_stream(ghc, stream)
        try:
            result = stream.result(rid, t_start, status, exc)
        finally:
            _end_stream(ghc, stream, exc)
        meta["response_time"], meta["response_length"] = result.latency_s * 1000.0, stream.received
        return result


class CaptionUser(FastHttpUser):
    """Sends one caption request per task; ``choose`` picks the payload (override to mix)."""

    abstract = True
    pools: tuple[str, ...] = ("main",)
    max_retries = 0
    connection_backoff_s = 0.1
    """In closed loop, the pause after a request that could not connect (as a real client's
    retry delay; without it a down target is hammered as fast as sockets fail)."""

    def __init__(self, environment):
        self.recorder = LoadRecorder.of(environment)
        timeout = self.recorder.request_timeout_s
        self.network_timeout = timeout
        self.connection_timeout = timeout
        super().__init__(environment)
        self._classifier = _Classifier(self.client.request_event)
        self.client.request_event = self._classifier
        self.rng = self.recorder.user_rng()
        self._backoff = 0.0
        self._main_pool: PayloadPool | None = None

    def wait_time(self) -> float:
        if self.recorder.arrivals is not None:
            return self.recorder.arrival_delay()
        return self._backoff

    def on_start(self) -> None:
        if self.recorder.error is not None:
            raise StopUser()
        if self.recorder.arrivals is not None:
            self.wait()  # open loop: even the first request waits for its scheduled start

    def choose(self) -> Payload:
        pool = self._main_pool
        if pool is None:  # looked up once: the pools are built before the users start
            pool = self._main_pool = self.recorder.pool("main")
        return pool.pick(self.rng)

    @task
    def caption(self) -> None:
        self.send(self.choose())

    def send(self, payload: Payload) -> CaptionResult:
        """Send ``payload``, record what happened, report it to Locust's stats; never raises for
        a failed request."""
        runner = self.environment.runner
        if runner is not None and runner.state in _STOPPING:
            raise StopUser()  # the run is ending: a request started now could not be waited for
        rec = self.recorder
        adapter, settings = rec.adapter, rec.settings
        rid = rec.next_request_id()
        embedding = settings.embedding_sample > 0.0 and rec.want_embedding(self.rng)
        method, path, headers, content = adapter.request(
            payload.body, payload.content_type, rid, embedding, settings.api_key
        )
        name = _stat_name(path, payload.image_id.startswith(MALFORMED_PREFIX))  # payload.malformed
        classifier = self._classifier
        streams = adapter.streams
        t_wall, t0 = time.time(), time.perf_counter()
        if streams:  # the answer is read as it arrives, and timed from t0
            classifier.arm(adapter, rid, t0, rec.request_timeout_s)
        else:  # classifier.arm(adapter, rid), in place: once per request
            classifier.adapter, classifier.request_id, classifier.result, classifier.t0 = adapter, rid, None, None
        try:
            self.client.request(method, path, name=name, data=content, headers=headers, stream=streams)
        except GreenletExit:
            result = classifier.result or self._unreported(
                method, name, path, rid, t_wall, t0, "timeout", ABORTED_ERROR
            )
            rec.record(result, payload.image_id, len(payload.body), payload.width, payload.height)
            raise
        except Exception as exc:  # the session itself failed: the request still gets its record and count
            result = classifier.result or self._unreported(
                method, name, path, rid, t_wall, t0, *outcome_of_exception(exc)
            )
        else:
            result = classifier.result or self._unreported(
                method, name, path, rid, t_wall, t0, "connection_error", "no report from the HTTP session"
            )
        rec.record(result, payload.image_id, len(payload.body), payload.width, payload.height)
        self._backoff = self.connection_backoff_s if result.outcome == "connection_error" else 0.0
        return result

    def _unreported(
        self, method: str, name: str, path: str, rid: str, t_wall: float, t0: float, outcome: str, error: str
    ) -> CaptionResult:
        """A request Locust never heard the end of: report it once, as failed, and return its result."""
        self._classifier.request_id = None
        latency = time.perf_counter() - t0
        self.environment.events.request.fire(
            request_type=method,
            name=name,
            response_time=latency * 1000.0,
            response_length=0,
            exception=CatchResponseError(_failure(outcome, 0)),
            context={},
            response=None,
            url=path,
            start_time=t_wall,
        )
        return CaptionResult(outcome, 0, latency, t_wall, rid, error=error)
