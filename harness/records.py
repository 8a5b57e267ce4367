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
import time
from dataclasses import dataclass, field, fields
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Callable, Iterable

from harness.errors import DataError, InputMissingError

__all__ = [
    "OUTCOMES",
    "RequestRecord",
    "RecordWriter",
    "RECORDS_JSONL",
    "RECORDS_PARQUET",
    "COLUMNS",
    "load_records",
    "check_types",
    "read_jsonl",
    "record_line",
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


try:  # optional: several times faster than the json module for records
    import orjson as _orjson

    _ORJSON_OPTS = _orjson.OPT_APPEND_NEWLINE | _orjson.OPT_SERIALIZE_NUMPY
except ImportError:  # pragma: no cover - the json module does the same, slower
    _orjson = None
    _ORJSON_OPTS = 0

_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str)
_TEMPLATE = "{" + ",".join(f'"{c}":%s' for c in COLUMNS) + "}\n"
_str = encode_basestring_ascii


def _value(v: Any) -> str:
    t = type(v)
    if t is str:
        return _str(v)
    if v is None:
        return "null"
    if t is float:
        return repr(v) if math.isfinite(v) else "null"
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return repr(v)
    try:
        return _ENCODER.encode(v)
    except ValueError:  # a NaN or infinity inside a list: stored as null
        return _ENCODER.encode(_finite(v))


def record_line(row: dict[str, Any]) -> str:
    """One record as a JSON line (non-finite numbers as null), as ``RecordWriter`` stores it.
    Load runs write thousands a second: ``orjson`` encodes when it is installed (the ``load``
    extra), and a row with exactly the record's columns takes a fast path otherwise."""
    if _orjson is not None:
        try:
            return _orjson.dumps(row, default=str, option=_ORJSON_OPTS).decode("utf-8")
        except TypeError:  # a key or value orjson refuses: the json module decides
            pass
    if len(row) == len(COLUMNS) and tuple(row) == COLUMNS:
        return _TEMPLATE % tuple(_value(v) for v in row.values())
    try:
        text = _ENCODER.encode(row)
    except ValueError:  # a NaN or infinity: JSON has no spelling for it, so it is stored as null
        text = _ENCODER.encode({k: _finite(v) for k, v in row.items()})
    return text + "\n"


