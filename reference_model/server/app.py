"""The FastAPI application of HTTP contract v1 over one ``Captioner``."""

from __future__ import annotations

import asyncio
import hmac
import inspect
import itertools
import json
import re
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from harness.image import ImageDecodeError, ImageTooLargeError
from reference_model.caption import Caption, Captioner
from reference_model.server.batcher import Batcher, QueueFullError
from reference_model.server.errors import ApiError
from reference_model.server.faults import FaultInjector
from reference_model.server.guards import BodyDeadline, BodyTimeout
from reference_model.server.intake import ImageIntake, IntakeBusy
from reference_model.server.jobs import JobPath, add_job_routes
from reference_model.server.logs import RequestLog, log_exception
from reference_model.server.logs import log as server_log
from reference_model.server.metrics import ServerMetrics
from reference_model.server.protocols import CaptionPath, add_protocol_routes
from reference_model.server.safety import DEFAULT_BLOCKLIST, SafetyFilter, SafetyVerdict
from reference_model.server.schemas import (
    CaptionResponse,
    ErrorResponse,
    FaultState,
    Health,
    ModelInfo,
    Readiness,
    fault_request_schema,
)
from reference_model.server.settings import IMAGE_TYPES, ServerSettings

__all__ = ["create_app", "ApiError", "ServerState"]

_MAX_REQUEST_ID = 128
_REQUEST_ID = re.compile(rf"[!-~]{{1,{_MAX_REQUEST_ID}}}")  # the schema's pattern and length
_JSON = "application/json"


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


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "invalid request or undecodable image",
        401: "missing or wrong credentials",
        404: "not found",
        408: "the request body did not arrive in time",
        413: "body or image too large",
        415: "unsupported content type",
        429: "queue full",
        500: "internal error",
        503: "not ready, draining, too many pixels being decoded, or the request's deadline passed",
    }
    out: dict[int | str, dict[str, Any]] = {c: {"model": ErrorResponse, "description": text[c]} for c in codes}
    if 429 in out:
        retry = {"description": "seconds", "schema": {"type": "integer"}, "required": True}
        out[429]["headers"] = {"Retry-After": retry}
    if 503 in out:
        out[503]["headers"] = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
    return out


def _caption_openapi(settings: ServerSettings) -> dict[str, Any]:
    binary = {"schema": {"type": "string", "format": "binary"}}
    return {
        "parameters": [
            {
                "name": "return_embedding",
                "in": "query",
                "required": False,
                "schema": {"type": "boolean", "default": False},
                "description": "include the image embedding in the answer",
            },
            {
                "name": "X-Request-Id",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": _MAX_REQUEST_ID, "pattern": "^[!-~]+$"},
                "description": "echoed in the answer; one is made up when absent",
            },
        ],
        "requestBody": {
            "required": True,
            "description": f"the image, at most {settings.max_body_bytes} bytes and {settings.max_pixels} pixels",
            "content": {
                **{t: binary for t in IMAGE_TYPES},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["image"],
                        "properties": {"image": {"type": "string", "format": "binary"}},
                    }
                },
            },
        },
    }


def _bool_query(value: str | None) -> bool:
    if value is None or value in ("false", "0"):
        return False
    if value in ("true", "1"):
        return True
    raise ApiError(400, "invalid_parameter", f"return_embedding must be true or false, not {value[:40]!r}")


