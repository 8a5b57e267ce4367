"""Request records: one per request sent, the unit every later stage reads.

A run appends records to ``records.jsonl`` and compacts them to ``records.parquet`` at its end; a
long-lived store of records is a Hive-partitioned parquet dataset by day and target. The package
holds them by purpose: ``schema`` (the one declaration of a record's fields, from which the rest
derives), ``write`` (the writer, compaction, datasets), ``read`` (``load_records``, the one way every
reader loads records, and the checks a reader makes), ``importer`` (a service's own logs as records)
and ``contract`` (the data contract on records, with Great Expectations). Only the first three are
imported here: the importer and the contract are imported by name where they are used.
"""

from harness.records.read import (
    CLOCK_SKEW_S,
    ahead_note,
    ahead_of_clock,
    answer_times,
    check_types,
    iter_records,
    load_records,
    read_jsonl,
    with_segments,
)
from harness.records.schema import (
    BOUNDS,
    COLUMNS,
    EARLIEST_TIME,
    FIELD_KINDS,
    LATEST_TIME,
    OUTCOMES,
    RECORDS_JSONL,
    REQUIRED,
    RequestRecord,
    arrow_schema,
    fields_of,
    format_time,
    is_time,
)
from harness.records.write import PARTITIONS, RecordWriter, compact, record_line, write_dataset

__all__ = [
    "OUTCOMES",
    "RequestRecord",
    "RecordWriter",
    "RECORDS_JSONL",
    "COLUMNS",
    "FIELD_KINDS",
    "REQUIRED",
    "fields_of",
    "arrow_schema",
    "load_records",
    "iter_records",
    "write_dataset",
    "PARTITIONS",
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
    "with_segments",
]
