"""The reference server's routes for the protocols general model servers speak, all through the
same admission, decoding, batching, safety filter and metrics as contract v1 (the server's
``CaptionService``, which each handler takes from ``request.app.state.service``):

- OpenAI-compatible chat completions: ``POST /v1/chat/completions`` (the image as a data URL,
  ``logprobs`` per token, ``usage``; with ``stream: true`` the answer as server-sent events, one
  ``chat.completion.chunk`` per token, a usage chunk with ``stream_options.include_usage``, then
  ``data: [DONE]``) and ``GET /v1/models``;
- the v2 inference protocol (KServe, Triton): ``POST /v2/models/{name}[/versions/{v}]/infer`` with
  a ``BYTES`` input (base64 in JSON, or raw in the binary tensor extension), ``GET /v2``,
  ``/v2/health/live``, ``/v2/health/ready``, ``/v2/models/{name}`` and ``/v2/models/{name}/ready``;
- TorchServe: ``POST /predictions/{model}[/{version}]`` with the raw image, ``GET /ping``;
- Hugging Face inference: ``POST /models/{model}`` with the raw image, ``[{"generated_text": ...}]``.

A model is named by the captioner's name or version; a version in the path (``/versions/{v}``,
``/predictions/{model}/{v}``) must be the captioner's version, the one the metadata lists, else
404. The images of one v2 request are admitted as a whole or not at all. Each protocol answers
errors in its own shape. These routes follow their own specifications and stay out of the
OpenAPI schema, which describes contract v1."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
import time
from typing import Any, AsyncIterator, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect

from harness.protocols.kserve_v2 import HEADER_LENGTH, pack_bytes, split_binary, unpack_bytes
from reference_model.caption import Caption
from reference_model.server.errors import ApiError
from reference_model.server.service import CaptionService

__all__ = ["router", "ProtocolError", "completion_tokens"]

_JSON = "application/json"

router = APIRouter()


class ProtocolError(Exception):
    """A refusal in a protocol's own terms (the server's ``ApiError`` is mapped to one)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


ErrorShape = Callable[[ProtocolError], dict[str, Any]]


def _openai_error(e: ProtocolError) -> dict[str, Any]:
    kind = "invalid_request_error" if e.status < 500 else "server_error"
    return {"error": {"message": e.message, "type": kind, "param": None, "code": e.code}}


def _plain_error(e: ProtocolError) -> dict[str, Any]:
    return {"error": e.message}


def _torchserve_error(e: ProtocolError) -> dict[str, Any]:
    return {"code": e.status, "type": e.code, "message": e.message}


def completion_tokens(cap: Caption, text: str, max_tokens: int | None) -> tuple[list[tuple[str, float]], str]:
    """The tokens an answer reports for ``cap`` (``text`` is the caption after the safety filter)
    and the finish reason: all of them, end of sequence included, or the first ``max_tokens``
    and ``length``. Text the filter added is one more token of log-probability 0."""
    tokens = list(cap.token_logprobs)
    if text != cap.text and tokens:
        extra = text[len(cap.text) :] if text.startswith(cap.text) else text
        tokens.insert(len(tokens) - 1 if tokens[-1][0] == "" else len(tokens), (extra, 0.0))
    words = [t for t in tokens if t[0] != ""] if tokens and tokens[-1][0] == "" else tokens
    if max_tokens is not None and len(words) > max_tokens:
        return tokens[:max_tokens], "length"
    return tokens, "stop"


# A protocol's answer to a request: given the service, the request, its id and its start time.
Answer = Callable[[CaptionService, Request, str, float], Awaitable[Response]]


def _service(request: Request) -> CaptionService:
    return request.app.state.service


