"""Reading records: ``load_records`` (and ``iter_records``, in chunks) read a run's ``records.jsonl``
or ``records.parquet`` or a Hive-partitioned parquet dataset into pandas, the one way every reader
(drift, SLOs, the judge, the dashboard) loads records; the checks a reader makes before any
arithmetic (``check_types``: kinds and bounds; records answered ahead of the reader's clock).

Filters (time range, outcome, embeddings, ``where``) and the seeded sample are one DuckDB query
(``_select``) whatever holds the records: a parquet file or dataset is scanned by it directly; a JSONL
file is parsed as it is written (``read_jsonl``: values as written, so that the checks see a
value of the wrong kind) and the query runs over the columns it filters on, typed as the record's
fields (``_jsonl_keys``), choosing which of the parsed rows come back.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from harness.errors import DataError, InputMissingError
from harness.records.schema import (
    BOUNDS,
    COLUMNS,
    FIELD_KINDS,
    LARGEST,
    RECORDS_JSONL,
    RECORDS_PARQUET,
    _real,
    fields_of,
    format_time,
)

__all__ = [
    "read_jsonl",
    "EMBEDDINGS",
    "load_records",
    "iter_records",
    "check_types",
    "CLOCK_SKEW_S",
    "answer_times",
    "ahead_of_clock",
    "ahead_note",
    "with_segments",
]

try:  # optional: several times faster than the json module for records
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - the json module does the same, slower
    _loads = json.loads


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
            row = _loads(line)
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


def _select(
    con,
    src: str,
    source: str,
    columns: list[str] | None,
    where_args: tuple,
    sample: int | None,
    seed: int,
    order: tuple[str, ...] = ("t_start",),
):
    """The one query of records, whatever holds them: of the records in ``src`` (a DuckDB relation)
    that pass the filters (``_where``), the ``columns`` it has (all of them with ``None``; not the
    embedding with ``embeddings="skip"``), and when more than ``sample`` pass, the seeded sample (the
    smallest ``_sample_key``) ordered by ``order``. A pyarrow Table and the number of records the
    filters kept; a ``duckdb.Error`` is the caller's to name."""
    names = [r[0] for r in con.sql(f"DESCRIBE SELECT * FROM {src}").fetchall()]
    where = _where(names, source, *where_args)
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
        by = ", ".join(c for c in order if c in keep) or "1"
        share = (1.25 * sample + 10 * math.sqrt(sample) + 10) / total
        table = None
        if share < 1:
            cut = f"{key} < {int(share * 2**64)}::UBIGINT"
            pre = f"{where} AND {cut}" if where else f" WHERE {cut}"
            table = con.sql(
                f"SELECT * FROM (SELECT {select} FROM {src}{pre} ORDER BY {key} LIMIT {int(sample)}) ORDER BY {by}"
            ).to_arrow_table()
        if table is None or table.num_rows < sample:
            table = con.sql(
                f"SELECT * FROM (SELECT {select} FROM {src}{where} ORDER BY {key} LIMIT {int(sample)}) ORDER BY {by}"
            ).to_arrow_table()
    if "_none" in table.column_names:
        table = table.drop_columns(["_none"])
    return table, int(total)


