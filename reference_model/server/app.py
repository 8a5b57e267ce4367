"""The FastAPI application of HTTP contract v1 over one ``Captioner``: the server's
``CaptionService`` on ``app.state.service``, the routers of ``routes`` (captions, health,
readiness, metrics, model), ``admin`` (faults), ``protocols`` (other model servers' protocols)
and ``jobs`` (asynchronous captions, their ``JobStore`` on ``app.state.jobs``), the error
handlers, the middleware and the lifespan."""

from __future__ import annotations

import inspect
import time
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException

from reference_model.caption import Captioner
from reference_model.server import admin, jobs, protocols, routes
from reference_model.server.errors import ApiError
from reference_model.server.guards import BodyDeadline, BodyTimeout
from reference_model.server.logs import RequestLog, log_exception
from reference_model.server.service import CaptionService, ServerState
from reference_model.server.settings import ServerSettings

__all__ = ["create_app", "ApiError", "ServerState"]


def create_app(
    captioner: Captioner,
    settings: ServerSettings,
    registry: CollectorRegistry,
    *,
    clock: Callable[[], float] = time.monotonic,
    service: CaptionService | None = None,
    job_store: Any = None,
) -> FastAPI:
    """The app serving ``captioner`` with ``settings``; metrics go to ``registry``. A front-end
    worker passes its own ``service`` and ``job_store`` (which reach the model process)."""
    if service is None:
        service = CaptionService(captioner, settings, registry, clock=clock)
    app = FastAPI(
        title="Reference captioning server",
        version="1",
        description="HTTP contract v1 of the captioning SLO harness.",
        lifespan=_lifespan,
        redoc_url=None,
        **_without_telemetry(),
    )
    app.state.service = service
    app.state.jobs = job_store if job_store is not None else jobs.JobStore(service)
    routers = (routes.make_router(settings), admin.make_router(settings), protocols.router, jobs.make_router(settings))
    for router in routers:  # in this order: the OpenAPI schema lists their paths so
        app.include_router(router)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(BodyTimeout, _body_timeout)
    app.add_exception_handler(Exception, _internal_error)
    app.add_middleware(_DirectRoute, method="POST", path="/v1/caption", handler=routes.caption)
    app.add_middleware(BodyDeadline, seconds=settings.body_timeout_s)
    app.add_middleware(RequestLog, model_version=captioner.version)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI):
    service: CaptionService = app.state.service
    service.start()
    try:
        yield
    finally:
        service.begin_stop()
        await app.state.jobs.stop()
        await service.stop()


def _without_telemetry() -> dict[str, Any]:
    """FastAPI's own telemetry off where it has some: the server's metrics are Prometheus'."""
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}}
    return {}


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed"}
    code = codes.get(exc.status_code, "http_error")
    return ApiError(exc.status_code, code, str(exc.detail), dict(exc.headers or {})).response()


async def _body_timeout(request: Request, exc: BodyTimeout) -> Response:
    return ApiError(408, "body_timeout", str(exc), {"Connection": "close"}).response()


async def _internal_error(request: Request, exc: Exception) -> Response:
    log_exception(exc, request.headers.get("x-request-id"), request.method, request.url.path)
    return ApiError(500, "internal", f"internal error: {type(exc).__name__}").response()


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