async def _serve(request: Request, shape: ErrorShape, answer: Answer) -> Response:
    """Run ``answer`` with the request id and start time; map refusals to ``shape``; count the
    request in the server's metrics as contract v1 requests are."""
    service = _service(request)
    t0 = service.clock()
    rid = request.headers.get("x-request-id") or service.new_request_id()
    if len(rid) > 128 or not rid.isascii() or not rid.isprintable():
        rid = service.new_request_id()
    status = 500
    with service.tracing.server_span(request, None, rid) as span:
        try:
            response = await answer(service, request, rid, t0)
            status = response.status_code
        except (ApiError, ProtocolError) as exc:
            err = (
                exc if isinstance(exc, ProtocolError) else ProtocolError(exc.status, exc.code, exc.message, exc.headers)
            )
            status = err.status
            response = Response(
                json.dumps(shape(err)),
                status_code=err.status,
                media_type=_JSON,
                headers={**err.headers, "X-Request-Id": rid},
            )
        except ClientDisconnect:
            status = 499
            response = Response(status_code=499)
        except asyncio.CancelledError:
            status = 499
            raise
        except Exception as exc:  # a bug answers 500 in the protocol's shape, never a traceback
            status = 500
            response = Response(
                json.dumps(shape(ProtocolError(500, "internal", f"internal error: {type(exc).__name__}"))),
                status_code=500,
                media_type=_JSON,
                headers={"X-Request-Id": rid},
            )
        finally:
            service.metrics.observe_request(status, service.clock() - t0)
            span.finish(status)
    return response


async def _json_request(service: CaptionService, request: Request) -> Any:
    raw = await service.read_body(request)
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(400, "invalid_json", "body is not JSON") from None
    except RecursionError:  # a client's nesting is the client's error, not the server's
        raise ProtocolError(400, "invalid_json", "body is nested too deeply") from None


def _model_or_404(
    service: CaptionService, name: str, shape_code: str = "model_not_found", version: str | None = None
) -> None:
    cap_model = service.captioner
    if not service.knows(name):
        raise ProtocolError(404, shape_code, f"model {name[:80]!r} is not served here (serving {cap_model.name!r})")
    if not service.has_version(version):
        raise ProtocolError(
            404,
            shape_code,
            f"version {version[:80]!r} of model {name[:80]!r} is not served here "
            f"(serving version {cap_model.version!r})",
        )


async def _raw_image(service: CaptionService, request: Request) -> bytes:
    body = await service.read_body(request)
    if not body:
        raise ProtocolError(400, "invalid_image", "empty image (0 bytes)")
    return body


def _is_ready(request: Request) -> bool:
    return _service(request).ready()


# The route handlers (which carry no docstring: FastAPI would put it in the OpenAPI document,
# even of a route left out of it) and the answers they serve.

# ------------------------------------------------------------------ OpenAI-compatible


@router.get("/v1/models", include_in_schema=False)
async def openai_models(request: Request) -> Response:
    return await _serve(request, _openai_error, _answer_models)


async def _answer_models(service: CaptionService, request: Request, rid: str, t0: float) -> Response:
    service.admit(request)
    cap_model = service.captioner
    body = {
        "object": "list",
        "data": [
            {
                "id": cap_model.name,
                "object": "model",
                "created": 0,
                "owned_by": "caption-slo-harness",
                "root": cap_model.version,
            }
        ],
    }
    return Response(json.dumps(body), media_type=_JSON)


@router.post("/v1/chat/completions", include_in_schema=False)
async def chat_completions(request: Request) -> Response:
    return await _serve(request, _openai_error, _answer_chat)


async def _answer_chat(service: CaptionService, request: Request, rid: str, t0: float) -> Response:
    service.admit(request)
    doc = await _json_request(service, request)
    if not isinstance(doc, dict):
        raise ProtocolError(400, "invalid_request", "body must be a JSON object")
    model = doc.get("model")
    if not isinstance(model, str):
        raise ProtocolError(400, "invalid_request", "'model' is required")
    _model_or_404(service, model)
    stream = doc.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise ProtocolError(400, "invalid_request", "stream must be true or false")
    options = doc.get("stream_options")
    if options is not None and (
        not stream or not isinstance(options, dict) or not isinstance(options.get("include_usage", False), bool)
    ):
        raise ProtocolError(400, "invalid_request", "stream_options needs stream: true and holds include_usage: bool")
    if doc.get("n", 1) != 1:
        raise ProtocolError(400, "unsupported", "only n=1 is supported")
    limit = doc.get("max_completion_tokens", doc.get("max_tokens"))
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ProtocolError(400, "invalid_request", "max_tokens must be a whole number >= 1")
    top = doc.get("top_logprobs") or 0
    if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
        raise ProtocolError(400, "invalid_request", "top_logprobs must be a whole number 0..20")
    image, words = _chat_image(doc.get("messages"))
    cap, verdict, _ = await service.caption_image(request, image, t0)
    tokens, finish = completion_tokens(cap, verdict.text, limit)
    text = "".join(t for t, _ in tokens) if tokens else verdict.text
    logprobs = None
    if doc.get("logprobs") and tokens:  # a backend without per-token probabilities gives none
        logprobs = {
            "content": [
                {
                    "token": t,
                    "logprob": lp,
                    "bytes": list(t.encode("utf-8")),
                    "top_logprobs": [{"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))}][:top],
                }
                for t, lp in tokens
            ],
            "refusal": None,
        }
    prompt_tokens = words + 1  # the prompt's words and one token for the image
    version = service.captioner.version
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(tokens) or cap.tokens,
        "total_tokens": prompt_tokens + (len(tokens) or cap.tokens),
    }
    if stream:
        pieces = tokens or [(w, None) for w in _WORDS.findall(text)]
        include_usage = bool((options or {}).get("include_usage"))
        events = _chat_events(rid, version, pieces, bool(doc.get("logprobs")), top, finish, usage, include_usage)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"X-Request-Id": rid, "Cache-Control": "no-cache"}
        )
    body = {
        "id": f"chatcmpl-{rid}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": version,
        "system_fingerprint": version,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": logprobs,
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }
    return Response(json.dumps(body), media_type=_JSON, headers={"X-Request-Id": rid})


