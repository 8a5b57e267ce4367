"""Records from a service's own logs: a small YAML column mapping turns JSONL, CSV or parquet rows
into request records, which the data contract then checks row by row.

A row that cannot become a record (unparsable line, a value of the wrong kind, a required field
missing) or that breaks a row rule of the record contract (``harness.records.contract``) is rejected
with its line (JSONL, CSV) or row (parquet) number and the reason; every other row is imported.
When more rows are rejected than ``max_rejected`` allows, nothing is written but the rejections:
a mapping that does not fit the log fails loudly instead of importing what happened to parse.
The source is read ``CHUNK_ROWS`` rows at a time, so memory holds one chunk and the request ids
seen so far, whatever the log's length; the records move into place once the whole log is accepted.

Mapping file::

    columns:            # source column -> record field (harness.records.COLUMNS)
      ts: t_start
      duration_ms: latency_s
      code: status
      id: request_id
      text: caption
    time_format: iso8601      # how t_start is written: unix (seconds, the default), unix_ms,
                              # unix_us, iso8601, or a strptime pattern such as "%d/%b/%Y:%H:%M:%S %z"
    units: {latency_s: ms}    # latency_s given in s (default), ms or us
    constants: {target: production, run_id: import-2026-11, scenario: traffic}
    values: {outcome: {success: ok, failed: http_error}}   # map a field's source values

Without an ``outcome`` column or constant, the outcome follows the status: 2xx is ok, 0 a
connection error, any other code an HTTP error.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from harness.errors import DataError, InputMissingError, UsageError
from harness.records.schema import COLUMNS, OUTCOMES, REQUIRED, arrow_schema, fields_of
from harness.records.write import PARTITIONS, RecordWriter, record_line, write_dataset
from harness.safe_yaml import load_yaml

__all__ = [
    "CHUNK_ROWS",
    "ColumnMapping",
    "Rejection",
    "ImportResult",
    "load_mapping",
    "read_rows",
    "to_records",
    "import_log",
    "REJECTED_JSONL",
    "FORMATS",
]

log = logging.getLogger(__name__)

REJECTED_JSONL = "rejected.jsonl"
FORMATS = ("jsonl", "csv", "parquet")
TIME_FORMATS = ("unix", "unix_ms", "unix_us", "iso8601")
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
_TEXT = fields_of("text") + fields_of("id")  # an imported id is kept as text
_REAL = fields_of("real")
_WHOLE = fields_of("count")
_VECTOR = fields_of("vector")
_RAW_LIMIT = 2000
CHUNK_ROWS = 100_000  # source rows read, converted and checked at a time
_KEPT_REJECTIONS = 1000  # rejections an ImportResult holds; rejected.jsonl has all of them
_UNIQUE_RULE = "request_id unique per target"  # the data contract's name for the repeat rule
_NO_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # a partition folder's value where there is none (Hive's, pyarrow's)
_NAME_MAX = 255  # bytes in a file or folder name (ext4, XFS, APFS, NTFS)


@dataclass(frozen=True)
class ColumnMapping:
    """How one service's log rows become request records (see the module's docstring)."""

    columns: Mapping[str, str]
    time_format: str = "unix"
    units: Mapping[str, str] = field(default_factory=dict)
    constants: Mapping[str, Any] = field(default_factory=dict)
    values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    format: str | None = None

    def __post_init__(self) -> None:
        where = "mapping"
        if not self.columns or not all(isinstance(k, str) and isinstance(v, str) for k, v in self.columns.items()):
            raise DataError(f"{where}: 'columns' must map source column names to record fields")
        for name in [*self.columns.values(), *self.constants, *self.values, *self.units]:
            if name not in COLUMNS:
                raise DataError(f"{where}: {name!r} is not a record field (one of {', '.join(COLUMNS)})")
        fields = list(self.columns.values())
        twice = sorted({f for f in fields if fields.count(f) > 1} | (set(fields) & set(self.constants)))
        if twice:
            raise DataError(f"{where}: {', '.join(twice)} is given more than once (columns and constants)")
        for name, unit in self.units.items():
            if name != "latency_s" or unit not in _UNIT_SECONDS:
                raise DataError(f"{where}: units: only latency_s takes a unit, one of s, ms, us (got {name}: {unit})")
        if self.time_format not in TIME_FORMATS and "%" not in self.time_format:
            raise DataError(
                f"{where}: time_format must be one of {', '.join(TIME_FORMATS)} or a strptime "
                f"pattern (got {self.time_format!r})"
            )
        for name, table in self.values.items():
            if not isinstance(table, Mapping):
                raise DataError(f"{where}: values.{name} must map source values to record values")
        if self.format is not None and self.format not in FORMATS:
            raise DataError(f"{where}: format must be one of {', '.join(FORMATS)} (got {self.format!r})")
        have = set(fields) | set(self.constants)
        missing = [c for c in REQUIRED if c not in have and c != "outcome"]
        if "outcome" not in have and "status" not in have:
            missing.append("outcome")
        if missing:
            raise DataError(f"{where}: no column or constant gives {', '.join(missing)} (records need it)")


def _mapping_file():
    """The mapping file's model: its sections and their types (the rules between them are
    ``ColumnMapping``'s, which a mapping built in code passes too)."""
    from typing import Any as _Any

    from pydantic import Field

    from harness.validation import Strict

    class MappingFile(Strict):
        columns: dict[str | int, str] = Field(default_factory=dict)
        time_format: str = "unix"
        units: dict[str, str] = Field(default_factory=dict)
        constants: dict[str, _Any] = Field(default_factory=dict)
        values: dict[str, dict[_Any, _Any]] = Field(default_factory=dict)
        format: str | None = None

    return MappingFile


