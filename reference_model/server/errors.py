"""The contract's error answer: an answer other than 200 as ``{"error": {"code", "message"}}``; the
app and the protocol routes raise it, and neither imports the other for it."""

from __future__ import annotations

import json

from fastapi.responses import Response

__all__ = ["ApiError"]


class ApiError(Exception):
    """An answer other than 200, in the contract's error shape."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}

    def response(self, request_id: str | None = None) -> Response:
        headers = dict(self.headers)
        if request_id:
            headers["X-Request-Id"] = request_id
        body = json.dumps({"error": {"code": self.code, "message": self.message}})
        return Response(body, status_code=self.status, media_type="application/json", headers=headers)
