"""``kserve-v2``: the REST v2 inference protocol of KServe, Triton, MLServer and others,
``POST /v2/models/{model}/infer``.

The image is one ``BYTES`` input: base64 text in the JSON body (``encoding: base64``, marked with
the ``content_type: base64`` parameter as MLServer's codecs read it), or the raw bytes in the
binary tensor extension (``encoding: binary``: a JSON header of ``Inference-Header-Content-Length``
bytes followed by the tensor, each element a 4-byte little-endian length then its bytes). The
caption is the first element of the output named ``caption_output``; the confidence that of
``confidence_output`` when the answer has such an output, null otherwise (no confidence: the
metrics that need it say so), or always null with ``confidence_output: null``. The answer's
``model_version`` is recorded; there are no token counts."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any, Mapping

from harness.errors import UsageError
from harness.protocols.base import (
    Adapter,
    HttpRequest,
    InvalidResponse,
    ParsedCaption,
    json_body,
    unit_interval,
)
from harness.traceparent import TRACEPARENT, traceparent

__all__ = ["KServeV2", "HEADER_LENGTH", "pack_bytes", "unpack_bytes", "split_binary", "output_values"]

HEADER_LENGTH = "Inference-Header-Content-Length"
_BINARY = ("base64", "binary")


def pack_bytes(elements: list[bytes]) -> bytes:
    """A ``BYTES`` tensor in the binary extension: each element's length (uint32, little-endian)
    then its bytes."""
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def unpack_bytes(buf: bytes) -> list[bytes]:
    """The elements of a ``BYTES`` tensor in the binary extension; ``ValueError`` when cut short."""
    out, pos = [], 0
    while pos < len(buf):
        if pos + 4 > len(buf):
            raise ValueError("BYTES tensor cut short in an element's length")
        (n,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if pos + n > len(buf):
            raise ValueError("BYTES tensor cut short in an element")
        out.append(buf[pos : pos + n])
        pos += n
    return out


def split_binary(body: bytes, header_length: str | int | None) -> tuple[Any, bytes]:
    """(the JSON header, the binary part) of a body; the whole body is JSON when
    ``header_length`` is None. ``ValueError`` when the length or the JSON is bad."""
    if header_length is None:
        return json.loads(body), b""
    n = int(header_length)
    if not 0 < n <= len(body):
        raise ValueError(f"{HEADER_LENGTH} {n} does not fit a body of {len(body)} bytes")
    return json.loads(body[:n]), body[n:]


def _flat(data: Any) -> list:
    if isinstance(data, list):
        return [x for item in data for x in _flat(item)]
    return [data]


def output_values(doc: Any, binary: bytes) -> dict[str, list]:
    """Each output of a v2 answer by name, as a flat list (``BYTES`` as ``bytes`` or ``str``)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), list):
        raise InvalidResponse("no 'outputs' list in the answer")
    out: dict[str, list] = {}
    pos = 0
    for o in doc["outputs"]:
        if not isinstance(o, dict) or not isinstance(o.get("name"), str):
            raise InvalidResponse("an output without a name")
        size = (o.get("parameters") or {}).get("binary_data_size") if isinstance(o.get("parameters"), dict) else None
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0 or pos + size > len(binary):
                raise InvalidResponse(f"output {o['name']!r}: binary_data_size {size!r} does not fit the answer")
            raw, pos = binary[pos : pos + size], pos + size
            dtype = o.get("datatype")
            try:
                if dtype == "BYTES":
                    out[o["name"]] = list(unpack_bytes(raw))
                elif dtype in ("FP32", "FP64"):
                    fmt = "f" if dtype == "FP32" else "d"
                    out[o["name"]] = list(struct.unpack(f"<{len(raw) // struct.calcsize(fmt)}{fmt}", raw))
                else:
                    out[o["name"]] = []
            except (ValueError, struct.error) as exc:
                raise InvalidResponse(f"output {o['name']!r}: {exc}") from None
        else:
            out[o["name"]] = _flat(o.get("data"))
    return out


