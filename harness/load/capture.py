"""Record capture inside a Locust process (local, master or worker).

A ``LoadRecorder`` is attached to each Locust ``Environment``. In a single process it appends
every record to ``records.jsonl`` as the answer arrives. A worker sends its records to the
master inside Locust's own stats reports (every half second, and once more when its users have
stopped), so the records and Locust's counts always travel together; the master appends them.
When the run ends the master (or the single process) compacts the records to parquet and
writes ``summary.json``.

Importing this module imports Locust (and so gevent's monkey-patching): only Locust processes
(``scenarios/*.py``, ``python -m harness.load.run``) import it.
"""

from __future__ import annotations

import itertools
import logging
import random
import secrets
import time
from pathlib import Path
from typing import Any

import gevent
import locust.runners as locust_runners
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness.client import Adapter, CaptionResult, ContractV1Adapter, record_row
from harness.load.arrivals import ArrivalClock
from harness.load.payload import PayloadPool, malformed_payloads, pool_from_dataset, shapes_pool
from harness.load.settings import LoadSettings, add_arguments, settings_from_options
from harness.load.summary import summarize, write_summary
from harness.protocols.options import protocol_choice
from harness.records import RECORDS_JSONL, RecordWriter, compact, load_records, record_line
from harness.redaction import Redactor, credential_values

__all__ = ["LoadRecorder", "install", "WORKER_REPORT_INTERVAL_S", "FLUSH_INTERVAL_S"]

log = logging.getLogger("harness.load")

WORKER_REPORT_INTERVAL_S = 0.5
FLUSH_INTERVAL_S = 0.2
WRITE_LINES = 256
"""Records per ``write`` of a flush: about 200 kB of text at a time, built in memory the process
already holds, where a whole flush's text (a megabyte and more at thousands of requests a second)
would take fresh pages at every flush."""
DEFAULT_REQUEST_TIMEOUT_S = 30.0
_DONE_WAIT_EXTRA_S = 15.0


def _scenario_name(environment: Environment) -> str:
    name = environment.locustfile or "locustfile"
    return Path(name).stem


def _shape_default(environment: Environment, name: str, fallback: Any = None) -> Any:
    shape = environment.shape_class
    if shape is None:
        for cls in environment.user_classes:
            if hasattr(cls, name):
                return getattr(cls, name)
        return fallback
    return getattr(shape, name, fallback)


