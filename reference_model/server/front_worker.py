"""A front-end worker process of the server (``--frontend-workers``; started by
``reference_model.server.frontend`` as ``python -m reference_model.server.front_worker FD FD FD FD``).

It serves the same app as the single-process server (every route, guard, log line and metric) on
the connections the model process hands it, without the model: its ``FrontService`` reads
bodies, checks and decodes images and prepares them as the model does (``Preparation``), then
``ModelLink`` puts each prepared image in one of the worker's shared memory slots and asks the
model process for the caption; the safety filter and the metrics run here. Jobs and faults are
the model process's (``RemoteJobs``, ``FrontService.update_faults``). For each connection the
worker keeps one byte up to date in shared memory (request in progress, answer started, idle),
which the model process reads if this process dies. It ends when told to, when the model
process is gone, or on SIGTERM (after draining)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import itertools
import math
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from PIL import Image

from reference_model.caption import Caption, Captioner, Preparation
from reference_model.server.errors import ApiError
from reference_model.server.faults import FaultSpec
from reference_model.server.intake import ImageIntake
from reference_model.server.ipc import (
    CONN_IDLE,
    CONN_REQUEST,
    CONN_RESPONDING,
    MAX_INLINE,
    Channel,
    SharedRegion,
    Slots,
    image_into,
    read_message,
    receive_connections,
)
from reference_model.server.logs import log as server_log
from reference_model.server.service import Captioned, CaptionService
from reference_model.server.settings import ServerSettings

__all__ = ["FrontService", "ModelLink", "RemoteJobs", "RemoteCaptioner", "main"]

# How long past a request's deadline a worker waits for the model process's own answer.
_DEADLINE_GRACE_S = 2.0


class RemoteCaptioner(Captioner):
    """The model as a worker knows it: its name, version, device and how it prepares images."""

    def __init__(self, model: dict[str, Any], preparation: Preparation):
        self.name, self.version, self.device = model["name"], model["version"], model["device"]
        self.input_side = model["input_side"]
        self._preparation = preparation

    def prepare(self, image: Image.Image) -> Image.Image:
        return self._preparation(image)

    def preparation(self) -> Preparation:
        return self._preparation

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        raise RuntimeError("a front-end worker has no model")


class RemoteBatcher:
    """What a worker knows of the model process's batch queue, from its last answer: the images
    waiting and the time a batch takes (for ``room`` and ``Retry-After``)."""

    def __init__(self, max_batch: int, max_queue: int):
        self.max_batch, self.max_queue = max_batch, max_queue
        self.depth = 0
        self.batch_seconds = 0.0

    def room(self) -> int:
        return self.max_queue - self.depth

    def retry_after_s(self) -> int:
        batches = self.depth / self.max_batch + 1
        return max(1, math.ceil(batches * self.batch_seconds))


class ModelLink:
    """The worker's end of its channel to the model process: captions (images through the
    worker's slots), calls (faults, jobs), and what the model process tells (state, stop)."""

    def __init__(
        self,
        sock: socket.socket,
        region: SharedRegion,
        slots: Slots,
        batcher: RemoteBatcher,
        *,
        on_state: Callable[[dict[str, Any]], None],
        on_stop: Callable[[bool], None],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.sock, self.region, self.slots, self.batcher = sock, region, slots, batcher
        self.on_state, self.on_stop, self.clock = on_state, on_stop, clock
        self.channel: Channel | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.gone = False

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.channel = Channel(self.sock, loop, self._on_message, self._on_close)

    def send(self, message: Any) -> None:
        if self.channel is not None:
            self.channel.send(message)

    def _gone_error(self) -> ApiError:
        return ApiError(503, "model_unavailable", "the model process is gone", {"Retry-After": "1"})

    async def caption(self, images: list[Image.Image], deadline: float) -> tuple:
        """The model process's answer for ``images``: ``("ok", [(caption, batch run, unsafe
        word)])``, ``("fault", kind)``, or an ``ApiError`` (429 without free slots, 503 past the
        deadline, the model process's refusals)."""
        if self.gone:
            raise self._gone_error()
        slots = self.slots.take(len(images))
        if slots is None:
            raise ApiError(
                429,
                "queue_full",
                f"queue full ({self.slots.count} images of this worker waiting)",
                {"Retry-After": str(self.batcher.retry_after_s())},
            )
        rid = next(self._ids)
        try:
            items = [image_into(self.region, s, self.slots.slot_bytes, im) for s, im in zip(slots, images)]
            if sum(len(item[3]) for item in items if item[0] < 0) > MAX_INLINE:
                raise ApiError(
                    413, "image_too_large", "the prepared images of this request are too large to caption together"
                )
            future = asyncio.get_running_loop().create_future()
            self._pending[rid] = future
            self.send(("cap", rid, items, deadline))
            try:
                reply = await asyncio.wait_for(future, max(0.0, deadline - self.clock()) + _DEADLINE_GRACE_S)
            except asyncio.TimeoutError:
                self.send(("cancel", rid))
                raise ApiError(
                    503,
                    "deadline_exceeded",
                    "no caption within the deadline",
                    {"Retry-After": str(self.batcher.retry_after_s())},
                ) from None
            except asyncio.CancelledError:
                self.send(("cancel", rid))
                raise
        finally:
            self._pending.pop(rid, None)
            self.slots.give_back(slots)
        if reply[0] == "error":
            _, status, code, message, headers = reply
            raise ApiError(status, code, message, headers)
        return reply

    async def call(self, name: str, *args: Any) -> Any:
        """Run ``name`` in the model process; its value, or the ``ApiError``/``ValueError`` it raised."""
        if self.gone:
            raise self._gone_error()
        cid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[-cid] = future
        self.send(("call", cid, name, args))
        try:
            ok, value = await future
        finally:
            self._pending.pop(-cid, None)
        if ok:
            return value
        if value[0] == "api":
            raise ApiError(*value[1:])
        raise ValueError(value[1])

    def _on_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == "res":
            _, rid, reply, (depth, batch_seconds) = message
            self.batcher.depth, self.batcher.batch_seconds = depth, batch_seconds
            future = self._pending.get(rid)
            if future is not None and not future.done():
                future.set_result(reply)
        elif kind == "ret":
            _, cid, ok, value = message
            future = self._pending.get(-cid)
            if future is not None and not future.done():
                future.set_result((ok, value))
        elif kind == "state":
            self.on_state(message[1])
        elif kind == "stop":
            self.on_stop(bool(message[1]))
        elif kind == "ping":  # the model process's check that this process still reads its messages
            self.send(("pong", message[1]))

    def _on_close(self) -> None:
        self.gone = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(self._gone_error())
        self.on_stop(False)


class FrontService(CaptionService):
    """The server's ``CaptionService`` in a worker: the model's steps (batching, fault draws)
    go to the model process through ``link``; the rest is the single-process server's."""

    def __init__(
        self,
        captioner: RemoteCaptioner,
        settings: ServerSettings,
        own_metrics: Any,
        exposition: Any,
        link: ModelLink,
        batcher: RemoteBatcher,
    ):
        super().__init__(captioner, settings, own_metrics)
        self.registry = exposition  # /metrics: every process's values, added up
        self.link = link
        self.batcher = batcher  # type: ignore[assignment]
        # The decoding bound is the server's: each worker takes its share.
        share = max(settings.max_pixels, settings.max_decode_pixels // max(1, settings.frontend_workers))
        self.intake = ImageIntake(
            captioner.prepare,
            max_pixels=settings.max_pixels,
            max_pixels_in_flight=share,
            threads=settings.decode_threads,
            draft_side=captioner.input_side,
        )
        self.model_warm = False
        self.worker_warm = False

    def start(self) -> None:
        self.link.start(asyncio.get_running_loop())
        self.intake.start()
        self._warm = asyncio.get_running_loop().create_task(self.warm_up(), name="warm-up")

    async def warm_up(self) -> None:
        try:
            await self.intake.warm_up()
        except Exception as exc:  # stays unready: /readyz says so, the log says why
            server_log.error(f"warm-up failed, the worker stays unready: {type(exc).__name__}: {exc}")
            return
        self.worker_warm = True
        self.state.warm = self.model_warm
        self.link.send(("ready",))

    async def stop(self) -> None:
        self.intake.stop()
        self.tracing.shutdown()

    def apply_state(self, state: dict[str, Any]) -> None:
        """The model process's state: warm, draining, the faults (a slow start makes it unready)."""
        injector = self.injector
        injector.spec = FaultSpec(**state["faults"])
        injector.not_ready_until = state["not_ready_until"]
        injector.stalled_until = state["stalled_until"]
        self.model_warm = bool(state["warm"])
        self.state.warm = self.model_warm and self.worker_warm
        if state["draining"] and not self.state.draining:
            self.state.begin_drain()

    async def caption_decoded_all(self, request: Any, images: list[Image.Image], remaining: float) -> list[Captioned]:
        submitted_ns = time.time_ns()
        reply = await self.link.caption(images, self.clock() + remaining)
        if reply[0] == "fault":
            await self.apply_fault(request, reply[1])  # raises
            raise ApiError(500, "injected_fault", "injected error (fault injection)")
        outs = [(cap, run) for cap, run, _ in reply[1]]
        return self.checked(request, submitted_ns, outs, [word for _, _, word in reply[1]])

    async def fault_state(self) -> dict[str, Any]:
        return await self.link.call("faults_get")

    async def update_faults(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self.link.call("faults_set", data)

    async def clear_faults(self) -> dict[str, Any]:
        return await self.link.call("faults_clear")


@dataclass(eq=False)
class JobView:
    """An asynchronous job as the model process's store described it."""

    doc: dict[str, Any]
    trace: Any = None

    @property
    def id(self) -> str:
        return self.doc["job_id"]

    @property
    def status(self) -> str:
        return self.doc["status"]

    @property
    def request_id(self) -> str:
        return self.doc["request_id"]

    def document(self) -> dict[str, Any]:
        return self.doc


class RemoteJobs:
    """The job store of a worker: the model process's, reached through ``link``."""

    def __init__(self, link: ModelLink, tracing: Any):
        self.link, self.tracing = link, tracing

    async def accept(
        self, request_id: str, image: Any, want_embedding: bool, callback: str | None, trace: Any
    ) -> JobView:
        link = self.link
        slots = link.slots.take(1)
        if slots is None:
            raise ApiError(429, "queue_full", "queue full (every slot of this worker in use)", {"Retry-After": "1"})
        try:
            item = image_into(link.region, slots[0], link.slots.slot_bytes, image)
            carrier = self.tracing.carrier(trace)  # the job's spans join its submission's trace
            doc = await link.call("job_submit", request_id, item, want_embedding, callback, carrier)
        finally:
            link.slots.give_back(slots)
        return JobView(doc, trace)

    async def find(self, job_id: str) -> JobView | None:
        doc = await self.link.call("job_get", job_id)
        return None if doc is None else JobView(doc)

    async def stop(self) -> None:
        pass


class _Conn:
    """A connection's byte in the shared connection table, written while it is open."""

    __slots__ = ("index", "table", "open")

    def __init__(self, index: int, table: memoryview):
        self.index, self.table, self.open = index, table, True

    def set(self, state: int) -> None:
        if self.open:
            self.table[self.index] = state


class ConnStates:
    """ASGI wrapper keeping each connection's byte: a request in progress, its answer started,
    idle again once the app is done with it."""

    def __init__(self, app: Any, conns: dict[tuple, _Conn]):
        self.app, self.conns = app, conns

    async def __call__(self, scope, receive, send) -> None:
        client = scope.get("client") if scope["type"] == "http" else None
        conn = self.conns.get(tuple(client)) if client else None
        if conn is None:
            await self.app(scope, receive, send)
            return
        conn.set(CONN_REQUEST)

        async def tracked(message) -> None:
            if message["type"] == "http.response.start":
                conn.set(CONN_RESPONDING)
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        finally:
            conn.set(CONN_IDLE)


def _shutdown(sock: Any) -> None:
    """Shut a connection down both ways (its transport's socket may not offer ``shutdown``:
    a duplicate of its descriptor does it)."""
    try:
        fd = sock.fileno() if sock is not None else -1
    except (OSError, ValueError):
        return
    if fd < 0:
        return
    try:
        dup = socket.socket(fileno=os.dup(fd))
    except OSError:
        return
    try:
        dup.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        dup.close()


def _die_with_parent() -> None:
    """SIGTERM when the model process ends, however it ends (Linux)."""
    lib = ctypes.util.find_library("c")
    try:
        prctl = ctypes.CDLL(lib).prctl if lib else None
    except (OSError, AttributeError):
        return
    if prctl is not None:
        prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    msg_fd, conn_fd, images_fd, states_fd = (int(a) for a in argv)
    _die_with_parent()
    msg_sock = socket.socket(fileno=msg_fd)
    conn_sock = socket.socket(fileno=conn_fd)
    try:
        hello = read_message(msg_sock)
    except EOFError:  # the model process ended before it greeted this one
        return 1
    return _Worker(hello, msg_sock, conn_sock, images_fd, states_fd).run()


class _Worker:
    def __init__(
        self, hello: dict[str, Any], msg_sock: socket.socket, conn_sock: socket.socket, images_fd: int, states_fd: int
    ):
        self.hello, self.msg_sock, self.conn_sock = hello, msg_sock, conn_sock
        self.settings: ServerSettings = hello["settings"]
        size, first, count, slot_bytes = hello["images"]
        self.images = SharedRegion.attach(images_fd, size)
        self.slots = Slots(self.images, first, count, slot_bytes)
        self.table = SharedRegion.attach(states_fd, hello["connections"])
        self.conns: dict[tuple, _Conn] = {}
        self.server: Any = None

    def run(self) -> int:
        import uvicorn
        from prometheus_client import CollectorRegistry, disable_created_metrics
        from prometheus_client.multiprocess import MultiProcessCollector

        from reference_model.server.app import create_app
        from reference_model.server.guards import MAX_HEADER_BYTES, guarded_protocol
        from reference_model.server.host import allow_open_files
        from reference_model.server.intake import map_large_blocks
        from reference_model.server.logs import configure_logging

        settings = self.settings
        configure_logging(settings.log_level)
        map_large_blocks()
        allow_open_files(settings.max_connections + 64)
        disable_created_metrics()
        exposition = CollectorRegistry()
        MultiProcessCollector(exposition)
        captioner = RemoteCaptioner(self.hello["model"], self.hello["preparation"])
        batcher = RemoteBatcher(settings.max_batch, settings.max_queue)
        link = ModelLink(
            self.msg_sock, self.images, self.slots, batcher, on_state=self._on_state, on_stop=self._on_stop
        )
        self.link = link
        service = FrontService(captioner, settings, CollectorRegistry(), exposition, link, batcher)
        service.apply_state(self.hello["state"])
        self.service = service
        app = create_app(captioner, settings, exposition, service=service, job_store=RemoteJobs(link, service.tracing))
        config = uvicorn.Config(
            ConnStates(app, self.conns),
            http=self._protocol(guarded_protocol(settings.header_timeout_s, settings.max_connections)),
            log_config=None,
            log_level=settings.log_level if settings.log_level in ("debug", "error") else "warning",
            access_log=settings.access_log,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            lifespan="on",
            timeout_graceful_shutdown=int(settings.request_timeout_s + 5),
            timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]
        )
        if settings.access_log and settings.log_level != "debug":
            import logging

            logging.getLogger("uvicorn.access").setLevel(logging.INFO)
        self.server = _server_class()(config, self)
        self.server.run()
        return 0

    def _protocol(self, base: type) -> type:
        worker = self

        class FrontProtocol(base):  # type: ignore[misc, valid-type]
            conn: _Conn | None = None
            conn_key: tuple | None = None

            def connection_made(self, transport) -> None:  # type: ignore[override]
                conn = self.conn
                peer = transport.get_extra_info("peername")
                if conn is not None and peer:
                    self.conn_key = (str(peer[0]), int(peer[1]))
                    worker.conns[self.conn_key] = conn
                super().connection_made(transport)

            def connection_lost(self, exc) -> None:
                conn = self.conn
                if conn is not None and conn.open:
                    conn.open = False
                    if self.conn_key is not None and worker.conns.get(self.conn_key) is conn:
                        del worker.conns[self.conn_key]
                    # The model process holds a copy of the socket: end the connection now.
                    _shutdown(self.transport.get_extra_info("socket") if self.transport is not None else None)
                    worker.link.send(("closed", [conn.index]))
                super().connection_lost(exc)

        FrontProtocol.__name__ = FrontProtocol.__qualname__ = f"Front{base.__name__}"
        return FrontProtocol

    def _on_state(self, state: dict[str, Any]) -> None:
        self.service.apply_state(state)

    def _on_stop(self, force: bool) -> None:
        """Told to stop by the model process (``force``: at once), or the model process is gone."""
        server = self.server
        if server is None:
            return
        self.service.state.begin_drain()
        server.should_exit = True
        if force:
            server.force_exit = True

    def connections_ready(self, server: Any, make_protocol: Callable[[int], Any]) -> None:
        loop = asyncio.get_running_loop()
        try:
            received = receive_connections(self.conn_sock)
        except EOFError:
            loop.remove_reader(self.conn_sock.fileno())
            self._on_stop(False)
            return
        except OSError:
            return
        for index, sock in received:
            if server.should_exit:
                self.link.send(("closed", [index]))
                sock.close()
                continue
            loop.create_task(self._connect(loop, make_protocol, index, sock))

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, make_protocol: Callable[[int], Any], index: int, sock: socket.socket
    ) -> None:
        try:
            await loop.connect_accepted_socket(lambda: make_protocol(index), sock)
        except OSError:
            sock.close()
            self.link.send(("closed", [index]))


def _server_class() -> type:
    import uvicorn

    class FrontServer(uvicorn.Server):
        """uvicorn serving the connections the model process hands over (no listening socket),
        draining on SIGTERM as the single-process server does."""

        def __init__(self, config: Any, worker: _Worker):
            super().__init__(config)
            self.worker = worker
            self.exit_at: float | None = None
            self.loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets: Any = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().serve(sockets)

        async def startup(self, sockets: Any = None) -> None:
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                sys.exit(3)
            config, worker = self.config, self.worker

            def make_protocol(index: int) -> Any:
                protocol = config.http_protocol_class(  # type: ignore[call-arg]
                    config=config, server_state=self.server_state, app_state=self.lifespan.state
                )
                protocol.conn = _Conn(index, worker.table.view)
                return protocol

            loop = asyncio.get_running_loop()
            worker.conn_sock.setblocking(False)
            loop.add_reader(worker.conn_sock.fileno(), worker.connections_ready, self, make_protocol)
            self.servers = []
            self.started = True

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self.exit_at is not None:
                self.should_exit = self.force_exit = True
                return
            self.exit_at = time.monotonic() + self.worker.settings.drain_s
            self.worker.service.state.draining = True
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self.worker.service.state.begin_drain)

        async def on_tick(self, counter: int) -> bool:
            if self.exit_at is not None and time.monotonic() >= self.exit_at:
                self.should_exit = True
            return await super().on_tick(counter)

        async def shutdown(self, sockets: Any = None) -> None:
            try:
                asyncio.get_running_loop().remove_reader(self.worker.conn_sock.fileno())
            except (ValueError, OSError):
                pass
            await super().shutdown(sockets)

    return FrontServer


if __name__ == "__main__":
    raise SystemExit(main())
