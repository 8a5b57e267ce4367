"""Text that came from outside the harness (a target's captions, model versions and error
messages), made safe to show on one line: in a terminal, a log line or a report."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["one_line"]

_SPACE = re.compile(r"\s+")
# C0 and C1 controls (terminal escapes among them), and the bidirectional overrides that make text
# read other than it is stored.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def one_line(value: Any, limit: int = 300) -> str:
    """``value`` as one line of at most ``limit`` characters: whitespace runs become one space,
    control characters go, and a longer text is clipped with an ellipsis."""
    s = str(value)[: limit * 4 + 64]
    s = _CONTROL.sub("", _SPACE.sub(" ", s)).strip()
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"