class LoadRecorder:
    """The per-process recording state of a run: settings, payloads, adapter, and the sink."""

    def __init__(self, environment: Environment, role: str):
        self.environment = environment
        self.role = role  # "local" | "master" | "worker"
        self.settings: LoadSettings = settings_from_options(environment.parsed_options, _scenario_name(environment))
        self.writer: RecordWriter | None = None
        self._buffer: list[str] = []
        self._pools: dict[tuple, PayloadPool] = {}
        self.adapter: Adapter = ContractV1Adapter()
        self.redact = Redactor((self.settings.api_key,))  # with the adapter's credentials once it is built
        self.arrivals: ArrivalClock | None = None
        self.rng = random.Random(self.settings.seed)
        self._prefix = secrets.token_hex(3)
        self._ids = itertools.count(1)
        self._users = itertools.count()
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.stopped = False
        self.workers_seen: set[str] = set()
        self.workers_done: set[str] = set()
        self.sent = 0
        self.finalized = False
        self.summary: dict[str, Any] | None = None
        self.error: str | None = None

    # -- lifecycle ------------------------------------------------------------------------

    @staticmethod
    def of(environment: Environment) -> "LoadRecorder":
        rec = getattr(environment, "harness_recorder", None)
        if rec is None:
            raise RuntimeError(
                "no LoadRecorder on this Locust environment: import harness.load.user in the "
                "locustfile (scenarios/*.py do) so the harness's event hooks are installed"
            )
        return rec

    @property
    def request_timeout_s(self) -> float:
        return float(
            self.settings.request_timeout_s
            or _shape_default(self.environment, "default_request_timeout_s", DEFAULT_REQUEST_TIMEOUT_S)
        )

    @property
    def rate(self) -> float | None:
        r = self.settings.rate or _shape_default(self.environment, "default_rate")
        return float(r) if r else None

    @property
    def worker_index(self) -> int:
        return int(getattr(self.environment.runner, "worker_index", 0) or 0)

    def prepare(self, at_start: bool = True) -> None:
        """Build what the users need (adapter, payload pools, arrival clock) before they start.
        Called at init too, so large pools are built before the run's clock starts."""
        if at_start:
            self.started_at = time.time()
            self.stopped = False
        if self.role == "master":  # the workers send; the master only records
            return
        if self.role == "worker" and at_start:  # the master's options came with the spawn message
            self.settings = settings_from_options(self.environment.parsed_options, _scenario_name(self.environment))
        s = self.settings
        self.adapter = protocol_choice(s).build()
        self.redact = Redactor(credential_values(self.adapter, s.api_key))
        self.rng = random.Random(f"{s.seed}:{self.worker_index}")
        for cls in self.environment.user_classes:
            for name in getattr(cls, "pools", ("main",)):
                self.pool(name)
        rate = self.rate
        if rate:
            share = rate / max(1, s.workers) if self.role == "worker" else rate
            self.arrivals = ArrivalClock(share, s.burstiness, seed=s.seed * 1000 + self.worker_index)
        else:
            self.arrivals = None

    def user_rng(self) -> random.Random:
        """A seeded generator for one user (the seed, the worker and the user's number)."""
        return random.Random(f"{self.settings.seed}:{self.worker_index}:{next(self._users)}")

    def pool(self, name: str) -> PayloadPool:
        """A payload pool by name: ``main`` (the dataset), ``malformed``, ``high_res`` (4096 px)."""
        s = self.settings
        key = (name, s.dataset, s.pool_size, s.seed, s.image_size)
        pool = self._pools.get(key)
        if pool is None:
            if name == "main":
                pool = pool_from_dataset(s.dataset, s.pool_size, s.seed, s.image_size)
            elif name == "malformed":
                pool = PayloadPool(malformed_payloads(s.seed), "malformed")
            elif name == "high_res":
                pool = shapes_pool(min(s.pool_size, 4), s.seed, s.image_size, "high_res:1")
            elif name == "high_res_base":
                pool = shapes_pool(min(s.pool_size, 4), s.seed, s.image_size)
            else:
                raise ValueError(f"unknown payload pool {name!r}")
            self._pools[key] = pool
        return pool

    def next_request_id(self) -> str:
        return f"{self._prefix}-{next(self._ids):07d}"

    def want_embedding(self, rng: random.Random) -> bool:
        f = self.settings.embedding_sample
        return f > 0.0 and (f >= 1.0 or rng.random() < f)

    def arrival_delay(self) -> float:
        return self.arrivals.next_delay() if self.arrivals is not None else 0.0

    # -- records --------------------------------------------------------------------------

    def record(
        self,
        result: CaptionResult,
        image_id: str | None,
        image_bytes: int | None,
        width: int | None,
        height: int | None,
    ) -> None:
        """Keep one request's record, the run's credentials redacted from it: the hot path is a list
        append; a greenlet writes the batch (a single process) or the stats report carries it to the
        master (a worker)."""
        s, redact = self.settings, self.redact
        self._buffer.append(
            record_line(
                record_row(result, s.run_id, s.target_name, s.scenario, image_id, image_bytes, width, height),
                redact if redact.secrets else None,
            )
        )
        self.sent += 1

    def drain(self) -> list[str]:
        out, self._buffer = self._buffer, []
        return out

    def flush(self) -> None:
        """Write the records kept since the last flush to ``records.jsonl``: whole lines,
        ``WRITE_LINES`` to a system call."""
        writer = self.writer
        if writer is not None and self._buffer and not writer.closed:
            lines = self.drain()
            for i in range(0, len(lines), WRITE_LINES):
                writer.write_lines(lines[i : i + WRITE_LINES])

    def open_writer(self) -> None:
        """Open ``records.jsonl``: a greenlet writes the records gathered every ``FLUSH_INTERVAL_S``
        (whole lines, ``WRITE_LINES`` to a ``write``, no fsync), so a killed run keeps every record
        answered more than that long before the kill; what the kernel holds survives the process."""
        out = self.settings.out
        out.mkdir(parents=True, exist_ok=True)
        self.writer = RecordWriter(out / RECORDS_JSONL)
        writer = self.writer

        def flusher() -> None:
            while not writer.closed:
                gevent.sleep(FLUSH_INTERVAL_S)
                self.flush()

        gevent.spawn(flusher)

    # -- the end of a run -----------------------------------------------------------------

    def wait_for_workers(self, runner: MasterRunner) -> None:
        """Ask every worker still running to stop and wait until each has sent its last records."""
        expected = {c.id for c in runner.clients.all if c.state != locust_runners.STATE_MISSING} | self.workers_seen
        for cid in expected - self.workers_done:
            try:
                runner.send_message("quit", client_id=cid)
            except Exception as exc:  # a worker that is gone cannot be asked; its records are already in
                log.warning("could not ask worker %s to stop: %s", cid, exc)
        deadline = time.monotonic() + self.request_timeout_s + _DONE_WAIT_EXTRA_S
        while not expected <= self.workers_done and time.monotonic() < deadline:
            gevent.sleep(0.05)
        missing = expected - self.workers_done
        if missing:
            log.warning("%d worker(s) did not send their last records: %s", len(missing), ", ".join(sorted(missing)))

    def finalize(self) -> dict[str, Any] | None:
        """Compact the records and write ``summary.json`` (once; single process or master)."""
        if self.finalized or self.role == "worker":
            return self.summary
        self.finalized = True
        shape = self.environment.shape_class
        if shape is not None and hasattr(shape, "close"):
            try:
                shape.close()
            except Exception as exc:  # cleaning up a proxy or a managed server must not lose the summary
                log.warning("scenario cleanup failed: %s", exc)
        if self.writer is not None:
            self.flush()
            self.writer.close()
        out = self.settings.out
        jsonl = out / RECORDS_JSONL
        if not jsonl.exists():
            jsonl.touch()
        df = load_records(jsonl)
        try:
            compact(out, df)
        except Exception as exc:  # the JSONL stays the source of truth
            log.warning("could not compact records to parquet: %s", exc)
        stats = self.environment.runner.stats.total if self.environment.runner is not None else None
        locust_totals = (
            {"requests": int(stats.num_requests), "failures": int(stats.num_failures)} if stats is not None else None
        )
        asynchronous = any(getattr(cls, "asynchronous", False) for cls in self.environment.user_classes)
        if asynchronous and stats is not None:  # one record per submission (POST); the polls are GETs
            posts = [e for (_, method), e in self.environment.runner.stats.entries.items() if method == "POST"]
            locust_totals = {
                "requests": sum(int(e.num_requests) for e in posts),
                "failures": sum(int(e.num_failures) for e in posts),
            }
        plan = list(getattr(shape, "plan_log", []) or [])
        host = getattr(shape, "target_url", None) or self.environment.host or self.settings.host
        summary = summarize(
            df,
            run_id=self.settings.run_id,
            scenario=self.settings.scenario,
            target=self.settings.target_name,
            host=host,
            started_at=getattr(shape, "started_wall", None) or self.started_at,
            ended_at=self.stopped_at or time.time(),
            latency_threshold_s=self.settings.latency_threshold_s,
            request_timeout_s=self.request_timeout_s,
            locust=locust_totals,
            plan=plan,
            workers=self.settings.workers,
        ).to_dict()
        summary["settings"] = _public_settings(self.settings, self)
        if self.error is not None:  # the run was stopped before its users started: why, in one line
            summary["error"] = " ".join(self.error.split())[:500]
        if asynchronous:
            from harness.slo.job_figures import pipeline_figures

            summary["pipeline"] = pipeline_figures(df)  # asynchronous jobs: lag, missing, drain
        write_summary(summary, out)
        self.summary = summary
        return summary


