"""One-line errors from declarative schemas: a pydantic ``ValidationError`` as ``path.to.field: message``.

Specs and config files are validated by pydantic models (``extra='forbid'``, finite numbers); a
user sees only the first problem, with the path of the field in the file (``slos[1].objective``,
``[2].spec.objectives[0].target``), in the project's wording.
"""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, ValidationError

from harness.text import short_repr

__all__ = ["STRICT", "Strict", "join_path", "error_message", "first_error"]

# Unknown fields refused, no silent coercion ("0.9" is not a number), NaN and infinities refused.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


class Strict(BaseModel):
    """A model of a file's section: unknown fields, text for numbers and NaN are refused."""

    model_config = STRICT


def join_path(prefix: str, loc: Iterable[Any]) -> str:
    """``prefix`` followed by a pydantic location: ``("slos", 1, "objective")`` -> ``slos[1].objective``."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _expected(text: str) -> str:
    return text.replace("'", "").replace(" or ", ", ")


def error_message(err: Any) -> str:
    """The project's wording for one error of ``ValidationError.errors()``."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "finite_number":
        return f"must be a finite number (got {short_repr(value)})"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"):
        return f"must be a number (got {short_repr(value)})"
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false (got {short_repr(value)})"
    if kind in ("string_type", "string_too_short"):
        return (
            "must be a non-empty string"
            if kind == "string_too_short"
            else f"must be a string (got {short_repr(value)})"
        )
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"must be a mapping (got {type(value).__name__})"
    if kind in ("list_type", "tuple_type"):
        return f"must be a list (got {type(value).__name__})"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern')} (got {short_repr(value)})"
    if kind == "too_short":
        return "must be a non-empty list"
    if kind == "too_long":
        return f"must have at most {ctx.get('max_length')} items"
    if kind == "literal_error":
        return f"must be one of {_expected(str(ctx.get('expected', '')))} (got {short_repr(value)})"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    for bound, word in (("gt", "above"), ("ge", "at least"), ("lt", "below"), ("le", "at most")):
        if kind == f"{'greater' if bound[0] == 'g' else 'less'}_than{'_equal' if bound[1] == 'e' else ''}":
            return f"must be {word} {ctx.get(bound)} (got {short_repr(value)})"
    return str(err.get("msg", kind))


def first_error(exc: ValidationError, prefix: str = "") -> str:
    """``path: message`` for the first error of ``exc``; ``prefix`` is the path of the validated section."""
    errors = exc.errors(include_url=False)
    # A misspelt field also leaves the real one missing: naming the misspelling helps more.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    path = join_path(prefix, err["loc"])
    message = error_message(err)
    return f"{path}: {message}" if path else message