class RecordWriter:
    """Append-only JSONL store, thread- and greenlet-safe.

    By default each record is one ``write`` to the file descriptor, so a killed process loses
    nothing it wrote. With ``flush_interval_s`` records are gathered in memory and written at
    most that long after they arrive (the caller also calls ``flush`` on a timer when records
    stop coming), so a SIGKILL loses at most that window. ``fsync=True`` also survives a machine
    crash, at a cost per write."""

    def __init__(self, path: str | Path, fsync: bool = False, flush_interval_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        path = Path(path)
        if path.suffix != ".jsonl":
            path = path / RECORDS_JSONL
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        self._fsync = fsync
        self.flush_interval_s = flush_interval_s
        self._clock = clock
        self._pending: list[str] = []
        self._oldest = 0.0
        self.count = 0

    def _write_bytes(self, data: bytes) -> None:
        if self._fd < 0:
            raise ValueError(f"{self.path}: record writer is closed")
        view = memoryview(data)
        while view:
            done = os.write(self._fd, view)
            view = view[done:]
        if self._fsync:
            os.fsync(self._fd)

    def _add(self, lines: list[str]) -> None:
        with self._lock:
            self.count += len(lines)
            if not self.flush_interval_s:
                self._write_bytes("".join(lines).encode("utf-8"))
                return
            if not self._pending:
                self._oldest = self._clock()
            self._pending.extend(lines)
            if self._clock() - self._oldest >= self.flush_interval_s:
                self._flush_locked()

    def _flush_locked(self) -> None:
        if self._pending:
            data, self._pending = "".join(self._pending).encode("utf-8"), []
            self._write_bytes(data)

    def flush(self) -> None:
        """Write the records gathered so far."""
        with self._lock:
            self._flush_locked()

    def write(self, record: RequestRecord | dict) -> None:
        row = record.to_dict() if isinstance(record, RequestRecord) else record
        self._add([record_line(row)])

    def write_many(self, records: Iterable[RequestRecord | dict]) -> None:
        """Write several records with one system call (still whole lines, in order)."""
        lines = [record_line(r.to_dict() if isinstance(r, RequestRecord) else r) for r in records]
        if lines:
            self._add(lines)

    def write_line(self, line: str) -> None:
        """Append one line that is already a JSON record ending in a newline (the hot path)."""
        with self._lock:
            self.count += 1
            if not self.flush_interval_s:
                self._write_bytes(line.encode("utf-8"))
                return
            if not self._pending:
                self._oldest = self._clock()
            self._pending.append(line)
            if self._clock() - self._oldest >= self.flush_interval_s:
                self._flush_locked()

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append lines that are already JSON records (as another process serialised them)."""
        chunk = [ln if ln.endswith("\n") else ln + "\n" for ln in lines]
        if chunk:
            self._add(chunk)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                self._flush_locked()
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
    loads = _orjson.loads if _orjson is not None else json.loads
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = loads(line)
        except (ValueError, UnicodeDecodeError):
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


# The kind of value each field holds (``None`` is allowed in every field but ``required`` ones).
_TEXT = ("run_id", "target", "scenario", "request_id", "outcome", "error", "caption", "model_version")
_REALS = ("t_start", "latency_s", "confidence")
_COUNTS = {"status": 999, "image_bytes": 2**53, "image_w": 2**31, "image_h": 2**31}  # field -> largest value


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _kinds() -> list[tuple[str, str, Callable[[Any], bool]]]:
    """(field, what it must be, test of one value)."""
    import numpy as np

    out: list[tuple[str, str, Callable[[Any], bool]]] = [(c, "text", lambda v: isinstance(v, str)) for c in _TEXT]
    out += [(c, "a finite number", _real) for c in _REALS]
    out += [(c, f"a whole number 0..{top}", lambda v, top=top: _real(v) and float(v).is_integer() and 0 <= v <= top)
            for c, top in _COUNTS.items()]
    out.append(("image_id", "text or a whole number", lambda v: isinstance(v, str) or (_real(v) and float(v).is_integer())))
    out.append(("safety_flagged", "true or false", lambda v: isinstance(v, (bool, np.bool_))))
    out.append(("embedding", "a list of numbers", lambda v: isinstance(v, (list, tuple, np.ndarray))))
    return out


def check_types(df, source: str, required: Iterable[str] = ()) -> None:
    """Refuse records whose fields do not hold the record's kinds of value (finite numbers, whole
    counts in range, text, true or false) or lack a ``required`` field: one ``DataError`` line naming
    the field, so that a hand-made or damaged file never reaches the arithmetic."""
    import pandas as pd

    n = len(df)
    for name in required:
        missing = n - int(df[name].notna().sum()) if name in df.columns else n
        if missing:
            raise DataError(f"{source}: {missing} of {n} records lack {name}")
    for name, kind, ok in _kinds():
        if name not in df.columns:
            continue
        col = df[name].dropna()
        # A column of numbers or booleans is checked by its distinct values, any other value by value.
        values = pd.unique(col) if col.dtype.kind in "iufb" else col.tolist()
        bad = [v for v in (x.item() if hasattr(x, "item") else x for x in values) if not ok(v)]
        if bad:
            raise DataError(f"{source}: records whose {name} is not {kind}, e.g. {bad[0]!r:.60}")


def compact(folder: str | Path, df=None) -> Path:
    """Write ``records.parquet`` beside ``records.jsonl`` (which is kept, as the raw log); ``df``
    is the records already loaded from it, if the caller has them."""
    folder = Path(folder)
    src = folder / RECORDS_JSONL if folder.is_dir() else folder
    if not src.exists():
        raise InputMissingError(f"{src}: records not found")
    df = load_records(src) if df is None else df.copy()
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
