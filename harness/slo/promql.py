"""PromQL of the SLIs over the reference server's metric names (each kind writes its own, in
``harness.slo.kinds``, with ``rate`` and ``total``), or the SLO's own queries.

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
    from harness.slo.spec import SLO

__all__ = [
    "REQUESTS",
    "DURATION",
    "SAFETY_FLAGS",
    "BATCH_SIZE",
    "QUEUE_DEPTH",
    "CONFIDENCE",
    "MODEL_INFO",
    "le_label",
    "selector",
    "rate",
    "total",
    "sli_rates",
    "sli_counters",
    "raw_error_ratio",
    "error_ratio",
]

REQUESTS = "caption_requests_total"
DURATION = "caption_request_duration_seconds"
SAFETY_FLAGS = "caption_safety_flags_total"
BATCH_SIZE = "caption_batch_size"
QUEUE_DEPTH = "caption_queue_depth"
CONFIDENCE = "caption_confidence"
MODEL_INFO = "caption_model_info"

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


def _windowed(query: str, window: str) -> str:
    return query.replace("{{window}}", window).replace("{{.window}}", window)


def sli_rates(slo: SLO, base: Mapping[str, str], window: str) -> tuple[str, str] | None:
    """``(errors, total)`` per-second rates of ``slo``'s SLI over ``window``.

    None when no metric shows it, or when the spec gives only a raw ``error_ratio``.
    """
    if slo.promql:
        if "error_ratio" in slo.promql:
            return None
        events = _windowed(slo.promql["total"], window)
        if "good" in slo.promql:
            return f"({events}) - ({_windowed(slo.promql['good'], window)})", events
        return _windowed(slo.promql["errors"], window), events
    from harness.slo.kinds import get

    return get(slo.sli).rates(slo, base, window)


def sli_counters(slo: SLO, base: Mapping[str, str]) -> tuple[str, str] | None:
    """``(errors, total)`` as instant sums of the counters, for exact counts between two instants.

    None for a spec's own ``promql`` (written as rates) and for kinds no metric shows.
    """
    if slo.promql:
        return None
    from harness.slo.kinds import get

    return get(slo.sli).counters(slo, base)


def raw_error_ratio(slo: SLO, window: str) -> str | None:
    """The spec's own ``error_ratio`` query over ``window``, or None when it gives none."""
    if slo.promql and "error_ratio" in slo.promql:
        return _windowed(slo.promql["error_ratio"], window)
    return None


def error_ratio(slo: SLO, base: Mapping[str, str], window: str) -> str | None:
    """The SLI's error ratio over ``window`` as one PromQL expression, written as Sloth writes it.

    None when no metric shows it. A raw ratio is wrapped in parentheses as it is.
    """
    raw = raw_error_ratio(slo, window)
    if raw is not None:
        return f"({raw})"
    rates = sli_rates(slo, base, window)
    if rates is None:
        return None
    errors, events = rates
    # "> 0": no traffic gives no sample rather than NaN, which would poison the period's average.
    return f"({errors})\n/\n(({events}) > 0)\n"
