"""Request records: one per request sent, the unit every later stage reads.

A run appends records to ``records.jsonl`` with plain writes to the operating system (each record
at once, or gathered for at most a fraction of a second), never fsync'd one by one: what the kernel
holds survives the process, so a run killed midway, even by SIGKILL, keeps every record written
before. At the end of a run the file is compacted to ``records.parquet``. A long-lived store of records is a Hive-partitioned parquet dataset by day and
target (``write_dataset``). ``load_records`` reads any of them into pandas, the one way every reader
(drift, SLOs, the dashboard) loads records.
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
from typing import Any, Callable, Iterable, Mapping

from harness.errors import DataError, InputMissingError
from harness.redaction import Redactor

__all__ = [
    "OUTCOMES",
    "RequestRecord",
    "RecordWriter",
    "RECORDS_JSONL",
    "RECORDS_PARQUET",
    "COLUMNS",
    "FIELD_KINDS",
    "REQUIRED",
    "fields_of",
    "arrow_schema",
    "load_records",
    "iter_records",
    "write_dataset",
    "PARTITIONS",
    "EMBEDDINGS",
    "check_types",
    "read_jsonl",
    "record_line",
    "compact",
    "EARLIEST_TIME",
    "LATEST_TIME",
    "is_time",
    "format_time",
    "BOUNDS",
    "CLOCK_SKEW_S",
    "answer_times",
    "ahead_of_clock",
    "ahead_note",
]

OUTCOMES = ("ok", "http_error", "timeout", "connection_error", "invalid_response")
RECORDS_JSONL = "records.jsonl"
RECORDS_PARQUET = "records.parquet"


def _field(kind: str, what: str, required: bool = False, largest: int | None = None, **kw: Any) -> Any:
    """A record field of ``kind``: ``text``, ``id`` (text or a whole number), ``real`` (a finite
    number), ``count`` (a whole number from 0 to ``largest``), ``flag`` (true or false) or
    ``vector`` (a list of numbers); ``required``: never null in a trustworthy record; ``what`` it
    holds, as the records reference (``harness.refdocs``) says."""
    return field(metadata={"kind": kind, "what": what, "required": required, "largest": largest}, **kw)


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What was sent and what came back. ``status`` is the HTTP code, 0 when no response came.

    The one declaration of a record's fields: their kinds, which are required and the largest
    counts are the fields' metadata, from which the type checks (``check_types``), the arrow
    schema of imported records (``arrow_schema``) and the data contract (``harness.expectations``)
    are derived."""

    run_id: str = _field("text", "the run (or import) that wrote the record", required=True)
    target: str = _field(
        "text", "which service answered: baseline, canary, or a name of the traffic split", required=True
    )
    scenario: str = _field("text", "the load scenario or the stage that sent the request")
    request_id: str = _field("text", "the request's id (X-Request-Id), unique within its run", required=True)
    image_id: str | None = _field("id", "the image's id in its data set (a COCO id or a file stem)")
    t_start: float = _field("real", "when the request was sent, unix seconds", required=True)
    latency_s: float = _field("real", "seconds from sending to the whole answer (or the timeout)", required=True)
    status: int = _field("count", "the HTTP status; 0 when no response came", required=True, largest=999)
    outcome: str = _field(
        "text",
        "what the answer was worth: ok, http_error, timeout, connection_error or invalid_response",
        required=True,
    )
    error: str | None = _field("text", "the error the service or the client gave (target text)", default=None)
    caption: str | None = _field("text", "the caption returned (target text)", default=None)
    confidence: float | None = _field("real", "the confidence the service gave its caption", default=None)
    model_version: str | None = _field("text", "the model version the service reported (target text)", default=None)
    image_bytes: int | None = _field("count", "the size of the image sent, bytes", largest=2**53, default=None)
    image_w: int | None = _field("count", "the image's width, pixels", largest=2**31, default=None)
    image_h: int | None = _field("count", "the image's height, pixels", largest=2**31, default=None)
    safety_flagged: bool | None = _field("flag", "the service flagged its own caption as unsafe", default=None)
    embedding: list[float] | None = _field(
        "vector", "the caption's embedding, when the service returns one (drift)", default=None, repr=False
    )
    prompt_tokens: int | None = _field("count", "tokens of the prompt (chat protocols)", largest=2**31, default=None)
    completion_tokens: int | None = _field(
        "count",
        "tokens of the caption (chat protocols); of a stream without usage, or broken off, the token events received",
        largest=2**31,
        default=None,
    )
    ttft_s: float | None = _field(
        "real", "time to first token, seconds from sending to the first token (streamed answers)", default=None
    )
    itl_s: list[float] | None = _field(
        "vector", "every inter-token gap of a streamed answer, seconds, in order", default=None, repr=False
    )
    tpot_s: float | None = _field(
        "real",
        "time per output token: first to last token over the tokens less one, seconds (streamed answers)",
        default=None,
    )

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COLUMNS}


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord))
FIELD_KINDS: dict[str, str] = {f.name: f.metadata["kind"] for f in fields(RequestRecord)}
REQUIRED: tuple[str, ...] = tuple(f.name for f in fields(RequestRecord) if f.metadata["required"])


