"""``harness slo``: SLIs, error budgets and burn rates from records or from Prometheus."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.cli.checks import TimeFlag
from harness.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "slo",
        help="SLIs, error budgets and burn rates from records or Prometheus",
        epilog="harness slo review --spec FILE (--prometheus URL | --records PATH) --out DIR [--window 28d]: "
        "the SLO review report over each SLO's window, with burn-down, alerts and deploys "
        "(see harness slo review --help).",
    )
    p.add_argument("--spec", required=True, type=Path, help="SLO spec (native YAML or OpenSLO v1)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--records",
        type=Path,
        help="records.jsonl / records.parquet, the run folder, or a partitioned parquet dataset folder",
    )
    src.add_argument("--prometheus", metavar="URL", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    p.add_argument(
        "--start",
        "--since",
        dest="start",
        action=TimeFlag,
        help="range start: unix s, ISO 8601 (UTC), now-15m; with --records, only records with t_start at or after it",
    )
    p.add_argument(
        "--end",
        "--until",
        dest="end",
        action=TimeFlag,
        help="range end (default: now with --prometheus, the last record "
        "with --records, which keeps records with t_start before it)",
    )
    p.add_argument("--quality", type=Path, help="per-image quality table (image_id, quality) for quality SLOs")
    p.add_argument(
        "--traffic-rps",
        type=float,
        help="production traffic to project burn rates onto (default: the spec's traffic_rps)",
    )
    p.add_argument(
        "--price-per-hour",
        type=float,
        help="serving cost per hour for cost per 1,000 captions (default: the spec's price_per_hour)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Prometheus (default 10)")
    p.add_argument("--out", required=True, type=Path, help="folder for slo.json and slo.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import out_folder, positive, time_option
    from harness.slo import evaluate_records, load_spec, render_markdown

    clock = time.time()  # the reader's clock: records answered well after it are left out
    since, until = time_option(args, "start"), time_option(args, "end")
    if since is not None and until is not None and since >= until:
        raise UsageError(f"--start must come before --end (got {args.start} and {args.end})")
    if args.traffic_rps is not None and args.traffic_rps <= 0:
        raise UsageError(f"--traffic-rps must be above 0 (got {args.traffic_rps:g})")
    if args.price_per_hour is not None and args.price_per_hour < 0:
        raise UsageError(f"--price-per-hour must not be negative (got {args.price_per_hour:g})")
    positive("timeout", args.timeout)
    out_folder(args.out)
    if args.prometheus is not None:
        if since is None:
            raise UsageError("--prometheus needs --start (and --end, default now)")
        if args.quality:
            raise UsageError("--quality goes with --records")
    spec = load_spec(args.spec)
    if args.records is not None:
        from harness.records import iter_records
        from harness.slo import load_quality
        from harness.slo.history import checked_records
        from harness.slo.report import record_columns

        columns, optional = record_columns(spec)
        chunks = iter_records(args.records, columns, optional=optional, since=since, until=until)
        records = checked_records(chunks, str(args.records))
        quality = load_quality(args.quality) if args.quality else None
        folder = args.records if args.records.is_dir() else args.records.parent
        report = evaluate_records(
            spec,
            records,
            quality,
            args.traffic_rps,
            args.price_per_hour,
            source={"kind": "records", "path": str(args.records)},
            folder=folder,
            clock=clock,
        )
    else:
        from harness.slo.prometheus import PrometheusSource

        end = clock if until is None else until
        source = PrometheusSource(args.prometheus, timeout_s=args.timeout)
        report = source.evaluate(spec, since, end, args.traffic_rps, args.price_per_hour)
    for warning in report.warnings:
        print(f"harness slo: warning: {warning}", file=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    (args.out / "slo.json").write_text(report.to_json(), encoding="utf-8")
    (args.out / "slo.md").write_text(render_markdown(data), encoding="utf-8")
    missed = [r.slo.name for r in report.results if r.met is False]
    print(
        f"wrote {args.out / 'slo.json'} and slo.md: {len(report.results)} SLOs"
        + (f", not met: {', '.join(missed)}" if missed else ", all met or no data")
    )
    return 0
