"""``harness serve``: run the reference captioning server (HTTP contract v1)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from harness.cli import LOG_LEVELS
from harness.errors import InputMissingError, MissingExtraError, UsageError, require_extra

__all__ = ["register", "add_arguments", "run"]


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the reference captioning server")
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The server's options, shared by ``harness serve`` and ``python -m reference_model.server``."""
    p.add_argument(
        "--model",
        default="tiny",
        help="tiny | tiny-undertrained | tiny:int8 | hf:PATH | null (answers at once: the server's own cost) "
        "(default: tiny)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: 8000)")
    p.add_argument("--port-file", type=Path, default=None, help="write the port listened on to this file")
    p.add_argument("--max-batch", type=int, default=32, help="images per inference batch at most (default: 32)")
    p.add_argument(
        "--max-wait-ms", type=float, default=5.0, help="how long an idle worker waits for a batch to fill (default: 5)"
    )
    p.add_argument(
        "--max-queue", type=int, default=256, help="images waiting at most; beyond, 429 with Retry-After (default: 256)"
    )
    p.add_argument(
        "--request-timeout-s", type=float, default=30.0, help="deadline of a request; past it, 503 (default: 30)"
    )
    p.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024, help="413 above (default: 10 MiB)")
    p.add_argument("--max-pixels", type=int, default=4096 * 4096, help="413 above (default: 4096*4096)")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0: half the cores, at most 4 (default: 0)")
    p.add_argument("--api-key", default=None, help="require this key on /v1/* (default: env CAPTION_API_KEY)")
    p.add_argument("--admin-token", default=None, help="token of /admin/* (default: env CAPTION_ADMIN_TOKEN)")
    p.add_argument("--enable-faults", action="store_true", help="serve /admin/faults (needs an admin token)")
    p.add_argument(
        "--faults",
        default=None,
        metavar="JSON",
        help="faults from the start, e.g. '{\"slow_start_s\": 5}' (needs --enable-faults)",
    )
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws (default: 0)")
    p.add_argument(
        "--block", action="append", default=[], metavar="WORD", help="add a word to the safety blocklist (repeatable)"
    )
    p.add_argument(
        "--drain-s",
        type=float,
        default=0.5,
        help="after SIGTERM, stay up (unready) this long before closing the listener (default: 0.5)",
    )
    p.add_argument("--access-log", action="store_true", help="uvicorn's own access log, besides the JSON request log")
    p.add_argument(
        "--log-level",
        dest="server_log_level",
        type=str.upper,
        choices=LOG_LEVELS,
        default=None,
        metavar="LEVEL",
        help="the server's log on stderr: INFO, one JSON line per request; ERROR, only "
        "the tracebacks of 500s; DEBUG adds uvicorn's (default: INFO, or harness's "
        "own --log-level)",
    )
    p.add_argument(
        "--decode-threads",
        type=int,
        default=0,
        help="threads decoding and shrinking images; 0: half the cores, at most 4 (default: 0)",
    )
    p.add_argument(
        "--max-decode-pixels",
        type=int,
        default=4 * 4096 * 4096,
        help="decoded pixels in flight at most, at least --max-pixels; beyond, 503 with Retry-After "
        "(default: 4*4096*4096)",
    )
    p.add_argument(
        "--header-timeout-s",
        type=float,
        default=10.0,
        help="a request's headers must arrive within this, else 408 and close (default: 10)",
    )
    p.add_argument(
        "--body-timeout-s",
        type=float,
        default=30.0,
        help="a request's body must arrive within this, else 408 and close (default: 30)",
    )
    p.add_argument(
        "--keep-alive-s", type=float, default=30.0, help="idle keep-alive connections close after (default: 30)"
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        help="open connections at most; one more is answered 503 and closed (default: 1000)",
    )
    p.add_argument(
        "--job-queue",
        type=int,
        default=1024,
        help="asynchronous jobs pending at most; one more is answered 429 (default: 1024)",
    )
    p.add_argument(
        "--job-ttl-s",
        type=float,
        default=300.0,
        help="an asynchronous job not done this long after arrival expires (default: 300)",
    )
    p.add_argument(
        "--job-keep-s", type=float, default=600.0, help="finished asynchronous jobs are kept this long (default: 600)"
    )
    p.add_argument(
        "--job-keep-max",
        type=int,
        default=10000,
        help="finished asynchronous jobs kept at most, the oldest forgotten first (default: 10000)",
    )
    p.add_argument(
        "--callback-allow",
        action="append",
        default=[],
        metavar="HOST",
        help="a host jobs may be called back on, besides loopback (repeatable; default: loopback only)",
    )
    p.add_argument(
        "--otlp-endpoint",
        default=None,
        metavar="URL",
        help="export the server's spans over OTLP/HTTP (protobuf) to this URL, e.g. http://collector:4318 "
        "(/v1/traces is added to a URL without a path; default: no export)",
    )
    p.add_argument(
        "--frontend-workers",
        type=int,
        default=0,
        metavar="N",
        help="serve HTTP and decode images in N worker processes, the model in this one; 0: all in one "
        "process (default: 0)",
    )
    p.add_argument(
        "--worker-stall-s",
        type=float,
        default=10.0,
        metavar="S",
        help="with --frontend-workers: a worker that has not answered the model process's check for this "
        "long is killed and replaced, its unanswered requests answered 503 (default: 10)",
    )
    p.add_argument(
        "--spans-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="append the server's finished spans to this file, one JSON line each (default: none)",
    )


