"""Validating fault settings: the reference server's ``/admin/faults`` and the harness's fault
proxy take the same fields and check them the same way."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

__all__ = ["clean_fault_fields"]


def clean_fault_fields(data: Mapping[str, Any], known: Iterable[str], max_hour: bool = True) -> dict[str, Any]:
    """``data`` checked against the ``known`` field names: ``seed`` an integer or null, rates
    probabilities, everything else a non-negative number (at most an hour with ``max_hour``).
    Returns the values as floats; ``ValueError`` names the first bad field."""
    known = set(known)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    clean: dict[str, Any] = {}
    for name, value in data.items():
        if name == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError("seed must be an integer or null")
            clean[name] = value
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"{name} must be a number")
        if value < 0:
            raise ValueError(f"{name} must not be negative")
        if name.endswith("_rate") and value > 1:
            raise ValueError(f"{name} is a probability: at most 1")
        if max_hour and not name.endswith("_rate") and value > 3600 * (1000 if name.endswith("_ms") else 1):
            raise ValueError(f"{name} is over one hour")
        clean[name] = float(value)
    return clean
