"""A running count on a terminal, silence in CI logs."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``Progress(total, "images")(done)`` redraws one line at most 10 times a second on a TTY."""

    def __init__(self, total: int | None, unit: str, stream: TextIO | None = None, enabled: bool | None = None):
        self.total, self.unit = total, unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, done: int, extra: str = "") -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done != self.total:
            return
        self._last = now
        of = f"/{self.total}" if self.total else ""
        self.stream.write(f"\r{done}{of} {self.unit}  {now - self._start:.0f}s {extra}".rstrip() + "  ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