def create_app(
    captioner: Captioner,
    settings: ServerSettings,
    registry: CollectorRegistry,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The app serving ``captioner`` with ``settings``; metrics go to ``registry``."""
    metrics = ServerMetrics(registry, captioner.name, captioner.version, captioner.device)
    safety = SafetyFilter(DEFAULT_BLOCKLIST + tuple(settings.blocklist_extra))
    injector = FaultInjector(seed=settings.fault_seed, clock=clock)
    if settings.enable_faults and settings.faults:
        injector.update(settings.faults)
    state = ServerState(injector=injector)
    # Request ids: a random per-process prefix and a counter (no system call per request).
    id_prefix, id_counter = uuid.uuid4().hex[:16], itertools.count(1)

    def new_request_id() -> str:
        return f"{id_prefix}{next(id_counter):016x}"

    def infer(images: list[Image.Image]) -> list[tuple[Caption, int]]:
        caps = captioner.caption(images)
        delay = injector.batch_delay_s()
        if delay:
            time.sleep(delay)
        return [(cap, len(images)) for cap in caps]

    def thread_init() -> None:
        try:
            import torch

            torch.set_num_threads(max(1, settings.threads))
        except ImportError:  # a captioner without torch
            pass

    batcher: Batcher[Image.Image, tuple[Caption, int]] = Batcher(
        infer,
        max_batch=settings.max_batch,
        max_wait_s=settings.max_wait_ms / 1000.0,
        max_queue=settings.max_queue,
        on_batch=metrics.batch_size.observe,
        on_depth=metrics.queue_depth.set,
        thread_init=thread_init,
        clock=clock,
    )
    intake = ImageIntake(
        captioner.prepare,
        max_pixels=settings.max_pixels,
        max_pixels_in_flight=settings.max_decode_pixels,
        threads=settings.decode_threads,
        draft_side=captioner.input_side,
    )

    async def warm_up() -> None:
        blank = Image.new("RGB", (64, 64), (127, 127, 127))
        try:
            await intake.warm_up()
            await batcher.run_direct([blank] * settings.max_batch)
            await batcher.run_direct([blank])
        except Exception as exc:  # stays unready: /readyz says so, the log says why
            server_log.error(f"warm-up failed, the server stays unready: {type(exc).__name__}: {exc}")
            return
        if injector.spec.slow_start_s:
            injector.not_ready_until = clock() + injector.spec.slow_start_s
        state.warm = True

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        intake.start()
        warm = asyncio.get_running_loop().create_task(warm_up(), name="warm-up")
        try:
            yield
        finally:
            warm.cancel()
            state.begin_drain()
            await jobs.stop()
            await batcher.stop()
            intake.stop()

    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:  # metrics are Prometheus' here
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
    app = FastAPI(
        title="Reference captioning server",
        version="1",
        description="HTTP contract v1 of the captioning SLO harness.",
        lifespan=lifespan,
        redoc_url=None,
        **extra,
    )
    app.state.server = state
    app.state.batcher = batcher
    app.state.metrics = metrics
    app.state.injector = injector
    app.state.intake = intake

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        code = codes.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail), dict(exc.headers or {})).response()

    @app.exception_handler(BodyTimeout)
    async def _body_timeout(request: Request, exc: BodyTimeout) -> Response:
        return ApiError(408, "body_timeout", str(exc), {"Connection": "close"}).response()

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Response:
        log_exception(exc, request.headers.get("x-request-id"), request.method, request.url.path)
        return ApiError(500, "internal", f"internal error: {type(exc).__name__}").response()

    api_key = settings.api_key.encode("utf-8") if settings.api_key is not None else None

    def check_api_key(request: Request) -> None:
        if api_key is None:
            return
        # Header values arrive decoded as latin-1: encoding them back gives the bytes sent, which
        # are compared with the key's UTF-8 bytes.
        given = request.headers.get("x-api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode("latin-1"), api_key):
            raise ApiError(401, "unauthorized", "missing or wrong API key (send X-API-Key or Authorization: Bearer)")

    async def read_body(request: Request) -> bytes:
        limit = settings.max_body_bytes
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

    async def read_image_bytes(request: Request) -> bytes:
        ctype = request.headers.get("content-type", "")
        media = ctype.split(";", 1)[0].strip().lower()
        if media in IMAGE_TYPES:
            body = await read_body(request)
        elif media == "multipart/form-data":
            body = await read_multipart_image(request, await read_body(request))
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

    async def decode(data: bytes) -> Image.Image:
        """The shared decoding and admission of every route: ``data`` checked from its header,
        decoded and shrunk to what the model needs off the event loop (``ImageIntake``), with
        the decoded pixels in flight bounded; failures are ``ApiError`` 400, 413 or 503."""
        try:
            return await intake.image(data)
        except ImageTooLargeError as exc:
            raise ApiError(413, "image_too_large", str(exc)) from None
        except ImageDecodeError as exc:
            raise ApiError(400, "invalid_image", str(exc)) from None
        except IntakeBusy as exc:
            raise ApiError(
                503, "decode_busy", f"too many pixels being decoded: {exc}", {"Retry-After": str(exc.retry_after_s)}
            ) from None

    async def hold(request: Request) -> str:
        """The hang fault: answer nothing until the client goes away or the server drains."""
        disconnect = asyncio.ensure_future(wait_disconnect(request))
        released = asyncio.ensure_future(state.released.wait())
        try:
            await asyncio.wait({disconnect, released}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            disconnect.cancel()
            released.cancel()
        return "client_gone" if not state.draining else "draining"

    async def wait_disconnect(request: Request) -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    def admit(request: Request) -> None:
        """Refuse a caption request without the API key (401) or while not ready (503)."""
        check_api_key(request)
        readiness = state.readiness()
        if readiness != "ready":
            code = "draining" if readiness == "draining" else "not_ready"
            raise ApiError(503, code, f"server is {readiness.replace('_', ' ')}", {"Retry-After": "1"})

    async def answer_caption(request: Request, request_id: str, t0: float) -> Response:
        admit(request)
        want_embedding = _bool_query(request.query_params.get("return_embedding"))
        cap, verdict, confidence = await caption_image(request, await read_image_bytes(request), t0)
        body = caption_body(request_id, cap, verdict, confidence, t0, want_embedding)
        return Response(json.dumps(body), media_type=_JSON, headers={"X-Request-Id": request_id})

    def caption_body(
        request_id: str, cap: Caption, verdict: SafetyVerdict, confidence: float, t0: float, want_embedding: bool
    ) -> dict[str, Any]:
        """The caption document of contract v1 (the synchronous answer, an asynchronous job's result)."""
        body: dict[str, Any] = {
            "request_id": request_id,
            "caption": verdict.text,
            "confidence": round(confidence, 6),
            "model_version": captioner.version,
            "server_latency_ms": round((clock() - t0) * 1000.0, 3),
        }
        if want_embedding:
            body["embedding"] = list(cap.embedding)
        body["safety"] = {"flagged": verdict.flagged, "reasons": list(verdict.reasons)}
        return body

    def take_request_id(request: Request) -> str:
        """The X-Request-Id given (400 when malformed) or a new one."""
        given = request.headers.get("x-request-id")
        if given is None:
            return new_request_id()
        if not _REQUEST_ID.fullmatch(given):
            raise ApiError(
                400,
                "invalid_request_id",
                f"X-Request-Id must be 1 to {_MAX_REQUEST_ID} visible ASCII characters (no spaces)",
            )
        return given

    async def caption_image(request: Request, data: bytes, t0: float) -> tuple[Caption, SafetyVerdict, float]:
        """Decode, batch and check one image: the caption, its safety verdict and its confidence
        (every protocol's route comes through here)."""
        image = await decode(data)
        return await caption_decoded(request, image, settings.request_timeout_s - (clock() - t0))

    async def caption_images(
        request: Request, datas: list[bytes], t0: float
    ) -> list[tuple[Caption, SafetyVerdict, float]]:
        """``caption_image`` for the images of one request, admitted as a whole or not at all:
        more images than the queue ever holds is 413 ``too_many_images``, more than it has room
        for now 429 ``queue_full``; either way nothing of the request is decoded further or
        inferred. Decoding stops at the first image that fails."""
        if len(datas) > settings.max_queue:
            raise ApiError(
                413,
                "too_many_images",
                f"{len(datas)} images in one request, more than the queue holds ({settings.max_queue}): "
                f"send at most {settings.max_queue} per request",
            )
        if len(datas) > batcher.room():  # refused before any decoding; checked again when queued
            raise queue_full()
        images = await decode_all(datas)
        return await caption_decoded_all(request, images, settings.request_timeout_s - (clock() - t0))

    async def decode_all(datas: list[bytes]) -> list[Image.Image]:
        """``decode`` each of ``datas``, as many at once as there are decoding threads (so one
        request's images do not crowd each other out of the decoding bound); the first failure
        cancels the rest."""
        slots = asyncio.Semaphore(intake.threads)

        async def one(data: bytes) -> Image.Image:
            async with slots:
                return await decode(data)

        tasks = [asyncio.ensure_future(one(d)) for d in datas]
        try:
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()

    def queue_full() -> ApiError:
        return ApiError(
            429,
            "queue_full",
            f"queue full ({settings.max_queue} waiting)",
            {"Retry-After": str(batcher.retry_after_s())},
        )

    async def caption_decoded(
        request: Request | None, image: Image.Image, remaining: float
    ) -> tuple[Caption, SafetyVerdict, float]:
        """Faults, batch and safety check of a decoded image, within ``remaining`` seconds (the
        synchronous routes and the asynchronous job worker, which has no ``request``)."""
        return (await caption_decoded_all(request, [image], remaining))[0]

    async def draw_fault(request: Request | None) -> None:
        """The request faults: hang (held until the client goes or the server drains) or error."""
        fault = injector.draw_request()
        if fault == "hang":
            if request is None:  # a job: held until the server drains (or the job expires)
                await state.released.wait()
                raise ApiError(503, "draining", "server is draining", {"Retry-After": "1"})
            how = await hold(request)
            if how == "client_gone":
                raise ClientDisconnect()  # answered 499 by the route
            raise ApiError(503, "draining", "server is draining", {"Retry-After": "1"})
        if fault == "error":
            raise ApiError(500, "injected_fault", "injected error (fault injection)")

    async def caption_decoded_all(
        request: Request | None, images: list[Image.Image], remaining: float
    ) -> list[tuple[Caption, SafetyVerdict, float]]:
        """``caption_decoded`` for several images, queued all together or not at all; if one
        fails or the deadline passes, those still queued are dropped (never inferred)."""
        if settings.enable_faults:
            for _ in images:
                await draw_fault(request)
        try:
            futures = batcher.submit_all(images)
        except QueueFullError:
            raise queue_full() from None
        try:
            outs = await asyncio.wait_for(asyncio.gather(*futures), max(remaining, 0.0))
        except asyncio.TimeoutError:
            raise ApiError(
                503,
                "deadline_exceeded",
                f"no caption within the {settings.request_timeout_s:g} s deadline",
                {"Retry-After": str(batcher.retry_after_s())},
            ) from None
        except asyncio.CancelledError:
            if state.draining:
                raise ApiError(503, "draining", "server stopped before the caption was made") from None
            raise
        finally:
            for future in futures:  # a cancelled item is skipped when its batch is taken
                future.cancel()
        if request is not None and outs:
            request.state.batch_size = max(size for _, size in outs)
        results = []
        for cap, _ in outs:
            word = injector.draw_unsafe(safety.blocklist) if settings.enable_faults else None
            if word is not None:
                verdict = SafetyVerdict(f"{cap.text} with {word}", False, ())
            else:
                verdict = safety.check(cap.text)
            confidence = min(1.0, max(0.0, float(cap.confidence)))
            metrics.observe_caption(confidence, verdict.reasons)
            results.append((cap, verdict, confidence))
        return results

    @app.post(
        "/v1/caption",
        summary="Caption one image",
        response_model=None,
        responses={
            200: {
                "model": CaptionResponse,
                "description": "the caption",
                "headers": {"X-Request-Id": {"schema": {"type": "string"}, "required": True}},
            },
            **_error_responses(*([400] + ([401] if settings.api_key else []) + [408, 413, 415, 429, 500, 503])),
        },
        openapi_extra=_caption_openapi(settings),
    )
    async def caption(request: Request) -> Response:
        t0 = clock()
        given_id = request.headers.get("x-request-id")
        request_id = given_id if given_id is not None else new_request_id()
        status: int | str = 500
        try:
            if given_id is not None and not _REQUEST_ID.fullmatch(given_id):
                request_id = new_request_id()
                raise ApiError(
                    400,
                    "invalid_request_id",
                    f"X-Request-Id must be 1 to {_MAX_REQUEST_ID} visible ASCII characters (no spaces)",
                )
            response = await answer_caption(request, request_id, t0)
            status = response.status_code
            return response
        except ApiError as exc:
            status = exc.status
            return exc.response(request_id)
        except ClientDisconnect:
            status = 499
            return Response(status_code=499)
        except asyncio.CancelledError:
            status = 499
            raise
        except Exception as exc:
            status = 500
            log_exception(exc, request_id, request.method, request.url.path)
            return ApiError(500, "internal", f"internal error: {type(exc).__name__}").response(request_id)
        finally:
            metrics.observe_request(status, clock() - t0)

    @app.get("/healthz", summary="Liveness", responses={200: {"model": Health}})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="Readiness: model loaded, warm-up batch run, not draining",
        response_model=None,
        responses={
            200: {"model": Readiness, "description": "ready"},
            503: {"model": Readiness, "description": "not ready"},
        },
    )
    async def readyz() -> Response:
        status = state.readiness()
        body = json.dumps({"ready": status == "ready", "status": status})
        return Response(body, status_code=200 if status == "ready" else 503, media_type=_JSON)

    @app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_model=None,
        responses={
            200: {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/v1/model",
        summary="The model served and the batching settings",
        response_model=None,
        responses={
            200: {"model": ModelInfo, "description": "model"},
            **_error_responses(*([401] if settings.api_key else [])),
        },
    )
    async def model_info(request: Request) -> Response:
        try:
            check_api_key(request)
        except ApiError as exc:
            return exc.response()
        body = {
            "name": captioner.name,
            "version": captioner.version,
            "device": captioner.device,
            "threads": settings.threads,
            "batching": settings.batching(),
            "limits": {
                "max_body_bytes": settings.max_body_bytes,
                "max_pixels": settings.max_pixels,
                "request_timeout_s": settings.request_timeout_s,
            },
            "ready": state.readiness() == "ready",
            "api_key_required": settings.api_key is not None,
            "faults_enabled": settings.enable_faults,
        }
        return JSONResponse(body)

    _add_admin_routes(app, settings, injector)
    add_protocol_routes(
        app,
        CaptionPath(
            captioner, settings, metrics, clock, admit, read_body, caption_image, caption_images, new_request_id
        ),
    )
    jobs = add_job_routes(
        app,
        JobPath(
            settings,
            metrics,
            injector,
            clock,
            admit,
            check_api_key,
            take_request_id,
            read_image_bytes,
            decode,
            caption_decoded,
            caption_body,
            _bool_query,
            ApiError,
            lambda: batcher.batch_seconds,
            _caption_openapi(settings),
        ),
    )
    app.add_middleware(_DirectRoute, method="POST", path="/v1/caption", handler=caption)
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout_s)
    app.add_middleware(RequestLog, model_version=captioner.version)
    return app


class _DirectRoute:
    """Serves one hot route straight from its handler, skipping the router and per-request
    dependency solving; the route stays registered, so the OpenAPI schema still describes it."""

    def __init__(self, app, method: str, path: str, handler: Callable[[Request], Any]):
        self.app, self.method, self.path, self.handler = app, method, path, handler

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == self.method:
            response = await self.handler(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _add_admin_routes(app: FastAPI, settings: ServerSettings, injector: FaultInjector) -> None:
    admin_responses = {
        200: {"model": FaultState, "description": "the faults now active"},
        **_error_responses(400, 401, 404),
    }
    shown = settings.enable_faults

    def state_response() -> Response:
        body = {
            "faults": injector.spec.to_dict(),
            "active": injector.active,
            "slow_start_remaining_s": round(injector.slow_start_remaining(), 3),
        }
        return JSONResponse(body)

    def guard(request: Request) -> None:
        if not settings.enable_faults or settings.admin_token is None:
            raise ApiError(404, "not_found", "fault injection is off (start the server with --enable-faults)")
        given = request.headers.get("x-admin-token", "")
        if not hmac.compare_digest(given.encode("latin-1"), settings.admin_token.encode("utf-8")):
            raise ApiError(401, "unauthorized", "missing or wrong admin token (send X-Admin-Token)")

    token_param = [{"name": "X-Admin-Token", "in": "header", "required": True, "schema": {"type": "string"}}]

    @app.get(
        "/admin/faults",
        summary="The faults now active",
        response_model=None,
        responses=admin_responses,
        include_in_schema=shown,
        openapi_extra={"parameters": token_param},
    )
    async def get_faults(request: Request) -> Response:
        try:
            guard(request)
        except ApiError as exc:
            return exc.response()
        return state_response()

    @app.post(
        "/admin/faults",
        summary="Set faults (the fields given; others stay)",
        response_model=None,
        responses=admin_responses,
        include_in_schema=shown,
        openapi_extra={
            "parameters": token_param,
            "requestBody": {"required": True, "content": {_JSON: {"schema": fault_request_schema()}}},
        },
    )
    async def set_faults(request: Request) -> Response:
        try:
            guard(request)
            raw = await request.body()
            try:
                data = json.loads(raw or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise ApiError(400, "invalid_json", "body is not JSON") from None
            except RecursionError:  # a client's nesting is the client's error, not the server's
                raise ApiError(400, "invalid_json", "body is nested too deeply") from None
            if not isinstance(data, dict):
                raise ApiError(400, "invalid_faults", "body must be a JSON object of fault fields")
            try:
                injector.update(data)
            except ValueError as exc:
                raise ApiError(400, "invalid_faults", str(exc)) from None
        except ApiError as exc:
            return exc.response()
        return state_response()

    @app.delete(
        "/admin/faults",
        summary="Clear every fault",
        response_model=None,
        responses=admin_responses,
        include_in_schema=shown,
        openapi_extra={"parameters": token_param},
    )
    async def clear_faults(request: Request) -> Response:
        try:
            guard(request)
        except ApiError as exc:
            return exc.response()
        injector.clear()
        return state_response()
