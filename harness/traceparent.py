"""The W3C Trace Context ``traceparent`` header the harness sends with every request, made from the
request's id alone, so a record's ``trace_id`` can always be recomputed and matched with the spans
a traced service exported.

``traceparent(request_id)`` is ``00-<trace id>-<parent id>-01``: the trace id is the first 16 bytes
of SHA-256 of the request id (UTF-8) as 32 lower-case hex digits, the parent id (the harness's own
span id, the one a server's span names as its parent) the next 8 bytes as 16 hex digits, and the
flags ``01`` (sampled). An all-zero id, which W3C forbids, cannot come out (its last digit is made
``1``; SHA-256 would need to give 16 zero bytes first).

The ids of the last few thousand request ids are kept: a request's header and its record ask for
the same ids, and the second is then a look-up."""

from __future__ import annotations

import functools
import hashlib
import re

__all__ = ["TRACEPARENT", "trace_ids", "trace_id_of", "traceparent", "parse_traceparent"]

TRACEPARENT = "traceparent"

# version 00 (and later versions, read as 00 is: their first four fields), lower-case hex only.
_HEADER = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_sha256 = hashlib.sha256


@functools.lru_cache(maxsize=4096)
def trace_ids(request_id: str) -> tuple[str, str]:
    """``(trace id, parent span id)`` of ``request_id``: 32 and 16 lower-case hex digits."""
    digest = _sha256(request_id.encode("utf-8", "surrogatepass")).hexdigest()
    trace, span = digest[:32], digest[32:48]
    if trace == _ZERO_TRACE:
        trace = trace[:-1] + "1"
    if span == _ZERO_SPAN:
        span = span[:-1] + "1"
    return trace, span


def trace_id_of(request_id: str) -> str:
    """The trace id the harness sends for ``request_id`` (what a record's ``trace_id`` holds)."""
    return trace_ids(request_id)[0]


def traceparent(request_id: str) -> str:
    """The ``traceparent`` header value for ``request_id`` (sampled)."""
    trace, span = trace_ids(request_id)
    return f"00-{trace}-{span}-01"


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """``(trace id, parent span id)`` of a ``traceparent`` value, or ``None`` when it is absent or
    malformed as W3C Trace Context defines it (version ``ff``, an all-zero id, upper-case hex,
    extra fields after version 00)."""
    if not value:
        return None
    m = _HEADER.fullmatch(value.strip())
    if m is None:
        return None
    version, trace, span, _, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or not trace.strip("0") or not span.strip("0"):
        return None
    return trace, span
