"""The one reader of a point in time the harness takes from people and files: unix seconds (a
number, or text of one), ISO 8601 (``2024-06-10T08:00:00Z``; no zone is UTC) and, where a clock is
given, ``now`` and ``now-15m`` (a duration of ``harness.duration``). ``--since``/``--until``, an
imported log's ``t_start`` and the feedback log's ``time`` are read here."""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any, Callable

__all__ = ["parse_instant", "NotFinite", "FORMS"]

FORMS = "unix seconds, ISO 8601, now or now-15m"


class NotFinite(ValueError):
    """A number that is no point in time: NaN or an infinity."""


_RELATIVE = re.compile(r"^now(?:\s*-\s*(.+))?$")


def parse_instant(value: Any, now: Callable[[], float] | None = None, numbers: bool = True) -> float:
    """Unix seconds in ``value``; ``ValueError`` when it is no time (a bool, text of no form above,
    NaN or an infinity). ``now``: the clock ``now`` and ``now-DURATION`` are read against (without
    it, they are no time). ``numbers=False``: ISO 8601 text only (a log whose times are declared
    ISO 8601)."""
    if isinstance(value, bool) or (not numbers and not isinstance(value, str)):
        raise ValueError("no time")
    if isinstance(value, (int, float)):
        t = float(value)
    else:
        text = str(value).strip()
        m = _RELATIVE.match(text) if now is not None else None
        if m:
            from harness.duration import parse_duration

            try:
                t = now() - (parse_duration(m.group(1)) if m.group(1) else 0.0)
            except (ValueError, OverflowError):
                raise ValueError("after now- comes a duration such as 15m") from None
        else:
            try:
                if not numbers:
                    raise ValueError
                t = float(text)
            except ValueError:
                try:
                    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
                except ValueError:
                    raise ValueError(f"give {FORMS if now is not None else 'unix seconds or ISO 8601'}") from None
                t = (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(t):
        raise NotFinite("not a finite time")
    return t
