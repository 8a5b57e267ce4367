"""Request records: one per request sent, the unit every later stage reads.

A run appends records to ``records.jsonl``; each record reaches the operating system as soon as
it is written (one ``write`` per record, never held in a process buffer), so a run killed midway,
even by SIGKILL, keeps every record it wrote. At the end of a run the file is compacted to
``records.parquet``; ``load_records`` reads either (or a folder holding them) into pandas.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from harness.errors import DataError, InputMissingError

__all__ = [
    "OUTCOMES",
    "RequestRecord",
    "RecordWriter",
    "RECORDS_JSONL",
    "RECORDS_PARQUET",
    "COLUMNS",
    "load_records",
    "read_jsonl",
    "compact",
]

OUTCOMES = ("ok", "http_error", "timeout", "connection_error", "invalid_response")
RECORDS_JSONL = "records.jsonl"
RECORDS_PARQUET = "records.parquet"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What was sent and what came back. ``status`` is the HTTP code, 0 when no response came."""

    run_id: str
    target: str
    scenario: str
    request_id: str
    image_id: str | None
    t_start: float
    latency_s: float
    status: int
    outcome: str
    error: str | None = None
    caption: str | None = None
    confidence: float | None = None
    model_version: str | None = None
    image_bytes: int | None = None
    image_w: int | None = None
    image_h: int | None = None
    safety_flagged: bool | None = None
    embedding: list[float] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _line(row: dict[str, Any]) -> str:
    try:
        text = json.dumps(row, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:  # a NaN or infinity: JSON has no spelling for it, so it is stored as null
        text = json.dumps({k: _finite(v) for k, v in row.items()}, separators=(",", ":"), default=str)
    return text + "\n"


class RecordWriter:
    """Append-only JSONL store, thread- and greenlet-safe. Each record is one ``write`` to the
    file descriptor, so a killed process loses nothing it wrote; ``fsync=True`` also survives a
    machine crash, at a cost per record."""

    def __init__(self, path: str | Path, fsync: bool = False):
        path = Path(path)
        if path.suffix != ".jsonl":
            path = path / RECORDS_JSONL
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self._fsync = fsync
        self.count = 0

    def _write_bytes(self, data: bytes, n: int) -> None:
        with self._lock:
            if self._fd < 0:
                raise ValueError(f"{self.path}: record writer is closed")
            view = memoryview(data)
            while view:
                done = os.write(self._fd, view)
                view = view[done:]
            if self._fsync:
                os.fsync(self._fd)
            self.count += n

    def write(self, record: RequestRecord | dict) -> None:
        row = record.to_dict() if isinstance(record, RequestRecord) else dict(record)
        self._write_bytes(_line(row).encode("utf-8"), 1)

    def write_many(self, records: Iterable[RequestRecord | dict]) -> None:
        """Write several records with one system call (still whole lines, in order)."""
        lines = [_line(r.to_dict() if isinstance(r, RequestRecord) else dict(r)) for r in records]
        if lines:
            self._write_bytes("".join(lines).encode("utf-8"), len(lines))

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append lines that are already JSON records (as another process serialised them)."""
        chunk = [ln if ln.endswith("\n") else ln + "\n" for ln in lines]
        if chunk:
            self._write_bytes("".join(chunk).encode("utf-8"), len(chunk))

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a records file. A last line cut short by a killed run is dropped; a damaged line
    anywhere else is a ``DataError`` naming it."""
    path = Path(path)
    with open(path, "rb") as fh:
        data = fh.read()
    lines = data.split(b"\n")
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            if i == len(lines):  # no newline after it: the write was cut by the kill
                break
            raise DataError(f"{path}: line {i} is not valid JSON") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {i} is not a JSON object")
        rows.append(row)
    return rows


def _resolve(path: Path) -> Path:
    if path.is_dir():
        for name in (RECORDS_PARQUET, RECORDS_JSONL):
            if (path / name).exists():
                return path / name
        raise InputMissingError(f"{path}: no {RECORDS_PARQUET} or {RECORDS_JSONL} in this folder")
    if not path.exists():
        raise InputMissingError(f"{path}: records not found")
    return path


def load_records(path: str | Path):
    """Records as a pandas DataFrame with the columns of ``RequestRecord`` (in that order)."""
    import pandas as pd

    p = _resolve(Path(path))
    if p.suffix == ".parquet":
        try:
            df = pd.read_parquet(p)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{p}: unreadable parquet file ({type(exc).__name__})") from None
    elif p.suffix in (".jsonl", ".json"):
        df = pd.DataFrame(read_jsonl(p))
    else:
        raise DataError(f"{p}: records must be .jsonl or .parquet")
    for c in COLUMNS:
        if c not in df.columns:
            df[c] = None
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra]


def compact(folder: str | Path) -> Path:
    """Write ``records.parquet`` beside ``records.jsonl`` (which is kept, as the raw log)."""
    folder = Path(folder)
    src = folder / RECORDS_JSONL if folder.is_dir() else folder
    if not src.exists():
        raise InputMissingError(f"{src}: records not found")
    df = load_records(src)
    for col in df.columns:  # a column mixing numbers and text (ids) is stored as text
        if df[col].dtype == object:
            kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
            if len(kinds) > 1 and str in kinds:
                df[col] = df[col].map(lambda v: None if v is None else str(v))
    out = src.with_name(RECORDS_PARQUET)
    tmp = out.with_suffix(".parquet.tmp")
    df.to_parquet(tmp, index=False)
    os.replace(tmp, out)
    return out
