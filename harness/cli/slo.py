"""``harness slo``: SLIs, error budgets and burn rates from records or from Prometheus."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("slo", help="SLIs, error budgets and burn rates from records or Prometheus")
    p.add_argument("--spec", required=True, type=Path, help="SLO spec (native YAML or OpenSLO v1)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--records", type=Path, help="records.jsonl / records.parquet, or the run folder")
    src.add_argument("--prometheus", metavar="URL", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    p.add_argument("--start", help="range start with --prometheus: unix s, ISO 8601 (UTC), now-15m")
    p.add_argument("--end", help="range end with --prometheus (default: now)")
    p.add_argument("--quality", type=Path, help="per-image quality table (image_id, quality) for quality SLOs")
    p.add_argument("--traffic-rps", type=float, help="production traffic to project burn rates onto "
                   "(default: the spec's traffic_rps)")
    p.add_argument("--price-per-hour", type=float, help="serving cost per hour for cost per 1,000 captions "
                   "(default: the spec's price_per_hour)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Prometheus (default 10)")
    p.add_argument("--out", required=True, type=Path, help="folder for slo.json and slo.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import out_folder, positive
    from harness.slo import evaluate_records, load_spec, render_markdown

    if args.traffic_rps is not None and args.traffic_rps <= 0:
        raise UsageError(f"--traffic-rps must be above 0 (got {args.traffic_rps:g})")
    if args.price_per_hour is not None and args.price_per_hour < 0:
        raise UsageError(f"--price-per-hour must not be negative (got {args.price_per_hour:g})")
    positive("timeout", args.timeout)
    out_folder(args.out)
    spec = load_spec(args.spec)
    if args.records is not None:
        if args.start or args.end:
            raise UsageError("--start and --end go with --prometheus; the records give their own range")
        from harness.records import check_types, load_records
        from harness.slo import load_quality

        records = load_records(args.records)
        check_types(records, str(args.records), required=("t_start", "latency_s", "status", "outcome"))
        quality = load_quality(args.quality) if args.quality else None
        report = evaluate_records(spec, records, quality, args.traffic_rps, args.price_per_hour,
                                  source={"kind": "records", "path": str(args.records)})
    else:
        from harness.slo.prometheus import PrometheusSource, parse_time

        if not args.start:
            raise UsageError("--prometheus needs --start (and --end, default now)")
        if args.quality:
            raise UsageError("--quality goes with --records")
        start = parse_time(args.start)
        end = parse_time(args.end or "now")
        source = PrometheusSource(args.prometheus, timeout_s=args.timeout)
        report = source.evaluate(spec, start, end, args.traffic_rps, args.price_per_hour)
    args.out.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    (args.out / "slo.json").write_text(report.to_json(), encoding="utf-8")
    (args.out / "slo.md").write_text(render_markdown(data), encoding="utf-8")
    missed = [r.slo.name for r in report.results if r.met is False]
    print(f"wrote {args.out / 'slo.json'} and slo.md: {len(report.results)} SLOs"
          + (f", not met: {', '.join(missed)}" if missed else ", all met or no data"))
    return 0
