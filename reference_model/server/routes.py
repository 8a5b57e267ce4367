"""The routes of HTTP contract v1 that caption and describe the server: ``POST /v1/caption``,
``GET /healthz``, ``/readyz``, ``/metrics`` and ``/v1/model``. Each handler takes the server's
``CaptionService`` from ``request.app.state.service``."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect

from reference_model.server.errors import ApiError
from reference_model.server.logs import log_exception
from reference_model.server.schemas import (
    CaptionResponse,
    Health,
    ModelInfo,
    Readiness,
    caption_openapi,
    error_responses,
)
from reference_model.server.service import CaptionService, bool_query
from reference_model.server.settings import ServerSettings

__all__ = ["make_router", "caption"]

_JSON = "application/json"


def _service(request: Request) -> CaptionService:
    return request.app.state.service


# The handlers carry no docstring: FastAPI would put it in the OpenAPI document.


async def caption(request: Request) -> Response:
    service = _service(request)
    t0 = service.clock()
    given_id = request.headers.get("x-request-id")
    request_id = given_id if given_id is not None else service.new_request_id()
    status: int = 500
    with service.tracing.server_span(request, "/v1/caption", request_id) as span:
        try:
            if given_id is not None and not service.valid_request_id(given_id):
                request_id = service.new_request_id()
                raise service.invalid_request_id()
            response = await _answer_caption(service, request, request_id, t0)
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
            service.metrics.observe_request(status, service.clock() - t0)
            span.finish(status, request_id)


async def _answer_caption(service: CaptionService, request: Request, request_id: str, t0: float) -> Response:
    service.admit(request)
    want_embedding = bool_query(request.query_params.get("return_embedding"))
    cap, verdict, confidence = await service.caption_image(request, await service.read_image_bytes(request), t0)
    body = service.caption_body(request_id, cap, verdict, confidence, t0, want_embedding)
    return Response(json.dumps(body), media_type=_JSON, headers={"X-Request-Id": request_id})


async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def readyz(request: Request) -> Response:
    status = _service(request).state.readiness()
    body = json.dumps({"ready": status == "ready", "status": status})
    return Response(body, status_code=200 if status == "ready" else 503, media_type=_JSON)


async def prometheus_metrics(request: Request) -> Response:
    return Response(generate_latest(_service(request).registry), media_type=CONTENT_TYPE_LATEST)


async def model_info(request: Request) -> Response:
    service = _service(request)
    try:
        service.check_api_key(request)
    except ApiError as exc:
        return exc.response()
    captioner, settings = service.captioner, service.settings
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
        "ready": service.ready(),
        "api_key_required": settings.api_key is not None,
        "faults_enabled": settings.enable_faults,
    }
    return JSONResponse(body)


def make_router(settings: ServerSettings) -> APIRouter:
    """The routes above, their OpenAPI description fitted to ``settings`` (the limits, whether
    an API key is asked for)."""
    keyed = [401] if settings.api_key else []
    router = APIRouter()
    router.add_api_route(
        "/v1/caption",
        caption,
        methods=["POST"],
        summary="Caption one image",
        response_model=None,
        responses={
            200: {
                "model": CaptionResponse,
                "description": "the caption",
                "headers": {"X-Request-Id": {"schema": {"type": "string"}, "required": True}},
            },
            **error_responses(*([400] + keyed + [408, 413, 415, 429, 500, 503])),
        },
        openapi_extra=caption_openapi(settings),
    )
    router.add_api_route("/healthz", healthz, methods=["GET"], summary="Liveness", responses={200: {"model": Health}})
    router.add_api_route(
        "/readyz",
        readyz,
        methods=["GET"],
        summary="Readiness: model loaded, warm-up batch run, not draining",
        response_model=None,
        responses={
            200: {"model": Readiness, "description": "ready"},
            503: {"model": Readiness, "description": "not ready"},
        },
    )
    router.add_api_route(
        "/metrics",
        prometheus_metrics,
        methods=["GET"],
        summary="Prometheus metrics",
        response_model=None,
        responses={
            200: {
                "description": "Prometheus text exposition",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    )
    router.add_api_route(
        "/v1/model",
        model_info,
        methods=["GET"],
        summary="The model served and the batching settings",
        response_model=None,
        responses={200: {"model": ModelInfo, "description": "model"}, **error_responses(*keyed)},
    )
    return router
