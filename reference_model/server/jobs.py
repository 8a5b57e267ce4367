"""Asynchronous captioning (contract v1, asynchronous part): upload, queue, worker, caption stored.

``POST /v1/caption:async`` takes the same body as ``POST /v1/caption``, decodes and admits it
through the same path (a bad image is refused at once, 400/413/415), and answers ``202`` with the
job's document and ``Location: /v1/jobs/{id}``. ``GET /v1/jobs/{id}`` answers the document:
``pending``, ``done`` (with ``result``: the synchronous route's caption document), ``failed``
(with ``error``) or ``expired``; ``404`` once the job is forgotten or was never known.

- **Bounded queue.** At most ``job_queue`` jobs are pending (queued, being captioned, or lost to
  the dropped-jobs fault); one more is refused ``429`` with ``Retry-After``.
- **Expiry.** A job not done ``job_ttl_s`` after its arrival expires: it is a missing caption.
- **Bounded memory.** Finished jobs are kept ``job_keep_s`` seconds, and at most
  ``job_keep_max`` of them (the oldest go first); a pending job holds only its prepared image.
- **One path.** The routes admit, decode and caption through the server's ``CaptionService``
  (``request.app.state.service``), as the synchronous route does; the store is
  ``request.app.state.jobs``.
- **Worker.** Jobs go to the same batcher as synchronous requests, at most ``2 * max_batch`` in
  flight, so a backlog shares the model with live traffic instead of flooding its queue.
- **Callbacks.** ``?callback=URL`` has the finished document POSTed there (JSON, one attempt,
  5 s timeout, redirects not followed). A server that POSTs to any URL a client names can be
  made to reach internal services (SSRF), so only loopback hosts are allowed, plus the hosts
  given with ``--callback-allow``; any other URL is refused ``400`` at submission.
- **Metrics.** ``caption_jobs_total{state}`` (submitted, done, failed, expired, rejected),
  ``caption_job_lag_seconds`` (arrival to caption available, done jobs), ``caption_jobs_pending``,
  ``caption_job_callbacks_total{result}`` (delivered, refused, failed, skipped).
- **Faults.** ``stall_s`` stops the worker that long (jobs are still accepted and age);
  ``drop_rate`` silently loses that share of accepted jobs (they stay pending until they expire).
"""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import json
import logging
import secrets
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response

from reference_model.server.errors import ApiError
from reference_model.server.schemas import ErrorResponse, caption_openapi
from reference_model.server.service import CaptionService, bool_query
from reference_model.server.settings import ServerSettings

__all__ = ["Job", "JobStore", "make_router", "callback_allowed", "JOB_STATUSES"]

log = logging.getLogger("reference_model.server.jobs")

_JSON = "application/json"
JOB_STATUSES: tuple[str, ...] = ("pending", "done", "failed", "expired")
CALLBACK_TIMEOUT_S = 5.0
_CALLBACKS_IN_FLIGHT = 8
_CALLBACKS_WAITING_MAX = 1024
_LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def callback_allowed(url: str, allow: tuple[str, ...] = ()) -> str | None:
    """None when ``url`` may be called back, else why not: an http(s) URL whose host is a loopback
    address, ``localhost``, or one of the ``allow`` hosts (compared exactly, case aside)."""
    if len(url) > 2000:
        return "callback URL is over 2000 characters"
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "callback is not a valid URL"
    if parts.scheme not in ("http", "https") or not host:
        return "callback must be an http or https URL with a host"
    if parts.username or parts.password:
        return "callback URL must not carry credentials"
    if host in _LOOPBACK_NAMES or host in {h.lower() for h in allow}:
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return f"callback host {host[:80]!r} is not allowed (loopback only; the server's --callback-allow adds hosts)"