class KServeV2(Adapter):
    """``POST /v2/models/{model}[/versions/{version}]/infer`` with the image as a ``BYTES`` input."""

    name = "kserve-v2"
    health_path = "/v2/health/live"
    ready_path = "/v2/health/ready"

    def __init__(
        self,
        model: str | None = None,
        *,
        version: str | None = None,
        input: str = "image",
        caption_output: str = "caption",
        confidence_output: str | None = "confidence",
        encoding: str = "base64",
        headers: Mapping[str, str] | None = None,
        api_key_header: str = "Authorization",
    ):
        if not model or not isinstance(model, str):
            raise UsageError("protocol kserve-v2 needs a model name (--model NAME, or model: in the adapter file)")
        if encoding not in _BINARY:
            raise UsageError(f"kserve-v2 encoding must be 'base64' or 'binary' (got {encoding!r})")
        if not caption_output or not isinstance(caption_output, str):
            raise UsageError("kserve-v2 caption_output must name an output tensor")
        self.model, self.version, self.input, self.encoding = model, version, input, encoding
        self.caption_output, self.confidence_output = caption_output, confidence_output or None
        base = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
        self.path = base + "/infer"
        self.info_path = base
        self.headers = dict(headers or {})
        self.api_key_header = api_key_header

    def request(self, image, content_type, request_id, return_embedding=False, api_key=None) -> HttpRequest:
        tensor: dict[str, Any] = {"name": self.input, "shape": [1], "datatype": "BYTES"}
        headers = {**self.headers, "X-Request-Id": request_id, TRACEPARENT: traceparent(request_id)}
        headers.update(self.auth_headers(api_key))
        if self.encoding == "base64":
            tensor["parameters"] = {"content_type": "base64"}
            tensor["data"] = [base64.b64encode(image).decode("ascii")]
            headers["Content-Type"] = "application/json"
            content = json.dumps({"id": request_id, "inputs": [tensor]}, separators=(",", ":")).encode()
        else:
            raw = pack_bytes([image])
            tensor["parameters"] = {"binary_data_size": len(raw)}
            head = json.dumps({"id": request_id, "inputs": [tensor]}, separators=(",", ":")).encode()
            headers["Content-Type"] = "application/octet-stream"
            headers[HEADER_LENGTH] = str(len(head))
            content = head + raw
        return HttpRequest("POST", self.path, headers, content)

    def parse(self, status, headers, body) -> ParsedCaption:
        length = headers.get(HEADER_LENGTH) or headers.get(HEADER_LENGTH.lower())
        if length is None:
            doc, binary = json_body(body), b""
        else:
            try:
                doc, binary = split_binary(body, length)
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidResponse(f"bad binary answer: {exc}") from None
        values = output_values(doc, binary)
        caption = (values.get(self.caption_output) or [None])[0]
        if isinstance(caption, bytes):
            try:
                caption = caption.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidResponse(f"output {self.caption_output!r} is not UTF-8 text") from None
        if not isinstance(caption, str):
            raise InvalidResponse(f"no text in output {self.caption_output!r}")
        confidence = None
        if self.confidence_output is not None and values.get(self.confidence_output):
            confidence = unit_interval(values[self.confidence_output][0], f"output {self.confidence_output!r}")
        version = doc.get("model_version")
        rid = doc.get("id")
        return ParsedCaption(
            caption=caption,
            confidence=confidence,
            model_version=str(version) if version is not None else None,
            request_id=rid if isinstance(rid, str) else None,
        )

    def read_info(self, doc: Any) -> dict[str, Any]:
        if not isinstance(doc, dict):
            return {}
        versions = doc.get("versions")
        return {
            "model": doc.get("name"),
            "model_version": versions[-1] if isinstance(versions, list) and versions else None,
            "platform": doc.get("platform"),
        }

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": self.path,
            "model": self.model,
            "encoding": self.encoding,
            "caption_output": self.caption_output,
            "confidence_output": self.confidence_output,
        }
