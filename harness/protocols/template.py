"""``template``: any JSON captioning API described by an adapter file, a request template and the
JSON paths of caption, confidence and model version.

A missing ``confidence`` path records no confidence (the SLIs and metrics that need it say so);
a path that is set but absent from an answer makes that answer ``invalid_response``."""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any, Mapping, Sequence

from harness.errors import UsageError
from harness.protocols.base import Adapter, HttpRequest, InvalidResponse, ParsedCaption, json_body, unit_interval
from harness.traceparent import TRACEPARENT, traceparent

__all__ = ["TemplateAdapter", "json_path", "multipart_body"]

_PATH_TOKEN = re.compile(r"\.([A-Za-z_][\w\-]*)|\[(\d+)\]|\[['\"]([^'\"]*)['\"]\]")


def _compile_path(path: str) -> tuple[str | int, ...]:
    text = path.strip()
    if text.startswith("$"):
        text = text[1:]
    elif text and text[0] not in ".[":
        text = "." + text
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _PATH_TOKEN.match(text, pos)
        if not m:
            raise UsageError(f"bad JSON path {path!r} at {text[pos:]!r} (use e.g. $.predictions[0].caption)")
        name, index, quoted = m.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        pos = m.end()
    return tuple(steps)


_MISSING = object()


def json_path(doc: Any, path: str | Sequence[str | int]) -> Any:
    """The value at ``path`` (``$.a.b[0]``, ``a.b[0]`` or ``$['a b']``), or ``None`` if absent."""
    steps = _compile_path(path) if isinstance(path, str) else path
    cur = doc
    for step in steps:
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                return None
            cur = cur[step]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(step, _MISSING)
            if cur is _MISSING:
                return None
    return cur


def _fill(template: Any, values: Mapping[str, str]) -> Any:
    if isinstance(template, str):
        for k, v in values.items():
            template = template.replace("{" + k + "}", v)
        return template
    if isinstance(template, list):
        return [_fill(x, values) for x in template]
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


def multipart_body(image: bytes, content_type: str, field_name: str) -> tuple[bytes, str]:
    """A multipart/form-data body holding ``image`` as ``field_name``, and its Content-Type."""
    boundary = uuid.uuid4().hex
    ext = content_type.rsplit("/", 1)[-1]
    content = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
            f'filename="image.{ext}"\r\nContent-Type: {content_type}\r\n\r\n'
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return content, f"multipart/form-data; boundary={boundary}"


class TemplateAdapter(Adapter):
    """Any JSON captioning API: a request template and the JSON paths of caption and confidence.

    ``body`` is ``"raw"`` (the image bytes), ``"multipart:FIELD"`` or a JSON template whose strings
    may hold ``{image_base64}``, ``{content_type}`` and ``{request_id}``; headers may too. A
    missing ``confidence_path`` leaves confidence ``None`` (SLIs that need it say so). The
    harness's ``traceparent`` (``harness.traceparent``) is always sent, in place of any the
    template's headers name."""

    name = "template"

    def __init__(
        self,
        caption_path: str,
        confidence_path: str | None = None,
        *,
        method: str = "POST",
        path: str = "/",
        headers: Mapping[str, str] | None = None,
        body: Any = "raw",
        model_version_path: str | None = None,
        request_id_header: str | None = "X-Request-Id",
        api_key_header: str = "Authorization",
    ):
        self.caption_steps = _compile_path(caption_path)
        self.caption_path = caption_path
        self.confidence_steps = _compile_path(confidence_path) if confidence_path else None
        self.confidence_path = confidence_path
        self.version_steps = _compile_path(model_version_path) if model_version_path else None
        self.method = method.upper()
        self.path = path if path.startswith("/") else "/" + path
        self.headers = dict(headers or {})
        self._traceparent_given = [k for k in self.headers if k.lower() == TRACEPARENT]
        if isinstance(body, str) and body != "raw" and not body.startswith("multipart:"):
            raise UsageError(f"adapter body must be 'raw', 'multipart:FIELD' or a JSON template (got {body!r})")
        self.body = body
        self.request_id_header = request_id_header
        self.api_key_header = api_key_header

    def request(self, image, content_type, request_id, return_embedding=False, api_key=None) -> HttpRequest:
        values = {"content_type": content_type, "request_id": request_id}
        headers = {k: _fill(v, values) for k, v in self.headers.items()}
        if self.request_id_header:
            headers.setdefault(self.request_id_header, request_id)
        for name in self._traceparent_given:  # the harness's own, so the record's trace id finds the spans
            del headers[name]
        headers[TRACEPARENT] = traceparent(request_id)
        headers.update(self.auth_headers(api_key))
        if self.body == "raw":
            headers.setdefault("Content-Type", content_type)
            content = image
        elif isinstance(self.body, str):
            content, headers["Content-Type"] = multipart_body(
                image, content_type, self.body.split(":", 1)[1] or "image"
            )
        else:
            values["image_base64"] = base64.b64encode(image).decode("ascii")
            content = json.dumps(_fill(self.body, values), separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")
        return HttpRequest(self.method, self.path, headers, content)

    def parse(self, status, headers, body) -> ParsedCaption:
        doc = json_body(body)
        caption = json_path(doc, self.caption_steps)
        if not isinstance(caption, str):
            raise InvalidResponse(f"no string caption at {self.caption_path}")
        confidence = None
        if self.confidence_steps is not None:
            raw = json_path(doc, self.confidence_steps)
            if raw is None:
                raise InvalidResponse(f"no confidence at {self.confidence_path}")
            confidence = unit_interval(raw, f"confidence at {self.confidence_path}")
        version = json_path(doc, self.version_steps) if self.version_steps else None
        return ParsedCaption(
            caption=caption, confidence=confidence, model_version=str(version) if version is not None else None
        )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": self.path,
            "caption": self.caption_path,
            "confidence": self.confidence_path,
        }
