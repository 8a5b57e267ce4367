"""The fault injection routes: ``GET``, ``POST`` and ``DELETE /admin/faults``, behind the admin
token, and absent (404, out of the OpenAPI schema) unless the server runs with ``--enable-faults``.
Each handler takes the server's ``CaptionService`` from ``request.app.state.service``."""

from __future__ import annotations

import json

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from reference_model.server.errors import ApiError
from reference_model.server.schemas import FaultState, error_responses, fault_request_schema
from reference_model.server.service import CaptionService
from reference_model.server.settings import ServerSettings

__all__ = ["make_router"]

_JSON = "application/json"


def _service(request: Request) -> CaptionService:
    return request.app.state.service


# The handlers carry no docstring: FastAPI would put it in the OpenAPI document.


async def get_faults(request: Request) -> Response:
    service = _service(request)
    try:
        service.check_admin_token(request)
    except ApiError as exc:
        return exc.response()
    return JSONResponse(await service.fault_state())


async def set_faults(request: Request) -> Response:
    service = _service(request)
    try:
        service.check_admin_token(request)
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
            state = await service.update_faults(data)
        except ValueError as exc:
            raise ApiError(400, "invalid_faults", str(exc)) from None
    except ApiError as exc:
        return exc.response()
    return JSONResponse(state)


async def clear_faults(request: Request) -> Response:
    service = _service(request)
    try:
        service.check_admin_token(request)
    except ApiError as exc:
        return exc.response()
    return JSONResponse(await service.clear_faults())


def make_router(settings: ServerSettings) -> APIRouter:
    """The routes above, in the OpenAPI schema only when ``settings`` enable faults."""
    responses = {
        200: {"model": FaultState, "description": "the faults now active"},
        **error_responses(400, 401, 404),
    }
    token_param = [{"name": "X-Admin-Token", "in": "header", "required": True, "schema": {"type": "string"}}]
    router = APIRouter(include_in_schema=settings.enable_faults)
    router.add_api_route(
        "/admin/faults",
        get_faults,
        methods=["GET"],
        summary="The faults now active",
        openapi_extra={"parameters": token_param},
        response_model=None,
        responses=responses,
    )
    router.add_api_route(
        "/admin/faults",
        set_faults,
        methods=["POST"],
        summary="Set faults (the fields given; others stay)",
        openapi_extra={
            "parameters": token_param,
            "requestBody": {"required": True, "content": {_JSON: {"schema": fault_request_schema()}}},
        },
        response_model=None,
        responses=responses,
    )
    router.add_api_route(
        "/admin/faults",
        clear_faults,
        methods=["DELETE"],
        summary="Clear every fault",
        openapi_extra={"parameters": token_param},
        response_model=None,
        responses=responses,
    )
    return router