def fields_of(kind: str) -> tuple[str, ...]:
    """The record's fields of ``kind`` (``text``, ``id``, ``real``, ``count``, ``flag``, ``vector``)."""
    return tuple(name for name, k in FIELD_KINDS.items() if k == kind)


def arrow_schema():
    """The arrow schema of a record: text and ids as strings, reals as float64, counts as int64."""
    import pyarrow as pa

    types = {"text": pa.string(), "id": pa.string(), "real": pa.float64(), "count": pa.int64()}
    types.update(flag=pa.bool_(), vector=pa.list_(pa.float64()))
    return pa.schema([(name, types[kind]) for name, kind in FIELD_KINDS.items()])


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


EMBEDDINGS = ("read", "skip", "only")


def _dataset_files(path: Path) -> bool:
    return any(p.is_file() for p in path.rglob("*.parquet"))


def _resolve(path: Path) -> Path:
    """The records file of ``path``: a file, a folder holding ``records.parquet`` or ``records.jsonl``,
    or a folder that is itself a (Hive-partitioned) parquet dataset, returned as the folder."""
    if path.is_dir():
        for name in (RECORDS_PARQUET, RECORDS_JSONL):
            if (path / name).exists():
                return path / name
        if _dataset_files(path):
            return path
        raise InputMissingError(f"{path}: no {RECORDS_PARQUET}, {RECORDS_JSONL} or parquet dataset in this folder")
    if not path.exists():
        raise InputMissingError(f"{path}: records not found")
    return path


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sample_key(columns: Iterable[str], seed: int) -> str:
    """The order a seeded sample takes records in: a hash of each record's identity (its target and
    request id) and the seed, the same for a JSONL file, a parquet file and a partitioned dataset."""
    have = [c for c in ("target", "request_id") if c in columns]
    if "request_id" not in have:
        raise DataError("records without request_id cannot be sampled")
    return f"hash({', '.join(f'CAST({c} AS VARCHAR)' for c in have)}, {int(seed)}::BIGINT)"


def _where(
    names: Iterable[str],
    source: str,
    since: float | None,
    until: float | None,
    outcome: str | None,
    embeddings: str,
    match: tuple[tuple[str, str], ...] = (),
) -> str:
    names = set(names)
    conds = []
    for col, value in match:
        if col not in names:
            raise DataError(f"{source}: records have no column {col!r} to select {col}={value}")
        conds.append(f'CAST("{col}" AS VARCHAR) = {_sql_text(value)}')
    if since is not None or until is not None:
        for bound in (since, until):
            if bound is not None and not math.isfinite(float(bound)):  # a caller's bug: options are checked
                raise ValueError(f"since and until must be finite unix seconds (got {bound!r})")
        if "t_start" not in names:
            raise DataError(f"{source}: records without t_start cannot be filtered by time")
        if since is not None:
            conds.append(f"t_start >= {float(since)!r}")
        if until is not None:
            conds.append(f"t_start < {float(until)!r}")
    if outcome is not None:
        conds.append(f"outcome = {_sql_text(outcome)}" if "outcome" in names else "false")
    if embeddings == "only":
        conds.append("len(embedding) > 0" if "embedding" in names else "false")
    return " WHERE " + " AND ".join(conds) if conds else ""


def _parquet_source(p: Path) -> str:
    """DuckDB's scan of a parquet file, or of a Hive-partitioned dataset folder."""
    if p.is_dir():
        return (
            f"read_parquet({_sql_text(str(p / '**' / '*.parquet'))}, hive_partitioning = true, "
            "union_by_name = true, hive_types_autocast = false)"
        )
    return f"read_parquet({_sql_text(str(p))})"


