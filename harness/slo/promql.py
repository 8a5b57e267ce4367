"""PromQL for each SLI kind over the reference server's metric names.

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

from typing import Mapping

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


def _rate(metric: str, base: Mapping[str, str], window: str, *matchers: str) -> str:
    return f"sum(rate({selector(metric, base, *matchers)}[{window}]))"


def _windowed(query: str, window: str) -> str:
    return query.replace("{{window}}", window).replace("{{.window}}", window)


def sli_rates(slo: SLO, base: Mapping[str, str], window: str) -> tuple[str, str] | None:
    """``(errors, total)`` per-second rates of ``slo``'s SLI over ``window``.

    None when no metric shows it, or when the spec gives only a raw ``error_ratio``.
    """
    if slo.promql:
        if "error_ratio" in slo.promql:
            return None
        return _windowed(slo.promql["errors"], window), _windowed(slo.promql["total"], window)
    requests = _rate(REQUESTS, base, window)
    if slo.sli == "availability":
        errors = _rate(REQUESTS, base, window, f'status=~"{AVAILABILITY_BAD_STATUS}"')
        return f"{errors} or vector(0)", requests
    if slo.sli == "coverage":
        errors = _rate(REQUESTS, base, window, 'status!~"2.."')
        return f"{errors} or vector(0)", requests
    if slo.sli == "latency":
        count = _rate(f"{DURATION}_count", base, window)
        fast = _rate(f"{DURATION}_bucket", base, window, f'le="{le_label(slo.threshold)}"')
        return f"{count} - {fast}", count
    if slo.sli == "safety":
        flags = _rate(SAFETY_FLAGS, base, window)
        return f"{flags} or vector(0)", _rate(REQUESTS, base, window, 'status="200"')
    return None


def _sum(metric: str, base: Mapping[str, str], *matchers: str) -> str:
    return f"sum({selector(metric, base, *matchers)})"


def sli_counters(slo: SLO, base: Mapping[str, str]) -> tuple[str, str] | None:
    """``(errors, total)`` as instant sums of the counters, for exact counts between two instants.

    None for a spec's own ``promql`` (written as rates) and for kinds no metric shows.
    """
    if slo.promql:
        return None
    requests = _sum(REQUESTS, base)
    if slo.sli == "availability":
        bad = _sum(REQUESTS, base, 'status=~"' + AVAILABILITY_BAD_STATUS + '"')
        return f"{bad} or vector(0)", requests
    if slo.sli == "coverage":
        uncovered = _sum(REQUESTS, base, 'status!~"2.."')
        return f"{uncovered} or vector(0)", requests
    if slo.sli == "latency":
        count = _sum(f"{DURATION}_count", base)
        fast = _sum(f"{DURATION}_bucket", base, f'le="{le_label(slo.threshold)}"')
        return f"{count} - {fast}", count
    if slo.sli == "safety":
        answered = _sum(REQUESTS, base, 'status="200"')
        return f"{_sum(SAFETY_FLAGS, base)} or vector(0)", answered
    return None


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
    errors, total = rates
    # "> 0": no traffic gives no sample rather than NaN, which would poison the period's average.
    return f"({errors})\n/\n(({total}) > 0)\n"
