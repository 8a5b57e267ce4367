"""The reference server as one object: ``CaptionService`` owns what every route shares (the
settings, the captioner with its batcher and decoding intake, the fault injector, the safety
filter, the metrics, the readiness state and the credentials) and does the steps they share:
read a body within its limits, decode, admit, check the API key or the admin token, take the
request id, draw a fault, caption; each step of a request is a span of its trace when the server
records traces (``tracing``: nothing is recorded unless an exporter is set). ``create_app`` makes
one and keeps it on ``app.state.service``; each router's handlers take it from there."""

from __future__ import annotations

import asyncio
import hmac
import itertools
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import Request
from PIL import Image
from prometheus_client import CollectorRegistry
from starlette.requests import ClientDisconnect

from harness.image import ImageDecodeError, ImageTooLargeError
from reference_model.caption import Caption, Captioner
from reference_model.server.batcher import Batcher, QueueFullError
from reference_model.server.errors import ApiError
from reference_model.server.faults import FaultInjector
from reference_model.server.guards import BodyTimeout
from reference_model.server.intake import ImageIntake, IntakeBusy
from reference_model.server.logs import log as server_log
from reference_model.server.metrics import ServerMetrics
from reference_model.server.safety import DEFAULT_BLOCKLIST, SafetyFilter, SafetyVerdict
from reference_model.server.schemas import MAX_REQUEST_ID
from reference_model.server.settings import IMAGE_TYPES, ServerSettings
from reference_model.server.tracing import BatchRun, tracing_for

__all__ = ["CaptionService", "ServerState", "Captioned", "bool_query"]

_REQUEST_ID = re.compile(rf"[!-~]{{1,{MAX_REQUEST_ID}}}")  # the schema's pattern and length

# A caption as the routes answer it: the model's caption, its safety verdict, its confidence.
Captioned = tuple[Caption, SafetyVerdict, float]


@dataclass
class ServerState:
    """Readiness: warm once the warm-up batch ran; draining after SIGTERM."""

    injector: FaultInjector
    warm: bool = False
    draining: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def readiness(self) -> str:
        if self.draining:
            return "draining"
        if not self.warm:
            return "warming_up"
        if self.injector.slow_start_remaining() > 0:
            return "starting"
        return "ready"

    def begin_drain(self) -> None:
        """Go unready at once and let requests held by the hang fault go."""
        self.draining = True
        self.released.set()


