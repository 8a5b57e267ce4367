"""The decision record (``reports/<run>/decision.json``): the one file CI, people and the
dashboard read. Renderings (markdown, dashboard) only present it; nothing is computed there.

A record is built in one place, ``build_decision``, through the typed model of
``harness.report.model`` (imported lazily: ``import harness`` stays light), and read back with
``load_decision``, which validates it against the same model."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.errors import DataError, InputMissingError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from harness.report.model import DecisionRecord

__all__ = ["DECISION_NAME", "SCHEMA_VERSION", "build_decision", "write_decision", "load_decision"]

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


def build_decision(
    verdict: Mapping[str, Any],
    slos: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, Any],
    run_id: str,
    extra: Mapping[str, Any] | None = None,
    clock=time.time,
) -> dict[str, Any]:
    """Assemble the record from the judge's verdict (``Verdict.to_dict()``), the SLO evaluations
    of both targets, what ran (targets, versions, scenario, load shape, faults, dataset, spec) and
    the optional parts in ``extra`` (figures, worst_captions, contracts, findings, drift,
    artifacts). The power statement is derived from the metrics. Returns the JSON-ready record;
    a part that does not fit the model raises ``ValueError`` naming the field."""
    from pydantic import TypeAdapter, ValidationError

    from harness.report.model import DecisionRecord, MetricRecord, derive_power

    extra = dict(extra or {})
    clash = [k for k in CORE if k in extra]
    if clash:
        raise ValueError(f"extra may not set {', '.join(clash)}: they come from the verdict, the SLOs and the inputs")
    v = _plain(dict(verdict))
    try:
        metrics = TypeAdapter(list[MetricRecord]).validate_python(v.get("metrics", []))
    except ValidationError as exc:
        raise ValueError(f"decision record: {_first_error(exc, 'metrics')}") from exc
    try:
        rec = DecisionRecord.model_validate(
            {
                "schema_version": SCHEMA_VERSION,
                "run_id": run_id,
                "created_unix": round(clock(), 3),
                "verdict": v.get("verdict"),
                "score": v.get("score"),
                "reasons": v.get("reasons", []),
                "metrics": metrics,
                "groups": v.get("groups", []),
                "thresholds": v.get("thresholds"),
                "power": derive_power(metrics),
                "slos": _plain(list(slos)),
                "inputs": _plain(dict(inputs)),
                **_plain(extra),
            }
        )
    except ValidationError as exc:
        raise ValueError(f"decision record: {_first_error(exc)}") from exc
    return rec.model_dump(mode="json", by_alias=True)


def write_decision(folder: str | Path, record: Mapping[str, Any] | DecisionRecord) -> Path:
    """Validate and write atomically, so a reader never sees half a decision (nor a wrong one)."""
    from pydantic import ValidationError

    from harness.report.model import DecisionRecord

    if not isinstance(record, DecisionRecord):
        try:
            record = DecisionRecord.model_validate(_plain(dict(record)))
        except ValidationError as exc:
            raise ValueError(f"decision record: {_first_error(exc)}") from exc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DECISION_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record.model_dump(mode="json", by_alias=True), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path


def _plain(o: Any) -> Any:
    """Numpy scalars and arrays, tuples, sets and paths as plain JSON values; NaN and infinity as
    null (no value), which is what the record says where a figure could not be computed."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, Mapping):
        return {k: _plain(v) for k, v in o.items()}
    if isinstance(o, (list, tuple, set)):
        return [_plain(v) for v in o]
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist") and not isinstance(o, (str, bytes)):
        return _plain(o.tolist())  # numpy array or scalar (a scalar's tolist() is a Python value)
    return o


def load_decision(path: str | Path) -> dict[str, Any]:
    """Read a decision record (a file or a run folder) and validate it; errors name the file and
    the first bad field. Schema 1 records are read leniently (``harness.report.model.from_v1``)."""
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
        rec = DecisionRecord.model_validate(raw, context={LENIENT: lenient})
    except ValidationError as exc:
        raise DataError(f"{p}: {_load_error(exc)}") from None
    return rec.model_dump(mode="json", by_alias=True)


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
