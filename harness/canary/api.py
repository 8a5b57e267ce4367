"""The HTTP API of ``harness judge serve`` (FastAPI under uvicorn) over a ``JudgeService``: the
routes rollout controllers call (Argo Rollouts' web provider, Flagger's webhooks), the key, the
body limit and the JSON error shape ``{"error": {"code", "message"}}``. Every answer is JSON; a
request that cannot be read is a 4xx, never a 500."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from harness.canary.service import MAX_BODY_BYTES, JudgeService, ServiceError, parse_body

__all__ = ["create_app", "serve", "bind_socket"]

log = logging.getLogger(__name__)

_JSON = "application/json"
# What a browser may send to another site without asking first (CORS "simple" types): refused,
# so that a page cannot make a browser create analyses on a server that runs without a key.
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def _json(doc: Any, status: int = 200) -> Response:
    return Response(json.dumps(doc, allow_nan=False), status_code=status, media_type=_JSON)


def _error(exc: ServiceError) -> Response:
    return _json(exc.document(), exc.status)


def _unauthorized() -> ServiceError:
    return ServiceError(401, "unauthorized", "missing or wrong key (send Authorization: Bearer KEY or X-API-Key)")


def _given_key(request: Request) -> bytes | None:
    """The key a request sends, as the bytes sent (header values arrive decoded as latin-1)."""
    given = request.headers.get("x-api-key")
    if given is None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
    return None if given is None else given.encode("latin-1")


async def _read_body(request: Request) -> bytes:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media in _FORM_TYPES:
        raise ServiceError(400, "bad_request", f"body: send Content-Type {_JSON} (got {media})")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ServiceError(400, "bad_request", "Content-Length is not a number") from None
        if n > MAX_BODY_BYTES:
            raise ServiceError(413, "too_large", f"body of {n} bytes is over the limit of {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ServiceError(413, "too_large", f"body is over the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(service: JudgeService) -> FastAPI:
    """The app; its lifespan starts the service's worker and stops it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="harness judge serve",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = "no such route" if exc.status_code == 404 else str(exc.detail)
        return _error(ServiceError(exc.status_code, codes.get(exc.status_code, "http_error"), message))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return _error(ServiceError(400, "bad_request", "the request does not fit the route"))

    def check_key(request: Request) -> None:
        if not service.authorized(_given_key(request)):
            raise _unauthorized()

    async def answer(request: Request, work: Callable[[], Any], *, auth: bool = True) -> Response:
        """Run ``work`` (in a thread: it may judge a look) behind the key; ``work`` returns a
        document, (status, document) or bytes of JSON."""
        try:
            if auth:
                check_key(request)
            out = await run_in_threadpool(work)
        except ServiceError as exc:
            return _error(exc)
        except Exception as exc:  # noqa: BLE001 - a bug: logged on one line, answered as one
            log.error("%s %s: internal error: %s", request.method, _route(request), type(exc).__name__)
            log.debug("the internal error", exc_info=True)
            return _error(ServiceError(500, "internal", f"internal error: {type(exc).__name__}"))
        if isinstance(out, bytes):
            return Response(out, media_type=_JSON)
        if isinstance(out, tuple):
            return _json(out[1], out[0])
        return _json(out)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json(service.healthz())

    @app.post("/api/v1/analyses/{name}")
    async def create(name: str, request: Request) -> Response:
        try:
            check_key(request)
            body = await _read_body(request)
        except ServiceError as exc:
            return _error(exc)
        return await answer(request, lambda: service.create(name, parse_body(body)), auth=False)

    @app.get("/api/v1/analyses")
    async def analyses(request: Request) -> Response:
        return await answer(request, service.list)

    @app.get("/api/v1/analyses/{name}")
    async def status(name: str, request: Request) -> Response:
        return await answer(request, lambda: service.status(name))

    @app.get("/api/v1/analyses/{name}/decision")
    async def decision(name: str, request: Request) -> Response:
        return await answer(request, lambda: service.decision(name))

    @app.delete("/api/v1/analyses/{name}")
    async def stop(name: str, request: Request) -> Response:
        return await answer(request, lambda: service.stop(name))

    @app.post("/flagger/{hook}")
    async def flagger(hook: str, request: Request) -> Response:
        # Flagger sends no headers of its own: the key is the payload's metadata.token (a header
        # is taken too). The token is taken out before anything else sees the payload.
        by_header = request.headers.get("x-api-key") is not None or "authorization" in request.headers
        header_ok = by_header and service.authorized(_given_key(request))
        try:
            body = await _read_body(request)
            try:
                doc = parse_body(body)
            except ServiceError:
                if service.key_required and not header_ok:
                    raise _unauthorized() from None
                raise
            md = doc.get("metadata")
            token = md.pop("token", None) if isinstance(md, dict) else None
            if not header_ok and not service.authorized(token.encode("utf-8") if isinstance(token, str) else None):
                raise _unauthorized()
        except ServiceError as exc:
            return _error(exc)
        return await answer(request, lambda: service.flagger(hook, doc), auth=False)

    return app


def _route(request: Request) -> str:
    """The route's template (``/api/v1/analyses/{name}``), never the path sent."""
    route = request.scope.get("route")
    return getattr(route, "path", "?")


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: the system picks one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(service: JudgeService, host: str, port: int, port_file: Path | None = None) -> int:
    """Serve until SIGTERM or SIGINT; returns 0 once stopped cleanly. ``OSError`` when the address
    cannot be listened on."""
    import uvicorn

    sock = bind_socket(host, port)
    real = sock.getsockname()[1]

    class Server(uvicorn.Server):
        # A signal stops the server and the command returns 0 (uvicorn would raise it again once
        # stopped, and the process would end by it); a second one stops it at once.
        def handle_exit(self, sig: int, frame) -> None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True

    config = uvicorn.Config(
        create_app(service),
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="on",
        server_header=False,
        proxy_headers=False,
        limit_concurrency=64,
        timeout_keep_alive=30,
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=16 * 1024,
    )
    server = Server(config)
    shown = f"[{host}]" if ":" in host else host
    log.info(
        "judge serve: listening on http://%s:%d (%s)",
        shown,
        real,
        "key required" if service.key_required else "no key: anyone who reaches it may create analyses",
    )
    if port_file is not None:
        tmp = port_file.with_name(port_file.name + ".tmp")
        tmp.write_text(f"{real}\n")
        os.replace(tmp, port_file)
    started = time.monotonic()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    log.info("judge serve: stopped after %.0f s", time.monotonic() - started)
    return 0
