"""``harness records import``: turn a service's own logs into request records."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import EXIT_OK, DataError

_SHOWN = 20  # rejections printed on stderr; all of them are in rejected.jsonl


def register(sub) -> None:
    p = sub.add_parser("records", help="request records: import a service's own logs")
    rsub = p.add_subparsers(dest="records_command", metavar="ACTION", parser_class=type(p))
    i = rsub.add_parser(
        "import",
        help="map a log (JSONL, CSV, parquet) into records with a column-mapping file",
        description="Map a service's own log into request records with a YAML column mapping, apply the record "
        "contract row by row, and write the records (a partitioned parquet dataset, or a .parquet / "
        ".jsonl file). Each rejected row is reported with its line or row number, on stderr and in "
        "rejected.jsonl beside the output. Exit 0: imported (rejections within --max-rejected); "
        "65: more rejections than that, and nothing written but rejected.jsonl.",
    )
    i.add_argument("source", type=Path, help="the log: .jsonl, .csv/.tsv or .parquet")
    i.add_argument("--mapping", required=True, type=Path, help="YAML column mapping (see harness.records.importer)")
    i.add_argument(
        "--out",
        required=True,
        type=Path,
        help="a folder (partitioned parquet dataset by date and target), or a .parquet or new .jsonl file",
    )
    i.add_argument("--format", choices=("jsonl", "csv", "parquet"), help="the log's format (default: from its name)")
    i.add_argument(
        "--max-rejected",
        default="1%",
        metavar="N|P%",
        help="most rejected rows to still import the rest: a count, or a share of the rows (default 1%%)",
    )
    i.set_defaults(func=run_import)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 64)[1])


def run_import(args: argparse.Namespace) -> int:
    from harness.cli.checks import out_file, out_folder
    from harness.records.importer import import_log, load_mapping

    if args.out.suffix in (".parquet", ".jsonl"):
        out_file(args.out)
    else:
        out_folder(args.out)
    mapping = load_mapping(args.mapping)
    result = import_log(args.source, mapping, args.out, fmt=args.format, max_rejected=args.max_rejected)
    for r in result.rejected[:_SHOWN]:
        print(f"rejected {r.describe(result.source)}", file=sys.stderr)
    if result.rejected_count > _SHOWN:
        print(f"... and {result.rejected_count - _SHOWN} more in {result.rejected_path}", file=sys.stderr)
    if result.refused:
        raise DataError(
            f"{result.rejected_count} of {result.rows} rows rejected, more than --max-rejected "
            f"{args.max_rejected} allows; nothing imported (reasons in {result.rejected_path})"
        )
    where = str(args.out) if len(result.written) <= 1 else f"{args.out} ({len(result.written)} files)"
    print(
        f"imported {result.imported} of {result.rows} rows into {where}"
        + (" (the log holds no rows, so the output holds no records)" if not result.rows else "")
        + (f"; {result.rejected_count} rejected, listed in {result.rejected_path}" if result.rejected_count else "")
    )
    return EXIT_OK