def _protocol_shown(s: LoadSettings) -> dict[str, Any]:
    try:
        return protocol_choice(s).describe()
    except Exception:  # a choice that could not be built stopped the run already; the summary says what was asked
        return {"protocol": s.protocol, "adapter": s.adapter}


def _public_settings(s: LoadSettings, rec: LoadRecorder) -> dict[str, Any]:
    return {
        "protocol": _protocol_shown(s),
        "users": s.users,
        "rate": rec.rate,
        "burstiness": s.burstiness,
        "duration_s": s.duration_s,
        "dataset": s.dataset,
        "pool_size": s.pool_size,
        "image_size": s.image_size,
        "seed": s.seed,
        "request_timeout_s": rec.request_timeout_s,
        "latency_threshold_s": s.latency_threshold_s,
        "adapter": s.adapter,
        "embedding_sample": s.embedding_sample,
        "workers": s.workers,
        "fault_via": s.fault_via,
    }


# -- event hooks ----------------------------------------------------------------------------


def _on_parser(parser, **_kw) -> None:
    add_arguments(parser)


def _on_init(environment: Environment, runner=None, **_kw) -> None:
    runner = runner or environment.runner
    role = "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"
    rec = LoadRecorder(environment, role)
    environment.harness_recorder = rec
    opts = environment.parsed_options
    if role != "worker":
        if opts is not None:  # fix the run id and folder so workers (sent these options) agree
            opts.run_id = rec.settings.run_id
            opts.out = str(rec.settings.out)
        rec.open_writer()
        if role == "master":
            environment.events.worker_report.add_listener(_records_from_worker(rec))
        if not environment.stop_timeout:
            # let requests in flight finish when the run stops, so each one gets its answer recorded
            environment.stop_timeout = rec.request_timeout_s + 1.0
    else:
        environment.events.report_to_master.add_listener(_records_to_master(rec))
        locust_runners.WORKER_REPORT_INTERVAL = WORKER_REPORT_INTERVAL_S
    if role != "master":
        try:
            rec.prepare(at_start=False)
        except Exception as exc:  # reported (and the run stopped) when the test starts
            log.debug("payloads not ready at init: %s", exc)


