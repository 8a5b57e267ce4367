"""The decision record (``reports/<run>/decision.json``): the one file CI, people and the
dashboard read. Renderings (markdown, dashboard) only present it; nothing is computed there.

A record is built in one place, ``build_decision``, from the judge's typed verdict and the typed
parts of the other stages, into the typed model of ``harness.report.model`` (imported lazily:
``import harness`` stays light), and read back with ``load_decision``, which validates it against
the same model. Both give the model; ``write_decision`` dumps it, and renderings read it."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

from harness.errors import DataError, InputMissingError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from harness.report.model import DecisionRecord, Inputs, SloRecord

__all__ = [
    "DECISION_NAME",
    "SCHEMA_VERSION",
    "JudgedVerdict",
    "build_decision",
    "write_decision",
    "load_decision",
    "plain",
]

DECISION_NAME = "decision.json"
SCHEMA_VERSION = 2  # harness.report.model.SCHEMA_VERSION; schema 1 records are still read
CORE = (
    "verdict",
    "score",
    "reasons",
    "metrics",
    "groups",
    "thresholds",
    "power",
    "slos",
    "inputs",
    "schema_version",
    "run_id",
    "created_unix",
)


class JudgedVerdict(Protocol):
    """What the record takes from the judge's verdict (``harness.canary.Verdict``, a layer above
    this one): each metric has ``MetricRecord``'s fields as attributes (``MetricResult``), each
    group ``GroupRecord``'s (``GroupResult``)."""

    @property
    def verdict(self) -> str: ...

    @property
    def score(self) -> float | None: ...

    @property
    def reasons(self) -> Sequence[str]: ...

    @property
    def metrics(self) -> Sequence[Any]: ...

    @property
    def groups(self) -> Sequence[Any]: ...

    @property
    def thresholds(self) -> Mapping[str, Any]: ...


def build_decision(
    verdict: JudgedVerdict,
    slos: Sequence[SloRecord | Mapping[str, Any]],
    inputs: Inputs | Mapping[str, Any],
    run_id: str,
    extra: Mapping[str, Any] | None = None,
    clock=time.time,
) -> DecisionRecord:
    """The record, validated once, from the judge's verdict (``harness.canary.Verdict``), the SLOs
    of both targets (``SloRecord``), what ran (``Inputs``: targets, versions, scenario, load shape,
    faults, dataset, spec) and the optional parts in ``extra`` (figures, worst_captions, contracts,
    findings, drift, analysis, artifacts). A part may be given as its model or as plain values (numpy
    values, tuples and paths are made plain; NaN is no value). The power statement is derived from
    the metrics. A part that does not fit the model raises ``ValueError`` naming the field."""
    from pydantic import TypeAdapter, ValidationError

    from harness.report.model import DecisionRecord, GroupRecord, MetricRecord, derive_power

    if isinstance(verdict, Mapping):
        raise TypeError("build_decision takes the judge's Verdict, not a mapping")
    extra = dict(extra or {})
    clash = [k for k in CORE if k in extra]
    if clash:
        raise ValueError(f"extra may not set {', '.join(clash)}: they come from the verdict, the SLOs and the inputs")
    try:
        metrics = TypeAdapter(list[MetricRecord]).validate_python([_fields(m, MetricRecord) for m in verdict.metrics])
    except ValidationError as exc:
        raise ValueError(f"decision record: {_first_error(exc, 'metrics')}") from exc
    try:
        rec = DecisionRecord.model_validate(
            {
                "schema_version": SCHEMA_VERSION,
                "run_id": run_id,
                "created_unix": round(clock(), 3),
                "verdict": verdict.verdict,
                "score": plain(verdict.score),
                "reasons": plain(verdict.reasons),
                "metrics": metrics,
                "groups": [_fields(g, GroupRecord) for g in verdict.groups],
                "thresholds": plain(verdict.thresholds),
                "power": derive_power(metrics),
                "slos": plain(slos),
                "inputs": plain(inputs),
                **plain(extra),
            }
        )
    except ValidationError as exc:
        raise ValueError(f"decision record: {_first_error(exc)}") from exc
    return rec