_WORDS = re.compile(r"\s*\S+")


def _token_logprob(t: str, lp: float, top: int) -> dict[str, Any]:
    entry = {"token": t, "logprob": lp, "bytes": list(t.encode("utf-8"))}
    return {**entry, "top_logprobs": [dict(entry)][:top]}


async def _chat_events(
    rid: str,
    version: str,
    pieces: list[tuple[str, float | None]],
    logprobs: bool,
    top: int,
    finish: str,
    usage: dict[str, int],
    include_usage: bool,
) -> AsyncIterator[bytes]:
    """The streamed answer: one ``chat.completion.chunk`` per token with text (the first one also
    carries the role), a last one with the finish reason (and the end-of-sequence token's
    log-probability), the usage chunk when asked for, then ``[DONE]``. The caption was decoded and
    passed the safety filter as a whole before the first chunk goes (the batcher answers a batch at
    once and the filter reads the whole caption): the chunks leave one after another, each its own
    write, without waiting between them."""
    head = {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk", "created": int(time.time())}
    head.update(model=version, system_fingerprint=version)

    def event(delta: dict[str, Any], lps: list[tuple[str, float | None]], reason: str | None) -> bytes:
        content = [_token_logprob(t, lp, top) for t, lp in lps if lp is not None]
        choice = {
            "index": 0,
            "delta": delta,
            "logprobs": {"content": content, "refusal": None} if logprobs and content else None,
            "finish_reason": reason,
        }
        return b"data: " + json.dumps({**head, "choices": [choice]}).encode() + b"\n\n"

    role: dict[str, Any] = {"role": "assistant"}
    silent: list[tuple[str, float | None]] = []  # tokens without text (the end of sequence)
    for t, lp in pieces:
        if not t:
            silent.append((t, lp))
            continue
        yield event({**role, "content": t}, [(t, lp)], None)
        role = {}
        await asyncio.sleep(0)  # each chunk its own write
    yield event(role, silent, finish)
    if include_usage:
        yield b"data: " + json.dumps({**head, "choices": [], "usage": usage}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


# ------------------------------------------------------------------ v2 inference protocol


def _metadata(service: CaptionService, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [service.captioner.version],
        "platform": "pytorch",
        "inputs": [{"name": "image", "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": "caption", "datatype": "BYTES", "shape": [-1]},
            {"name": "confidence", "datatype": "FP32", "shape": [-1]},
        ],
    }


@router.get("/v2", include_in_schema=False)
async def v2_server(request: Request) -> Response:
    body = {"name": "caption-slo-harness reference server", "version": "1", "extensions": ["binary_tensor_data"]}
    return Response(json.dumps(body), media_type=_JSON)


@router.get("/v2/health/live", include_in_schema=False)
async def v2_live(request: Request) -> Response:
    return Response(json.dumps({"live": True}), media_type=_JSON)


@router.get("/v2/health/ready", include_in_schema=False)
async def v2_ready(request: Request) -> Response:
    ok = _is_ready(request)
    return Response(json.dumps({"ready": ok}), status_code=200 if ok else 503, media_type=_JSON)


@router.get("/v2/models/{name}", include_in_schema=False)
@router.get("/v2/models/{name}/versions/{version}", include_in_schema=False)
async def v2_model(request: Request) -> Response:
    return await _serve(request, _plain_error, _answer_v2_model)


async def _answer_v2_model(service: CaptionService, request: Request, rid: str, t0: float) -> Response:
    service.admit(request)
    name = request.path_params["name"]
    _model_or_404(service, name, version=request.path_params.get("version"))
    return Response(json.dumps(_metadata(service, name)), media_type=_JSON)


@router.get("/v2/models/{name}/ready", include_in_schema=False)
@router.get("/v2/models/{name}/versions/{version}/ready", include_in_schema=False)
async def v2_model_ready(request: Request) -> Response:
    service, params = _service(request), request.path_params
    ok = service.knows(params["name"]) and service.has_version(params.get("version")) and service.ready()
    return Response(json.dumps({"ready": ok}), status_code=200 if ok else 503, media_type=_JSON)


@router.post("/v2/models/{name}/infer", include_in_schema=False)
@router.post("/v2/models/{name}/versions/{version}/infer", include_in_schema=False)
async def v2_infer(request: Request) -> Response:
    return await _serve(request, _plain_error, _answer_v2_infer)


async def _answer_v2_infer(service: CaptionService, request: Request, rid: str, t0: float) -> Response:
    service.admit(request)
    name = request.path_params["name"]
    _model_or_404(service, name, version=request.path_params.get("version"))
    raw = await service.read_body(request)
    try:
        doc, binary = split_binary(raw, request.headers.get(HEADER_LENGTH))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(400, "invalid_request", f"malformed inference request: {exc}") from None
    except RecursionError:
        raise ProtocolError(400, "invalid_json", "body is nested too deeply") from None
    images, wanted, binary_out = _v2_inputs(doc, binary)
    results = await service.caption_images(request, images, t0)
    values = {
        "caption": [v.text.encode("utf-8") for _, v, _ in results],
        "confidence": [c for _, _, c in results],
    }
    unknown = [o for o in wanted if o not in values]
    if unknown:
        raise ProtocolError(
            400, "invalid_request", f"unknown output {unknown[0][:60]!r} (outputs: caption, confidence)"
        )
    outputs, blobs = [], []
    for oname in wanted or list(values):
        data = values[oname]
        dtype = "BYTES" if oname == "caption" else "FP32"
        out: dict[str, Any] = {"name": oname, "datatype": dtype, "shape": [len(data)]}
        if binary_out.get(oname):
            blob = pack_bytes(data) if dtype == "BYTES" else _fp32(data)
            out["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            out["data"] = [d.decode("utf-8") for d in data] if dtype == "BYTES" else data
        outputs.append(out)
    body: dict[str, Any] = {"model_name": name, "model_version": service.captioner.version, "outputs": outputs}
    rid_in = doc.get("id")
    if isinstance(rid_in, str):
        body["id"] = rid_in
    head = json.dumps(body).encode()
    if not blobs:
        return Response(head, media_type=_JSON, headers={"X-Request-Id": rid})
    return Response(
        head + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"X-Request-Id": rid, HEADER_LENGTH: str(len(head))},
    )


# ------------------------------------------------------------------ TorchServe


@router.get("/ping", include_in_schema=False)
async def torchserve_ping(request: Request) -> Response:
    ok = _is_ready(request)
    return Response(
        json.dumps({"status": "Healthy" if ok else "Unhealthy"}), status_code=200 if ok else 503, media_type=_JSON
    )


@router.post("/predictions/{model}", include_in_schema=False)
@router.post("/predictions/{model}/{version}", include_in_schema=False)
async def torchserve_predict(request: Request) -> Response:
    return await _serve(request, _torchserve_error, _answer_torchserve)


async def _answer_torchserve(service: CaptionService, request: Request, rid: str, t0: float) -> Response:
    service.admit(request)
    params = request.path_params
    _model_or_404(service, params["model"], "ModelNotFoundException", params.get("version"))
    _, verdict, confidence = await service.caption_image(request, await _raw_image(service, request), t0)
    body = {"caption": verdict.text, "confidence": confidence}
    return Response(json.dumps(body), media_type=_JSON, headers={"X-Request-Id": rid})


# ------------------------------------------------------------------ Hugging Face inference


@router.post("/models/{model:path}", include_in_schema=False)
async def hf_inference(request: Request) -> Response:
    return await _serve(request, _plain_error, _answer_hf)


async def _answer_hf(service: CaptionService, request: Request, rid: str, t0: float) -> Response:
    service.admit(request)
    _model_or_404(service, request.path_params["model"])
    _, verdict, _ = await service.caption_image(request, await _raw_image(service, request), t0)
    return Response(json.dumps([{"generated_text": verdict.text}]), media_type=_JSON, headers={"X-Request-Id": rid})


def _fp32(values: list[float]) -> bytes:
    import struct

    return struct.pack(f"<{len(values)}f", *values)


def _chat_image(messages: Any) -> tuple[bytes, int]:
    """The image of the last user message (a base64 data URL) and the number of words of text."""
    if not isinstance(messages, list) or not messages:
        raise ProtocolError(400, "invalid_request", "'messages' must be a non-empty list")
    image, words = None, 0
    for m in messages:
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        content = m.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(parts, list):
            raise ProtocolError(400, "invalid_request", "a user message's content must be text or a list of parts")
        for part in parts:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                words += len(part["text"].split())
            elif part.get("type") == "image_url":
                ref = part.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                image = _data_url(url)
    if image is None:
        raise ProtocolError(400, "invalid_request", "no image_url part in a user message")
    return image, words


def _data_url(url: Any) -> bytes:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise ProtocolError(
            400,
            "invalid_image_url",
            "image_url must be a data URL (data:image/png;base64,...): this server fetches nothing",
        )
    head, _, payload = url.partition(",")
    if not head.endswith(";base64"):
        raise ProtocolError(400, "invalid_image_url", "image_url must be base64 encoded")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError(400, "invalid_image_url", "image_url is not valid base64") from None
    if not data:
        raise ProtocolError(400, "invalid_image", "empty image (0 bytes)")
    return data


def _v2_inputs(doc: Any, binary: bytes) -> tuple[list[bytes], list[str], dict[str, bool]]:
    """The images of a v2 request, the outputs asked for, and which of them go binary."""
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or len(doc["inputs"]) != 1:
        raise ProtocolError(400, "invalid_request", "expected one input tensor (a BYTES image)")
    tensor = doc["inputs"][0]
    if not isinstance(tensor, dict) or tensor.get("datatype") != "BYTES":
        raise ProtocolError(400, "invalid_request", "the input must be a BYTES tensor")
    params = tensor.get("parameters") if isinstance(tensor.get("parameters"), dict) else {}
    size = params.get("binary_data_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= len(binary):
            raise ProtocolError(400, "invalid_request", "binary_data_size does not fit the body")
        try:
            images = unpack_bytes(binary[:size])
        except ValueError as exc:
            raise ProtocolError(400, "invalid_request", str(exc)) from None
    else:
        data = tensor.get("data")
        flat = [x for row in data for x in (row if isinstance(row, list) else [row])] if isinstance(data, list) else []
        if not flat or not all(isinstance(x, str) for x in flat):
            raise ProtocolError(400, "invalid_request", "BYTES data must be base64 strings (or use binary data)")
        try:
            images = [base64.b64decode(x, validate=True) for x in flat]
        except (binascii.Error, ValueError):
            raise ProtocolError(
                400, "invalid_request", "BYTES data must be base64 strings (or use binary data)"
            ) from None
    if not images or any(not im for im in images):
        raise ProtocolError(400, "invalid_image", "empty image (0 bytes)")
    shape = tensor.get("shape")
    if isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape) and math.prod(shape) != len(images):
        raise ProtocolError(400, "invalid_request", f"shape {shape} does not hold {len(images)} element(s)")
    wanted, binary_out = [], {}
    all_binary = (
        bool((doc.get("parameters") or {}).get("binary_data_output"))
        if isinstance(doc.get("parameters"), dict)
        else False
    )
    for o in doc.get("outputs") or []:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise ProtocolError(400, "invalid_request", "an output without a name")
        wanted.append(o["name"])
        p = o.get("parameters") if isinstance(o.get("parameters"), dict) else {}
        binary_out[o["name"]] = bool(p.get("binary_data", all_binary))
    if not wanted and all_binary:
        binary_out = {"caption": True, "confidence": True}
    return images, wanted, binary_out
