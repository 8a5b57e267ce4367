"""``harness judge serve``: the judge as an HTTP API for rollout controllers (Argo Rollouts' web
provider, Flagger's webhooks): live analyses over the sources a config lists, kept in a state
folder so that they survive a restart. ``harness judge`` is a command with options of its own, so
``harness.cli.main`` sends ``judge serve`` here before the main parser sees it.

Nothing heavy is imported until the command runs: FastAPI and uvicorn (the ``api`` extra),
pydantic and the judge come in with ``run``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from harness.errors import MissingExtraError, ServiceUnavailableError, UsageError

__all__ = ["PROG", "KEY_ENV", "build_parser", "run"]

PROG = "harness judge serve"
KEY_ENV = "HARNESS_JUDGE_KEY"


def build_parser(parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser) -> argparse.ArgumentParser:
    p = parser_class(
        prog=PROG,
        description="Serve the judge as an HTTP API for rollout controllers (Argo Rollouts, Flagger): "
        "live analyses over the sources the config lists, judged at every interval and kept in the "
        f"state folder. The key is the environment's {KEY_ENV} (unset: no key). "
        "Routes, config and status document: docs/reference/gate.md, 'judge serve API'.",
    )
    p.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="FILE",
        help="YAML: sources (the allow-list of records and Prometheus sources, by name), spec, "
        "judge_config, max_analyses, interval, lifetime",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8090, help="port; 0 picks a free one (default: 8090)")
    p.add_argument(
        "--state",
        type=Path,
        default=Path("judge-state"),
        metavar="DIR",
        help="where the analyses live, DIR/analyses/NAME/ (default: ./judge-state)",
    )
    p.add_argument("--port-file", type=Path, default=None, help="write the port listened on to this file")
    p.set_defaults(func=run, command_name=PROG)
    return p


def _key() -> str | None:
    if KEY_ENV not in os.environ:
        return None
    key = os.environ[KEY_ENV].strip()  # a secret file's final newline is no part of the key
    if not key:
        raise UsageError(f"{KEY_ENV} is set but empty: give it a value, or unset it to serve without a key")
    return key


def run(args: argparse.Namespace) -> int:
    import importlib.util
    import logging

    from harness.cli.checks import out_file, out_folder

    key = _key()
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0..65535 (got {args.port})")
    out_folder(args.state, "--state")
    if args.port_file is not None:
        out_file(args.port_file, "--port-file")
    for module in ("fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError("api", PROG, module)

    from harness.canary.api import serve
    from harness.canary.service import JudgeService, load_serve_config

    log = logging.getLogger(__name__)
    config, settings, sources = load_serve_config(args.config)
    service = JudgeService(config, settings, sources, args.state, key)
    service.load()
    if key is None:
        log.warning("%s is not set: the API answers anyone who can reach it", KEY_ENV)
    try:
        return serve(service, args.host, args.port, args.port_file)
    except OSError as exc:
        raise ServiceUnavailableError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