@dataclass(eq=False)
class Job:
    """One asynchronous job. Times: ``arrived``/``finished`` on the server's monotonic clock (the
    lag), ``*_wall`` in unix seconds (the document)."""

    id: str
    request_id: str
    arrived: float
    arrived_wall: float
    want_embedding: bool
    callback: str | None = None
    image: Any = None
    status: str = "pending"
    result: dict[str, Any] | None = None
    error: dict[str, str] | None = None
    finished: float | None = None
    finished_wall: float | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    trace: Any = field(default=None, repr=False)  # the submission's trace context (the server's traces)

    @property
    def lag_s(self) -> float | None:
        return None if self.finished is None else self.finished - self.arrived

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "job_id": self.id,
            "status": self.status,
            "request_id": self.request_id,
            "submitted_at": round(self.arrived_wall, 6),
        }
        if self.status == "pending":
            return doc
        doc["finished_at"] = round(self.finished_wall or 0.0, 6)
        if self.status == "done":
            doc["lag_s"] = round(self.lag_s or 0.0, 6)
            doc["result"] = self.result
        elif self.status == "failed":
            doc["error"] = self.error
        return doc


class JobStore:
    """The jobs of one server: the bounded queue, the worker, expiry, retention and callbacks.
    Jobs are captioned by ``service`` (faults, batch, safety, metrics, as synchronous requests
    are); ``wall`` gives the unix times of the job's document."""

    def __init__(self, service: CaptionService, *, wall: Callable[[], float] = time.time):
        self.service, self.wall = service, wall
        self.metrics, self.clock = service.metrics, service.clock
        s = service.settings
        self.max_pending = s.job_queue
        self.ttl_s = s.job_ttl_s
        self.keep_s = s.job_keep_s
        self.keep_max = s.job_keep_max
        self.max_in_flight = max(2, 2 * s.max_batch)
        self.jobs: dict[str, Job] = {}
        self.finished: OrderedDict[str, float] = OrderedDict()  # id -> finished (clock), oldest first
        self.queue: deque[Job] = deque()
        self.pending = 0
        self.in_flight = 0
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._callbacks: set[asyncio.Task] = set()
        self._callback_gate: asyncio.Semaphore | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None:
            self._wake, self._room = asyncio.Event(), asyncio.Event()
            self._callback_gate = asyncio.Semaphore(_CALLBACKS_IN_FLIGHT)
            self._worker = asyncio.get_running_loop().create_task(self._work(), name="job-worker")

    async def stop(self) -> None:
        """Stop the worker; jobs still pending stay pending (the process is ending)."""
        tasks = [t for t in (self._worker, *(j.task for j in self.jobs.values())) if t is not None]
        for job in self.jobs.values():
            if job.timer is not None:
                job.timer.cancel()
        for t in tasks:
            t.cancel()
        for t in list(self._callbacks):
            t.cancel()
        await asyncio.gather(*tasks, *self._callbacks, return_exceptions=True)
        self._worker = None

    # -- submission and lookup -----------------------------------------------------------------

    def retry_after_s(self) -> int:
        """Whole seconds until a pending job has likely finished (at least 1)."""
        batches = self.pending / max(1, self.service.settings.max_batch)
        return max(1, int(batches * self.service.batcher.batch_seconds + 1))

    def submit(self, request_id: str, image: Any, want_embedding: bool, callback: str | None) -> Job:
        """Accept a job (its image already decoded), or raise the 429 error when the queue is full."""
        self.start()
        m = self.metrics
        if self.pending >= self.max_pending:
            m.jobs.labels("rejected").inc()
            raise ApiError(
                429,
                "queue_full",
                f"job queue full ({self.max_pending} pending)",
                {"Retry-After": str(self.retry_after_s())},
            )
        job = Job(secrets.token_hex(16), request_id, self.clock(), self.wall(), want_embedding, callback, image)
        self.jobs[job.id] = job
        self.pending += 1
        m.jobs.labels("submitted").inc()
        m.jobs_pending.set(self.pending)
        job.timer = asyncio.get_running_loop().call_later(self.ttl_s, self._expire, job)
        if self.service.settings.enable_faults and self.service.injector.draw_drop():
            job.image = None  # lost: never worked, pending until it expires
            return job
        self.queue.append(job)
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job | None:
        self._prune()
        return self.jobs.get(job_id)

    async def accept(self, request_id: str, image: Any, want_embedding: bool, callback: str | None, trace: Any) -> Job:
        """``submit``, as the routes call it (a front-end worker's store sends the job to the
        model process); ``trace`` is the submission's trace context."""
        job = self.submit(request_id, image, want_embedding, callback)
        job.trace = trace
        return job

    async def find(self, job_id: str) -> Job | None:
        """``get``, as the routes call it."""
        return self.get(job_id)

    # -- the worker ------------------------------------------------------------------------

    async def _work(self) -> None:
        injector = self.service.injector
        while True:
            if not self.queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            stall = injector.stall_remaining()
            if stall > 0:  # looked at again often: clearing the fault ends the stall at once
                await asyncio.sleep(min(stall, 0.1))
                continue
            if self.in_flight >= self.max_in_flight:
                self._room.clear()
                await self._room.wait()
                continue
            job = self.queue.popleft()
            if job.status != "pending":
                continue
            self.in_flight += 1
            job.task = asyncio.get_running_loop().create_task(self._run(job), name=f"job-{job.id[:8]}")

    async def _run(self, job: Job) -> None:
        service = self.service
        with service.tracing.job_span(job.trace, job):
            try:
                remaining = self.ttl_s - (self.clock() - job.arrived)
                cap, verdict, confidence = await service.caption_decoded(None, job.image, remaining)
                body = service.caption_body(job.request_id, cap, verdict, confidence, job.arrived, job.want_embedding)
            except asyncio.CancelledError:
                return
            except ApiError as exc:
                if exc.code == "queue_full":  # the batch queue is full of live traffic: the job waits its turn
                    self.queue.appendleft(job)
                    await asyncio.sleep(min(1.0, max(0.05, service.batcher.batch_seconds)))
                elif exc.code == "deadline_exceeded":
                    self._expire(job)
                else:
                    self._finish(job, "failed", error={"code": exc.code, "message": exc.message})
            except Exception as exc:  # the job fails; the worker goes on
                log.exception("job %s failed: %s: %s", job.id, type(exc).__name__, exc)
                self._finish(
                    job, "failed", error={"code": "internal", "message": f"internal error: {type(exc).__name__}"}
                )
            else:
                self._finish(job, "done", result=body)
            finally:
                job.task = None
                self.in_flight -= 1
                self._room.set()

    # -- the end of a job ------------------------------------------------------------------

    def _expire(self, job: Job) -> None:
        if job.status != "pending":
            return
        task = job.task
        self._finish(job, "expired")
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _finish(self, job: Job, status: str, *, result: dict | None = None, error: dict | None = None) -> None:
        if job.status != "pending":
            return
        m = self.metrics
        job.status, job.result, job.error, job.image = status, result, error, None
        job.finished, job.finished_wall = self.clock(), self.wall()
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None
        self.pending -= 1
        m.jobs.labels(status).inc()
        if status == "done":
            m.job_lag.observe(job.lag_s)
        m.jobs_pending.set(self.pending)
        self.finished[job.id] = job.finished
        self._prune()
        if job.callback is not None:
            self._call_back(job)

    def _prune(self) -> None:
        horizon = self.clock() - self.keep_s
        while self.finished:
            job_id, at = next(iter(self.finished.items()))
            if len(self.finished) <= self.keep_max and at >= horizon:
                break
            self.finished.popitem(last=False)
            self.jobs.pop(job_id, None)

    def _call_back(self, job: Job) -> None:
        if len(self._callbacks) >= _CALLBACKS_WAITING_MAX:
            log.warning("callback of job %s skipped: %d callbacks waiting", job.id, len(self._callbacks))
            self.metrics.job_callbacks.labels("skipped").inc()
            return
        body = json.dumps(job.document()).encode("utf-8")
        task = asyncio.get_running_loop().create_task(self._deliver(job.id, job.callback, body))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _deliver(self, job_id: str, url: str, body: bytes) -> None:
        async with self._callback_gate:
            counted = self.metrics.job_callbacks
            try:
                status = await asyncio.to_thread(_post_json, url, body, CALLBACK_TIMEOUT_S)
            except Exception as exc:  # a callback that fails is logged and counted; the job stays readable
                log.warning("callback of job %s failed: %s: %s", job_id, type(exc).__name__, exc)
                counted.labels("failed").inc()
                return
            if not 200 <= status < 300:
                log.warning("callback of job %s answered %d", job_id, status)
                counted.labels("refused").inc()
                return
            counted.labels("delivered").inc()


