"""``v1``: the harness's own captioning contract, ``POST /v1/caption`` with the image as the body.

Records everything the contract answers: caption, confidence, model version, the safety flag, the
embedding when asked for, and the server's own latency. No token counts (the contract has none)."""

from __future__ import annotations

from typing import Any

from harness.protocols.base import Adapter, HttpRequest, InvalidResponse, ParsedCaption, json_body, unit_interval
from harness.traceparent import TRACEPARENT, traceparent

__all__ = ["ContractV1Adapter"]

# A request's HttpRequest and the usual answer's ParsedCaption are built by tuple.__new__ with all
# their fields (a named tuple's own constructor is a Python function, a cost paid on every request
# of a load run).
_new = tuple.__new__


class ContractV1Adapter(Adapter):
    """The harness's own contract: ``POST /v1/caption`` with the image as the body."""

    name = "v1"
    health_path = "/healthz"
    info_path = "/v1/model"
    ready_path = "/readyz"

    def __init__(self, path: str = "/v1/caption", api_key_header: str = "Authorization"):
        self.path = path
        self.api_key_header = api_key_header
        self._embedding_path = path + "?return_embedding=true"

    def request(self, image, content_type, request_id, return_embedding=False, api_key=None) -> HttpRequest:
        headers = {"Content-Type": content_type, "X-Request-Id": request_id, TRACEPARENT: traceparent(request_id)}
        if api_key or self._credentials:  # none: nothing to add (the usual load run)
            headers.update(self.auth_headers(api_key))
        return _new(HttpRequest, ("POST", self._embedding_path if return_embedding else self.path, headers, image))

    def parse(self, status, headers, body) -> ParsedCaption:
        doc = json_body(body)
        if type(doc) is dict:  # the usual answer, all fields present with their JSON types: read at once
            get = doc.get
            caption, confidence, version, rid, lat, safety = (
                get("caption"),
                get("confidence"),
                get("model_version"),
                get("request_id"),
                get("server_latency_ms"),
                get("safety"),
            )
            if (
                type(caption) is str
                and type(confidence) is float
                and 0.0 <= confidence <= 1.0
                and type(version) is str
                and type(rid) is str
                and type(lat) is float
                and type(safety) is dict
                and type(flagged := safety.get("flagged")) is bool
                and get("embedding") is None
            ):
                return _new(
                    ParsedCaption, (caption, confidence, version, rid, flagged, None, lat, None, None, None, None, None)
                )
        return self._parse_doc(doc)

    def _parse_doc(self, doc: Any) -> ParsedCaption:
        """Every check, one at a time (any answer the fast path of ``parse`` does not take)."""
        if not isinstance(doc, dict):
            raise InvalidResponse(f"expected a JSON object, got {type(doc).__name__}")
        caption = doc.get("caption")
        if not isinstance(caption, str):
            raise InvalidResponse("no string 'caption' in the answer")
        confidence = doc.get("confidence")
        if type(confidence) is not float or not 0.0 <= confidence <= 1.0:  # the common case, checked first
            confidence = unit_interval(confidence, "confidence")
        safety = doc.get("safety")
        flagged = safety.get("flagged") if isinstance(safety, dict) else None
        if flagged is not None and not isinstance(flagged, bool):
            raise InvalidResponse("safety.flagged is not a boolean")
        emb = doc.get("embedding")
        if emb is not None and not (isinstance(emb, list) and all(isinstance(x, (int, float)) for x in emb)):
            raise InvalidResponse("embedding is not a list of numbers")
        version = doc.get("model_version")
        lat = doc.get("server_latency_ms")
        rid = doc.get("request_id")
        return ParsedCaption(
            caption,
            confidence,
            version if type(version) is str else (str(version) if version is not None else None),
            rid if type(rid) is str else (str(rid) if rid is not None else None),
            flagged,
            [float(x) for x in emb] if emb is not None else None,
            float(lat) if isinstance(lat, (int, float)) and not isinstance(lat, bool) else None,
        )

    def read_info(self, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict):
            return {}
        return {
            "model_version": doc.get("version") or doc.get("model_version"),
            "model": doc.get("name"),
            "device": doc.get("device"),
            "batching": doc.get("batching"),
        }

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "path": self.path}
