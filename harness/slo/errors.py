"""The error of an invalid SLO spec, a leaf every reader of specs and every SLI kind raises."""

from __future__ import annotations

from harness.errors import DataError

__all__ = ["SpecError"]


class SpecError(DataError):
    """An invalid SLO spec; the message starts with the path of the bad field."""
