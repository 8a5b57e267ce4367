"""The request record's one declaration: its fields (kind, bound, required, meaning), the names and
kinds derived from them, the arrow schema, and the times a record may hold. Everything else about
records (writing, reading, checking, importing, the data contract) derives from this table.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = [
    "OUTCOMES",
    "RECORDS_JSONL",
    "RECORDS_PARQUET",
    "RequestRecord",
    "COLUMNS",
    "FIELD_KINDS",
    "REQUIRED",
    "LARGEST",
    "fields_of",
    "arrow_schema",
    "EARLIEST_TIME",
    "LATEST_TIME",
    "is_time",
    "format_time",
    "BOUNDS",
]

OUTCOMES = ("ok", "http_error", "timeout", "connection_error", "invalid_response")
RECORDS_JSONL = "records.jsonl"
RECORDS_PARQUET = "records.parquet"


def _field(kind: str, what: str, required: bool = False, largest: int | None = None, **kw: Any) -> Any:
    """A record field of ``kind``: ``text``, ``id`` (text or a whole number), ``real`` (a finite
    number), ``count`` (a whole number from 0 to ``largest``), ``flag`` (true or false) or
    ``vector`` (a list of numbers); ``required``: never null in a trustworthy record; ``what`` it
    holds, as the records reference (``harness.refdocs``) says."""
    return field(metadata={"kind": kind, "what": what, "required": required, "largest": largest}, **kw)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What was sent and what came back. ``status`` is the HTTP code, 0 when no response came.

    The one declaration of a record's fields: their kinds, which are required and the largest
    counts are the fields' metadata, from which the type checks (``check_types``), the arrow
    schema of imported records (``arrow_schema``) and the data contract (``harness.records.contract``)
    are derived."""

    run_id: str = _field("text", "the run (or import) that wrote the record", required=True)
    target: str = _field(
        "text", "which service answered: baseline, canary, or a name of the traffic split", required=True
    )
    scenario: str = _field("text", "the load scenario or the stage that sent the request")
    request_id: str = _field("text", "the request's id (X-Request-Id), unique within its run", required=True)
    image_id: str | None = _field("id", "the image's id in its data set (a COCO id or a file stem)")
    t_start: float = _field("real", "when the request was sent, unix seconds", required=True)
    latency_s: float = _field("real", "seconds from sending to the whole answer (or the timeout)", required=True)
    status: int = _field("count", "the HTTP status; 0 when no response came", required=True, largest=999)
    outcome: str = _field(
        "text",
        "what the answer was worth: ok, http_error, timeout, connection_error or invalid_response",
        required=True,
    )
    error: str | None = _field("text", "the error the service or the client gave (target text)", default=None)
    caption: str | None = _field("text", "the caption returned (target text)", default=None)
    confidence: float | None = _field("real", "the confidence the service gave its caption", default=None)
    model_version: str | None = _field("text", "the model version the service reported (target text)", default=None)
    image_bytes: int | None = _field("count", "the size of the image sent, bytes", largest=2**53, default=None)
    image_w: int | None = _field("count", "the image's width, pixels", largest=2**31, default=None)
    image_h: int | None = _field("count", "the image's height, pixels", largest=2**31, default=None)
    safety_flagged: bool | None = _field("flag", "the service flagged its own caption as unsafe", default=None)
    embedding: list[float] | None = _field(
        "vector", "the caption's embedding, when the service returns one (drift)", default=None, repr=False
    )
    prompt_tokens: int | None = _field("count", "tokens of the prompt (chat protocols)", largest=2**31, default=None)
    completion_tokens: int | None = _field(
        "count",
        "tokens of the caption (chat protocols); of a stream without usage, or broken off, the token events received",
        largest=2**31,
        default=None,
    )
    ttft_s: float | None = _field(
        "real", "time to first token, seconds from sending to the first token (streamed answers)", default=None
    )
    itl_s: list[float] | None = _field(
        "vector", "every inter-token gap of a streamed answer, seconds, in order", default=None, repr=False
    )
    tpot_s: float | None = _field(
        "real",
        "time per output token: first to last token over the tokens less one, seconds (streamed answers)",
        default=None,
    )
    trace_id: str | None = _field(
        "text",
        "the W3C trace id of the traceparent the request carried, 32 hex digits (the harness sends the first "
        "16 bytes of SHA-256 of the request id; the split proxy keeps the client's): finds the server's spans",
        default=None,
    )
    segment: str | None = _field(
        "text",
        "the segment of the data set the image belongs to (a shift, a domain, a camera), where the data set or "
        "the traffic names one: per-segment quality, the judge's per-segment tests and an SLO's `segment:`",
        default=None,
    )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord))
FIELD_KINDS: dict[str, str] = {f.name: f.metadata["kind"] for f in fields(RequestRecord)}
REQUIRED: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord) if f.metadata["required"])


def fields_of(kind: str) -> tuple[str, ...]:
    """The record's fields of ``kind`` (``text``, ``id``, ``real``, ``count``, ``flag``, ``vector``)."""
    return tuple(name for name, k in FIELD_KINDS.items() if k == kind)


# The largest value of each count field (every count is a whole number from 0).
LARGEST: dict[str, int] = {
    f.name: f.metadata["largest"] for f in fields(RequestRecord) if f.metadata["kind"] == "count"
}


def arrow_schema():
    """The arrow schema of a record: text and ids as strings, reals as float64, counts as int64."""
    import pyarrow as pa

    types = {"text": pa.string(), "id": pa.string(), "real": pa.float64(), "count": pa.int64()}
    types.update(flag=pa.bool_(), vector=pa.list_(pa.float64()))
    return pa.schema([(name, types[kind]) for name, kind in FIELD_KINDS.items()])


# Times are unix seconds from 1970 up to the end of year 9999 (ISO 8601's four-digit years): a time
# before or after is a damaged value, never a date anyone means.
EARLIEST_TIME = 0.0  # 1970-01-01T00:00:00Z
LATEST_TIME = 253_402_300_800.0  # 10000-01-01T00:00:00Z, itself excluded


def is_time(t: Any) -> bool:
    """Whether ``t`` is a time the harness takes: a finite number of unix seconds from 1970 to 9999."""
    return _real(t) and EARLIEST_TIME <= t < LATEST_TIME


def format_time(t: float) -> str:
    """A time as ISO 8601 in UTC to the second (``2026-12-07T03:47:24Z``), for messages."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    except (OverflowError, ValueError, OSError):  # far outside the years a calendar shows
        return f"unix {t:.6g}"


# The values a field may hold beyond its kind: field -> (lowest, highest (excluded) or None, what a
# value outside is, the data contract's name for the rule). ``check_types`` refuses records that
# break one, and the data contract (``harness.records.contract``) checks the same bounds.
BOUNDS: dict[str, tuple[float, float | None, str, str]] = {
    "t_start": (EARLIEST_TIME, LATEST_TIME, "not a time from 1970 to 9999", "t_start a time from 1970 to 9999"),
    "latency_s": (0.0, None, "negative", "latency not negative"),
}


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
