"""Writing records: one record as a JSON line (``record_line``), the append-only ``records.jsonl``
of a run (``RecordWriter``), its compaction to ``records.parquet`` at the end of a run
(``compact``), and a long-lived Hive-partitioned parquet dataset by day and target
(``write_dataset``).

A run appends records with plain writes to the operating system (each record at once, or gathered
for at most a fraction of a second), never fsync'd one by one: what the kernel holds survives the
process, so a run killed midway, even by SIGKILL, keeps every record written before.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Callable, Iterable

from harness.errors import DataError, InputMissingError
from harness.records.read import load_records
from harness.records.schema import COLUMNS, RECORDS_JSONL, RECORDS_PARQUET, RequestRecord
from harness.redaction import Redactor

__all__ = ["record_line", "RecordWriter", "PARTITIONS", "write_dataset", "compact"]


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


def record_line(row: dict[str, Any], redact: Redactor | None = None) -> str:
    """One record as a JSON line (non-finite numbers as null), as ``RecordWriter`` stores it; with
    ``redact``, every secret value it holds is replaced by ``[REDACTED]`` in each text field first
    (``harness.redaction``). Load runs write thousands a second: ``orjson`` encodes when it is
    installed (the ``load`` extra), and a row with exactly the record's columns takes a fast path
    otherwise."""
    if redact:
        row = redact.row(row)
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
    crash, at a cost per write.

    ``secrets``: the credential values of the run (``harness.redaction.credential_values``); each
    one is replaced by ``[REDACTED]`` in every text field of every record stored, whichever method
    wrote it (lines already encoded are decoded and encoded again where a secret is in them)."""

    def __init__(
        self,
        path: str | Path,
        fsync: bool = False,
        flush_interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        secrets: Iterable[str | None] = (),
    ):
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
        self._redact = Redactor(secrets)

    def _redacted(self, lines: list[str]) -> list[str]:
        """Lines already encoded (each ending in a newline); one that holds a secret is decoded,
        redacted and encoded again."""
        if not self._redact:
            return lines
        out = []
        for ln in lines:
            if self._redact.in_json(ln):
                try:
                    row = json.loads(ln)
                except ValueError:  # not a record: the secret's JSON spellings are replaced as text
                    ln = self._redact.json_text(ln)
                else:
                    ln = record_line(self._redact.row(row)) if isinstance(row, dict) else self._redact.json_text(ln)
            out.append(ln)
        return out

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
        self._add([record_line(row, self._redact)])

    def write_many(self, records: Iterable[RequestRecord | dict]) -> None:
        """Write several records with one system call (still whole lines, in order)."""
        lines = [record_line(r.to_dict() if isinstance(r, RequestRecord) else r, self._redact) for r in records]
        if lines:
            self._add(lines)

    def write_line(self, line: str) -> None:
        """Append one line that is already a JSON record ending in a newline (the hot path)."""
        if self._redact:
            (line,) = self._redacted([line])
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

    def write_text(self, text: str) -> None:
        """Append whole records already joined into one text (each line ending in a newline)."""
        if text and self._redact and self._redact.in_json(text):
            lines = text.split("\n")  # not splitlines: a JSON line may hold U+2028 and the like
            tail = lines.pop()
            text = "".join(self._redacted([ln + "\n" for ln in lines] + ([tail] if tail else [])))
        if text:
            with self._lock:
                self.count += text.count("\n")
                self._flush_locked()
                self._write_bytes(text.encode("utf-8"))

    def write_lines(self, lines: Iterable[str]) -> None:
        """Append lines that are already JSON records (as another process serialised them)."""
        chunk = self._redacted([ln if ln.endswith("\n") else ln + "\n" for ln in lines])
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


PARTITIONS: tuple[str, ...] = ("date", "target")


def write_dataset(records, folder: str | Path, part: str = "part-0") -> list[Path]:
    """Write records (a DataFrame or pyarrow Table with the record's columns) into a Hive-partitioned
    parquet dataset under ``folder``: one file ``<part>-<i>.parquet`` per day (UTC, of ``t_start``)
    and target, as ``date=2026-11-30/target=baseline/``, sorted by ``t_start`` so a time filter skips
    row groups. Files of another ``part`` already there are kept, so a dataset grows part by part."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    table = records if isinstance(records, pa.Table) else pa.Table.from_pandas(records, preserve_index=False)
    for name in ("t_start", "target"):
        if name not in table.column_names or table[name].null_count:
            raise DataError(f"every record of a partitioned dataset needs {name}")
    if "date" in table.column_names:
        table = table.drop_columns(["date"])
    seconds = pc.cast(table["t_start"], pa.float64())
    stamps = pc.cast(pc.cast(pc.floor(pc.multiply(seconds, 1000.0)), pa.int64()), pa.timestamp("ms", tz="UTC"))
    table = table.append_column("date", pc.strftime(stamps, format="%Y-%m-%d"))
    table = table.sort_by([("date", "ascending"), ("target", "ascending"), ("t_start", "ascending")])
    folder = Path(folder)
    written: list[Path] = []
    pads.write_dataset(
        table,
        folder,
        format="parquet",
        partitioning=list(PARTITIONS),
        partitioning_flavor="hive",
        basename_template=f"{part}-{{i}}.parquet",
        existing_data_behavior="overwrite_or_ignore",
        max_rows_per_group=256 * 1024,
        min_rows_per_group=64 * 1024,
        file_visitor=lambda f: written.append(Path(f.path)),
    )
    return written


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