def bool_query(value: str | None) -> bool:
    """A boolean query parameter (``return_embedding``): absent, true/false or 1/0, else 400."""
    if value is None or value in ("false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise ApiError(400, "invalid_parameter", f"return_embedding must be true or false, not {value[:40]!r}")


class CaptionService:
    """One server's captioning: ``captioner`` with ``settings``, its metrics on ``registry``."""

    def __init__(
        self,
        captioner: Captioner,
        settings: ServerSettings,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.captioner, self.settings, self.registry, self.clock = captioner, settings, registry, clock
        self.metrics = ServerMetrics(registry, captioner.name, captioner.version, captioner.device)
        self.safety = SafetyFilter(DEFAULT_BLOCKLIST + tuple(settings.blocklist_extra))
        self.injector = FaultInjector(seed=settings.fault_seed, clock=clock)
        if settings.enable_faults and settings.faults:
            self.injector.update(settings.faults)
        self.state = ServerState(injector=self.injector)
        # Request ids: a random per-process prefix and a counter (no system call per request).
        self._id_prefix, self._id_counter = uuid.uuid4().hex[:16], itertools.count(1)
        self._api_key = settings.api_key.encode("utf-8") if settings.api_key is not None else None
        self._batch_ids = itertools.count(1)
        self.tracing = tracing_for(settings, captioner.name, captioner.version)
        self.batcher: Batcher[Image.Image, tuple[Caption, BatchRun]] = Batcher(
            self._infer,
            max_batch=settings.max_batch,
            max_wait_s=settings.max_wait_ms / 1000.0,
            max_queue=settings.max_queue,
            on_batch=self.metrics.batch_size.observe,
            on_depth=self.metrics.queue_depth.set,
            thread_init=self._thread_init,
            clock=clock,
        )
        self.intake = ImageIntake(
            captioner.prepare,
            max_pixels=settings.max_pixels,
            max_pixels_in_flight=settings.max_decode_pixels,
            threads=settings.decode_threads,
            draft_side=captioner.input_side,
        )
        self._warm: asyncio.Task | None = None

    # -- the model, on the batcher's thread ---------------------------------------------------

    def _infer(self, images: list[Image.Image]) -> list[tuple[Caption, BatchRun]]:
        start = time.time_ns()
        caps = self.captioner.caption(images)
        model_end = time.time_ns()
        delay = self.injector.batch_delay_s()
        if delay:
            time.sleep(delay)
        run = BatchRun(next(self._batch_ids), len(images), start, model_end, time.time_ns())
        return [(cap, run) for cap in caps]

    def _thread_init(self) -> None:
        try:
            import torch

            torch.set_num_threads(max(1, self.settings.threads))
        except ImportError:  # a captioner without torch
            pass

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the batcher and the decoding threads, and the warm-up in the background."""
        self.batcher.start()
        self.intake.start()
        self._warm = asyncio.get_running_loop().create_task(self.warm_up(), name="warm-up")

    @property
    def warming(self) -> asyncio.Task | None:
        """The warm-up started by ``start`` (done once the server is warm, or failed to warm)."""
        return self._warm

    def begin_stop(self) -> None:
        """Stop warming up and go draining (unready; requests held by the hang fault go)."""
        if self._warm is not None:
            self._warm.cancel()
        self.state.begin_drain()

    async def stop(self) -> None:
        """Stop the batcher and the decoding threads (after ``begin_stop``), then send the spans left."""
        await self.batcher.stop()
        self.intake.stop()
        self.tracing.shutdown()

    async def warm_up(self) -> None:
        blank = Image.new("RGB", (64, 64), (127, 127, 127))
        try:
            await self.intake.warm_up()
            await self.batcher.run_direct([blank] * self.settings.max_batch)
            await self.batcher.run_direct([blank])
        except Exception as exc:  # stays unready: /readyz says so, the log says why
            server_log.error(f"warm-up failed, the server stays unready: {type(exc).__name__}: {exc}")
            return
        if self.injector.spec.slow_start_s:
            self.injector.not_ready_until = self.clock() + self.injector.spec.slow_start_s
        self.state.warm = True

    # -- credentials, admission and request ids -------------------------------------------------

    def check_api_key(self, request: Request) -> None:
        """401 unless the API key (when one is set) came as ``X-API-Key`` or ``Authorization: Bearer``."""
        if self._api_key is None:
            return
        # Header values arrive decoded as latin-1: encoding them back gives the bytes sent, which
        # are compared with the key's UTF-8 bytes.
        given = request.headers.get("x-api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode("latin-1"), self._api_key):
            raise ApiError(401, "unauthorized", "missing or wrong API key (send X-API-Key or Authorization: Bearer)")

    def check_admin_token(self, request: Request) -> None:
        """The fault routes' guard: 404 when fault injection is off, 401 without the admin token."""
        settings = self.settings
        if not settings.enable_faults or settings.admin_token is None:
            raise ApiError(404, "not_found", "fault injection is off (start the server with --enable-faults)")
        given = request.headers.get("x-admin-token", "")
        if not hmac.compare_digest(given.encode("latin-1"), settings.admin_token.encode("utf-8")):
            raise ApiError(401, "unauthorized", "missing or wrong admin token (send X-Admin-Token)")

    def admit(self, request: Request) -> None:
        """Refuse a caption request without the API key (401) or while not ready (503)."""
        with self.tracing.span("admission"):
            self.check_api_key(request)
            readiness = self.state.readiness()
            if readiness != "ready":
                code = "draining" if readiness == "draining" else "not_ready"
                raise ApiError(503, code, f"server is {readiness.replace('_', ' ')}", {"Retry-After": "1"})

    def new_request_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):016x}"

    def take_request_id(self, request: Request) -> str:
        """The X-Request-Id given (400 when malformed) or a new one."""
        given = request.headers.get("x-request-id")
        if given is None:
            return self.new_request_id()
        if not self.valid_request_id(given):
            raise self.invalid_request_id()
        return given

    @staticmethod
    def valid_request_id(given: str) -> bool:
        return _REQUEST_ID.fullmatch(given) is not None

    @staticmethod
    def invalid_request_id() -> ApiError:
        return ApiError(
            400,
            "invalid_request_id",
            f"X-Request-Id must be 1 to {MAX_REQUEST_ID} visible ASCII characters (no spaces)",
        )

    # -- the body -------------------------------------------------------------------------------

    async def read_body(self, request: Request) -> bytes:
        """The body, at most ``max_body_bytes`` (413 past it, 408 when it does not arrive in time)."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None:
            try:
                n = int(declared)
            except ValueError:
                raise ApiError(400, "invalid_request", "Content-Length is not a number") from None
            if n > limit:
                raise ApiError(413, "body_too_large", f"body of {n} bytes is over the limit of {limit} bytes")
        chunks, size = [], 0
        try:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, "body_too_large", f"body is over the limit of {limit} bytes")
                chunks.append(chunk)
        except BodyTimeout as exc:
            raise ApiError(408, "body_timeout", str(exc), {"Connection": "close"}) from None
        return b"".join(chunks)

    async def read_image_bytes(self, request: Request) -> bytes:
        """The image of a contract v1 request: the body of an image type, or the ``image`` field
        of a multipart form; 415 for another content type, 400 when empty."""
        ctype = request.headers.get("content-type", "")
        media = ctype.split(";", 1)[0].strip().lower()
        if media in IMAGE_TYPES:
            body = await self.read_body(request)
        elif media == "multipart/form-data":
            body = await self.read_multipart_image(request, await self.read_body(request))
        else:
            shown = media or "none"
            raise ApiError(
                415,
                "unsupported_media_type",
                f"content type {shown[:60]!r} is not supported: send {', '.join(IMAGE_TYPES)} or multipart/form-data",
            )
        if not body:
            raise ApiError(400, "invalid_image", "empty image (0 bytes)")
        return body

    @staticmethod
    async def read_multipart_image(request: Request, body: bytes) -> bytes:
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException, MultiPartParser

        async def replay():
            yield body
            yield b""

        try:
            form = await MultiPartParser(request.headers, replay(), max_files=4, max_fields=16).parse()
        except MultiPartException as exc:
            raise ApiError(400, "invalid_multipart", f"malformed multipart body: {exc.message}") from None
        except Exception as exc:
            raise ApiError(400, "invalid_multipart", f"malformed multipart body: {type(exc).__name__}") from None
        try:
            part = form.get("image")
            if part is None:
                raise ApiError(400, "invalid_multipart", "multipart body has no field named 'image'")
            if isinstance(part, UploadFile):
                return await part.read()
            return part.encode("utf-8", "surrogateescape")
        finally:
            await form.close()

    # -- decoding -------------------------------------------------------------------------------

    async def decode(self, data: bytes) -> Image.Image:
        """The shared decoding and admission of every route: ``data`` checked from its header,
        decoded and shrunk to what the model needs off the event loop (``ImageIntake``), with
        the decoded pixels in flight bounded; failures are ``ApiError`` 400, 413 or 503."""
        try:
            with self.tracing.span("decode", {"caption.image.bytes": len(data)}):
                return await self.intake.image(data)
        except ImageTooLargeError as exc:
            raise ApiError(413, "image_too_large", str(exc)) from None
        except ImageDecodeError as exc:
            raise ApiError(400, "invalid_image", str(exc)) from None
        except IntakeBusy as exc:
            raise ApiError(
                503, "decode_busy", f"too many pixels being decoded: {exc}", {"Retry-After": str(exc.retry_after_s)}
            ) from None

    async def decode_all(self, datas: list[bytes]) -> list[Image.Image]:
        """``decode`` each of ``datas``, as many at once as there are decoding threads (so one
        request's images do not crowd each other out of the decoding bound); the first failure
        cancels the rest."""
        slots = asyncio.Semaphore(self.intake.threads)

        async def one(data: bytes) -> Image.Image:
            async with slots:
                return await self.decode(data)

        tasks = [asyncio.ensure_future(one(d)) for d in datas]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    # -- faults ---------------------------------------------------------------------------------

    async def fault_state(self) -> dict[str, Any]:
        """The faults now active, as ``GET /admin/faults`` answers them."""
        injector = self.injector
        return {
            "faults": injector.spec.model_dump(),
            "active": injector.active,
            "slow_start_remaining_s": round(injector.slow_start_remaining(), 3),
        }

    async def update_faults(self, data: dict[str, Any]) -> dict[str, Any]:
        """Change the faults given (``ValueError`` names a bad field); the state after."""
        self.injector.update(data)
        return await self.fault_state()

    async def clear_faults(self) -> dict[str, Any]:
        self.injector.clear()
        return await self.fault_state()

    async def draw_fault(self, request: Request | None) -> None:
        """The request faults: hang (held until the client goes or the server drains) or error."""
        await self.apply_fault(request, self.injector.draw_request())

    async def apply_fault(self, request: Request | None, fault: str | None) -> None:
        """What a fault drawn for a request does: ``hang`` holds it, ``error`` raises the 500."""
        if fault == "hang":
            if request is None:  # a job: held until the server drains (or the job expires)
                await self.state.released.wait()
                raise ApiError(503, "draining", "server is draining", {"Retry-After": "1"})
            how = await self.hold(request)
            if how == "client_gone":
                raise ClientDisconnect()  # answered 499 by the route
            raise ApiError(503, "draining", "server is draining", {"Retry-After": "1"})
        if fault == "error":
            raise ApiError(500, "injected_fault", "injected error (fault injection)")

    async def hold(self, request: Request) -> str:
        """The hang fault: answer nothing until the client goes away or the server drains."""
        disconnect = asyncio.ensure_future(self.wait_disconnect(request))
        released = asyncio.ensure_future(self.state.released.wait())
        try:
            await asyncio.wait({disconnect, released}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnect.cancel()
            released.cancel()
        return "client_gone" if not self.state.draining else "draining"

    @staticmethod
    async def wait_disconnect(request: Request) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    # -- captioning -----------------------------------------------------------------------------

    def queue_full(self) -> ApiError:
        return ApiError(
            429,
            "queue_full",
            f"queue full ({self.settings.max_queue} waiting)",
            {"Retry-After": str(self.batcher.retry_after_s())},
        )

    async def caption_image(self, request: Request, data: bytes, t0: float) -> Captioned:
        """Decode, batch and check one image: the caption, its safety verdict and its confidence
        (every protocol's route comes through here)."""
        image = await self.decode(data)
        return await self.caption_decoded(request, image, self.settings.request_timeout_s - (self.clock() - t0))

    async def caption_images(self, request: Request, datas: list[bytes], t0: float) -> list[Captioned]:
        """``caption_image`` for the images of one request, admitted as a whole or not at all:
        more images than the queue ever holds is 413 ``too_many_images``, more than it has room
        for now 429 ``queue_full``; either way nothing of the request is decoded further or
        inferred. Decoding stops at the first image that fails."""
        settings = self.settings
        if len(datas) > settings.max_queue:
            raise ApiError(
                413,
                "too_many_images",
                f"{len(datas)} images in one request, more than the queue holds ({settings.max_queue}): "
                f"send at most {settings.max_queue} per request",
            )
        if len(datas) > self.batcher.room():  # refused before any decoding; checked again when queued
            raise self.queue_full()
        images = await self.decode_all(datas)
        return await self.caption_decoded_all(request, images, settings.request_timeout_s - (self.clock() - t0))

    async def caption_decoded(self, request: Request | None, image: Image.Image, remaining: float) -> Captioned:
        """Faults, batch and safety check of a decoded image, within ``remaining`` seconds (the
        synchronous routes and the asynchronous job worker, which has no ``request``)."""
        return (await self.caption_decoded_all(request, [image], remaining))[0]

    async def caption_decoded_all(
        self, request: Request | None, images: list[Image.Image], remaining: float
    ) -> list[Captioned]:
        """``caption_decoded`` for several images, queued all together or not at all; if one
        fails or the deadline passes, those still queued are dropped (never inferred)."""
        settings = self.settings
        if settings.enable_faults:
            for _ in images:
                await self.draw_fault(request)
        submitted_ns = time.time_ns()
        outs = await self.infer(images, remaining)
        return self.checked(request, submitted_ns, outs, self.draw_unsafe(len(outs)))

    def draw_unsafe(self, n: int) -> list[str | None]:
        """For each of ``n`` captions, the blocklisted word the unsafe fault slips in, or None."""
        if not self.settings.enable_faults:
            return [None] * n
        return [self.injector.draw_unsafe(self.safety.blocklist) for _ in range(n)]

    async def infer(self, images: list[Image.Image], remaining: float) -> list[tuple[Caption, BatchRun]]:
        """The model's output for ``images``, queued all together or not at all (429 when the
        queue has no room), within ``remaining`` seconds (503 past them); those still queued when
        it fails are dropped."""
        settings = self.settings
        try:
            futures = self.batcher.submit_all(images)
        except QueueFullError:
            raise self.queue_full() from None
        gathered = asyncio.gather(*futures)
        # A request given up on leaves its gathering future with a CancelledError: read here.
        gathered.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            outs = await asyncio.wait_for(gathered, max(remaining, 0.0))
        except asyncio.TimeoutError:
            raise ApiError(
                503,
                "deadline_exceeded",
                f"no caption within the {settings.request_timeout_s:g} s deadline",
                {"Retry-After": str(self.batcher.retry_after_s())},
            ) from None
        except asyncio.CancelledError:
            if self.state.draining:
                raise ApiError(503, "draining", "server stopped before the caption was made") from None
            raise
        finally:
            for future in futures:  # a cancelled item is skipped when its batch is taken
                future.cancel()
        return list(outs)

    def checked(
        self,
        request: Request | None,
        submitted_ns: int,
        outs: list[tuple[Caption, BatchRun]],
        unsafe: list[str | None],
    ) -> list[Captioned]:
        """The model's captions through the safety filter (``unsafe``: the word the unsafe fault
        slips into each, unflagged), counted in the metrics; the batch spans of the request's trace."""
        if request is not None and outs:
            request.state.batch_size = max(run.size for _, run in outs)
        self.tracing.batch_spans(submitted_ns, outs)
        results = []
        for (cap, _), word in zip(outs, unsafe):
            if word is not None:
                verdict = SafetyVerdict(f"{cap.text} with {word}", False, ())
            else:
                verdict = self.safety.check(cap.text)
            confidence = min(1.0, max(0.0, float(cap.confidence)))
            self.metrics.observe_caption(confidence, verdict.reasons)
            results.append((cap, verdict, confidence))
        return results

    def caption_body(
        self, request_id: str, cap: Caption, verdict: SafetyVerdict, confidence: float, t0: float, want_embedding: bool
    ) -> dict[str, Any]:
        """The caption document of contract v1 (the synchronous answer, an asynchronous job's result)."""
        body: dict[str, Any] = {
            "request_id": request_id,
            "caption": verdict.text,
            "confidence": round(confidence, 6),
            "model_version": self.captioner.version,
            "server_latency_ms": round((self.clock() - t0) * 1000.0, 3),
        }
        if want_embedding:
            body["embedding"] = list(cap.embedding)
        body["safety"] = {"flagged": verdict.flagged, "reasons": list(verdict.reasons)}
        return body

    # -- what the server says about itself --------------------------------------------------------

    def ready(self) -> bool:
        return self.state.readiness() == "ready"

    def knows(self, model: str) -> bool:
        return model in (self.captioner.name, self.captioner.version)

    def has_version(self, version: str | None) -> bool:
        """No version asked for, or the loaded model's (the one its metadata lists)."""
        return version is None or version == self.captioner.version