def _unreadable(p: Path, exc: Exception) -> DataError:
    return DataError(f"{p}: unreadable parquet records ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")


def _scan_parquet(p: Path, columns: list[str] | None, where_args: tuple, sample: int | None, seed: int):
    """Rows of a parquet file or dataset through DuckDB, with projection, filters and the sample in
    the scan; a pyarrow Table and the number of records the filters kept."""
    import duckdb

    src = _parquet_source(p)
    con = duckdb.connect(":memory:")
    try:
        names = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {src}").fetchall()]
        where = _where(names, str(p), *where_args)
        keep = names if columns is None else [c for c in columns if c in names]
        if where_args[3] == "skip":
            keep = [c for c in keep if c != "embedding"]
        select = ", ".join(f'"{c}"' for c in keep) or "NULL AS _none"
        total = con.sql(f"SELECT count(*) FROM {src}{where}").fetchall()[0][0]
        if sample is None or total <= sample:
            table = con.sql(f"SELECT {select} FROM {src}{where}").to_arrow_table()
        else:
            # The sample is the records with the smallest keys. A filter on the key first passes about
            # a quarter more than the sample (so the ordering holds few rows); should it pass fewer,
            # the whole window is ordered. Either way the same records come out.
            key = _sample_key(names, seed)
            order = "t_start" if "t_start" in keep else "1"
            share = (1.25 * sample + 10 * math.sqrt(sample) + 10) / total
            table = None
            if share < 1:
                cut = f"{key} < {int(share * 2**64)}::UBIGINT"
                pre = f"{where} AND {cut}" if where else f" WHERE {cut}"
                table = con.sql(
                    f"SELECT * FROM (SELECT {select} FROM {src}{pre} ORDER BY {key} "
                    f"LIMIT {int(sample)}) ORDER BY {order}"
                ).to_arrow_table()
            if table is None or table.num_rows < sample:
                table = con.sql(
                    f"SELECT * FROM (SELECT {select} FROM {src}{where} ORDER BY {key} "
                    f"LIMIT {int(sample)}) ORDER BY {order}"
                ).to_arrow_table()
    except duckdb.Error as exc:
        raise _unreadable(p, exc) from None
    finally:
        con.close()
    if "_none" in table.column_names:
        table = table.drop_columns(["_none"])
    return table, int(total)


def _filter_frame(
    df,
    source: str,
    since: float | None,
    until: float | None,
    outcome: str | None,
    embeddings: str,
    match: tuple[tuple[str, str], ...],
    sample: int | None,
    seed: int,
):
    """The same filters and sample as ``_scan_parquet``, on records already in memory (JSONL)."""
    import numpy as np
    import pandas as pd

    _where(df.columns, source, since, until, outcome, embeddings, match)  # the same refusals
    keep = np.ones(len(df), dtype=bool)
    for col, value in match:
        keep &= (df[col].map(lambda v: None if v is None else str(v)) == value).to_numpy(dtype=bool)
    if since is not None or until is not None:
        t = pd.to_numeric(df["t_start"], errors="coerce").to_numpy(dtype=float)
        if since is not None:
            keep &= t >= since
        if until is not None:
            keep &= t < until
    if outcome is not None:
        keep &= (df["outcome"] == outcome).to_numpy(dtype=bool) if "outcome" in df.columns else False
    if embeddings == "only":
        emb = df["embedding"] if "embedding" in df.columns else pd.Series([None] * len(df), dtype=object)
        keep &= emb.map(lambda v: isinstance(v, (list, tuple, np.ndarray)) and len(v) > 0).to_numpy(dtype=bool)
    df = df[keep]
    total = len(df)
    if sample is not None and total > sample:
        keys = pd.DataFrame({c: df[c].astype("string") for c in ("target", "request_id") if c in df.columns})
        keys["_row"] = np.arange(total)
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            con.register("keys", keys)
            rows = [
                r[0]
                for r in con.sql(
                    f"SELECT _row FROM keys ORDER BY {_sample_key(keys.columns, seed)} LIMIT {int(sample)}"
                ).fetchall()
            ]
        finally:
            con.close()
        df = df.iloc[sorted(rows)]
        if "t_start" in df.columns:
            df = df.sort_values("t_start", kind="stable")
    if embeddings == "skip" and "embedding" in df.columns:
        df = df.drop(columns=["embedding"])
    return df.reset_index(drop=True), total