def load_mapping(path: str | Path) -> ColumnMapping:
    """A ``ColumnMapping`` from a YAML file; a malformed one is a ``DataError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputMissingError(f"{path}: mapping file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a YAML file ({type(exc).__name__})") from None
    data = load_yaml(text, str(path))
    if not isinstance(data, dict):
        raise DataError(f"{path}: a mapping file is a YAML mapping with a 'columns' section")
    from pydantic import ValidationError

    from harness.validation import first_error

    try:
        f = _mapping_file().model_validate(data)
    except ValidationError as exc:
        raise DataError(f"{path}: {first_error(exc)}") from None
    try:
        return ColumnMapping(
            columns={str(k): v for k, v in f.columns.items()},
            time_format=f.time_format,
            units=dict(f.units),
            constants=dict(f.constants),
            values={k: dict(v) for k, v in f.values.items()},
            format=f.format,
        )
    except DataError as exc:
        raise DataError(f"{path}: {str(exc).removeprefix('mapping: ')}") from None


@dataclass(frozen=True)
class Rejection:
    """A source row that was not imported: where it was (line or row number), why, and what it held."""

    where: str  # "line" (JSONL, CSV) or "row" (parquet)
    number: int
    reason: str
    raw: str

    def to_dict(self, source: str) -> dict[str, Any]:
        return {"source": source, self.where: self.number, "reason": self.reason, "raw": self.raw}

    def describe(self, source: str) -> str:
        return f"{source}: {self.where} {self.number}: {self.reason}"


@dataclass(frozen=True)
class ImportResult:
    """What an import did: records written (0 when refused), rejections (the first
    ``_KEPT_REJECTIONS`` of ``rejected_count``; all of them are in ``rejected_path``), and the files
    written."""

    source: str
    rows: int
    imported: int
    rejected: tuple[Rejection, ...]
    written: tuple[Path, ...]
    rejected_path: Path | None
    refused: bool
    rejected_count: int


def _raw(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text[:_RAW_LIMIT]


def _format(path: Path, mapping: ColumnMapping, fmt: str | None) -> str:
    fmt = fmt or mapping.format
    if fmt is None:
        suffix = path.suffix.lower().lstrip(".")
        fmt = {"json": "jsonl", "ndjson": "jsonl", "tsv": "csv"}.get(suffix, suffix)
    if fmt not in FORMATS:
        raise UsageError(f"{path}: cannot tell the log's format from its name; give --format ({', '.join(FORMATS)})")
    return fmt


def _where(fmt: str) -> str:
    return "row" if fmt == "parquet" else "line"


def _chunks(path: Path, fmt: str, chunk_rows: int) -> Iterator[tuple[list[tuple[int, Any]], list[Rejection]]]:
    """The source's rows in chunks of at most ``chunk_rows`` (read or not, blank lines aside): each
    chunk's rows as (number, row dict) and the rows that could not be read at all."""
    if fmt == "parquet":
        yield from _parquet_chunks(path, chunk_rows)
    elif fmt == "jsonl":
        yield from _jsonl_chunks(path, chunk_rows)
    else:
        yield from _csv_chunks(path, chunk_rows)