def _post_json(url: str, body: bytes, timeout: float) -> int:
    """POST ``body`` to ``url`` once (no redirects followed); the status answered."""
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", target, body, {"Content-Type": _JSON, "User-Agent": "caption-reference-server"})
        resp = conn.getresponse()
        resp.read(65536)
        return resp.status
    finally:
        conn.close()


def _responses(settings: ServerSettings, *codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "invalid request, image or callback",
        401: "missing or wrong credentials",
        404: "no such job",
        413: "body or image too large",
        415: "unsupported content type",
        429: "job queue full",
        503: "not ready, draining, or too many pixels being decoded",
    }
    if settings.api_key is None:
        codes = tuple(c for c in codes if c != 401)
    return {c: {"model": ErrorResponse, "description": text[c]} for c in codes}


def _answer(job: Job, status: int, request_id: str | None = None) -> Response:
    headers = {"X-Request-Id": request_id or job.request_id}
    if job.status == "pending":
        headers["Retry-After"] = "1"
    if status == 202:
        headers["Location"] = f"/v1/jobs/{job.id}"
    return Response(json.dumps(job.document()), status_code=status, media_type=_JSON, headers=headers)


# The handlers carry no docstring: FastAPI would put it in the OpenAPI document.


async def submit(request: Request) -> Response:
    service: CaptionService = request.app.state.service
    with service.tracing.server_span(request, "/v1/caption:async") as span:
        response, request_id = await _submit(service, request.app.state.jobs, request)
        span.finish(response.status_code, request_id)
        return response