def load_records(
    path: str | Path,
    columns: Iterable[str] | None = None,
    *,
    since: float | None = None,
    until: float | None = None,
    outcome: str | None = None,
    embeddings: str = "read",
    sample: int | None = None,
    seed: int = 0,
    where: Mapping[str, str] | None = None,
):
    """Records as a pandas DataFrame: the columns of ``RequestRecord`` (in that order), then any other
    the source has (a partitioned dataset's partition keys, such as ``date``).

    ``path`` is a ``.jsonl`` or ``.parquet`` file, a run folder holding one, or a folder that is a
    Hive-partitioned parquet dataset (``date=2026-11-30/target=baseline/part-0.parquet``). Parquet is
    read through DuckDB with everything below pushed into the scan, so memory grows with the
    columns and the sample asked for, not with the window:

    - ``columns``: only these (each one the source lacks comes back empty);
    - ``since`` / ``until``: records with ``since <= t_start < until`` (unix seconds);
    - ``outcome``: only records with this outcome;
    - ``embeddings``: ``"read"``, ``"skip"`` (the column is not read), or ``"only"`` (just the
      records that carry one);
    - ``sample``: at most this many records, a seeded uniform sample (the records whose hash of
      target, request id and ``seed`` is smallest; the same records from JSONL and parquet),
      in time order;
    - ``where``: only records whose column has this value (compared as text), e.g.
      ``{"target": "canary"}``: a scope of production traffic.

    The number of records the filters kept, before sampling, is ``df.attrs["records_in_window"]``."""
    import pandas as pd

    if embeddings not in EMBEDDINGS:
        raise ValueError(f"embeddings must be one of {', '.join(EMBEDDINGS)} (got {embeddings!r})")
    if sample is not None and sample < 1:
        raise DataError(f"the sample must hold at least one record (got {sample})")
    p = _resolve(Path(path))
    cols = None if columns is None else list(dict.fromkeys(columns))
    match = tuple((str(k), str(v)) for k, v in (where or {}).items())
    where_args = (since, until, outcome, embeddings, match)
    plain = cols is None and sample is None and where_args == (None, None, None, "read", ())
    if p.is_dir() or p.suffix == ".parquet":
        if plain and p.is_file():
            try:
                df = pd.read_parquet(p)
            except Exception as exc:  # pyarrow raises several types for a damaged file
                raise DataError(f"{p}: unreadable parquet file ({type(exc).__name__})") from None
            total = len(df)
        else:
            table, total = _scan_parquet(p, cols, where_args, sample, seed)
            df = table.to_pandas(split_blocks=True, self_destruct=True)
            del table
    elif p.suffix in (".jsonl", ".json"):
        df = pd.DataFrame(read_jsonl(p))
        df, total = (df, len(df)) if plain else _filter_frame(df, str(p), *where_args, sample, seed)
    else:
        raise DataError(f"{p}: records must be .jsonl or .parquet")
    df = _shaped(df, cols, embeddings)
    df.attrs["records_in_window"] = int(total)
    return df


def _shaped(df, cols: list[str] | None, embeddings: str, optional: Iterable[str] = ()):
    """The frame ``load_records`` returns: the record's columns (or ``cols``) in order, each one the
    source lacks empty, then the others it has (all columns) or the ``optional`` ones it has."""
    wanted = [c for c in (COLUMNS if cols is None else cols) if not (c == "embedding" and embeddings == "skip")]
    for c in wanted:
        if c not in df.columns:
            df[c] = None
    if cols is None:
        extra = [c for c in df.columns if c not in COLUMNS]
    else:
        extra = [c for c in dict.fromkeys(optional) if c in df.columns and c not in wanted]
    return df[wanted + extra]


