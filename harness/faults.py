"""Validating fault settings: the reference server's ``/admin/faults`` and the harness's fault
proxy take the same fields and check them the same way."""

from __future__ import annotations

from dataclasses import Field
from typing import Any, Iterable, Mapping

__all__ = ["clean_fault_fields", "field_kind"]

_KINDS = ("float", "int", "str", "bool")
_WHAT = {"float": "a number", "int": "an integer", "str": "a string", "bool": "true or false"}
_STR_MAX = 1000


def field_kind(item: str | Field) -> tuple[str, bool]:
    """The kind of a fault field's value (``float``, ``int``, ``str`` or ``bool``) and whether it
    may be null: a bare name is a number, but for ``seed`` (an integer or null); a dataclass field
    says it with its type."""
    if isinstance(item, str):
        return ("int", True) if item == "seed" else ("float", False)
    text = item.type.__name__ if isinstance(item.type, type) else str(item.type)
    parts = {p.strip() for p in text.split("|")}
    nullable = "None" in parts
    parts.discard("None")
    if len(parts) != 1 or not parts <= set(_KINDS):
        raise TypeError(f"fault field {item.name} has an unsupported type: {text}")
    return parts.pop(), nullable


def _clean_value(name: str, value: Any, kind: str, nullable: bool, meta: Mapping[str, Any], max_hour: bool) -> Any:
    if value is None and nullable:
        return None
    wrong = f"{name} must be {_WHAT[kind]}" + (" or null" if nullable else "")
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(wrong)
        return value
    if kind == "str":
        if not isinstance(value, str):
            raise ValueError(wrong)
        if value == "" and nullable:
            return None
        choices = meta.get("choices")
        if choices and value not in choices:
            raise ValueError(f"{name} must be one of {', '.join(choices)}" + (" (or null: off)" if nullable else ""))
        if len(value) > _STR_MAX:
            raise ValueError(f"{name} is over {_STR_MAX} characters")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind == "float" else int) or value != value:
        raise ValueError(wrong)
    if "range" in meta:
        lo, hi = meta["range"]
        if not lo <= value <= hi:
            raise ValueError(f"{name} must be between {lo:g} and {hi:g}")
    elif kind == "float":
        if value < 0:
            raise ValueError(f"{name} must not be negative")
        if name.endswith("_rate") and value > 1:
            raise ValueError(f"{name} is a probability: at most 1")
        if max_hour and not name.endswith("_rate") and value > 3600 * (1000 if name.endswith("_ms") else 1):
            raise ValueError(f"{name} is over one hour")
    return float(value) if kind == "float" else value


def clean_fault_fields(data: Mapping[str, Any], known: Iterable[str | Field], max_hour: bool = True) -> dict[str, Any]:
    """``data`` checked against the ``known`` fields, given by name (every one a number but
    ``seed``, an integer or null) or as dataclass fields (their type says the kind and whether
    null is allowed; ``metadata`` may add ``choices`` for a string, ``range`` for a number).
    Numbers are non-negative, rates probabilities, the rest at most an hour with ``max_hour``,
    unless a ``range`` says otherwise; an empty string turns a nullable string field off.
    Returns the values typed (numbers as floats); ``ValueError`` names the first bad field."""
    specs: dict[str, tuple[str, bool, Mapping[str, Any]]] = {}
    for item in known:
        name = item if isinstance(item, str) else item.name
        specs[name] = (*field_kind(item), {} if isinstance(item, str) else item.metadata)
    unknown = sorted(set(data) - set(specs))
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)} (known: {', '.join(sorted(specs))})")
    return {name: _clean_value(name, value, *specs[name], max_hour) for name, value in data.items()}
