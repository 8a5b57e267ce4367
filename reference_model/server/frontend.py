"""The server with front-end workers (``--frontend-workers N``): HTTP, bodies and image decoding
leave the process that owns the model.

This process (the one ``harness serve`` starts, whose pid the launcher knows) loads the model and
runs the server's ``CaptionService`` (batcher, faults, metrics, readiness) and ``JobStore``
without any HTTP. It binds the listening socket, accepts each connection and hands it to the
worker with the fewest open connections (``SCM_RIGHTS``), keeping a duplicate of the socket;
``N`` worker processes (``reference_model.server.front_worker``) serve the app on the connections
they are given: they read bodies, check them, decode and prepare images, write the prepared pixels
into their slots of a shared memory region and send ``(slot, width, height)`` to this process,
which copies them out, batches them with the model and answers each request with its captions.

- **Admission and memory.** The batch queue (``--max-queue``) is this process's, as in the
  single-process server: a request it has no room for is answered 429 ``queue_full`` with
  ``Retry-After``. Each worker owns ``max_queue + max_batch`` slots of one prepared image each
  (a fixed region, so the memory is bounded; a request finding too few free slots is answered
  429 too); the images this process holds are the queue's and the batch's, copied out of their
  slots on arrival. ``--max-connections`` bounds the connections of the whole server (one more is
  answered 503 and closed); ``--max-decode-pixels`` is shared out among the workers.
- **Deadlines and cancellation.** A request carries its deadline; past it this process drops its
  images (never inferred) and answers 503 ``deadline_exceeded``; a worker that gives up on a
  request (its client went away) withdraws it the same way.
- **A worker that dies** (killed, crashed) is replaced at once (after a back-off when it dies
  young): its requests still queued here are dropped, and each of its connections whose request
  was not answered yet (a byte per connection in shared memory says so) is answered 503
  ``worker_died`` with ``Retry-After`` and closed, so no request is lost silently. **A worker that
  hangs** without dying (stopped, deadlocked, its event loop blocked) is found by a check this
  process sends every ``--worker-stall-s`` / 4 seconds: a ready worker that has answered none for
  ``--worker-stall-s`` is killed (SIGKILL), then replaced and its requests answered as above.
- **Faults, jobs and readiness** live here: a worker asks this process for the faults' state and
  changes, and for jobs (it sends the prepared image; the job is queued, captioned and called
  back from here, so it survives the worker); the workers are told when the server is warm,
  draining or in a slow start.
- **Metrics.** Every process writes its values to files of a temporary folder (prometheus_client's
  multiprocess mode), and ``/metrics`` in any worker adds them up: the counters keep the counts
  of workers that died.
- **SIGTERM** drains: the workers go unready and refuse new captions at once, the listener closes
  after ``--drain-s``, the workers answer what they hold and end, then this process ends (0).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness.errors import UsageError
from reference_model.caption import Captioner, Preparation
from reference_model.server.errors import ApiError
from reference_model.server.guards import canned_answer
from reference_model.server.host import allow_open_files, bind_socket, write_port_file
from reference_model.server.ipc import (
    CONN_IDLE,
    CONN_REQUEST,
    Channel,
    SharedRegion,
    image_from,
    plain_loads,
    send_connection,
    write_message,
)
from reference_model.server.settings import ServerSettings

__all__ = ["run_front_server", "slot_plan", "WORKER_MODULE", "MAX_FRONTEND_WORKERS"]

WORKER_MODULE = "reference_model.server.front_worker"
MAX_FRONTEND_WORKERS = 64
_RESTART_MIN_S, _RESTART_MAX_S = 0.1, 5.0
_YOUNG_S = 5.0  # a worker dying younger than this is restarted after a growing back-off
_ACCEPTS_PER_WAKE = 64

log = logging.getLogger("reference_model.server.frontend")

_WORKER_DIED = canned_answer(
    503,
    "Service Unavailable",
    "worker_died",
    "the server process handling this request ended before answering; retry",
    retry_after=1,
)
_NO_WORKER = canned_answer(
    503, "Service Unavailable", "not_ready", "no front-end worker is ready; retry", retry_after=1
)


def slot_plan(settings: ServerSettings, preparation: Preparation) -> tuple[int, int]:
    """Slots per worker and bytes per slot, one prepared RGB image a slot: a worker can hold as
    many images as the batch queue and a batch, so the queue fills (429) before any worker runs
    short of slots. Only the slots in use are ever touched (the mapping is lazy)."""
    return settings.max_queue + settings.max_batch, 3 * preparation.max_pixels


@dataclass(eq=False)
class _Worker:
    index: int
    proc: subprocess.Popen
    channel: Channel
    conn_sock: socket.socket
    started: float
    ready: bool = False
    alive: bool = True
    heard: float = 0.0  # when it last answered a check (time.monotonic())
    stalled: bool = False
    conns: set[int] = field(default_factory=set)
    tasks: dict[int, asyncio.Task] = field(default_factory=dict)


class FrontEnd:
    """The model process of a server with front-end workers (see the module's docstring)."""

    def __init__(self, settings: ServerSettings, captioner: Captioner, *, out: TextIO, port_file: Path | None):
        from prometheus_client import CollectorRegistry

        from reference_model.server.jobs import JobStore
        from reference_model.server.service import CaptionService

        preparation = captioner.preparation()
        assert preparation is not None
        self.settings, self.captioner, self.out, self.port_file = settings, captioner, out, port_file
        self.preparation = preparation
        self.service = CaptionService(captioner, settings, CollectorRegistry())
        self.jobs = JobStore(self.service)
        self.n = settings.frontend_workers
        self.per_worker, self.slot_bytes = slot_plan(settings, preparation)
        self.images = SharedRegion.create("caption-slots", self.n * self.per_worker * self.slot_bytes)
        self.conn_states = SharedRegion.create("caption-connections", settings.max_connections)
        self.states = self.conn_states.view
        self.free_conns = list(range(settings.max_connections - 1, -1, -1))
        self.conns: dict[int, tuple[socket.socket, _Worker]] = {}
        self.workers: list[_Worker | None] = [None] * self.n
        self.backoff = [_RESTART_MIN_S] * self.n
        self.listener: socket.socket | None = None
        self.accepting = False
        self.started = False  # every worker was ready once, or one was replaced
        self.draining = False
        self.stopping = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopped: asyncio.Event | None = None
        self._reaping: set[asyncio.Task] = set()

    # -- the process's life ------------------------------------------------------------------------

    def run(self) -> int:
        return asyncio.run(self.main())

    async def main(self) -> int:
        self.loop = loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        service = self.service
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal)
        sock = bind_socket(self.settings.host, self.settings.port)
        sock.setblocking(False)
        self.listener = sock
        port = sock.getsockname()[1]
        shown = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        s = self.settings
        print(
            f"serving {self.captioner.version} on {self.captioner.device} ({s.threads} torch threads, "
            f"max batch {s.max_batch}, max wait {s.max_wait_ms:g} ms, max queue {s.max_queue}; "
            f"{self.n} front-end worker processes)",
            file=self.out,
        )
        print(f"listening on http://{shown}:{port}", file=self.out, flush=True)
        if self.port_file is not None:
            write_port_file(Path(self.port_file), port)
        service.start()
        assert service.warming is not None
        service.warming.add_done_callback(lambda _: self._broadcast_state())
        for k in range(self.n):
            self._spawn(k)
        watchdog = loop.create_task(self._watch())
        try:
            await self.stopped.wait()
            await self._wait_workers(s.request_timeout_s + s.drain_s + 10.0)
        finally:
            watchdog.cancel()
            self._close_listener()
            for idx in list(self.conns):
                self._drop_conn(idx)
            service.begin_stop()
            await self.jobs.stop()
            await service.stop()
            for task in list(self._reaping):
                task.cancel()
            self.images.close()
            self.conn_states.close()
        print("stopped", file=self.out, flush=True)
        return 0

    def _on_signal(self) -> None:
        if self.draining:  # a second signal: stop now
            self.stopping = True
            for w in self._alive():
                w.channel.send(("stop", True))
            assert self.stopped is not None
            self.stopped.set()
            return
        self.draining = True
        self.service.state.begin_drain()
        self._broadcast_state()
        assert self.loop is not None
        self.loop.call_later(self.settings.drain_s, self._stop_workers)

    def _stop_workers(self) -> None:
        self.stopping = True
        self._close_listener()
        for w in self._alive():
            w.channel.send(("stop", False))
        assert self.stopped is not None
        self.stopped.set()

    async def _wait_workers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(w is not None and w.proc.poll() is None for w in self.workers):
            await asyncio.sleep(0.05)
        for w in self.workers:
            if w is not None and w.proc.poll() is None:
                w.proc.kill()
                w.proc.wait(5)

    def _alive(self) -> list[_Worker]:
        return [w for w in self.workers if w is not None and w.alive]

    # -- workers -------------------------------------------------------------------------------

    def _spawn(self, k: int) -> None:
        assert self.loop is not None
        msg_ours, msg_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        conn_ours, conn_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fds = (msg_theirs.fileno(), conn_theirs.fileno(), self.images.fd, self.conn_states.fd)
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"]}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE, *(str(fd) for fd in fds)],
                pass_fds=fds,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        finally:
            msg_theirs.close()
            conn_theirs.close()
        write_message(msg_ours, self._hello(k))
        conn_ours.setblocking(False)
        holder: list[_Worker] = []
        channel = Channel(
            msg_ours,
            self.loop,
            lambda m: self._on_message(holder[0], m),
            lambda: self._on_gone(holder[0]),
            loads=plain_loads,
        )
        worker = _Worker(k, proc, channel, conn_ours, time.monotonic())
        holder.append(worker)
        self.workers[k] = worker

    async def _watch(self) -> None:
        """Every quarter of ``worker_stall_s``, ask each ready worker to answer; kill one that has
        answered nothing for ``worker_stall_s`` (its channel then closes, and ``_on_gone`` answers
        its requests and replaces it)."""
        stall = self.settings.worker_stall_s
        n = 0
        while not self.stopping:
            await asyncio.sleep(stall / 4)
            n += 1
            now = time.monotonic()
            for w in self._alive():
                if not w.ready or w.stalled:
                    continue
                if now - w.heard > stall:
                    w.stalled = True
                    log.error(
                        f"front-end worker {w.index} (pid {w.proc.pid}) has not answered for {now - w.heard:.1f} s "
                        f"(--worker-stall-s {stall:g}): killing it"
                    )
                    w.proc.kill()
                else:
                    w.channel.send(("ping", n))

    def _hello(self, k: int) -> dict[str, Any]:
        cap = self.captioner
        return {
            "index": k,
            "settings": self.settings,
            "model": {"name": cap.name, "version": cap.version, "device": cap.device, "input_side": cap.input_side},
            "preparation": self.preparation,
            "images": (self.images.size, k * self.per_worker, self.per_worker, self.slot_bytes),
            "connections": self.conn_states.size,
            "state": self._state(),
        }

    def _state(self) -> dict[str, Any]:
        injector, state = self.service.injector, self.service.state
        return {
            "warm": state.warm,
            "draining": state.draining,
            "faults": injector.spec.model_dump(),
            "not_ready_until": injector.not_ready_until,
            "stalled_until": injector.stalled_until,
        }

    def _broadcast_state(self) -> None:
        message = ("state", self._state())
        for w in self._alive():
            w.channel.send(message)

    def _on_gone(self, w: _Worker) -> None:
        """The worker's channel closed: it ended (or was dropped as wedged)."""
        w.alive = w.ready = False
        self.started = True
        for task in w.tasks.values():
            task.cancel()
        w.tasks.clear()
        answered = 0
        for idx in list(w.conns):
            answered += self._drop_conn(idx, answer=True)
        try:
            w.conn_sock.close()
        except OSError:
            pass
        if any(x.ready for x in self._alive()):
            self._resume_accepting()
        else:
            self._pause_accepting()
        task = asyncio.get_running_loop().create_task(self._replace(w, answered))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _replace(self, w: _Worker, answered: int) -> None:
        deadline = time.monotonic() + (self.settings.request_timeout_s + 10.0 if self.stopping else 2.0)
        while w.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if w.proc.poll() is None:
            w.proc.kill()
            await asyncio.to_thread(w.proc.wait, 10)
        if self.stopping or self.draining:
            return
        code = w.proc.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        k = w.index
        young = time.monotonic() - w.started < _YOUNG_S
        delay = self.backoff[k] if young else _RESTART_MIN_S
        self.backoff[k] = min(_RESTART_MAX_S, delay * 2) if young else _RESTART_MIN_S
        log.error(
            f"front-end worker {k} (pid {w.proc.pid}) ended ({how}); {answered} unanswered requests "
            f"answered 503; a new one starts in {delay:g} s"
        )
        await asyncio.sleep(delay)
        if not (self.stopping or self.draining) and self.workers[k] is w:
            self._spawn(k)

    # -- connections -----------------------------------------------------------------------------

    def _resume_accepting(self) -> None:
        if not self.accepting and self.listener is not None and not self.stopping:
            assert self.loop is not None
            self.loop.add_reader(self.listener.fileno(), self._accept)
            self.accepting = True

    def _pause_accepting(self) -> None:
        if self.accepting and self.listener is not None:
            assert self.loop is not None
            self.loop.remove_reader(self.listener.fileno())
            self.accepting = False

    def _close_listener(self) -> None:
        self._pause_accepting()
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def _accept(self) -> None:
        assert self.listener is not None
        for _ in range(_ACCEPTS_PER_WAKE):
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: the connection waits in the backlog
                log.warning(f"accept failed: {exc}")
                return
            self._dispatch(conn)

    def _dispatch(self, conn: socket.socket) -> None:
        ready = [w for w in self._alive() if w.ready]
        if not self.free_conns:
            _refuse(conn, _too_many(self.settings.max_connections))
            return
        if not ready:
            _refuse(conn, _NO_WORKER)
            return
        idx = self.free_conns.pop()
        self.states[idx] = CONN_IDLE
        for w in sorted(ready, key=lambda x: len(x.conns)):
            if send_connection(w.conn_sock, idx, conn):
                self.conns[idx] = (conn, w)
                w.conns.add(idx)
                return
        self.free_conns.append(idx)
        _refuse(conn, _NO_WORKER)

    def _drop_conn(self, idx: int, answer: bool = False) -> int:
        """Close this process's copy of connection ``idx``; with ``answer`` (its worker died),
        first answer 503 if a request on it was left unanswered. 1 when answered."""
        entry = self.conns.pop(idx, None)
        if entry is None:
            return 0
        conn, w = entry
        w.conns.discard(idx)
        answered = 0
        if answer and (self.states[idx] == CONN_REQUEST or (self.states[idx] == CONN_IDLE and _has_bytes(conn))):
            answered = _refuse(conn, _WORKER_DIED)
        else:
            _close(conn)
        self.free_conns.append(idx)
        return answered

    # -- what workers send ---------------------------------------------------------------------

    def _on_message(self, w: _Worker, message: tuple) -> None:
        kind = message[0]
        if kind == "cap":
            _, rid, items, deadline = message
            images = [image_from(self.images, self.slot_bytes, item) for item in items]
            task = asyncio.get_running_loop().create_task(self._caption(w, rid, images, deadline))
            w.tasks[rid] = task
        elif kind == "cancel":
            task = w.tasks.pop(message[1], None)
            if task is not None:
                task.cancel()
        elif kind == "closed":
            for idx in message[1]:
                entry = self.conns.get(idx)
                if entry is not None and entry[1] is w:
                    self._drop_conn(idx)
        elif kind == "call":
            _, cid, name, args = message
            task = asyncio.get_running_loop().create_task(self._call(w, cid, name, args))
            w.tasks[-cid] = task
        elif kind == "pong":
            w.heard = time.monotonic()
        elif kind == "ready":
            w.ready = True
            w.heard = time.monotonic()
            # At the start, connections wait until every worker is ready (so they are shared out).
            self.started = self.started or all(x is not None and x.ready for x in self.workers)
            if self.started:
                self._resume_accepting()

    def _load(self) -> tuple[int, float]:
        batcher = self.service.batcher
        return batcher.depth, batcher.batch_seconds

    async def _caption(self, w: _Worker, rid: int, images: list, deadline: float) -> None:
        service = self.service
        reply: tuple
        try:
            fault = None
            if service.settings.enable_faults:
                for _ in images:
                    fault = service.injector.draw_request()
                    if fault is not None:
                        break
            if fault is not None:
                reply = ("fault", fault)
            else:
                outs = await service.infer(images, deadline - service.clock())
                reply = ("ok", [(cap, run, word) for (cap, run), word in zip(outs, service.draw_unsafe(len(outs)))])
        except asyncio.CancelledError:
            return
        except ApiError as exc:
            reply = ("error", exc.status, exc.code, exc.message, exc.headers)
        except Exception as exc:  # answered 500 by the worker; the traceback is logged here
            from reference_model.server.logs import log_exception

            log_exception(exc, None, "POST", "(model)")
            reply = ("error", 500, "internal", f"internal error: {type(exc).__name__}", {})
        finally:
            w.tasks.pop(rid, None)
        w.channel.send(("res", rid, reply, self._load()))

    async def _call(self, w: _Worker, cid: int, name: str, args: tuple) -> None:
        service, jobs = self.service, self.jobs
        try:
            if name == "faults_get":
                value: Any = await service.fault_state()
            elif name == "faults_set":
                value = await service.update_faults(args[0])
            elif name == "faults_clear":
                value = await service.clear_faults()
            elif name == "job_submit":
                request_id, item, want_embedding, callback, carrier = args
                image = image_from(self.images, self.slot_bytes, item)
                job = jobs.submit(request_id, image, want_embedding, callback)
                job.trace = service.tracing.continued(carrier)
                value = job.document()
            elif name == "job_get":
                job = jobs.get(args[0])
                value = None if job is None else job.document()
            else:
                raise ValueError(f"unknown call {name!r}")
            reply: tuple = (True, value)
        except asyncio.CancelledError:
            return
        except ApiError as exc:
            reply = (False, ("api", exc.status, exc.code, exc.message, exc.headers))
        except ValueError as exc:
            reply = (False, ("value", str(exc)))
        finally:
            w.tasks.pop(-cid, None)
        w.channel.send(("ret", cid, *reply))
        if name in ("faults_set", "faults_clear"):
            self._broadcast_state()