def iter_records(
    path: str | Path,
    columns: Iterable[str],
    *,
    optional: Iterable[str] = (),
    since: float | None = None,
    until: float | None = None,
    embeddings: str = "skip",
    batch_rows: int = 1_000_000,
):
    """Records in chunks of at most ``batch_rows`` (pandas DataFrames, at least one, maybe empty), for
    a reader that needs every record of a window but not all of them at once (an SLO evaluation).

    ``columns`` as in ``load_records`` (each one the source lacks comes back empty); ``optional``:
    columns read only where the source has them (absent otherwise). A parquet file or dataset is
    streamed through DuckDB with the projection and the time range in the scan, so memory grows with
    the chunk, not the window; a JSONL file (one run's) is one chunk."""
    import pandas as pd

    if embeddings not in EMBEDDINGS:
        raise ValueError(f"embeddings must be one of {', '.join(EMBEDDINGS)} (got {embeddings!r})")
    cols = list(dict.fromkeys(columns))
    extra = [c for c in dict.fromkeys(optional) if c not in cols]
    p = _resolve(Path(path))
    if not (p.is_dir() or p.suffix == ".parquet"):
        df = load_records(p, since=since, until=until, embeddings=embeddings)
        yield _shaped(df, cols, embeddings, extra)
        return
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        src = _parquet_source(p)
        names = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {src}").fetchall()]
        where = _where(names, str(p), since, until, None, embeddings)
        keep = [c for c in cols + extra if c in names and not (c == "embedding" and embeddings == "skip")]
        select = ", ".join(f'"{c}"' for c in keep) or "NULL AS _none"
        reader = con.sql(f"SELECT {select} FROM {src}{where}").to_arrow_reader(int(batch_rows))
        sent = False
        for batch in reader:
            df = batch.to_pandas(split_blocks=True)
            if "_none" in df.columns:
                df = df.drop(columns=["_none"])
            sent = True
            yield _shaped(df, cols, embeddings, extra)
        if not sent:
            yield _shaped(pd.DataFrame({c: pd.Series(dtype=object) for c in keep}), cols, embeddings, extra)
    except duckdb.Error as exc:
        raise _unreadable(p, exc) from None
    finally:
        con.close()


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


# The kind of value each field holds (``None`` is allowed in every field but ``REQUIRED`` ones).
_TEXT = fields_of("text")
_REALS = fields_of("real")
_VECTORS = fields_of("vector")
_COUNTS = {f.name: f.metadata["largest"] for f in fields(RequestRecord) if f.metadata["kind"] == "count"}


# Times are unix seconds from 1970 up to the end of year 9999 (ISO 8601's four-digit years): a time
# before or after is a damaged value, never a date anyone means.
EARLIEST_TIME = 0.0  # 1970-01-01T00:00:00Z
LATEST_TIME = 253_402_300_800.0  # 10000-01-01T00:00:00Z, itself excluded


def is_time(t: Any) -> bool:
    """Whether ``t`` is a time the harness takes: a finite number of unix seconds from 1970 to 9999."""
    return _real(t) and EARLIEST_TIME <= t < LATEST_TIME


def format_time(t: float) -> str:
    """A time as ISO 8601 in UTC to the second (``2026-12-07T03:47:24Z``), for messages."""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    except (OverflowError, ValueError, OSError):  # far outside the years a calendar shows
        return f"unix {t:.6g}"


# The values a field may hold beyond its kind: field -> (lowest, highest (excluded) or None, what a
# value outside is, the data contract's name for the rule). ``check_types`` refuses records that
# break one, and the data contract (``harness.expectations``) checks the same bounds.
BOUNDS: dict[str, tuple[float, float | None, str, str]] = {
    "t_start": (EARLIEST_TIME, LATEST_TIME, "not a time from 1970 to 9999", "t_start a time from 1970 to 9999"),
    "latency_s": (0.0, None, "negative", "latency not negative"),
}

# How far after the reader's clock a record may have been answered: the clocks of a service and of
# whoever reads its records may disagree by this much. A record later than that comes from a clock
# that is wrong (or a damaged t_start or latency_s); it never anchors a window: ``harness slo`` leaves
# it out and says so, ``harness judge`` leaves it out and holds. Five minutes: the usual tolerance of
# clock skew (Kerberos' default), and the shortest alert window (the page's 5m), so a record it lets
# through moves a window by at most that window's length.
CLOCK_SKEW_S = 300.0


def answer_times(df):
    """When each record's answer came: ``t_start + latency_s`` (a missing latency counts as 0)."""
    import pandas as pd

    t = pd.to_numeric(df["t_start"], errors="coerce")
    lat = pd.to_numeric(df["latency_s"], errors="coerce").fillna(0.0)
    return t + lat


def ahead_of_clock(df, clock: float, tolerance_s: float = CLOCK_SKEW_S):
    """A boolean array: the records answered more than ``tolerance_s`` after ``clock`` (unix s)."""
    import numpy as np

    if not len(df):
        return np.zeros(0, dtype=bool)
    return (answer_times(df) > clock + tolerance_s).to_numpy(dtype=bool, na_value=False)


