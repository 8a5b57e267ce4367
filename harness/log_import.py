"""Records from a service's own logs: a small YAML column mapping turns JSONL, CSV or parquet rows
into request records, which the data contract then checks row by row.

A row that cannot become a record (unparsable line, a value of the wrong kind, a required field
missing) or that breaks a row rule of the record contract (``harness.expectations``) is rejected
with its line (JSONL, CSV) or row (parquet) number and the reason; every other row is imported.
When more rows are rejected than ``max_rejected`` allows, nothing is written but the rejections:
a mapping that does not fit the log fails loudly instead of importing what happened to parse.

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
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from harness.errors import DataError, InputMissingError, UsageError
from harness.records import COLUMNS, OUTCOMES, RecordWriter, record_line, write_dataset

__all__ = [
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
_TEXT = ("run_id", "target", "scenario", "request_id", "image_id", "outcome", "error", "caption", "model_version")
_REAL = ("t_start", "latency_s", "confidence")
_WHOLE = ("status", "image_bytes", "image_w", "image_h")
_REQUIRED = ("run_id", "target", "request_id", "t_start", "latency_s", "status", "outcome")
_KEYS = ("columns", "time_format", "units", "constants", "values", "format")
_RAW_LIMIT = 2000


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
        missing = [c for c in _REQUIRED if c not in have and c != "outcome"]
        if "outcome" not in have and "status" not in have:
            missing.append("outcome")
        if missing:
            raise DataError(f"{where}: no column or constant gives {', '.join(missing)} (records need it)")


def load_mapping(path: str | Path) -> ColumnMapping:
    """A ``ColumnMapping`` from a YAML file; a malformed one is a ``DataError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputMissingError(f"{path}: mapping file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a YAML file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: a mapping file is a YAML mapping with a 'columns' section")
    unknown = [k for k in data if k not in _KEYS]
    if unknown:
        raise DataError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    for key in ("columns", "units", "constants", "values"):
        if key in data and not isinstance(data[key], dict):
            raise DataError(f"{path}: {key!r} must be a mapping")
    try:
        return ColumnMapping(
            columns={str(k): v for k, v in (data.get("columns") or {}).items()},
            time_format=str(data.get("time_format", "unix")),
            units=data.get("units") or {},
            constants=data.get("constants") or {},
            values=data.get("values") or {},
            format=data.get("format"),
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
    """What an import did: records written (0 when refused), rejections, and the files written."""

    source: str
    rows: int
    imported: int
    rejected: tuple[Rejection, ...]
    written: tuple[Path, ...]
    rejected_path: Path | None
    refused: bool


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


def read_rows(path: str | Path, fmt: str) -> tuple[list[tuple[int, Any]], list[Rejection], str]:
    """The source's rows as (number, row dict) and the rows that could not be read at all, with the
    word their numbers count in ("line" or "row")."""
    path = Path(path)
    if not path.is_file():
        raise InputMissingError(f"{path}: log not found")
    rows: list[tuple[int, Any]] = []
    bad: list[Rejection] = []
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise DataError(f"{path}: unreadable parquet file ({type(exc).__name__})") from None
        return list(enumerate(table.to_pylist(), 1)), bad, "row"
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if fmt == "jsonl":
        for i, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                bad.append(Rejection("line", i, "not valid JSON", line.decode("utf-8", "replace")[:_RAW_LIMIT]))
                continue
            if not isinstance(row, dict):
                bad.append(Rejection("line", i, "not a JSON object", _raw(row)))
                continue
            rows.append((i, row))
        return rows, bad, "line"
    if text is None:
        raise DataError(f"{path}: a CSV log must be UTF-8 text")
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    header = next(reader, None)
    if not header:
        raise DataError(f"{path}: the CSV log has no header line")
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            bad.append(
                Rejection(
                    "line", line, f"{len(values)} fields where the header has {len(header)}", _raw(",".join(values))
                )
            )
            continue
        rows.append((line, {k: (v if v != "" else None) for k, v in zip(header, values)}))
    return rows, bad, "line"


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
            dt = datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        else:
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


def _vector(v: Any) -> list[float]:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            raise ValueError("embedding: not a JSON list of numbers") from None
    if not isinstance(v, (list, tuple)) or not v:
        raise ValueError("embedding: not a list of numbers")
    return [_number(x, "embedding") for x in v]


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
    if name == "embedding":
        return _vector(v)
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
    absent = [c for c in _REQUIRED if rec[c] is None]
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


def _contract(
    records: list[tuple[int, dict]], where: str, raw: dict[int, Any]
) -> tuple[list[tuple[int, dict]], list[Rejection]]:
    """The record contract's row rules over the converted records: rows that break one are rejected
    with the rule's name; of records that repeat a (target, request_id), the first is kept."""
    import pandas as pd

    from harness.expectations import RecordContract, row_failures

    if not records:
        return [], []
    df = pd.DataFrame([r for _, r in records], columns=list(COLUMNS))
    failed = row_failures(df, RecordContract(service=False))
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


def _write(records: list[dict], out: Path, part: str) -> tuple[Path, ...]:
    import pandas as pd

    if out.suffix == ".jsonl":
        with RecordWriter(out) as w:
            w.write_lines([record_line(r) for r in records])
        return (out,)
    df = pd.DataFrame(records, columns=list(COLUMNS))
    if out.suffix == ".parquet":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".parquet.tmp")
        df.to_parquet(tmp, index=False)
        tmp.replace(out)
        return (out,)
    return tuple(write_dataset(df, out, part=part))


def import_log(
    source: str | Path,
    mapping: ColumnMapping,
    out: str | Path,
    *,
    fmt: str | None = None,
    max_rejected: str | float | int = "1%",
) -> ImportResult:
    """Import ``source`` into ``out`` (a ``.jsonl`` or ``.parquet`` file, or a folder: a partitioned
    dataset by day and target, the source's records in files named for it). Rejections go to
    ``rejected.jsonl`` beside the output. More than ``max_rejected`` (a count, or a share such as
    ``"1%"``) refuses the import: nothing but the rejections is written."""
    source, out = Path(source), Path(out)
    kind = _format(source, mapping, fmt)
    if out.suffix == ".jsonl" and out.exists():
        raise UsageError(f"{out} exists and a records file is only appended to: import into a new file or a folder")
    rows, unreadable, where = read_rows(source, kind)
    limit = _limit(max_rejected, len(rows) + len(unreadable))
    converted, unfit = to_records(rows, mapping, where)
    raw = dict(rows)
    kept, broken = _contract(converted, where, raw)
    rejected = tuple(sorted(unreadable + unfit + broken, key=lambda r: r.number))
    refused = len(rejected) > limit
    folder = out.parent if out.suffix in (".jsonl", ".parquet") else out
    rejected_path = None
    if rejected:
        folder.mkdir(parents=True, exist_ok=True)
        rejected_path = folder / REJECTED_JSONL
        with open(rejected_path, "w", encoding="utf-8") as fh:
            for r in rejected:
                fh.write(json.dumps(r.to_dict(str(source)), ensure_ascii=False) + "\n")
    written: tuple[Path, ...] = ()
    if not refused and kept:
        written = _write([r for _, r in kept], out, f"import-{source.stem}")
    return ImportResult(
        str(source), len(rows) + len(unreadable), 0 if refused else len(kept), rejected, written, rejected_path, refused
    )
