"""``python -m harness.load.run -f scenarios/NAME.py [Locust and harness options]``: one Locust
process (single, master or worker) driven as a library: Environment, runner, the scenario's
shape, Locust's CSV writer, and the harness's record capture.

``harness load`` starts this module in child processes, so gevent's monkey-patching stays out
of the harness's own process. It takes Locust's own options (``--host``, ``-u``, ``--master``,
``--worker``, ``--expect-workers``, ``--csv`` ...) plus the harness's (see ``settings.py``).
"""

from __future__ import annotations

# Locust (and gevent's monkey-patching) first, before anything opens a socket.
# isort: off
import locust
import gevent
# isort: on

import csv
import logging
import os
import signal
import sys
import time
from pathlib import Path

from locust.argument_parser import get_parser, parse_locustfile_option
from locust.env import Environment
from locust.log import setup_logging
from locust.runners import STATE_STOPPED, WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV, StatsCSVFileWriter, stats_history
from locust.util.load_locustfile import load_locustfile

__all__ = ["main"]

log = logging.getLogger("harness.load")

_EXIT_USAGE, _EXIT_DATA, _EXIT_UNAVAILABLE = 64, 65, 69


def _watch_parent(pid: int, runner) -> None:
    """Quit when the process that started this one is gone (no orphaned load generators)."""
    while True:
        gevent.sleep(0.5)
        if os.getppid() != pid:
            log.warning("parent process exited; stopping the run")
            runner.quit()
            return


def _final_csv(env: Environment, prefix: str) -> None:
    """Rewrite the stats, failures and exceptions CSVs with the final totals."""
    writer = StatsCSV(env, PERCENTILES_TO_REPORT)
    for suffix, method in (
        ("_stats.csv", writer.requests_csv),
        ("_failures.csv", writer.failures_csv),
        ("_exceptions.csv", writer.exceptions_csv),
    ):
        with open(prefix + suffix, "w", newline="") as fh:
            method(csv.writer(fh))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    pre = parse_locustfile_option(argv)
    path = str(pre.locustfile or "")
    if not path or not os.path.isfile(path):
        print(f"harness.load.run: error: scenario file not found: {path or '(give -f FILE)'}", file=sys.stderr)
        return _EXIT_USAGE
    try:
        user_classes, shape_classes = load_locustfile(path)
    except Exception as exc:  # the scenario's own code failed on import: one line, not a traceback
        why = " ".join(str(exc).split())[:300]
        print(
            f"harness.load.run: error: {path}: the scenario failed to load: {type(exc).__name__}: {why}",
            file=sys.stderr,
        )
        return _EXIT_DATA
    parser = get_parser(default_config_files=[])
    options = parser.parse_args(argv)
    options.headless = True
    setup_logging(options.loglevel, options.logfile)
    if not user_classes:
        print(f"harness.load.run: error: {path} defines no User class", file=sys.stderr)
        return _EXIT_USAGE
    shape = shape_classes[0] if shape_classes and not options.worker else None
    env = Environment(
        user_classes=list(user_classes.values()),
        shape_class=shape,
        events=locust.events,
        host=options.host,
        stop_timeout=float(options.stop_timeout or 0.0),
        parsed_options=options,
        parsed_locustfiles=[path],
        locustfile=os.path.basename(path),
    )
    if options.master:
        runner = env.create_master_runner(options.master_bind_host, options.master_bind_port)
    elif options.worker:
        try:
            runner = env.create_worker_runner(options.master_host, options.master_port)
        except OSError as exc:
            print(f"harness.load.run: error: cannot reach the Locust master: {exc}", file=sys.stderr)
            return _EXIT_UNAVAILABLE
    else:
        runner = env.create_local_runner()
    env.events.init.fire(environment=env, runner=runner, web_ui=None)
    for sig in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(sig, lambda: gevent.spawn(runner.quit))
    parent = os.getppid()
    if os.environ.get("HARNESS_WATCH_PARENT") == "1":
        gevent.spawn(_watch_parent, parent, runner)

    if isinstance(runner, WorkerRunner):
        runner.greenlet.join()
        return env.process_exit_code or 0

    csv_writer = csv_greenlet = None
    prefix = options.csv_prefix
    if prefix:
        Path(prefix).parent.mkdir(parents=True, exist_ok=True)
        csv_writer = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, prefix, options.stats_history_enabled)
        csv_greenlet = gevent.spawn(csv_writer.stats_writer)
    gevent.spawn(stats_history, runner)

    if options.master:
        deadline = time.monotonic() + float(options.expect_workers_max_wait or 60)
        while len(runner.clients.ready) < options.expect_workers:
            if time.monotonic() > deadline:
                print(
                    f"harness.load.run: error: {len(runner.clients.ready)} of {options.expect_workers} "
                    "workers connected",
                    file=sys.stderr,
                )
                runner.quit()
                env.events.quitting.fire(environment=env, reverse=True)
                return _EXIT_UNAVAILABLE
            gevent.sleep(0.1)

    if env.shape_class is not None:
        runner.start_shape()
        if options.run_time:
            gevent.spawn_later(options.run_time + 30, runner.quit)  # a stuck shape must not run forever
    else:
        runner.start(options.num_users or 1, options.spawn_rate or 10)
        gevent.spawn_later(options.run_time or 60, runner.quit)
    runner.greenlet.join()
    if runner.state != STATE_STOPPED:
        runner.quit()
    if csv_writer is not None:
        csv_greenlet.kill(block=True)
        csv_writer.close_files()
        _final_csv(env, prefix)
    env.events.quitting.fire(environment=env, reverse=True)
    return env.process_exit_code or 0


if __name__ == "__main__":
    sys.exit(main())
