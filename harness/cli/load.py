"""``harness load``: run a load or chaos scenario through Locust and write its records,
Locust's CSVs and ``summary.json`` to a folder."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from harness.errors import DataError, InputMissingError, ServiceUnavailableError, UsageError
from harness.protocols.options import protocol_choice

__all__ = ["register", "run"]


def register(sub) -> None:
    p = sub.add_parser(
        "load",
        help="run a load or chaos scenario (Locust) and summarise it",
        description="Run a shipped scenario (see --list) or a Locust file through Locust; write "
        "records.jsonl/.parquet, Locust's CSVs and summary.json to --out.",
    )
    from harness.load.settings import add_run_options

    p.add_argument("--target", default=None, help="base URL of the service (restart and cold_start start their own)")
    p.add_argument(
        "--scenario", default=None, help="a shipped scenario's name (see --list) or the path of a Locust file"
    )
    p.add_argument("--list", action="store_true", help="list the shipped scenarios and where their files are, and exit")
    p.add_argument(
        "--users", type=int, default=None, help="concurrent users (closed loop; with --rate: 2x the rate, at least 16)"
    )
    p.add_argument("--workers", type=int, default=0, help="Locust worker processes on this machine (master/worker)")
    p.add_argument(
        "--expect-workers",
        type=int,
        default=None,
        help="workers the master waits for in all, counting ones started on other machines",
    )
    p.add_argument(
        "--master-bind",
        default="127.0.0.1",
        help="address the master listens on for workers, HOST[:PORT] (0.0.0.0 for other machines)",
    )
    p.add_argument("--loglevel", default="WARNING", help="Locust's log level (log in OUT/locust.log)")
    add_run_options(p)  # the options the Locust processes take too, declared once (harness.load.settings)
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from harness.cli.checks import out_folder
    from harness.load.launch import MANAGED_SCENARIOS, resolve_scenario
    from harness.load.payload import check_dataset

    if args.users is not None and args.rate is not None:
        raise UsageError("--users and --rate go one at a time: --rate sets the users itself")
    if args.scenario is None:
        raise UsageError("--scenario is required (see harness load --list)")
    if args.out is None:
        raise UsageError("--out DIR is required")
    path = resolve_scenario(args.scenario)
    managed = path.stem in MANAGED_SCENARIOS
    if args.target is None and not managed:
        raise UsageError(f"--target URL is required for scenario {path.stem!r}")
    if args.target is not None and not args.target.startswith(("http://", "https://")):
        raise UsageError(f"--target must be an http:// or https:// URL (got {args.target!r})")
    for name, low in (
        ("users", 1),
        ("workers", 0),
        ("expect_workers", 1),
        ("pool_size", 1),
        ("image_size", 16),
        ("seed", 0),
    ):
        v = getattr(args, name)
        if v is not None and v < low:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {low} (got {v})")
    for name in ("rate", "request_timeout", "latency_threshold", "burstiness"):
        v = getattr(args, name)
        if v is not None and not (v > 0 and math.isfinite(v)):
            flag = "timeout" if name == "request_timeout" else name.replace("_", "-")
            raise UsageError(f"--{flag} must be a positive number (got {v})")
    if not 0 <= args.embedding_sample <= 1:
        raise UsageError(f"--embedding-sample is a fraction in [0, 1] (got {args.embedding_sample})")
    if args.loglevel.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise UsageError(f"--loglevel must be DEBUG, INFO, WARNING, ERROR or CRITICAL (got {args.loglevel!r})")
    _, _, port = args.master_bind.partition(":")
    if port and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise UsageError(f"--master-bind HOST[:PORT] needs a port 1..65535 (got {args.master_bind!r})")
    out_folder(args.out)
    if (args.out / "records.jsonl").exists():
        raise UsageError(f"{args.out} already holds records.jsonl; choose a new --out")
    check_dataset(args.dataset, args.pool_size)  # a data set the run could not send is refused here, in one line
    protocol_choice(args).build()  # a bad protocol, adapter file or unset --auth-env is reported here


def _protocol_options(args: argparse.Namespace) -> dict:
    """The protocol options for the Locust processes: names only (they read credentials from
    the environment they inherit), the adapter file as an absolute path."""
    opts = protocol_choice(args).options()
    if opts["adapter"]:
        opts["adapter"] = str(Path(opts["adapter"]).resolve())
    return opts


def _fmt_ms(x) -> str:
    return "-" if x is None else f"{x * 1000:.1f} ms"


def run(args: argparse.Namespace) -> int:
    from harness.load.launch import LoadRun, available_scenarios, run_load
    from harness.load.settings import run_options
    from harness.progress import Progress

    if args.list:
        from harness.resources import scenarios_dir

        for name, doc in available_scenarios().items():
            print(f"{name:18} {doc}")
        print(
            f"files in {scenarios_dir()}: each runs as it is with locust -f {scenarios_dir() / 'NAME.py'}",
            file=sys.stderr,
        )
        return 0
    _check(args)
    users = args.users
    if args.rate is not None and users is None:
        users = max(16, min(1000, math.ceil(2 * args.rate)))
    host, _, port = args.master_bind.partition(":")
    options = {
        **run_options(args),
        **_protocol_options(args),
        "embedding_sample": args.embedding_sample or None,
        "server_args": args.server_args or None,
    }
    load_run = LoadRun(
        scenario=args.scenario,
        out=args.out.resolve(),
        target=args.target,
        duration_s=args.duration,
        users=users,
        rate=args.rate,
        workers=args.workers,
        expect_workers=args.expect_workers,
        master_bind=host or "127.0.0.1",
        master_port=int(port) if port else None,
        options=options,
        loglevel=args.loglevel,
    )
    bar = Progress(None, "requests")
    try:
        outcome = run_load(load_run, progress=bar)
    finally:
        bar.close()
    s = outcome.summary
    kind = {64: UsageError, 65: DataError, 66: InputMissingError, 69: ServiceUnavailableError}.get(outcome.returncode)
    if s is not None and (s.get("error") or kind is not None):
        # stopped before its users started (a data set or adapter a run's process could not use, the
        # workers --expect-workers waits for not all there): the summary or the log's last line says
        # why; the records and the log stay where they are
        tail = outcome.log_tail(5).splitlines()
        why = s.get("error") or (tail[-1] if tail else f"exit {outcome.returncode}")
        stopped = ServiceUnavailableError if outcome.returncode == 69 else kind or DataError
        raise stopped(f"load run stopped: {why}; see {outcome.log_path}")
    if s is None:
        tail = outcome.log_tail(5)
        last = tail.splitlines()[-1] if tail else "no output"
        if kind is not None:
            raise kind(f"load run failed: {last}")
        raise ServiceUnavailableError(
            f"load run ended without a summary (exit {outcome.returncode}): {last}; see {outcome.log_path}"
        )
    lat = s["latency_s"]
    ok = s["outcomes"].get("ok", 0)
    n = s["requests"]
    print(
        f"{s['scenario']}: {n} requests in {s['duration_s']:.1f} s ({s['throughput_rps'] or 0:.1f}/s), "
        f"ok {100.0 * ok / n if n else 0:.1f}%, p50 {_fmt_ms(lat['p50'])}, p95 {_fmt_ms(lat['p95'])}, "
        f"p99 {_fmt_ms(lat['p99'])}, goodput {s['goodput']['rps'] or 0:.1f}/s under "
        f"{s['goodput']['threshold_s'] * 1000:g} ms"
    )
    pipe = s.get("pipeline")
    if pipe:  # an asynchronous scenario: the lag is arrival to caption available
        print(
            f"  pipeline: {pipe['jobs']} jobs, {pipe['done']} captioned, {pipe['missing']} missing "
            f"({pipe['rejected']} refused, {pipe['failed']} failed, {pipe['expired']} expired, "
            f"{pipe['pending']} still pending); lag p50 {_fmt_ms(pipe['lag_p50_s'])}, "
            f"p95 {_fmt_ms(pipe['lag_p95_s'])}, p99 {_fmt_ms(pipe['lag_p99_s'])}; "
            f"drain {_fmt_ms(pipe['drain_s'])}"
        )
    for note in s.get("notes", []):
        print(f"  note: {note}")
    print(f"records and summary in {outcome.out}")
    if n and s["outcomes"].get("connection_error", 0) == n:
        raise ServiceUnavailableError(
            f"target unreachable at {s.get('host')}: all {n} requests failed to connect; "
            f"records and summary in {outcome.out}"
        )
    return 0
