"""``harness serve``: run the reference captioning server (HTTP contract v1)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from harness.errors import InputMissingError, MissingExtraError, UsageError, require_extra

__all__ = ["register", "add_arguments", "run"]


def register(sub) -> None:
    p = sub.add_parser("serve", help="run the reference captioning server")
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The server's options, shared by ``harness serve`` and ``python -m reference_model.server``."""
    p.add_argument("--model", default="tiny", help="tiny | tiny-undertrained | tiny:int8 | hf:PATH (default: tiny)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: 8000)")
    p.add_argument("--port-file", type=Path, default=None, help="write the port listened on to this file")
    p.add_argument("--max-batch", type=int, default=32, help="images per inference batch at most (default: 32)")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long an idle worker waits for a batch to fill (default: 5)")
    p.add_argument("--max-queue", type=int, default=256,
                   help="images waiting at most; beyond, 429 with Retry-After (default: 256)")
    p.add_argument("--request-timeout-s", type=float, default=30.0,
                   help="deadline of a request; past it, 503 (default: 30)")
    p.add_argument("--max-body-bytes", type=int, default=10 * 1024 * 1024, help="413 above (default: 10 MiB)")
    p.add_argument("--max-pixels", type=int, default=4096 * 4096, help="413 above (default: 4096*4096)")
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0: half the cores, at most 4 (default: 0)")
    p.add_argument("--api-key", default=None, help="require this key on /v1/* (default: env CAPTION_API_KEY)")
    p.add_argument("--admin-token", default=None, help="token of /admin/* (default: env CAPTION_ADMIN_TOKEN)")
    p.add_argument("--enable-faults", action="store_true", help="serve /admin/faults (needs an admin token)")
    p.add_argument("--faults", default=None, metavar="JSON",
                   help='faults from the start, e.g. \'{"slow_start_s": 5}\' (needs --enable-faults)')
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the fault draws (default: 0)")
    p.add_argument("--block", action="append", default=[], metavar="WORD",
                   help="add a word to the safety blocklist (repeatable)")
    p.add_argument("--drain-s", type=float, default=0.5,
                   help="after SIGTERM, stay up (unready) this long before closing the listener (default: 0.5)")
    p.add_argument("--access-log", action="store_true", help="log every request")


def settings_from_args(args: argparse.Namespace):
    """Check the options and build the server's settings; ``UsageError`` names a bad one."""
    from reference_model.server.faults import FaultSpec
    from reference_model.server.host import auto_threads
    from reference_model.server.settings import ServerSettings

    for name, low in (("max_batch", 1), ("max_queue", 1), ("max_body_bytes", 1), ("max_pixels", 1)):
        if getattr(args, name) < low:
            raise UsageError(f"--{name.replace('_', '-')} must be at least {low} (got {getattr(args, name)})")
    for name in ("max_wait_ms", "request_timeout_s", "drain_s", "threads"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative (got {getattr(args, name)})")
    if args.request_timeout_s == 0:
        raise UsageError("--request-timeout-s must be above 0")
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535 (got {args.port})")
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
    )


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
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
            f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}") from None
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}") from None
    from reference_model.server.host import run_server

    try:
        return run_server(settings, captioner, port_file=args.port_file)
    except OSError as exc:
        raise UsageError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}") from None
