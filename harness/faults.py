"""Fault settings, as pydantic models: the reference server's ``/admin/faults`` (its ``FaultSpec``)
and the harness's fault proxy (its ``ProxyFaults``) both extend ``FaultFields``, which defines the
fields they share and the rules every fault field follows:

- the models are ``harness.validation.Strict``: an unknown field is refused, and so is text for a
  number, ``true`` for a number, a float for an integer, NaN and the infinities;
- numbers are non-negative: a ``Rate`` is a probability (at most 1), ``Millis`` and ``Seconds`` at
  most one hour, and a field with a range of its own says it with ``Field(ge=..., le=...)``;
- ``seed`` is an integer or null; a string is at most 1,000 characters (``Text``); a choice is a
  ``Literal``, and an empty string turns a nullable choice off (``OFF_WHEN_EMPTY``).

A model is built with keywords (``ProxyFaults(slow_ms=10)``), from a mapping (``parse``), or as a
copy with some fields changed (``with_updates``); each raises ``ValueError`` with one line that
names the first bad field (``slow_rate is a probability: at most 1``), as ``fault_error`` words it.
"""

from __future__ import annotations

from typing import Annotated, Any, Mapping, NamedTuple, get_args

from annotated_types import Ge, Le
from pydantic import BeforeValidator, Field, ValidationError
from typing_extensions import Self

from harness.validation import Strict, error_message

__all__ = [
    "FaultFields",
    "Rate",
    "Millis",
    "Seconds",
    "Text",
    "OFF_WHEN_EMPTY",
    "fault_error",
]

TEXT_MAX = 1000


class _Over(NamedTuple):
    """How a value above a standard bound is worded (below it, a value is negative)."""

    text: str


Rate = Annotated[float, Field(ge=0.0, le=1.0), _Over("is a probability: at most 1")]
Millis = Annotated[float, Field(ge=0.0, le=3_600_000.0), _Over("is over one hour")]
Seconds = Annotated[float, Field(ge=0.0, le=3600.0), _Over("is over one hour")]
Text = Annotated[str, Field(max_length=TEXT_MAX)]
# On a nullable choice: "" is null (the fault off), as a form or a command line gives it.
OFF_WHEN_EMPTY = BeforeValidator(lambda v: None if v == "" else v)

_WHAT = {
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a number",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
}


def fault_error(exc: ValidationError, model: type[Strict]) -> str:
    """One line for ``exc``, raised by fault model ``model``: every unknown field, or else the
    first bad field by name (``status_code must be between 400 and 599``)."""
    errors = exc.errors(include_url=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and e["loc"])
    if unknown:
        return f"unknown fault field(s): {', '.join(unknown)} (known: {', '.join(sorted(model.model_fields))})"
    err = errors[0]
    name = str(err["loc"][0]) if err["loc"] else ""
    field = model.model_fields.get(name)
    if field is None:
        return error_message(err)
    kind, ctx = err["type"], err.get("ctx") or {}
    nullable = type(None) in get_args(field.annotation)
    if kind in _WHAT:
        return f"{name} must be {_WHAT[kind]}" + (" or null" if nullable else "")
    if kind == "literal_error":
        choices = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{name} must be one of {choices}" + (" (or null: off)" if nullable else "")
    if kind == "string_too_long":
        return f"{name} is over {ctx.get('max_length')} characters"
    if kind in ("greater_than_equal", "less_than_equal"):
        over = next((m for m in field.metadata if isinstance(m, _Over)), None)
        if over is not None:
            return f"{name} {over.text}" if kind == "less_than_equal" else f"{name} must not be negative"
        lo = next((m.ge for m in field.metadata if isinstance(m, Ge)), None)
        hi = next((m.le for m in field.metadata if isinstance(m, Le)), None)
        if lo is not None and hi is not None:
            return f"{name} must be between {lo:g} and {hi:g}"
    return f"{name}: {error_message(err)}"


class FaultFields(Strict):
    """The fault fields the reference server and the fault proxy share; each extends it. Rates
    are probabilities per request. Build one with keywords, ``parse`` or ``with_updates`` (their
    ``ValueError`` is one line); ``model_validate`` would wrap that line in a ``ValidationError``."""

    latency_ms: Millis = Field(0.0, description="added to each inference batch (the proxy: to each request)")
    jitter_ms: Millis = Field(0.0, description="plus a uniform draw in [0, jitter_ms]")
    error_rate: Rate = Field(0.0, description="share of requests answered 500")
    hang_rate: Rate = Field(0.0, description="share of requests never answered")
    unsafe_rate: Rate = Field(0.0, description="share of captions given an unflagged blocklisted word")
    slow_start_s: Seconds = Field(0.0, description="unready for this long from now")
    seed: int | None = Field(None, description="seed of the fault draws (default: the server's or proxy's)")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ValueError(fault_error(exc, type(self))) from None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> Self:
        """The settings in ``data`` (the others at their defaults); ``ValueError`` names a bad field."""
        if not all(isinstance(name, str) for name in data):
            raise ValueError("fault field names must be strings")
        return cls(**data)

    def with_updates(self, data: Mapping[str, Any]) -> Self:
        """A copy with ``data``'s fields replaced (the others stay); ``ValueError`` names a bad one."""
        return self.parse({**self.model_dump(), **data})