def ahead_note(
    count: int,
    total: int,
    first: float,
    clock: float,
    whose: str = "this machine's clock",
    noun: str = "records",
    verb: str = "answered",
) -> str:
    """The line that says ``count`` of ``total`` records were answered too far after ``clock`` (by
    more than ``CLOCK_SKEW_S``), the earliest of them at ``first``."""
    many = f"{count} of {total} {noun} are" if count != 1 else f"1 of {total} {noun} is"
    return (
        f"{many} more than {CLOCK_SKEW_S / 60:g}m ahead of {whose} ({format_time(clock)}; "
        f"the first {verb} at {format_time(first)})"
    )


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _kinds() -> list[tuple[str, str, Callable[[Any], bool]]]:
    """(field, what it must be, test of one value)."""
    import numpy as np

    out: list[tuple[str, str, Callable[[Any], bool]]] = [(c, "text", lambda v: isinstance(v, str)) for c in _TEXT]
    out += [(c, "a finite number", _real) for c in _REALS]
    out += [
        (c, f"a whole number 0..{top}", lambda v, top=top: _real(v) and float(v).is_integer() and 0 <= v <= top)
        for c, top in _COUNTS.items()
    ]
    out.append(
        ("image_id", "text or a whole number", lambda v: isinstance(v, str) or (_real(v) and float(v).is_integer()))
    )
    out.append(("safety_flagged", "true or false", lambda v: isinstance(v, (bool, np.bool_))))
    out += [(c, "a list of numbers", lambda v: isinstance(v, (list, tuple, np.ndarray))) for c in _VECTORS]
    return out


def check_types(df, source: str, required: Iterable[str] = ()) -> None:
    """Refuse records whose fields do not hold the record's kinds of value (finite numbers, whole
    counts in range, text, true or false), break a field's ``BOUNDS`` (a negative latency, a
    t_start before 1970) or lack a ``required`` field: one ``DataError`` line naming the field, so
    that a hand-made or damaged file never reaches the arithmetic."""
    import numpy as np

    n = len(df)
    for name in required:
        missing = n - int(df[name].notna().sum()) if name in df.columns else n
        if missing:
            raise DataError(f"{source}: {missing} of {n} records lack {name}")
    for name, kind, ok in _kinds():
        if name not in df.columns:
            continue
        col = df[name].dropna()
        if len(col) == 0:
            continue
        bad = _typed_failures(name, col)
        if bad is None:  # a column of Python objects: value by value
            values = col.tolist()
            bad = [v for v in (x.item() if isinstance(x, np.generic) else x for x in values) if not ok(v)]
        if len(bad):
            first = bad[0].item() if isinstance(bad[0], np.generic) else bad[0]
            raise DataError(f"{source}: records whose {name} is not {kind}, e.g. {first!r:.60}")
    _check_bounds(df, source)


def _check_bounds(df, source: str) -> None:
    """Refuse records whose field (of the right kind) lies outside its ``BOUNDS``."""
    import numpy as np
    import pandas as pd

    for name, (low, high, broken, _rule) in BOUNDS.items():
        if name not in df.columns or not len(df):
            continue
        values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        out = values < low
        if high is not None:
            out |= values >= high
        if out.any():
            raise DataError(f"{source}: records whose {name} is {broken}, e.g. {float(values[out][0])!r:.60}")


def _typed_failures(name: str, col):
    """The values of a typed column (text, numbers, booleans) that break its field's kind, found
    without a Python loop over the rows (a week of records holds millions); ``None`` for a column of
    Python objects, which is checked value by value."""
    import numpy as np
    import pandas as pd

    if isinstance(col.dtype, pd.StringDtype) or (isinstance(col.dtype, pd.ArrowDtype) and col.dtype.kind in "OU"):
        return [] if name in _TEXT or name == "image_id" else col.iloc[:1].tolist()
    kind = col.dtype.kind
    if kind not in "iufb" or name in _VECTORS:
        return None
    if kind == "b":
        return [] if name == "safety_flagged" else col.iloc[:1].tolist()
    if name in _TEXT or name == "safety_flagged":
        return col.iloc[:1].tolist()
    values = col.to_numpy(dtype=np.float64)
    good = np.isfinite(values)
    if name in _COUNTS or name == "image_id":
        good &= np.mod(values, 1.0) == 0
    if name in _COUNTS:
        good &= (values >= 0) & (values <= _COUNTS[name])
    return col.to_numpy()[~good][:1].tolist()


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
