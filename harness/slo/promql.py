"""The reference server's metric names and the PromQL pieces each SLI kind writes its queries
with (``selector``, ``rate``, ``total``; the kinds are in ``harness.slo.kinds``, an SLO's whole
queries in ``harness.slo.queries``).

The same expressions feed the range queries of ``prometheus`` and the recording rules of
``rules``, so an SLI means one thing wherever it is read. Each kind gives an *errors* and a
*total* per-second rate over a window; ``{{window}}`` (or Sloth's ``{{.window}}``) in a spec's own
``promql`` is replaced the same way. A spec's ``promql: {error_ratio}`` is a ratio with no counts.

What Prometheus sees differs from the records in known ways: it counts only requests the server
answered (no connection errors or client timeouts), latency is server-side and covers every
status, and safety counts the server's flags (one per reason) but not an unsafe word the filter
missed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    pass

__all__ = [
    "REQUESTS",
    "DURATION",
    "SAFETY_FLAGS",
    "BATCH_SIZE",
    "QUEUE_DEPTH",
    "CONFIDENCE",
    "MODEL_INFO",
    "SEGMENT_LABEL",
    "le_label",
    "selector",
    "rate",
    "total",
]

REQUESTS = "caption_requests_total"
DURATION = "caption_request_duration_seconds"
SAFETY_FLAGS = "caption_safety_flags_total"
BATCH_SIZE = "caption_batch_size"
QUEUE_DEPTH = "caption_queue_depth"
CONFIDENCE = "caption_confidence"
MODEL_INFO = "caption_model_info"

# The label an SLO's ``segment:`` matches (``segment="low_light"``), as the record column it filters
# on is named (``harness.slo.columns.SEGMENT``): a service that knows each request's segment (from
# the request, such as a header the client sets) exports its metrics with this label.
SEGMENT_LABEL = "segment"

# Statuses that count against availability: 5xx, 429 (work turned away) and 499 (the client gave
# up waiting: what a client timeout looks like from the server's side).
AVAILABILITY_BAD_STATUS = "5..|429|499"


def le_label(threshold: float) -> str:
    """The ``le`` label value a Prometheus client writes for a bucket bound (``1`` -> ``1.0``)."""
    from prometheus_client.utils import floatToGoString

    return floatToGoString(float(threshold))


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(metric: str, base: Mapping[str, str], *matchers: str) -> str:
    """``metric{base labels, extra matchers}``; extra matchers are written as PromQL (``status="200"``)."""
    parts = [f"{k}={_quote(v)}" for k, v in sorted(base.items())] + list(matchers)
    return metric + ("{" + ",".join(parts) + "}" if parts else "")


def rate(metric: str, base: Mapping[str, str], window: str, *matchers: str) -> str:
    """``sum(rate(metric{...}[window]))``."""
    return f"sum(rate({selector(metric, base, *matchers)}[{window}]))"


def total(metric: str, base: Mapping[str, str], *matchers: str) -> str:
    """``sum(metric{...})``: a counter's value now, for counts between two instants."""
    return f"sum({selector(metric, base, *matchers)})"
