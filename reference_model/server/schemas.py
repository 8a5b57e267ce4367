"""The JSON shapes of HTTP contract v1, as pydantic models: they document the OpenAPI schema;
and the pieces of that schema the routers share (the error answers, the caption request)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from reference_model.server.faults import FaultSpec
from reference_model.server.settings import IMAGE_TYPES, ServerSettings

__all__ = [
    "MAX_REQUEST_ID",
    "ErrorBody",
    "ErrorResponse",
    "Safety",
    "CaptionResponse",
    "Health",
    "Readiness",
    "Batching",
    "Limits",
    "ModelInfo",
    "FaultState",
    "fault_request_schema",
    "error_responses",
    "caption_openapi",
]

MAX_REQUEST_ID = 128  # the longest X-Request-Id taken (visible ASCII, no spaces)


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable reason, e.g. invalid_image, queue_full")
    message: str = Field(description="one line for a person")


class ErrorResponse(BaseModel):
    error: ErrorBody


class Safety(BaseModel):
    flagged: bool
    reasons: list[str] = Field(description="blocklist, email, phone")


class CaptionResponse(BaseModel):
    request_id: str
    caption: str
    confidence: float = Field(ge=0.0, le=1.0)
    model_version: str
    server_latency_ms: float = Field(ge=0.0)
    embedding: list[float] | None = Field(default=None, description="only with return_embedding=true")
    safety: Safety


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    status: str = Field(description="ready, warming_up, starting (slow start) or draining")


class Batching(BaseModel):
    max_batch: int
    max_wait_ms: float
    max_queue: int


class Limits(BaseModel):
    max_body_bytes: int
    max_pixels: int
    request_timeout_s: float


class ModelInfo(BaseModel):
    name: str
    version: str
    device: str
    threads: int
    batching: Batching
    limits: Limits
    ready: bool
    api_key_required: bool
    faults_enabled: bool


class FaultState(BaseModel):
    faults: FaultSpec
    active: bool
    slow_start_remaining_s: float


def fault_request_schema() -> dict[str, Any]:
    """The request body of ``POST /admin/faults``: any subset of the fault fields."""
    schema = FaultSpec.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    for prop in schema["properties"].values():
        prop.pop("title", None)
        prop.pop("default", None)
    return schema


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answers of ``codes`` in the contract's error shape (``Retry-After`` with 429, 503)."""
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


def caption_openapi(settings: ServerSettings) -> dict[str, Any]:
    """The parameters and request body of ``POST /v1/caption`` (``POST /v1/caption:async`` shares them)."""
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
                "schema": {"type": "string", "maxLength": MAX_REQUEST_ID, "pattern": "^[!-~]+$"},
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