def _on_test_start(environment: Environment, **_kw) -> None:
    rec = getattr(environment, "harness_recorder", None)
    if rec is None:
        return
    try:
        rec.prepare()
    except Exception as exc:  # a bad dataset or adapter: stop the run with one line, not a user per traceback
        code = getattr(exc, "exit_code", 65)
        log.error("cannot start the run: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        environment.process_exit_code = code
        runner = environment.runner
        rec.error = str(exc)
        if runner is not None:
            gevent.spawn(runner.quit)


def _records_to_master(rec: LoadRecorder):
    def listener(client_id: str, data: dict, **_kw) -> None:
        data["harness_records"] = rec.drain()
        data["harness_done"] = rec.stopped

    return listener


def _records_from_worker(rec: LoadRecorder):
    def listener(client_id: str, data: dict, **_kw) -> None:
        lines = data.get("harness_records") or []
        if lines and rec.writer is not None:
            rec.writer.write_lines(lines)
        rec.workers_seen.add(client_id)
        if data.get("harness_done"):
            rec.workers_done.add(client_id)

    return listener


def _on_test_stop(environment: Environment, **_kw) -> None:
    rec = getattr(environment, "harness_recorder", None)
    if rec is None:
        return
    runner = environment.runner
    if rec.role == "worker":
        rec.stopped = True
        data: dict[str, Any] = {}  # send the last records now, with the stats they belong with
        environment.events.report_to_master.fire(client_id=runner.client_id, data=data)
        runner.send_message("stats", data)
    elif rec.role == "master":
        rec.wait_for_workers(runner)
        rec.stopped_at = time.time()
    else:
        rec.stopped_at = time.time()


def _on_quitting(environment: Environment, **_kw) -> None:
    rec = getattr(environment, "harness_recorder", None)
    if rec is not None:
        rec.finalize()


def install(events) -> None:
    """Add the harness's hooks to a Locust ``Events`` (idempotent)."""
    if getattr(events, "_harness_installed", False):
        return
    events._harness_installed = True
    events.init_command_line_parser.add_listener(_on_parser)
    events.init.add_listener(_on_init)
    events.test_start.add_listener(_on_test_start)
    events.test_stop.add_listener(_on_test_stop)
    events.quitting.add_listener(_on_quitting)
