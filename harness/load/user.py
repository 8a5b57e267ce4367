"""The recording Locust user every scenario builds on: it sends images from the payload pool
through the run's adapter and records one ``RequestRecord`` per request sent, answer or not.

Closed loop by default (each user sends as soon as its last answer came); with a rate
(``--rate`` or a scenario's ``default_rate``) users take start times from an open-loop
arrival clock and the user count only caps concurrency.

Each request is classified once, where Locust reports it: the same outcome goes to Locust's
stats (ok is a success, anything else a failure named by its outcome) and to the record.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import locust
from gevent import GreenletExit
from locust import FastHttpUser, task
from locust.contrib.fasthttp import LocustBadStatusCode
from locust.exception import CatchResponseError, StopUser
from locust.runners import STATE_CLEANUP, STATE_STOPPED, STATE_STOPPING

from harness.client import Adapter, CaptionResult, outcome_of_exception, result_from_exception, result_from_response
from harness.load.capture import LoadRecorder, install
from harness.load.payload import Payload, PayloadPool
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


class _Classifier:
    """Stands in for the request event of a user's HTTP session: classifies the answer of the
    request now in flight, marks it ok or failed for Locust, then fires the real event."""

    __slots__ = ("event", "adapter", "request_id", "result")

    def __init__(self, event: Any):
        self.event = event
        self.adapter: Adapter | None = None
        self.request_id: str | None = None
        self.result: CaptionResult | None = None

    def arm(self, adapter: Adapter, request_id: str) -> None:
        self.adapter, self.request_id, self.result = adapter, request_id, None

    def fire(self, **meta: Any) -> None:
        if self.request_id is None:  # a request the user made for its own reasons: passed on as is
            self.event.fire(**meta)
            return
        rid, self.request_id = self.request_id, None
        resp, exc = meta.get("response"), meta.get("exception")
        latency, t_start = meta["response_time"] / 1000.0, meta["start_time"]
        status = resp.status_code if resp is not None else 0
        result = None
        if status and (exc is None or isinstance(exc, LocustBadStatusCode)):
            try:
                body = resp.content or b""
            except Exception as read_exc:  # the body broke off after the status line
                result = result_from_exception(rid, t_start, latency, read_exc)
            else:
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
        adapter = rec.adapter
        rid = rec.next_request_id()
        req = adapter.request(
            payload.body, payload.content_type, rid, rec.want_embedding(self.rng), rec.settings.api_key
        )
        name = _stat_name(req.path, payload.malformed)
        classifier = self._classifier
        classifier.arm(adapter, rid)
        t_wall, t0 = time.time(), time.perf_counter()
        try:
            self.client.request(req.method, req.path, name=name, data=req.content, headers=req.headers)
        except GreenletExit:
            result = classifier.result or self._unreported(
                req.method, name, req.path, rid, t_wall, t0, "timeout", ABORTED_ERROR
            )
            rec.record(result, payload.image_id, len(payload.body), payload.width, payload.height)
            raise
        except Exception as exc:  # the session itself failed: the request still gets its record and count
            result = classifier.result or self._unreported(
                req.method, name, req.path, rid, t_wall, t0, *outcome_of_exception(exc)
            )
        else:
            result = classifier.result or self._unreported(
                req.method, name, req.path, rid, t_wall, t0, "connection_error", "no report from the HTTP session"
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
