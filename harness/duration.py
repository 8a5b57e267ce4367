"""The one duration grammar of the harness: SLO periods and windows, ``--duration``, ``--interval``,
``--lifetime``, an analysis' interval in the judge API. ``5m``, ``1h30m``, ``30d``, ``4w`` as
Prometheus writes them, decimals too (``2.5s``), or a plain number of seconds (``90``, ``1e3``);
positive and at most ten years."""

from __future__ import annotations

import math
import re
from typing import Any

from harness.text import short_repr

__all__ = ["MAX_DURATION_S", "parse_duration", "check_duration", "format_duration", "prometheus_duration"]

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
# The longest duration the harness takes anywhere (a period, a window, a run, an interval): an
# alert over a longer window could never fire, and a longer run never ends.
MAX_DURATION_S = 10 * 365 * 86400


def check_duration(seconds: float, value: Any) -> float:
    """``seconds`` (the duration ``value`` gave) when it is at most ten years, else ``ValueError``."""
    if not seconds <= MAX_DURATION_S:
        raise ValueError(f"must be at most 10 years (got {short_repr(value)})")
    return seconds


def parse_duration(value: Any) -> float:
    """Seconds in a duration (``5m``, ``1h30m``, ``2.5s``, ``30d``) or a number of seconds (given
    as a number or as text), positive and at most ten years (``MAX_DURATION_S``); ``ValueError``
    with a message that quotes the value otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 5m, 1h or 30d")
    number = value if isinstance(value, (int, float)) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if number is not None:
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"must be a positive duration (got {short_repr(value)})")
        return float(check_duration(number, value))
    text = value.strip() if isinstance(value, str) else ""
    if not text or _DURATION_RE.sub("", text) != "":
        raise ValueError(f"must be a duration such as 5m, 1h or 30d (got {short_repr(value)})")
    seconds = sum(float(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))
    if seconds <= 0:
        raise ValueError(f"must be a positive duration (got {short_repr(value)})")
    return check_duration(seconds, value)


def format_duration(seconds: float) -> str:
    """The shortest duration for ``seconds`` in one of d, h, m or s (``300`` -> ``5m``), for reports."""
    s = int(round(seconds))
    if s <= 0 or abs(seconds - s) > 1e-9:
        return f"{int(round(seconds * 1000))}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


def prometheus_duration(seconds: float) -> str:
    """``seconds`` as Prometheus itself prints a duration (``28d`` -> ``4w``, ``90m`` -> ``1h30m``).

    Sloth names its window series this way (``slo:sli_error:ratio_rate4w``), so the rules do too:
    years and weeks only when they divide the duration, then days, hours, minutes, seconds, ms.
    """
    ms = int(round(seconds * 1000))
    if ms <= 0:
        return "0s"
    out = ""
    for unit, size, exact in (
        ("y", 365 * 86400000, True),
        ("w", 7 * 86400000, True),
        ("d", 86400000, False),
        ("h", 3600000, False),
        ("m", 60000, False),
        ("s", 1000, False),
        ("ms", 1, False),
    ):
        if exact and ms % size:
            continue
        if ms // size:
            out += f"{ms // size}{unit}"
            ms -= (ms // size) * size
    return out