def _scan_parquet(p: Path, columns: list[str] | None, where_args: tuple, sample: int | None, seed: int):
    """The query over DuckDB's scan of a parquet file or dataset, so that the projection, the filters
    and the sample are pushed into the scan; a pyarrow Table and the number of records the filters kept."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        return _select(con, _parquet_source(p), str(p), columns, where_args, sample, seed)
    except duckdb.Error as exc:
        raise _unreadable(p, exc) from None
    finally:
        con.close()


def _text(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _vectors(values: list):
    """Lists of numbers as an arrow list of float64 (a value that is not a list is null, and so is an
    item that is not a finite number)."""
    import numpy as np
    import pyarrow as pa

    kind = pa.list_(pa.float64())
    lists = [v if isinstance(v, (list, tuple, np.ndarray)) else None for v in values]
    try:
        return pa.array(lists, type=kind, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):  # an item that is not a number
        return pa.array([None if v is None else [float(x) if _real(x) else None for x in v] for v in lists], type=kind)


def _jsonl_keys(df, where_args: tuple, sampled: bool, row: str):
    """What the query reads of a JSONL file's records (``df``, as parsed), as an arrow table: each
    record's place in the file (column ``row``), and of the columns the file has, those the filters,
    the sample and its order use, each typed as its field: reals as float64 (a value that is not a
    number is null: no time range keeps it), vectors as lists of float64, the others as the text they
    compare as."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    _since, _until, outcome, embeddings, match = where_args
    used = ["t_start", *(col for col, _ in match)]
    used += ["outcome"] if outcome is not None else []
    used += ["embedding"] if embeddings == "only" else []
    used += ["target", "request_id"] if sampled else []
    arrays = {row: pa.array(np.arange(len(df), dtype=np.int64))}
    for name in dict.fromkeys(used):
        if name not in df.columns:
            continue
        kind = FIELD_KINDS.get(name)
        if kind == "real":
            t = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=np.float64)
            arrays[name] = pa.array(t, type=pa.float64(), from_pandas=True)
        elif kind == "vector":
            arrays[name] = _vectors(df[name].tolist())
        else:
            arrays[name] = pa.array([_text(v) for v in df[name].tolist()], type=pa.string())
    return pa.table(arrays)


def _scan_jsonl(df, source: str, where_args: tuple, sample: int | None, seed: int):
    """The records of a JSONL file (``df``, as parsed) that the query selects: it runs over the
    file's keys (``_jsonl_keys``) and names the rows of ``df`` that come back, values as written (in
    the file's order, or the sample's); those rows and the number of records the filters kept."""
    import duckdb

    row = "_row"
    while row in df.columns:  # a name no column of the file has
        row = f"_{row}"
    con = duckdb.connect(":memory:")
    try:
        con.register("records", _jsonl_keys(df, where_args, sample is not None, row))
        table, total = _select(con, "records", source, [row, "t_start"], where_args, sample, seed, ("t_start", row))
    finally:
        con.close()
    df = df.iloc[table.column(row).to_numpy()]
    if where_args[3] == "skip" and "embedding" in df.columns:
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
    Hive-partitioned parquet dataset (``date=2026-11-30/target=baseline/part-0.parquet``). Everything
    below is one DuckDB query (``_select``), for parquet pushed into the scan, so memory grows with
    the columns and the sample asked for, not with the window; for JSONL run over the parsed file:

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
        df, total = (df, len(df)) if plain else _scan_jsonl(df, str(p), where_args, sample, seed)
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


def with_segments(df, segments: Mapping[str, str] | None):
    """The records with a segment each where one is known: a record's own ``segment`` is kept, a
    record without one gets its image's segment in the data set (``segments``: image id as text ->
    segment); the frame itself when there is nothing to add."""
    if df is None or not segments or not len(df):
        return df
    own = df["segment"] if "segment" in df.columns else None
    ids = df["image_id"].astype("string") if "image_id" in df.columns else None
    if ids is None:
        return df
    found = ids.map(dict(segments)).astype(object)
    filled = found if own is None else own.astype(object).where(own.notna(), found)
    return df.assign(segment=filled.where(filled.notna(), None))


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


# The kind of value each field holds (``None`` is allowed in every field but ``REQUIRED`` ones).
_TEXT = fields_of("text")
_REALS = fields_of("real")
_VECTORS = fields_of("vector")


def _kinds() -> list[tuple[str, str, Callable[[Any], bool]]]:
    """(field, what it must be, test of one value)."""
    import numpy as np

    out: list[tuple[str, str, Callable[[Any], bool]]] = [(c, "text", lambda v: isinstance(v, str)) for c in _TEXT]
    out += [(c, "a finite number", _real) for c in _REALS]
    out += [
        (c, f"a whole number 0..{top}", lambda v, top=top: _real(v) and float(v).is_integer() and 0 <= v <= top)
        for c, top in LARGEST.items()
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
    if name in LARGEST or name == "image_id":
        good &= np.mod(values, 1.0) == 0
    if name in LARGEST:
        good &= (values >= 0) & (values <= LARGEST[name])
    return col.to_numpy()[~good][:1].tolist()
