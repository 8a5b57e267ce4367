"""The settings of a load run, as Locust options: ``locust -f scenarios/NAME.py`` and
``harness load`` accept the same ones, and a master hands them to its workers."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.duration import parse_duration

__all__ = ["LoadSettings", "add_arguments", "settings_from_options", "new_run_id"]

# Options Locust itself owns that the harness reads: num_users, spawn_rate, run_time, host,
# stop_timeout, expect_workers. Everything below is the harness's own, declared once: Locust's
# parser (``add_arguments``, each also read from HARNESS_<NAME>) and ``harness load``
# (``add_run_options``) both take them from this table, with the protocol options of
# ``harness.protocols.options``.
RUN_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (
        ("--out",),
        dict(type=Path, default=None, help="folder for records.jsonl/.parquet, Locust's CSVs and summary.json"),
    ),
    (
        ("--duration",),
        dict(
            type=lambda v: _duration_arg(v),
            default=None,
            help="length of the run: 90s, 2m, 1h30m (default: the scenario's)",
        ),
    ),
    (("--run-id",), dict(default=None, help="run id written on every record (default: SCENARIO-TIME-HEX)")),
    (("--target-name",), dict(default="target", help="target label on the records, e.g. baseline or canary")),
    (("--dataset",), dict(default="shapes", help="shapes, shapes:SHIFT[:SEVERITY] or a COCO-format folder")),
    (("--pool-size",), dict(type=int, default=32, help="images in the payload pool (default: 32)")),
    (("--image-size",), dict(type=int, default=128, help="side in pixels of shapes-world images (default: 128)")),
    (("--seed",), dict(type=int, default=0, help="seed of the payload pool, arrivals and choices (default: 0)")),
    (("--rate",), dict(type=float, default=None, help="open-loop arrivals per second (users then cap concurrency)")),
    (
        ("--burstiness",),
        dict(
            type=float,
            default=1.0,
            help="gamma shape of inter-arrival times: 1 is Poisson, <1 burstier, >1 more regular",
        ),
    ),
    (
        ("--timeout", "--request-timeout"),
        dict(
            dest="request_timeout",
            metavar="SECONDS",
            type=float,
            default=None,
            help="client timeout per request in seconds",
        ),
    ),
    (
        ("--latency-threshold",),
        dict(
            type=float, default=0.5, help="goodput counts ok requests at or under this latency, seconds (default: 0.5)"
        ),
    ),
    (("--api-key",), dict(default=None, help="API key for the target (sent as a bearer token)")),
    (("--admin-token",), dict(default=None, help="admin token of the target's /admin/faults (chaos scenarios)")),
    (
        ("--fault-via",),
        dict(
            default="auto",
            choices=["auto", "target", "proxy"],
            help="chaos faults through the target's fault endpoint or the harness proxy (default: auto)",
        ),
    ),
    (
        ("--embedding-sample",),
        dict(type=float, default=0.0, help="fraction of requests that ask for the embedding (default: 0)"),
    ),
    (
        ("--server-args",),
        dict(
            default="",
            help='options for the server the restart and cold_start scenarios start, e.g. --server-args="--max-batch 8"',
        ),
    ),
)
# What a load run (``harness.load.launch.LoadRun``) passes by itself, not among its options.
_RUN_OWN = ("out", "duration", "rate")


def _dest(flags: tuple[str, ...], kw: dict[str, Any]) -> str:
    return kw.get("dest") or flags[0].lstrip("-").replace("-", "_")


def _duration_arg(text: str) -> float:
    import argparse

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: Any) -> None:
    """Add the harness's options to a Locust argument parser (``init_command_line_parser``)."""
    from harness.protocols.options import add_protocol_options

    group = parser.add_argument_group("harness", "records, payloads and summary")
    for flags, kw in RUN_OPTIONS:
        group.add_argument(*flags, env_var="HARNESS_" + _dest(flags, kw).upper(), **kw)
    add_protocol_options(group, env_var=True)


def add_run_options(parser: Any) -> None:
    """Add the same options to ``harness load``'s parser."""
    from harness.protocols.options import add_protocol_options

    for flags, kw in RUN_OPTIONS:
        parser.add_argument(*flags, **kw)
    add_protocol_options(parser)


def run_options(args: Any) -> dict[str, Any]:
    """The options ``harness load`` hands its Locust processes, by their names there (the protocol
    options come from ``harness.protocols.options``)."""
    out = {_dest(flags, kw): getattr(args, _dest(flags, kw)) for flags, kw in RUN_OPTIONS}
    return {k: v for k, v in out.items() if k not in _RUN_OWN}


def new_run_id(scenario: str) -> str:
    return f"{scenario}-{time.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class LoadSettings:
    """Everything a scenario reads: how much load, from which images, recorded where."""

    scenario: str
    run_id: str
    out: Path
    host: str | None
    target_name: str = "target"
    users: int | None = None
    spawn_rate: float | None = None
    duration_s: float | None = None
    rate: float | None = None
    burstiness: float = 1.0
    dataset: str = "shapes"
    pool_size: int = 32
    image_size: int = 128
    seed: int = 0
    request_timeout_s: float | None = None
    latency_threshold_s: float = 0.5
    api_key: str | None = None
    adapter: str | None = None
    protocol: str | None = None
    model: str | None = None
    auth_env: str | None = None
    auth_header: str | None = None
    admin_token: str | None = None
    fault_via: str = "auto"
    embedding_sample: float = 0.0
    server_args: str = ""
    workers: int = 0


def settings_from_options(options: Any, scenario: str) -> LoadSettings:
    """Read the parsed Locust options (missing harness options take their defaults)."""
    get = lambda name, default=None: getattr(options, name, default) if options is not None else default  # noqa: E731
    run_id = get("run_id") or new_run_id(scenario)
    out = Path(get("out") or os.path.join("reports", run_id))
    run_time = get("duration") or get("run_time")
    workers = int(get("expect_workers", 0) or 0) if get("master") or get("worker") else 0
    return LoadSettings(
        scenario=scenario,
        run_id=run_id,
        out=out,
        host=get("host"),
        target_name=get("target_name") or "target",
        users=get("num_users"),
        spawn_rate=get("spawn_rate"),
        duration_s=float(run_time) if run_time else None,
        rate=get("rate"),
        burstiness=float(get("burstiness", 1.0) or 1.0),
        dataset=get("dataset") or "shapes",
        pool_size=int(get("pool_size", 32) or 32),
        image_size=int(get("image_size", 128) or 128),
        seed=int(get("seed", 0) or 0),
        request_timeout_s=get("request_timeout"),
        latency_threshold_s=float(get("latency_threshold", 0.5) or 0.5),
        api_key=get("api_key"),
        adapter=str(get("adapter")) if get("adapter") else None,
        protocol=get("protocol"),
        model=get("model"),
        auth_env=get("auth_env"),
        auth_header=get("auth_header"),
        admin_token=get("admin_token"),
        fault_via=get("fault_via") or "auto",
        embedding_sample=float(get("embedding_sample", 0.0) or 0.0),
        server_args=get("server_args") or "",
        workers=workers,
    )
