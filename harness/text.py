"""Text that came from outside the harness (a target's captions, model versions and error
messages), made safe to show on one line: in a terminal, a log line or a report."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["one_line", "csv_cell", "from_csv_cell"]

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


# A cell that starts with one of these is a formula in a spreadsheet (OWASP's CSV injection list).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A value for a CSV file people open in a spreadsheet: text that would start a formula gets a
    leading apostrophe (OWASP), and so does text that already starts with one, so that
    ``from_csv_cell`` gives the original back exactly. Other values are left as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START + ("'",)):
        return "'" + value
    return value


def from_csv_cell(value: object) -> object:
    """The original of a cell written by ``csv_cell``."""
    if isinstance(value, str) and value.startswith("'"):
        return value[1:]
    return value
