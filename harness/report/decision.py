"""The decision record (``reports/<run>/decision.json``): the one file CI, people and the
dashboard read. Renderings (markdown, dashboard) only present it; nothing is computed there."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from harness.errors import DataError, InputMissingError

__all__ = ["DECISION_NAME", "SCHEMA_VERSION", "build_decision", "write_decision", "load_decision"]

DECISION_NAME = "decision.json"
SCHEMA_VERSION = 1
REQUIRED = ("verdict", "score", "reasons", "metrics", "slos", "inputs")


def build_decision(
    verdict: Mapping[str, Any],
    slos: Sequence[Mapping[str, Any]],
    inputs: Mapping[str, Any],
    run_id: str,
    extra: Mapping[str, Any] | None = None,
    clock=time.time,
) -> dict[str, Any]:
    """Assemble the record from the judge's verdict (``Verdict.to_dict()``), the SLO evaluations
    of both targets and what ran (targets, versions, scenario, load shape, faults, dataset, spec)."""
    rec = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_unix": round(clock(), 3),
        "verdict": verdict["verdict"],
        "score": verdict["score"],
        "reasons": list(verdict["reasons"]),
        "metrics": list(verdict["metrics"]),
        "groups": list(verdict.get("groups", [])),
        "thresholds": dict(verdict.get("thresholds", {})),
        "slos": [dict(s) for s in slos],
        "inputs": dict(inputs),
    }
    if extra:
        rec.update({k: v for k, v in extra.items() if k not in rec})
    return rec


def write_decision(folder: str | Path, record: Mapping[str, Any]) -> Path:
    """Write atomically, so a reader never sees half a decision."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / DECISION_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1, allow_nan=False, default=_jsonable) + "\n")
    os.replace(tmp, path)
    return path


def _jsonable(o: Any):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def load_decision(path: str | Path) -> dict[str, Any]:
    """Read a decision record (a file or a run folder); errors name the file and the problem."""
    p = Path(path)
    if p.is_dir():
        p = p / DECISION_NAME
    if not p.exists():
        raise InputMissingError(f"{p}: decision record not found")
    try:
        rec = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{p}: malformed JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(rec, dict):
        raise DataError(f"{p}: a decision record is a JSON object")
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        raise DataError(f"{p}: decision record lacks {', '.join(missing)}")
    if rec["verdict"] not in ("PROMOTE", "HOLD", "ROLLBACK"):
        raise DataError(f"{p}: verdict {rec['verdict']!r} is not PROMOTE, HOLD or ROLLBACK")
    return rec