def _parquet_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[list[tuple[int, Any]], list[Rejection]]]:
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: unreadable parquet file ({type(exc).__name__})") from None
    number = 0
    while True:
        try:
            batch = next(batches, None)
        except Exception as exc:
            raise DataError(f"{path}: unreadable parquet file ({type(exc).__name__})") from None
        if batch is None:
            return
        rows = batch.to_pylist()
        if rows:
            yield list(enumerate(rows, number + 1)), []
        number += len(rows)


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[list[tuple[int, Any]], list[Rejection]]]:
    rows: list[tuple[int, Any]] = []
    bad: list[Rejection] = []
    with open(path, "rb") as fh:
        for i, line in enumerate(fh, 1):
            if line.endswith(b"\n"):
                line = line[:-1]
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                bad.append(Rejection("line", i, "not valid JSON", line.decode("utf-8", "replace")[:_RAW_LIMIT]))
            else:
                if isinstance(row, dict):
                    rows.append((i, row))
                else:
                    bad.append(Rejection("line", i, "not a JSON object", _raw(row)))
            if len(rows) + len(bad) >= chunk_rows:
                yield rows, bad
                rows, bad = [], []
    if rows or bad:
        yield rows, bad


def _csv_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[list[tuple[int, Any]], list[Rejection]]]:
    rows: list[tuple[int, Any]] = []
    bad: list[Rejection] = []
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, dialect)
        try:
            header = next(reader, None)
            if not header:
                raise DataError(f"{path}: the CSV log has no header line")
            for values in reader:
                line = reader.line_num
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    reason = f"{len(values)} fields where the header has {len(header)}"
                    bad.append(Rejection("line", line, reason, _raw(",".join(values))))
                else:
                    rows.append((line, {k: (v if v != "" else None) for k, v in zip(header, values)}))
                if len(rows) + len(bad) >= chunk_rows:
                    yield rows, bad
                    rows, bad = [], []
        except UnicodeDecodeError:
            raise DataError(f"{path}: a CSV log must be UTF-8 text") from None
        except csv.Error as exc:
            raise DataError(f"{path}: line {reader.line_num}: not readable as CSV ({exc})") from None
    if rows or bad:
        yield rows, bad


def read_rows(path: str | Path, fmt: str) -> tuple[list[tuple[int, Any]], list[Rejection], str]:
    """The source's rows as (number, row dict) and the rows that could not be read at all, with the
    word their numbers count in ("line" or "row"). All of them at once: ``import_log`` reads the
    source chunk by chunk instead."""
    path = Path(path)
    if not path.is_file():
        raise InputMissingError(f"{path}: log not found")
    rows: list[tuple[int, Any]] = []
    bad: list[Rejection] = []
    for chunk, unreadable in _chunks(path, fmt, CHUNK_ROWS):
        rows += chunk
        bad += unreadable
    return rows, bad, _where(fmt)


# -- one row to one record ---------------------------------------------------------------------------


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _number(v: Any, name: str) -> float:
    if isinstance(v, bool):
        raise ValueError(f"{name}: {v!r} is not a number")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {_raw(v)[:60]!r} is not a number") from None
    if not math.isfinite(x):
        raise ValueError(f"{name}: {v!r} is not a finite number")
    return x


