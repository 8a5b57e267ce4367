"""Text that came from outside the harness (a target's captions, model versions and error
messages), made safe to show on one line: in a terminal, a log line or a report."""

from __future__ import annotations

import re
import reprlib
from itertools import islice
from typing import Any

__all__ = ["one_line", "short_repr", "csv_cell", "from_csv_cell", "utf8_text"]

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


class _ShortRepr(reprlib.Repr):
    """``reprlib``'s bounded repr: six items of a collection, three levels, ``limit`` characters
    of a string or number; an integer too long to print is described instead."""

    def __init__(self, limit: int):
        super().__init__()
        self.maxlevel = 3
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = 6
        self.maxarray = 6
        self.maxstring = self.maxother = self.maxlong = limit

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 4 * self.maxlong:  # repr() would be long, or refused past 4300 digits
            return f"<an integer of about {int(x.bit_length() * 0.30103) + 1} digits>"
        return super().repr_int(x, level)


def _small(value: Any, limit: int) -> bool:
    """Whether ``repr(value)`` is cheap: a few short scalars at most a few levels deep."""
    todo, budget = [(value, 0)], 32
    while todo:
        v, depth = todo.pop()
        budget -= 1
        if budget < 0 or depth > 3:
            return False
        if isinstance(v, str):
            if len(v) > 4 * limit:
                return False
        elif isinstance(v, int):
            if v.bit_length() > 4 * limit:
                return False
        elif isinstance(v, (list, tuple)):
            todo.extend((x, depth + 1) for x in islice(v, budget + 1))
        elif isinstance(v, dict):
            todo.extend((x, depth + 1) for kv in islice(v.items(), budget + 1) for x in kv)
        elif not (v is None or isinstance(v, (float, bool))):
            return False
    return True


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for an error message, clipped to ``limit`` characters with an ellipsis; a
    large value (a long list, a deep mapping, a huge integer) is never rendered whole first."""
    s = repr(value) if _small(value, limit) else _ShortRepr(limit).repr(value)
    return s if len(s) <= limit else s[: limit - 1] + "…"


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


def utf8_text(data: bytes, source: str, error: type[Exception], hint: str = "") -> str:
    """A file's bytes as UTF-8 text (a byte-order mark dropped); else ``error`` naming ``source``
    and the first byte that is not UTF-8, then ``hint``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise error(f"{source}: not UTF-8 text ({where}){'; ' + hint if hint else ''}") from None
