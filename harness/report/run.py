"""Run folders under a report root (``reports/<run>/``): which runs exist, newest first, their
decision records, and where each documented file of a run lies.

Nothing outside the report root is read: every path (a run folder, a file a decision record
names, an image) goes through ``inside_root``, which follows links and refuses what lands outside
the root with ``OutsideRoot``. A record is data from elsewhere; the root is the boundary."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import DataError, HarnessError, InputMissingError
from harness.report.decision import DECISION_NAME, load_decision

if TYPE_CHECKING:
    from harness.report.model import DecisionRecord

__all__ = ["ARTIFACT_NAMES", "OutsideRoot", "RunFolder", "inside_root", "list_runs", "load_run"]


class OutsideRoot(DataError):
    """A path that leaves the report root once its links are resolved (never opened)."""


def inside_root(root: str | Path, name: str | Path, base: str | Path | None = None) -> Path:
    """``name`` as a real path (every link resolved): relative names are read against ``base``
    (default: the root). ``OutsideRoot`` unless it is the root itself or lies under it, so ``..``,
    an absolute path elsewhere and a link out are all refused; a name that is not a path (not
    text, a NUL in it) is refused too."""
    real_root = os.path.realpath(root)
    if not isinstance(name, (str, Path)) or "\0" in str(name):
        raise OutsideRoot(f"{str(name)[:200]!r} is not a path under the report root {real_root}")
    p = Path(name)
    real = os.path.realpath(p if p.is_absolute() else Path(base if base is not None else real_root) / p)
    if real != real_root and os.path.commonpath([real, real_root]) != real_root:
        raise OutsideRoot(f"{name}: outside the report root {real_root}")
    return Path(real)


def _tree_inside(folder: Path, root: str | Path) -> None:
    """``OutsideRoot`` when anything under ``folder`` (walked without following links) resolves
    outside the root, as a reader of the folder (a parquet dataset, a COCO data set) would follow it."""
    for here, dirs, files in os.walk(folder):
        for entry in (*dirs, *files):
            inside_root(root, Path(here) / entry)


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
    "spans": ("spans.jsonl",),  # the reference server's --spans-file, when the run kept it
}


@dataclass(frozen=True)
class RunFolder:
    """One run: its folder, its decision record (``record``, the model ``load_decision`` gives;
    ``None`` with ``error`` when unreadable) and when it was made (the record's ``created_unix``,
    else the record file's modification time). ``root``: the report root it lies in (default: the
    folder's parent); nothing outside is read."""

    name: str
    path: Path
    created_unix: float
    record: DecisionRecord | None
    error: str | None = None
    root: Path | None = None

    @cached_property
    def decision(self) -> dict[str, Any] | None:
        """The record as the JSON it was read from (for pages that show it as data), or ``None``."""
        return None if self.record is None else self.record.model_dump(mode="json", by_alias=True)

    @property
    def verdict(self) -> str | None:
        return self.record.verdict if self.record is not None else None

    @property
    def boundary(self) -> Path:
        return self.root if self.root is not None else self.path.parent

    def artifact(self, key: str) -> Path | None:
        """The file (or folder) of kind ``key`` (see ``ARTIFACT_NAMES``) as a real path, or ``None``
        when this run lacks it.

        A path named in the record's ``artifacts`` wins (a relative one is read against the run
        folder), then the documented names. A candidate outside the report root (a folder: with
        anything in it outside) is never opened: ``OutsideRoot`` when nothing else was found."""
        files = self.record.artifacts if self.record is not None else None
        named = getattr(files, key) if files is not None and key in type(files).model_fields else None
        names = ([named] if isinstance(named, str) and named else []) + list(ARTIFACT_NAMES.get(key, ()))
        refused: OutsideRoot | None = None
        for name in names:
            try:
                cand = inside_root(self.boundary, name, self.path)
                if cand.is_dir():
                    _tree_inside(cand, self.boundary)
            except OutsideRoot as exc:
                refused = refused or exc
                continue
            if cand.exists():
                return cand
        if refused is not None:
            raise refused
        return None

    def resolve(self, path: Any) -> Path | None:
        """A file the record names (an image, a dataset) as a real path, if it exists: absolute, or
        relative to the run folder. ``OutsideRoot`` when it lies outside the report root (it is
        never opened); ``None`` when the record names none."""
        if path is None or path == "":
            return None
        cand = inside_root(self.boundary, path, self.path)
        return cand if cand.exists() else None


def load_run(folder: str | Path, root: str | Path | None = None) -> RunFolder:
    """Read one run folder under the report ``root`` (default: its parent); an unreadable decision
    record, or a folder or record outside the root (not read), is kept as ``error``, not raised."""
    folder = Path(folder)
    boundary = Path(os.path.realpath(root if root is not None else folder.parent))
    try:
        inside_root(boundary, folder.absolute())
        rec_path = inside_root(boundary, folder.absolute() / DECISION_NAME)
    except OutsideRoot as exc:
        return RunFolder(folder.name, folder, folder.lstat().st_mtime, None, f"{exc} (not read)", boundary)
    if not rec_path.exists():
        raise InputMissingError(f"{folder}: no {DECISION_NAME} in this folder (not a run)")
    mtime = rec_path.stat().st_mtime
    try:
        rec = load_decision(rec_path)
    except HarnessError as exc:
        return RunFolder(folder.name, folder, mtime, None, str(exc), boundary)
    return RunFolder(folder.name, folder, float(rec.created_unix), rec, None, boundary)


def list_runs(root: str | Path) -> tuple[RunFolder, ...]:
    """Every run folder directly under ``root`` (a folder holding ``decision.json``), newest first.
    One that is a link out of the root, or whose record is, is listed unread (``error`` says why)."""
    root = Path(root)
    if not root.is_dir():
        raise InputMissingError(f"{root}: report folder not found")
    runs = [load_run(p, root) for p in root.iterdir() if p.is_dir() and os.path.lexists(p / DECISION_NAME)]
    return tuple(sorted(runs, key=lambda r: (r.created_unix, r.name), reverse=True))