def otlp_traces_url(url: str) -> str:
    """The OTLP/HTTP traces URL of ``--otlp-endpoint``: an http(s) URL with a host; one without a
    path (or just ``/``) gets ``/v1/traces``, the collector's traces route. ``UsageError`` otherwise."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        parts = None
    if "@" in url:  # refused before anything of it is shown: it may hold a password
        raise UsageError(
            "--otlp-endpoint must not hold credentials (OTEL_EXPORTER_OTLP_TRACES_HEADERS carries headers)"
        )
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"--otlp-endpoint takes an http:// or https:// URL with a host, not {url[:80]!r}")
    if parts.path in ("", "/"):
        return parts._replace(path="/v1/traces").geturl()
    return url


def settings_from_args(args: argparse.Namespace):
    """Check the options and build the server's settings; ``UsageError`` names a bad one."""
    from reference_model.server.faults import FaultSpec
    from reference_model.server.frontend import MAX_FRONTEND_WORKERS
    from reference_model.server.host import auto_threads
    from reference_model.server.settings import ServerSettings

    for name, low in (
        ("max_batch", 1),
        ("max_queue", 1),
        ("max_body_bytes", 1),
        ("max_pixels", 1),
        ("max_connections", 1),
        ("job_queue", 1),
        ("job_keep_max", 0),
    ):
        if getattr(args, name) < low:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {low} (got {getattr(args, name)})")
    for name in ("max_wait_ms", "request_timeout_s", "drain_s", "threads", "decode_threads"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative (got {getattr(args, name)})")
    for name in (
        "request_timeout_s",
        "header_timeout_s",
        "body_timeout_s",
        "keep_alive_s",
        "job_ttl_s",
        "worker_stall_s",
    ):
        if not getattr(args, name) > 0:
            raise UsageError(f"--{name.replace('_', '-')} must be above 0 (got {getattr(args, name)})")
    if args.max_decode_pixels < args.max_pixels:
        raise UsageError(
            f"--max-decode-pixels must be at least --max-pixels ({args.max_pixels}), got {args.max_decode_pixels}"
        )
    if not 0 <= args.frontend_workers <= MAX_FRONTEND_WORKERS:
        raise UsageError(f"--frontend-workers must be 0..{MAX_FRONTEND_WORKERS} (got {args.frontend_workers})")
    if args.job_keep_s < 0:
        raise UsageError(f"--job-keep-s must not be negative (got {args.job_keep_s})")
    for host in args.callback_allow:
        if not host or any(c in host for c in "/:@ *") or len(host) > 253:
            raise UsageError(f"--callback-allow takes a host name or IPv4 address, not {host[:80]!r}")
    otlp_endpoint = otlp_traces_url(args.otlp_endpoint) if args.otlp_endpoint is not None else None
    if args.api_key == "":
        raise UsageError("--api-key must not be empty (leave it out to serve without a key)")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535 (got {args.port})")
    for option, env in (("api_key", "CAPTION_API_KEY"), ("admin_token", "CAPTION_ADMIN_TOKEN")):
        if getattr(args, option) is None and env in os.environ and not os.environ[env].strip():
            # An empty secret would turn the guard off without a word: refused, as the flag form is.
            raise UsageError(f"{env} is set but empty: give it a value, or unset it to serve without one")
    api_key = args.api_key if args.api_key is not None else os.environ.get("CAPTION_API_KEY") or None
    admin_token = args.admin_token if args.admin_token is not None else os.environ.get("CAPTION_ADMIN_TOKEN") or None
    faults: dict = {}
    if args.faults is not None:
        if not args.enable_faults:
            raise UsageError("--faults needs --enable-faults")
        try:
            faults = json.loads(args.faults)
            if not isinstance(faults, dict):
                raise ValueError("not a JSON object")
            FaultSpec().with_updates(faults)
        except ValueError as exc:
            raise UsageError(f"--faults: {exc}") from None
    if args.enable_faults and not admin_token:
        raise UsageError("--enable-faults needs an admin token: --admin-token or env CAPTION_ADMIN_TOKEN")
    return ServerSettings(
        host=args.host,
        port=args.port,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_queue=args.max_queue,
        request_timeout_s=args.request_timeout_s,
        max_body_bytes=args.max_body_bytes,
        max_pixels=args.max_pixels,
        threads=args.threads or auto_threads(),
        api_key=api_key,
        admin_token=admin_token,
        enable_faults=args.enable_faults,
        faults=faults,
        fault_seed=args.fault_seed,
        blocklist_extra=tuple(args.block),
        drain_s=args.drain_s,
        access_log=args.access_log,
        decode_threads=args.decode_threads or auto_threads(),
        max_decode_pixels=args.max_decode_pixels,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        keep_alive_s=args.keep_alive_s,
        max_connections=args.max_connections,
        job_queue=args.job_queue,
        job_ttl_s=args.job_ttl_s,
        job_keep_s=args.job_keep_s,
        job_keep_max=args.job_keep_max,
        callback_allow=tuple(args.callback_allow),
        otlp_endpoint=otlp_endpoint,
        spans_file=str(args.spans_file) if args.spans_file is not None else None,
        log_level=(args.server_log_level or getattr(args, "log_level", None) or "INFO").lower(),
        frontend_workers=args.frontend_workers,
        worker_stall_s=args.worker_stall_s,
    )


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import out_file

    settings = settings_from_args(args)
    if args.port_file is not None:
        out_file(args.port_file, "--port-file")
    if args.spans_file is not None:
        out_file(args.spans_file, "--spans-file")
    if settings.otlp_endpoint or settings.spans_file:
        require_extra("opentelemetry.sdk", "the server's traces (--otlp-endpoint, --spans-file)")
    if settings.otlp_endpoint:
        require_extra("opentelemetry.exporter", "--otlp-endpoint (the OTLP/HTTP exporter)")
    require_extra("torch", "the reference server")
    require_extra("fastapi", "the reference server")
    import torch

    from reference_model import load_captioner

    torch.set_num_threads(settings.threads)
    try:
        captioner = load_captioner(args.model, args.device)
    except FileNotFoundError as exc:
        raise InputMissingError(f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}") from None
    except ImportError as exc:
        raise MissingExtraError.from_import_error(exc, f"model {args.model!r}") or UsageError(
            f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}"
        ) from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}") from None
    if settings.frontend_workers:
        from reference_model.server.frontend import run_front_server as run_server
    else:
        from reference_model.server.host import run_server

    try:
        return run_server(settings, captioner, port_file=args.port_file)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
