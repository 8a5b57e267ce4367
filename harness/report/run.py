"""Run folders under a report root (``reports/<run>/``): which runs exist, newest first, their
decision records, and where each documented file of a run lies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, InputMissingError
from harness.report.decision import DECISION_NAME, load_decision

__all__ = ["ARTIFACT_NAMES", "RunFolder", "list_runs", "load_run"]

# Documented files of a run folder (reports/README.md); several names are tried in order.
ARTIFACT_NAMES: dict[str, tuple[str, ...]] = {
    "decision": (DECISION_NAME,),
    "summary_md": ("summary.md",),
    "records": ("records.parquet", "records.jsonl", "records"),  # the last: a partitioned dataset folder
    "quality": ("quality.json",),
    "slo": ("slo.json",),
    "drift": ("drift.json",),
    "drift_html": ("drift.html",),
    "ratings": ("ratings.csv",),
}


@dataclass(frozen=True)
class RunFolder:
    """One run: its folder, its decision record (``None`` with ``error`` when unreadable) and
    when it was made (the record's ``created_unix``, else the record file's modification time)."""

    name: str
    path: Path
    created_unix: float
    decision: dict[str, Any] | None
    error: str | None = None

    @property
    def verdict(self) -> str | None:
        return self.decision["verdict"] if self.decision else None

    def artifact(self, key: str) -> Path | None:
        """The file of kind ``key`` (see ``ARTIFACT_NAMES``), or ``None`` when this run lacks it.

        A path named in the record's ``artifacts`` wins; a relative one is read against the run
        folder first, then against the working directory."""
        named = ((self.decision or {}).get("artifacts") or {}).get(key)
        if isinstance(named, str) and named:
            p = Path(named)
            for cand in (p,) if p.is_absolute() else (self.path / p, p):
                if cand.exists():
                    return cand
        for name in ARTIFACT_NAMES.get(key, ()):
            if (self.path / name).exists():
                return self.path / name
        return None

    def resolve(self, path: str | None) -> Path | None:
        """A file the record names (an image, a dataset), if it exists: absolute, relative to the
        run folder, or relative to the working directory."""
        if not path:
            return None
        p = Path(path)
        for cand in (p,) if p.is_absolute() else (self.path / p, p):
            if cand.exists():
                return cand
        return None


def load_run(folder: str | Path) -> RunFolder:
    """Read one run folder; an unreadable decision record is kept as ``error``, not raised."""
    folder = Path(folder)
    rec_path = folder / DECISION_NAME
    if not rec_path.exists():
        raise InputMissingError(f"{folder}: no {DECISION_NAME} in this folder (not a run)")
    mtime = rec_path.stat().st_mtime
    try:
        rec = load_decision(rec_path)
    except HarnessError as exc:
        return RunFolder(folder.name, folder, mtime, None, str(exc))
    created = rec.get("created_unix")
    when = float(created) if isinstance(created, (int, float)) else mtime
    return RunFolder(folder.name, folder, when, rec)


def list_runs(root: str | Path) -> tuple[RunFolder, ...]:
    """Every run folder directly under ``root`` (a folder holding ``decision.json``), newest first."""
    root = Path(root)
    if not root.is_dir():
        raise InputMissingError(f"{root}: report folder not found")
    runs = [load_run(p) for p in root.iterdir() if p.is_dir() and (p / DECISION_NAME).exists()]
    return tuple(sorted(runs, key=lambda r: (r.created_unix, r.name), reverse=True))