def _fields(obj: Any, model: Any) -> dict[str, Any]:
    """The attributes of a typed result that ``model`` has fields for, as plain values."""
    return {name: plain(getattr(obj, name)) for name in model.model_fields if hasattr(obj, name)}


def write_decision(folder: str | Path, record: DecisionRecord | Mapping[str, Any]) -> Path:
    """Write the record atomically, so a reader never sees half a decision (nor a wrong one); a
    record given as plain values is validated first."""
    from pydantic import ValidationError

    from harness.report.model import DecisionRecord

    if not isinstance(record, DecisionRecord):
        try:
            record = DecisionRecord.model_validate(plain(dict(record)))
        except ValidationError as exc:
            raise ValueError(f"decision record: {_first_error(exc)}") from exc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DECISION_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.model_dump(mode="json", by_alias=True), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def plain(o: Any) -> Any:
    """Numpy scalars and arrays, tuples, sets and paths as plain JSON values; NaN and infinity as
    null (no value), which is what the record says where a figure could not be computed. A part
    of the record already typed (a model) is kept as it is: it was validated when it was made."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "__pydantic_fields__") and not isinstance(o, type):
        return o
    if isinstance(o, Mapping):
        return {k: plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [plain(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist") and not isinstance(o, (str, bytes)):
        return plain(o.tolist())  # numpy array or scalar (a scalar's tolist() is a Python value)
    return o


def load_decision(path: str | Path) -> DecisionRecord:
    """Read a decision record (a file or a run folder) and validate it into the model; errors name
    the file and the first bad field. Schema 1 records are read leniently
    (``harness.report.model.from_v1``)."""
    from pydantic import ValidationError

    from harness.report.model import LENIENT, READABLE_VERSIONS, DecisionRecord, from_v1

    p = Path(path)
    if p.is_dir():
        p = p / DECISION_NAME
    if not p.exists():
        raise InputMissingError(f"{p}: decision record not found")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{p}: unreadable ({type(exc).__name__}: {exc})") from None
    if not isinstance(raw, dict):
        raise DataError(f"{p}: a decision record is a JSON object")
    version = raw.get("schema_version", 1)
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise DataError(
            f"{p}: schema_version {version!r} is not one this harness reads "
            f"({', '.join(map(str, READABLE_VERSIONS))}); upgrade the harness"
        )
    lenient = version == 1
    if lenient:
        raw = from_v1(raw, p.parent.name, p.stat().st_mtime)
    try:
        return DecisionRecord.model_validate(raw, context={LENIENT: lenient})
    except ValidationError as exc:
        raise DataError(f"{p}: {_load_error(exc)}") from None


def _load_error(exc: ValidationError) -> str:
    errors = exc.errors()
    for e in errors:
        if e["loc"] == ("verdict",):
            return f"verdict {e['input']!r} is not PROMOTE, HOLD or ROLLBACK"
    missing = [str(e["loc"][0]) for e in errors if e["type"] == "missing" and len(e["loc"]) == 1]
    if missing:
        return f"decision record lacks {', '.join(missing)}"
    return f"decision record field {_first_error(exc)}"


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    """The first error as 'path: message (got value)', on one line (``prefix``: the path of what
    was validated)."""
    e = exc.errors()[0]
    where = _path(e["loc"], prefix) or "(record)"
    msg = e["msg"]
    if e["type"] != "missing" and e["type"] != "value_error":
        got = repr(e["input"])
        msg += f" (got {got if len(got) <= 60 else got[:59] + '…'})"
    return " ".join(f"{where}: {msg}".split())


def _path(loc: tuple, prefix: str = "") -> str:
    """``('metrics', 3, 'classification')`` as ``metrics[3].classification``; the names pydantic
    gives union members (a model's or a type's name) are left out."""
    import harness.report.model as model

    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _TYPE_TAGS or isinstance(getattr(model, str(part), None), type) or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "dict", "list", "literal"}