def _too_many(limit: int) -> bytes:
    return canned_answer(
        503,
        "Service Unavailable",
        "too_many_connections",
        f"{limit} connections open, the most served at once",
        retry_after=1,
    )


def _has_bytes(conn: socket.socket) -> bool:
    """Whether bytes wait unread on ``conn`` (a request no worker read)."""
    try:
        return bool(conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False


def _refuse(conn: socket.socket, answer: bytes) -> int:
    try:
        conn.setblocking(False)
        conn.send(answer)
        sent = 1
    except OSError:
        sent = 0
    _close(conn)
    return sent


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


def run_front_server(
    settings: ServerSettings,
    captioner: Captioner,
    *,
    port_file: Path | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Serve with ``settings.frontend_workers`` worker processes until SIGTERM/SIGINT, then
    drain; the exit code (0 after a clean drain). ``UsageError`` when ``captioner`` prepares
    images its own way (its workers could not prepare them)."""
    from reference_model.server.intake import map_large_blocks
    from reference_model.server.logs import configure_logging

    if captioner.preparation() is None:
        raise UsageError(
            f"model {captioner.name!r} prepares images its own way, which front-end workers cannot do: "
            "leave out --frontend-workers"
        )
    configure_logging(settings.log_level)
    map_large_blocks()
    metrics_dir = tempfile.mkdtemp(prefix="caption-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    from prometheus_client import disable_created_metrics, values

    values.ValueClass = values.get_value_class()  # multiprocess values, whenever the module was imported
    disable_created_metrics()
    allow_open_files(2 * settings.max_connections + 64)
    try:
        return FrontEnd(settings, captioner, out=out, port_file=port_file).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
