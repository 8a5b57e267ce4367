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
# stop_timeout, expect_workers. Everything below is the harness's own.
_ARGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--out", dict(default=None, help="folder for records.jsonl/.parquet and summary.json (default: reports/RUN_ID)")),
    (
        "--duration",
        dict(
            default=None,
            type=lambda v: _duration_arg(v),
            help="length of the run: 90s, 2m, 1h30m (default: the scenario's)",
        ),
    ),
    ("--run-id", dict(default=None, help="run id written on every record (default: SCENARIO-TIME-HEX)")),
    ("--target-name", dict(default="target", help="target label on the records, e.g. baseline or canary")),
    ("--dataset", dict(default="shapes", help="'shapes' (the built-in world) or a COCO-format folder")),
    ("--pool-size", dict(type=int, default=32, help="images in the payload pool")),
    ("--image-size", dict(type=int, default=128, help="side in pixels of shapes-world images")),
    ("--seed", dict(type=int, default=0, help="seed of the payload pool, arrivals and choices")),
    ("--rate", dict(type=float, default=None, help="open-loop arrivals per second (users cap concurrency)")),
    (
        "--burstiness",
        dict(
            type=float,
            default=1.0,
            help="gamma shape of inter-arrival times: 1 is Poisson, <1 burstier, >1 more regular",
        ),
    ),
    ("--request-timeout", dict(type=float, default=None, help="client timeout per request in seconds")),
    (
        "--latency-threshold",
        dict(type=float, default=0.5, help="goodput counts ok requests at or under this latency (seconds)"),
    ),
    ("--api-key", dict(default=None, help="API key for the target (sent as a bearer token)")),
    ("--adapter", dict(default=None, help="adapter file (JSON/YAML) for a non-contract-v1 target")),
    (
        "--protocol",
        dict(
            default=None,
            help="protocol the target speaks: v1 (default), openai-chat, kserve-v2, torchserve, hf-inference",
        ),
    ),
    ("--model", dict(default=None, help="model name the protocol asks for")),
    ("--auth-env", dict(default=None, help="environment variable holding the target's token (bearer)")),
    ("--auth-header", dict(default=None, help="send the --auth-env token in this header instead")),
    ("--admin-token", dict(default=None, help="admin token of the target's /admin/faults (chaos scenarios)")),
    (
        "--fault-via",
        dict(
            default="auto",
            choices=["auto", "target", "proxy"],
            help="chaos faults through the target's fault endpoint or the harness proxy",
        ),
    ),
    ("--embedding-sample", dict(type=float, default=0.0, help="fraction of requests that ask for the embedding")),
    (
        "--server-args",
        dict(
            default="", help="extra arguments for the reference server that the restart and cold_start scenarios start"
        ),
    ),
)


def _duration_arg(text: str) -> float:
    import argparse

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: Any) -> None:
    """Add the harness's options to a Locust argument parser (``init_command_line_parser``)."""
    group = parser.add_argument_group("harness", "records, payloads and summary")
    for flag, kw in _ARGS:
        env = "HARNESS_" + flag.lstrip("-").replace("-", "_").upper()
        group.add_argument(flag, env_var=env, **kw)


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
        adapter=get("adapter"),
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