def _time(v: Any, time_format: str) -> float:
    from datetime import datetime, timezone

    if time_format in ("unix", "unix_ms", "unix_us"):
        scale = {"unix": 1.0, "unix_ms": 1e-3, "unix_us": 1e-6}[time_format]
        return _number(v, "t_start") * scale
    if not isinstance(v, str):
        raise ValueError(f"t_start: {_raw(v)[:60]!r} is not a time in {time_format}")
    try:
        if time_format == "iso8601":
            from harness.times import parse_instant

            return parse_instant(v, numbers=False)
        dt = datetime.strptime(v.strip(), time_format)
    except ValueError:
        raise ValueError(f"t_start: {v[:60]!r} is not a time in {time_format}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _flag(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return v.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"safety_flagged: {_raw(v)[:60]!r} is not true or false")


def _vector(v: Any, name: str = "embedding") -> list[float]:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise ValueError(f"{name}: not a JSON list of numbers") from None
    if not isinstance(v, (list, tuple)) or (not v and name == "embedding"):
        raise ValueError(f"{name}: not a list of numbers")
    return [_number(x, name) for x in v]


def _convert(name: str, v: Any, mapping: ColumnMapping) -> Any:
    if name == "t_start":
        return _time(v, mapping.time_format)
    if name == "latency_s":
        return _number(v, name) * _UNIT_SECONDS[mapping.units.get(name, "s")]
    if name in _REAL:
        return _number(v, name)
    if name in _WHOLE:
        x = _number(v, name)
        if not x.is_integer():
            raise ValueError(f"{name}: {v!r} is not a whole number")
        return int(x)
    if name == "safety_flagged":
        return _flag(v)
    if name in _VECTOR:
        return _vector(v, name)
    if isinstance(v, (dict, list)):
        raise ValueError(f"{name}: expected text, got a JSON {type(v).__name__}")
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return str(v)


def _record(row: Mapping[str, Any], mapping: ColumnMapping) -> dict[str, Any]:
    rec: dict[str, Any] = {c: None for c in COLUMNS}
    for name, value in mapping.constants.items():
        rec[name] = _convert(name, value, mapping)
    for src, name in mapping.columns.items():
        value = row.get(src)
        if _missing(value):
            continue
        table = mapping.values.get(name)
        if table is not None and str(value) in {str(k) for k in table}:
            value = {str(k): x for k, x in table.items()}[str(value)]
        rec[name] = _convert(name, value, mapping)
    if rec["outcome"] is None and rec["status"] is not None and "outcome" not in mapping.columns.values():
        s = rec["status"]
        rec["outcome"] = "ok" if 200 <= s < 300 else "connection_error" if s == 0 else "http_error"
    if rec["outcome"] is not None and rec["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome: {rec['outcome'][:60]!r} is not one of {', '.join(OUTCOMES)}")
    absent = [c for c in REQUIRED if rec[c] is None]
    if absent:
        raise ValueError(f"no {', '.join(absent)}")
    return rec


def to_records(
    rows: list[tuple[int, Any]], mapping: ColumnMapping, where: str
) -> tuple[list[tuple[int, dict]], list[Rejection]]:
    """Each source row as a record dict, or its rejection (the first value that did not fit)."""
    out, bad = [], []
    for number, row in rows:
        try:
            out.append((number, _record(row, mapping)))
        except ValueError as exc:
            bad.append(Rejection(where, number, str(exc), _raw(row)))
    return out, bad


def _target_folder_problem(target: str) -> str | None:
    """Why ``target`` cannot name its folder in a partitioned dataset (``target=VALUE``, the value
    percent-encoded as pyarrow writes it), or None: a NUL ends a path at the OS, so the records would
    land in another target's folder; a name longer than a folder name may be is refused by the OS."""
    from urllib.parse import quote

    if "\0" in target:
        return "holds a NUL character, which no folder name can"
    size = len(f"target={quote(target, safe='')}".encode())
    if size > _NAME_MAX:
        return f"is too long to name a dataset folder (target=... takes {size} bytes, at most {_NAME_MAX})"
    return None


def _partitionable(
    records: list[tuple[int, dict]], where: str, raw: dict[int, Any]
) -> tuple[list[tuple[int, dict]], list[Rejection]]:
    """The records whose target can name a folder of a partitioned dataset, and the rejections of the rest."""
    keep, bad = [], []
    for number, rec in records:
        problem = _target_folder_problem(rec["target"])
        if problem is None:
            keep.append((number, rec))
        else:
            bad.append(Rejection(where, number, f"target: {rec['target'][:60]!r} {problem}", _raw(raw[number])))
    return keep, bad


def _contract(
    records: list[tuple[int, dict]],
    where: str,
    raw: dict[int, Any],
    seen: dict[str, set[str]] | None = None,
) -> tuple[list[tuple[int, dict]], list[Rejection]]:
    """The record contract's row rules over the converted records: rows that break one are rejected
    with the rule's name; of records that repeat a (target, request_id), the first is kept. ``seen``
    holds the request ids of earlier chunks of the same source, by target: a record repeating one
    of them is a repeat too, and this chunk's ids are added to it."""
    import pandas as pd

    from harness.records.contract import RecordContract, row_failures

    if not records:
        return [], []
    df = pd.DataFrame([r for _, r in records], columns=list(COLUMNS))
    failed = row_failures(df, RecordContract(service=False))
    if seen is not None:
        for i, (_, rec) in enumerate(records):
            if rec["request_id"] in seen.get(rec["target"], ()):
                rules = failed.setdefault(i, [])
                if _UNIQUE_RULE not in rules:
                    rules.append(_UNIQUE_RULE)  # the suite's last rule: the order its names are listed in
        for _, rec in records:
            seen.setdefault(rec["target"], set()).add(rec["request_id"])
    bad = []
    for i, rules in sorted(failed.items()):
        number = records[i][0]
        bad.append(Rejection(where, number, "breaks the record contract: " + "; ".join(rules), _raw(raw[number])))
    keep = [rec for i, rec in enumerate(records) if i not in failed]
    return keep, bad


def _limit(max_rejected: str | float | int, rows: int) -> int:
    text = str(max_rejected).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100.0
            if not 0.0 <= share <= 1.0:
                raise ValueError
            return math.floor(share * rows + 1e-9)
        count = float(text)
        if count < 0 or not count.is_integer():
            raise ValueError
        return int(count)
    except ValueError:
        raise UsageError(
            f"--max-rejected takes a count (5) or a share of the rows (1%), got {max_rejected!r}"
        ) from None


class _Staging:
    """Where an import's records go until the import is accepted: a temporary file beside a
    ``.jsonl`` or ``.parquet`` output, or a hidden folder beside a dataset, whose files move into
    the dataset only once every chunk has been written and the rejections counted."""

    def __init__(self, out: Path, stem: str):
        self.out, self.stem = out, stem
        self.kind = out.suffix if out.suffix in (".jsonl", ".parquet") else "dataset"
        self.chunks = 0
        self.tmp: Path | None = None
        self._writer: Any = None
        self._schema: Any = None

    def _staged_path(self) -> Path:
        """The hidden file (or, for a dataset, folder) beside the output that stages its records: its
        name holds at most 50 characters of the output's and a digest of the source's name, so it
        stays within the length of a name whatever theirs."""
        import hashlib

        base = self.out.resolve() if self.kind == "dataset" else self.out
        name = base.stem[:50] if self.kind != "dataset" else base.name[:50]
        source = hashlib.sha1(self.stem.encode("utf-8", "surrogatepass")).hexdigest()[:12]
        ending = {".jsonl": "importing.jsonl", ".parquet": "importing.parquet.tmp"}.get(self.kind, "import")
        return base.parent / f".{name}.{source}.{os.getpid()}.{ending}"

    def write(self, records: list[dict]) -> None:
        if not records:
            return
        if self.kind == ".jsonl":
            if self._writer is None:
                self.tmp = self._staged_path()
                self._writer = RecordWriter(self.tmp)
            self._writer.write_lines([record_line(r) for r in records])
            self.chunks += 1
            return
        import pyarrow as pa

        if self._schema is None:
            self._schema = arrow_schema()
        try:
            table = pa.Table.from_pylist(records, schema=self._schema)
        except (pa.ArrowInvalid, OverflowError) as exc:
            raise DataError(f"{self.out}: records not storable as parquet ({str(exc).splitlines()[0][:160]})") from None
        if self.kind == ".parquet":
            import pyarrow.parquet as pq

            if self._writer is None:
                self.out.parent.mkdir(parents=True, exist_ok=True)
                self.tmp = self._staged_path()
                self._writer = pq.ParquetWriter(self.tmp, self._schema)
            self._writer.write_table(table)
        else:
            if self.tmp is None:
                self.tmp = self._staged_path()
                shutil.rmtree(self.tmp, ignore_errors=True)
            write_dataset(table, self.tmp, part=f"c{self.chunks:05d}")
        self.chunks += 1

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def commit(self) -> tuple[Path, ...]:
        """Move the staged records into place: the files that now hold them. An import of no records
        stages an empty output all the same (``_stage_none``), so that it, too, leaves what it says it
        imported into and replaces what an earlier import of the source left there."""
        self._close()
        if self.tmp is None:
            self._stage_none()
        tmp, self.tmp = self.tmp, None
        if self.kind == ".jsonl":
            if self.out.exists():
                tmp.unlink()
                raise UsageError(f"{self.out} appeared during the import: import into a new file or a folder")
            tmp.rename(self.out)
            return (self.out,)
        if self.kind == ".parquet":
            tmp.replace(self.out)
            return (self.out,)
        try:
            return self._move_into_dataset(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _stage_none(self) -> None:
        """Stage an output of no records: an empty ``.jsonl``, a ``.parquet`` of no rows, or for a
        dataset one file of no rows in the partition of no date and no target (Hive's
        ``__HIVE_DEFAULT_PARTITION__``, the name readers take for a missing value), so that the
        dataset is one its readers open and find empty."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        empty = pa.Table.from_pylist([], schema=arrow_schema())
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self._staged_path()
        if self.kind == ".jsonl":
            self.tmp.write_bytes(b"")
        elif self.kind == ".parquet":
            pq.write_table(empty, self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
            none = "/".join(f"{name}={_NO_PARTITION}" for name in PARTITIONS)
            (self.tmp / none).mkdir(parents=True)
            pq.write_table(empty, self.tmp / none / "c00000-0.parquet")
            self.chunks = 1

    def _move_into_dataset(self, staged: Path) -> tuple[Path, ...]:
        earlier = re.compile(rf"import-{re.escape(self.stem)}-(?:c\d+-)?\d+\.parquet")
        if self.out.is_dir():
            for old in self.out.rglob("*.parquet"):
                if earlier.fullmatch(old.name) and old.is_file():
                    old.unlink()
        written = []
        for f in sorted(staged.rglob("*.parquet")):
            chunk, i = re.fullmatch(r"(c\d+)-(\d+)\.parquet", f.name).groups()
            name = f"import-{self.stem}-{i}.parquet" if self.chunks == 1 else f"import-{self.stem}-{chunk}-{i}.parquet"
            dest = self.out / f.parent.relative_to(staged) / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(f, dest)
            written.append(dest)
        return tuple(written)

    def discard(self) -> None:
        """Remove whatever was staged (a refused or failed import)."""
        try:
            self._close()
        finally:
            if self.tmp is not None:
                if self.tmp.is_dir():
                    shutil.rmtree(self.tmp, ignore_errors=True)
                else:
                    self.tmp.unlink(missing_ok=True)
                self.tmp = None


class _Rejections:
    """The rejections of an import, written to a temporary file as they are found (in source order)
    and renamed to ``rejected.jsonl`` at the end; the first ``_KEPT_REJECTIONS`` also kept in memory."""

    def __init__(self, folder: Path, source: Path):
        self.path = folder / REJECTED_JSONL
        self.tmp = folder / f".{REJECTED_JSONL}.{os.getpid()}.tmp"
        self.source = str(source)
        self.count = 0
        self.first: list[Rejection] = []
        self._fh: Any = None

    def add(self, rejections: list[Rejection]) -> None:
        for r in rejections:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(self.tmp, "w", encoding="utf-8")
            self._fh.write(json.dumps(r.to_dict(self.source), ensure_ascii=False) + "\n")
            if len(self.first) < _KEPT_REJECTIONS:
                self.first.append(r)
            self.count += 1

    def finish(self) -> Path | None:
        """``rejected.jsonl`` in place (None when nothing was rejected)."""
        if self._fh is None:
            return None
        self._fh.close()
        self._fh = None
        self.tmp.replace(self.path)
        return self.path

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            self.tmp.unlink(missing_ok=True)


def import_log(
    source: str | Path,
    mapping: ColumnMapping,
    out: str | Path,
    *,
    fmt: str | None = None,
    max_rejected: str | float | int = "1%",
    chunk_rows: int = CHUNK_ROWS,
) -> ImportResult:
    """Import ``source`` into ``out`` (a ``.jsonl`` or ``.parquet`` file, or a folder: a partitioned
    dataset by day and target, the source's records in files named for it, which an import of the
    same source replaces). Rejections go to ``rejected.jsonl`` beside the output. More than
    ``max_rejected`` (a count, or a share such as ``"1%"`` of all rows) refuses the import: nothing
    but the rejections is written.

    The source is read ``chunk_rows`` rows at a time, each chunk converted, checked and staged
    before the next is read: memory holds one chunk and the request ids seen so far. The staged
    records move into place only when the whole source is accepted."""
    source, out = Path(source), Path(out)
    kind = _format(source, mapping, fmt)
    if out.suffix == ".jsonl" and out.exists():
        raise UsageError(f"{out} exists and a records file is only appended to: import into a new file or a folder")
    if not source.is_file():
        raise InputMissingError(f"{source}: log not found")
    _limit(max_rejected, 0)  # a malformed limit is refused before the source is read
    if int(chunk_rows) < 1:
        raise UsageError(f"chunks hold at least one row (got {chunk_rows})")
    # a count (not a share) is known from the start: once passed, the records need not be staged
    fixed = None if str(max_rejected).strip().endswith("%") else _limit(max_rejected, 0)
    where = _where(kind)
    folder = out.parent if out.suffix in (".jsonl", ".parquet") else out
    staging = _Staging(out, source.stem)
    longest = f"import-{source.stem}-c00000-0.parquet"  # the name of a file of the source in a dataset
    if staging.kind == "dataset" and len(longest.encode("utf-8", "surrogatepass")) > _NAME_MAX:
        raise UsageError(
            f"{source}: the log's name is too long to name its files in a dataset ({longest[:40]}... is over "
            f"{_NAME_MAX} bytes); rename it, or import into a .parquet or .jsonl file"
        )
    rejections = _Rejections(folder, source)
    seen: dict[str, set[str]] = {}
    rows = imported = 0
    try:
        for chunk, unreadable in _chunks(source, kind, int(chunk_rows)):
            rows += len(chunk) + len(unreadable)
            raw = dict(chunk)
            converted, unfit = to_records(chunk, mapping, where)
            if staging.kind == "dataset":  # the target names a folder of the dataset
                converted, unnamed = _partitionable(converted, where, raw)
                unfit += unnamed
            kept, broken = _contract(converted, where, raw, seen)
            rejections.add(sorted(unreadable + unfit + broken, key=lambda r: r.number))
            imported += len(kept)
            if fixed is None or rejections.count <= fixed:
                staging.write([r for _, r in kept])
            del chunk, raw, converted, kept
        refused = rejections.count > _limit(max_rejected, rows)
        rejected_path = rejections.finish()
        written = () if refused else staging.commit()
    finally:
        staging.discard()
        rejections.discard()
    return ImportResult(
        str(source),
        rows,
        0 if refused else imported,
        tuple(rejections.first),
        written,
        rejected_path,
        refused,
        rejections.count,
    )
