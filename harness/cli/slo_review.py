"""``harness slo review``: the SLO review report, every SLO of a spec over its window (28 or 30
days) from a Prometheus or from records: budget left and its burn-down, the multiwindow alerts'
burn rates over time and when they fired, deploys and drift reports on the same axis, and what
the review meeting should decide. ``harness slo`` has required options of its own, so
``harness.cli.main`` sends ``slo review`` here before the main parser sees it.

Exit codes: 0 the report is written (SLOs without data are named in it and on stderr); 65 it is
written but no SLO had data, or the records are malformed; 66 an input is missing; 69 Prometheus
is unavailable (nothing written)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.cli.checks import TimeFlag
from harness.errors import EXIT_DATA, EXIT_OK, UsageError

__all__ = ["PROG", "build_parser", "run"]

PROG = "harness slo review"


def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = parser_class(
        prog=PROG,
        description="The SLO review: every SLO of the spec over its window from Prometheus or records: "
        "budget left, burn-down and exhaustion projection, alerts' burn rates over time and when they "
        "fired, deploys and drift reports as markers, and what to decide. Writes review.md, review.html "
        "(no script needed) and review.json into --out. Exit 0 written; 65 written but no SLO had data, "
        "or malformed records; 69 Prometheus unavailable.",
    )
    p.add_argument("--spec", required=True, type=Path, help="SLO spec (native YAML or OpenSLO v1)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prometheus", metavar="URL", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    src.add_argument(
        "--records",
        type=Path,
        help="records.jsonl / records.parquet, a run folder, or a partitioned parquet dataset folder",
    )
    p.add_argument(
        "--window",
        metavar="DURATION",
        help="how far back the review looks, e.g. 28d (default: the longest period of the spec's SLOs)",
    )
    p.add_argument(
        "--end",
        "--until",
        dest="end",
        action=TimeFlag,
        help="the window's end: unix s, ISO 8601 (UTC), now-1d (default: now with --prometheus, the last "
        "answer with --records); rounded down to a whole step",
    )
    p.add_argument(
        "--step",
        metavar="DURATION",
        help="resolution of the series (default: 1m up to 28 days, coarser beyond so a window has at most "
        "40,320 steps); with --prometheus, at least two scrape intervals for a spec's own promql",
    )
    p.add_argument(
        "--decisions",
        type=Path,
        metavar="PATH",
        help="decision.json, or a folder searched for them: deploys drawn as markers",
    )
    p.add_argument(
        "--drift", type=Path, metavar="PATH", help="drift.json, or a folder searched for them: drift reports as markers"
    )
    p.add_argument("--quality", type=Path, help="per-image quality table (image_id, quality) for quality SLOs")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for Prometheus (default 10)")
    p.add_argument("--out", required=True, type=Path, help="folder for review.md, review.html and review.json")
    p.set_defaults(func=run, command_name=PROG)
    return p


def _duration(option: str, text: str | None) -> float | None:
    from harness.duration import parse_duration

    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--{option}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import out_folder, positive, time_option

    clock = time.time()
    end = time_option(args, "end")
    window = _duration("window", args.window)
    step = _duration("step", args.step)
    positive("timeout", args.timeout)
    out_folder(args.out)
    if args.prometheus is not None and args.quality:
        raise UsageError("--quality goes with --records")

    from harness.slo import load_spec
    from harness.slo.history import load_markers, prometheus_review, records_review
    from harness.slo.review_report import write_review

    spec = load_spec(args.spec)
    if window is None:
        window = max(s.period_s for s in spec.slos)
    markers, warnings = load_markers(args.decisions, args.drift)
    if args.prometheus is not None:
        from harness.slo.prometheus import PrometheusSource

        source = PrometheusSource(args.prometheus, timeout_s=args.timeout)
        end = clock if end is None else end
        review = prometheus_review(spec, source, window, end, step, markers, warnings)
    else:
        from harness.slo import load_quality

        quality = load_quality(args.quality) if args.quality else None
        review = records_review(spec, args.records, window, end, step, quality, markers, warnings)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = write_review(review, args.out)
    for warning in review.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)
    lacking = review.without_data
    for s in review.slos:
        if not s.has_data:
            print(f"{PROG}: warning: {s.slo.name}: {s.note}", file=sys.stderr)
    print(
        f"wrote {paths['html']}, review.md and review.json: {len(review.slos)} SLOs over "
        f"{review.to_dict()['window']}, {len(review.decisions)} points to decide"
        + (f", without data: {', '.join(lacking)}" if lacking else "")
    )
    return EXIT_DATA if lacking and len(lacking) == len(review.slos) else EXIT_OK
