"""The asynchronous recording user: submits images to ``POST /v1/caption:async`` and polls each
job's ``Location`` with back-off until it is done, failed or expired, or until the run's request
timeout has passed since the submission (then it is still pending, and missing). One record per
image offered (``harness.slo.job_figures`` reads them): a done job's record starts at its submission and
its ``latency_s`` is the pipeline lag the server's job document gives (arrival to caption
available), with the caption document parsed as the synchronous route's; a refused submission
keeps its answer (429, 5xx ...); a failed, expired or never finished job has no caption.

The polls go to Locust's stats under ``/v1/jobs/[id]`` and make no records. Only contract v1
(``--protocol v1``) has the asynchronous route.

Importing this module imports Locust (and gevent's monkey-patching).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

import gevent
from gevent import GreenletExit
from locust.exception import StopUser

from harness.client import CaptionResult, result_from_exception, result_from_response
from harness.load.payload import Payload
from harness.load.shapes import HarnessShape
from harness.load.user import CaptionUser
from harness.protocols.v1 import ContractV1Adapter
from harness.slo.job_figures import FAILED_PREFIX, MISSING_EXPIRED, MISSING_PENDING

__all__ = ["AsyncCaptionUser", "BackfillShape", "POLL_FIRST_S", "POLL_MAX_S"]

log = logging.getLogger("harness.load")

POLL_FIRST_S = 0.05
POLL_MAX_S = 1.0
_POLL_GROWTH = 1.5
_POLL_NAME = "/v1/jobs/[id]"


@dataclass
class _Job:
    payload: Payload
    request_id: str
    t_wall: float
    t0: float
    location: str
    next_poll: float
    delay: float = POLL_FIRST_S


class AsyncCaptionUser(CaptionUser):
    """Submits one job per task and waits for it (so ``--users`` caps the jobs in flight);
    with ``jobs_per_user`` set, each user submits that many and then idles (a backfill)."""

    abstract = True
    asynchronous = True
    jobs_per_user: int | None = None

    def __init__(self, environment):
        super().__init__(environment)
        self._submitted = 0
        self._async: ContractV1Adapter | None = None

    def on_start(self) -> None:
        adapter = self.recorder.adapter
        if not isinstance(adapter, ContractV1Adapter):
            log.error(
                "asynchronous scenarios need --protocol v1 (the %s protocol has no asynchronous route)",
                getattr(adapter, "name", "?"),
            )
            raise StopUser()
        self._async = ContractV1Adapter(adapter.path + ":async", adapter.api_key_header)
        super().on_start()

    def job(self) -> None:
        """The task: one job, submitted and waited for."""
        if self.jobs_per_user is not None and self._submitted >= self.jobs_per_user:
            gevent.sleep(0.2)  # done: idle until the run ends
            return
        job = self.submit(self.choose())
        if job is not None:
            self.wait_for([job])

    def submit(self, payload: Payload) -> _Job | None:
        """Send ``payload`` to the asynchronous route; the job accepted, or None when refused
        (then its record is written)."""
        runner = self.environment.runner
        from harness.load.user import _STOPPING

        if runner is not None and runner.state in _STOPPING:
            raise StopUser()
        rec = self.recorder
        rid = rec.next_request_id()
        req = self._async.request(
            payload.body, payload.content_type, rid, rec.want_embedding(self.rng), rec.settings.api_key
        )
        self._submitted += 1
        t_wall, t0 = time.time(), time.perf_counter()
        resp = self.client.request(
            req.method, req.path, name=req.path.split("?")[0], data=req.content, headers=req.headers
        )
        latency = time.perf_counter() - t0
        status = resp.status_code or 0
        location = resp.headers.get("location") if status == 202 else None
        if location:
            return _Job(payload, rid, t_wall, t0, location, time.monotonic() + POLL_FIRST_S)
        if status == 0:
            result = result_from_exception(rid, t_wall, latency, resp.error or ConnectionError("no response"))
        else:
            result = result_from_response(self._async, rid, t_wall, latency, status, resp.headers, resp.content or b"")
            if status == 202:  # accepted without a Location: the contract broken
                result = CaptionResult(
                    "invalid_response", status, latency, t_wall, rid, error="202 without a Location header"
                )
        self._record(result, payload)
        return None

    def wait_for(self, jobs: list[_Job]) -> None:
        """Poll ``jobs`` (each as it falls due, with back-off) until each has its record."""
        deadline_of = self.recorder.request_timeout_s
        waiting = list(jobs)
        try:
            while waiting:
                waiting.sort(key=lambda j: j.next_poll)
                job = waiting[0]
                now = time.monotonic()
                if job.next_poll > now:
                    gevent.sleep(job.next_poll - now)
                if time.perf_counter() - job.t0 >= deadline_of:
                    self._missing(job, MISSING_PENDING)
                    waiting.pop(0)
                    continue
                if self._poll(job):
                    waiting.pop(0)
                else:
                    job.delay = min(POLL_MAX_S, job.delay * _POLL_GROWTH)
                    job.next_poll = time.monotonic() + job.delay
        except GreenletExit:  # the run's stop timeout ended the wait: what is left is missing
            for job in waiting:
                self._missing(job, MISSING_PENDING)
            raise

    def _poll(self, job: _Job) -> bool:
        """One poll; True when the job's record is written."""
        rec = self.recorder
        headers = dict(self._async.auth_headers(rec.settings.api_key))
        resp = self.client.request("GET", job.location, name=_POLL_NAME, headers=headers)
        if resp.status_code != 200:
            return False  # a failed poll is retried until the job's deadline
        try:
            doc = json.loads(resp.content or b"{}")
            state = doc.get("status") if isinstance(doc, dict) else None
        except ValueError:
            state = None
        if state in (None, "pending"):
            return False
        if state == "done":
            lag = doc.get("lag_s")
            if not isinstance(lag, (int, float)) or isinstance(lag, bool) or lag < 0:
                lag = time.perf_counter() - job.t0  # a document without its lag: the client's view
            body = json.dumps(doc.get("result")).encode("utf-8")
            result = result_from_response(self._async, job.request_id, job.t_wall, float(lag), 200, None, body)
        elif state == "failed":
            err = doc.get("error") if isinstance(doc.get("error"), dict) else {}
            text = f"{FAILED_PREFIX}: {err.get('code', '?')}: {err.get('message', '')}"[:500]
            result = CaptionResult(
                "http_error", 500, time.perf_counter() - job.t0, job.t_wall, job.request_id, error=text
            )
        elif state == "expired":
            self._missing(job, MISSING_EXPIRED)
            return True
        else:
            result = CaptionResult(
                "invalid_response",
                200,
                time.perf_counter() - job.t0,
                job.t_wall,
                job.request_id,
                error=f"unknown job status {str(state)[:60]!r}",
            )
        self._record(result, job.payload)
        return True

    def _missing(self, job: _Job, why: str) -> None:
        result = CaptionResult("timeout", 0, time.perf_counter() - job.t0, job.t_wall, job.request_id, error=why)
        self._record(result, job.payload)

    def _record(self, result: CaptionResult, payload: Payload) -> None:
        self.recorder.record(result, payload.image_id, len(payload.body), payload.width, payload.height)


# Its one task replaces the synchronous user's (Locust's metaclass would add the base's tasks to
# any declared in the class body; subclasses inherit this list).
AsyncCaptionUser.tasks = [AsyncCaptionUser.job]


class BackfillShape(HarnessShape):
    """A burst: ``--users`` users start at once, each submits one job (``jobs_per_user`` of the
    user class) and waits for it; the run ends when every job has its record (in one process),
    or at ``--duration``."""

    abstract = True
    default_users = 50
    default_duration_s = 120.0
    jobs_per_user = 1

    def load_at(self, t: float) -> tuple[int, float]:
        return self.users, float(max(100, self.users * 100))

    def tick(self):
        rec = self.recorder
        if self._begun and rec.role == "local" and rec.sent >= self.users * self.jobs_per_user:
            self._end()
            return None
        return super().tick()
