"""The decision record (``reports/<run>/decision.json``): the one file CI, people and the
dashboard read. Renderings (markdown, dashboard) only present it; nothing is computed there.

A record is built in one place, ``build_decision``, from the judge's typed verdict and the typed
parts of the other stages (``SloRecord``, ``Inputs``, ``DecisionParts``: each a model of
``harness.report.model``, imported lazily so ``import harness`` stays light, made by the stage that
made its values), and read back with ``load_decision``, which validates it against the same model.
Both give the model; ``write_decision`` dumps it, and renderings read it."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Protocol, Sequence

from harness.errors import DataError, InputMissingError

if TYPE_CHECKING:
    from pydantic import ValidationError

    from harness.report.model import (
        Analysis,
        Artifacts,
        ContractReport,
        DecisionRecord,
        Drift,
        Finding,
        Inputs,
        SloRecord,
        TargetFigures,
        WorstCaption,
    )

__all__ = [
    "DECISION_NAME",
    "SCHEMA_VERSION",
    "JudgedVerdict",
    "DecisionParts",
    "build_decision",
    "write_decision",
    "load_decision",
    "plain",
]

DECISION_NAME = "decision.json"
SCHEMA_VERSION = 2  # harness.report.model.SCHEMA_VERSION; schema 1 records are still read


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


def _no_artifacts() -> Artifacts:
    from harness.report.model import Artifacts

    return Artifacts()


@dataclass(frozen=True)
class DecisionParts:
    """The parts of the record besides the verdict, the SLOs and what ran, each already its model
    (``harness.report.model``), made by the stage that made its values: each target's figures, the
    worst captions, the data contracts' results, the output checks' findings, the output drift, the
    look of a live analysis and the run's files. A part left out is empty (no drift: null)."""

    figures: Mapping[Literal["baseline", "canary"], TargetFigures] = field(default_factory=dict)
    worst_captions: Sequence[WorstCaption] = ()
    contracts: Mapping[str, ContractReport] = field(default_factory=dict)
    findings: Sequence[Finding] = ()
    drift: Drift | None = None
    analysis: Analysis | None = None
    artifacts: Artifacts = field(default_factory=_no_artifacts)

    def __post_init__(self) -> None:
        from harness.report import model

        _expect("figures", self.figures.values(), model.TargetFigures)
        _expect("worst_captions", self.worst_captions, model.WorstCaption)
        _expect("contracts", self.contracts.values(), model.ContractReport)
        _expect("findings", self.findings, model.Finding)
        _expect("drift", [] if self.drift is None else [self.drift], model.Drift)
        _expect("analysis", [] if self.analysis is None else [self.analysis], model.Analysis)
        _expect("artifacts", [self.artifacts], model.Artifacts)


def _expect(name: str, values: Iterable[Any], model: type) -> None:
    """A part given as anything but its model (a mapping, say) is refused: the stage that made its
    values builds the model."""
    for v in values:
        if not isinstance(v, model):
            raise TypeError(f"{name} takes {model.__name__} ({model.__module__}), not {type(v).__name__}")


def build_decision(
    verdict: JudgedVerdict,
    slos: Sequence[SloRecord],
    inputs: Inputs,
    run_id: str,
    parts: DecisionParts | None = None,
    clock=time.time,
) -> DecisionRecord:
    """The record, validated once, from the judge's verdict (``harness.canary.Verdict``), the SLOs
    of both targets (``SloRecord``), what ran (``Inputs``: targets, versions, scenario, load shape,
    faults, dataset, spec) and the other parts (``DecisionParts``: figures, worst captions,
    contracts, findings, drift, analysis, artifacts), each given as its model, never as plain
    values (``TypeError``). The verdict's numpy values are made plain (NaN is no value); the power
    statement is derived from the metrics. What still does not fit the record (a verdict's field,
    figures of no target) raises ``ValueError`` naming the field."""
    from pydantic import TypeAdapter, ValidationError

    from harness.report.model import DecisionRecord, GroupRecord, Inputs, MetricRecord, SloRecord, derive_power

    if isinstance(verdict, Mapping):
        raise TypeError("build_decision takes the judge's Verdict, not a mapping")
    _expect("inputs", [inputs], Inputs)
    _expect("slos", slos, SloRecord)
    _expect("parts", [] if parts is None else [parts], DecisionParts)
    parts = parts or DecisionParts()
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
                "slos": list(slos),
                "inputs": inputs,
                "figures": dict(parts.figures),
                "worst_captions": list(parts.worst_captions),
                "contracts": dict(parts.contracts),
                "findings": list(parts.findings),
                "drift": parts.drift,
                "analysis": parts.analysis,
                "artifacts": parts.artifacts,
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
    """Numpy scalars and arrays, tuples, sets, paths and dataclasses as plain JSON values; NaN and
    infinity as null (no value), which is what the record says where a figure could not be computed.
    A part of the record already typed (a model) is kept as it is: it was validated when it was made."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if hasattr(o, "__pydantic_fields__") and not isinstance(o, type):
        return o
    if is_dataclass(o) and not isinstance(o, type):
        return plain(asdict(o))  # a typed result of a stage (a segment's test)
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