async def _submit(service: CaptionService, store: JobStore, request: Request) -> tuple[Response, str | None]:
    metrics = service.metrics
    request_id = None
    try:
        request_id = service.take_request_id(request)
        try:
            service.admit(request)
        except ApiError as exc:
            if exc.status == 503:
                metrics.jobs.labels("rejected").inc()
            raise
        callback = request.query_params.get("callback")
        if callback is not None:
            why = callback_allowed(callback, service.settings.callback_allow)
            if why is not None:
                raise ApiError(400, "callback_not_allowed", why)
        want_embedding = bool_query(request.query_params.get("return_embedding"))
        data = await service.read_image_bytes(request)
        try:
            image = await service.decode(data)
        except ApiError as exc:
            if exc.status == 503:
                metrics.jobs.labels("rejected").inc()
            raise
        job = await store.accept(request_id, image, want_embedding, callback, service.tracing.context())
    except ApiError as exc:
        return exc.response(request_id), request_id
    return _answer(job, 202), request_id


async def get_job(job_id: str, request: Request) -> Response:
    service: CaptionService = request.app.state.service
    store: JobStore = request.app.state.jobs
    try:
        service.check_api_key(request)
        job = await store.find(job_id)
        if job is None:
            raise ApiError(404, "job_not_found", "no such job (unknown, or finished and forgotten)")
    except ApiError as exc:
        return exc.response()
    return _answer(job, 200)


def make_router(settings: ServerSettings) -> APIRouter:
    """``POST /v1/caption:async`` and ``GET /v1/jobs/{job_id}``, their OpenAPI description fitted
    to ``settings``; they serve the ``JobStore`` kept on ``app.state.jobs``."""
    job_doc = {
        "content": {
            _JSON: {"schema": {"type": "object", "required": ["job_id", "status", "request_id", "submitted_at"]}}
        }
    }
    sync = caption_openapi(settings)  # the synchronous route's parameters and body, shared
    router = APIRouter()
    router.add_api_route(
        "/v1/caption:async",
        submit,
        methods=["POST"],
        summary="Caption one image asynchronously: 202 and the job's Location",
        response_model=None,
        responses={
            202: {"description": "job accepted (status pending)", **job_doc},
            **_responses(settings, 400, 401, 413, 415, 429, 503),
        },
        openapi_extra={
            **sync,
            "parameters": [
                *sync.get("parameters", []),
                {
                    "name": "callback",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 2000},
                    "description": "POST the finished job here (loopback or allow-listed hosts only)",
                },
            ],
        },
    )
    router.add_api_route(
        "/v1/jobs/{job_id}",
        get_job,
        methods=["GET"],
        summary="An asynchronous job: pending, done (with the caption document), failed or expired",
        response_model=None,
        responses={200: {"description": "the job", **job_doc}, **_responses(settings, 401, 404)},
    )
    return router
