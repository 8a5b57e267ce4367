"""The PromQL of an SLO's SLI: its kind's (``harness.slo.kinds``, written with the pieces of
``harness.slo.promql``, over the spec's selector and the SLO's segment) or the SLO's own queries,
as rates over a window, counters at an instant, or Sloth's error ratio. ``harness.slo.prometheus`` reads them, ``harness.slo.rules`` records them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from harness.slo.kinds import get

if TYPE_CHECKING:
    from harness.slo.spec import SLO

__all__ = ["sli_rates", "sli_counters", "raw_error_ratio", "error_ratio"]


def _windowed(query: str, window: str) -> str:
    return query.replace("{{window}}", window).replace("{{.window}}", window)


def _base(slo: SLO, base: Mapping[str, str]) -> Mapping[str, str]:
    """The label matchers of the SLO's series: the spec's selector, and its segment's label where
    it names one (``segment="low_light"``)."""
    from harness.slo.promql import SEGMENT_LABEL

    return base if slo.segment is None else {**base, SEGMENT_LABEL: slo.segment}


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
    return get(slo.sli).rates(slo, _base(slo, base), window)


def sli_counters(slo: SLO, base: Mapping[str, str]) -> tuple[str, str] | None:
    """``(errors, total)`` as instant sums of the counters, for exact counts between two instants.

    None for a spec's own ``promql`` (written as rates) and for kinds no metric shows.
    """
    if slo.promql:
        return None
    return get(slo.sli).counters(slo, _base(slo, base))


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
