"""The server's log: one JSON line per request (``event: request``: request id, method, path,
status, latency, batch size, model version) at INFO, and one JSON line with the traceback of
every unexpected exception (``event: error``) at ERROR, on stderr. ``--log-level`` sets the level.
Every other line on that stream is JSON too: the server's own messages, uvicorn's (its warnings,
e.g. about a malformed request; its access lines with ``--access-log``) and asyncio's are one
line each, ``{"ts", "event": "log", "level", "logger", "message"}`` (and ``traceback``)."""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from typing import Any

__all__ = [
    "LOGGER_NAME",
    "LOG_LEVELS",
    "THIRD_PARTY_LOGGERS",
    "JsonLines",
    "configure_logging",
    "log_exception",
    "RequestLog",
]

LOGGER_NAME = "reference_model.server"
LOG_LEVELS: tuple[str, ...] = ("debug", "info", "warning", "error")
# The loggers of the libraries running the server, sent through the same handler as JSON lines.
THIRD_PARTY_LOGGERS: tuple[str, ...] = ("uvicorn", "asyncio", "opentelemetry")

log = logging.getLogger(LOGGER_NAME)


class JsonLines(logging.Formatter):
    """A record whose message is already a JSON line (``extra={"json_line": True}``) as it is;
    any other as one JSON line ``{"ts", "event": "log", "level", "logger", "message"}``, with
    ``traceback`` when the record carries one."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "json_line", False):
            return record.getMessage()
        fields: dict[str, Any] = {
            "ts": round(record.created, 3),
            "event": "log",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["traceback"] = self.formatException(record.exc_info)
        return _line(**fields)


def configure_logging(level: str = "info", stream=None) -> logging.Logger:
    """Send the server's log lines to ``stream`` (stderr) from ``level`` up, and those of
    ``THIRD_PARTY_LOGGERS`` (at the levels they are given) through the same JSON handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLines())
    handler.server_log = True  # type: ignore[attr-defined]
    for logger in (log, *(logging.getLogger(name) for name in THIRD_PARTY_LOGGERS)):
        for old in [h for h in logger.handlers if logger is log or getattr(h, "server_log", False)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
    log.setLevel(level.upper())
    return log


def _line(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"), default=str)


_JSON_LINE = {"json_line": True}


def log_exception(exc: BaseException, request_id: str | None, method: str, path: str) -> None:
    """Log an unexpected exception with its traceback, as one JSON line."""
    if log.isEnabledFor(logging.ERROR):
        stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log.error(
            _line(
                ts=round(time.time(), 3),
                event="error",
                request_id=request_id,
                method=method,
                path=path,
                error=f"{type(exc).__name__}: {exc}",
                traceback=stack,
            ),
            extra=_JSON_LINE,
        )


class RequestLog:
    """ASGI middleware writing the request line once the answer is sent. The request id is the
    answer's ``X-Request-Id`` (else the request's); the batch size is what the handler left in
    the request's state as ``batch_size`` (null for answers that ran no batch); with traces on,
    ``trace_id`` is the request's trace (``tracing``)."""

    def __init__(self, app, model_version: str):
        self.app, self.model_version = app, model_version

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status: int | None = None
        request_id: str | None = None

        async def watched_send(message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        request_id = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except BaseException:
            if status is None:
                status = 500
            raise
        finally:
            if request_id is None:
                for name, value in scope.get("headers", ()):
                    if name == b"x-request-id":
                        request_id = value.decode("latin-1")
                        break
            state = scope.get("state") or {}
            trace_id = state.get("trace_id")
            log.info(
                _line(
                    ts=round(time.time(), 3),
                    event="request",
                    request_id=request_id,
                    method=scope.get("method"),
                    path=scope.get("path"),
                    status=status if status is not None else 499,
                    latency_ms=round((time.perf_counter() - t0) * 1000.0, 3),
                    batch_size=state.get("batch_size"),
                    model_version=self.model_version,
                    **({"trace_id": trace_id} if trace_id else {}),
                ),
                extra=_JSON_LINE,
            )
