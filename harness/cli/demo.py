"""``harness demo``: the reference server as stable and as canary, judged by the gate.

Canaries, each with the verdict its behaviour warrants: ``int8`` (the same weights dynamically
quantized: quality holds, so it may be promoted), ``undertrained`` (an early checkpoint: quality
falls, rollback) and ``latency`` (the stable model with 60 ms injected per batch: rollback)."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

# The verdicts each canary may get. int8 is 14-29% slower than float at the median on a small CPU
# (benchmarks/gate_power.py), around the 25% latency tolerance: promoted or held, never rolled back.
CANARIES: dict[str, tuple[str, list[str], str]] = {
    "int8": ("tiny:int8", [], "PROMOTE|HOLD"),
    "undertrained": ("tiny-undertrained", [], "ROLLBACK"),
    "latency": (
        "tiny",
        ["--enable-faults", "--admin-token", "demo-admin", "--faults", '{"latency_ms": 60}'],
        "ROLLBACK",
    ),
}


log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the canary gate on the shipped model against three canaries")
    p.add_argument("--canary", default="all", choices=[*CANARIES, "all"], help="which canary to judge (default: all)")
    p.add_argument("--out", type=Path, default=Path("reports"), help="report root (default: reports)")
    p.add_argument("--duration", type=float, default=20.0, help="load seconds per gate (default: 20)")
    p.add_argument("--images", type=int, default=100, help="evaluation images per gate (default: 100)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.canary.gate import GateConfig, run_gate
    from harness.cli.checks import at_least, out_folder, positive
    from harness.errors import InternalError, require_extra

    positive("duration", args.duration)
    at_least("images", args.images, 1)
    out_folder(args.out)
    require_extra("torch", "the demo")
    require_extra("locust", "the demo")
    from reference_model.server.launch import start_server

    names = list(CANARIES) if args.canary == "all" else [args.canary]
    stamp = time.strftime("%Y%m%dT%H%M%S")
    t0 = time.monotonic()
    rows = []
    server_args = ["--threads", "1"]
    log.info("starting the stable reference server (model tiny)")
    with start_server("tiny", extra_args=server_args) as stable:
        log.info("stable: %s", stable.url)
        for name in names:
            model, extra, expected = CANARIES[name]
            log.info("canary %r: model %s %s", name, model, " ".join(extra))
            with start_server(model, extra_args=server_args + extra) as canary:
                log.info("canary: %s", canary.url)
                out = args.out / f"demo-{stamp}-{name}"
                faults = {"latency_ms": 60} if name == "latency" else {}
                cfg = GateConfig(
                    stable.url,
                    canary.url,
                    out,
                    duration_s=args.duration,
                    users=2,
                    dataset=f"shapes:{args.images}",
                    seed=args.seed,
                    faults=faults,
                    run_id=f"demo-{stamp}-{name}",
                )
                rec = run_gate(cfg)
            rows.append((name, expected, rec["verdict"], rec["score"], out))
            for r in rec["reasons"][:3]:
                print(f"{name}: {r}")
    print(f"\n{'canary':<14}{'expected':<14}{'verdict':<10}{'score':>7}  report")
    for name, expected, verdict, score, out in rows:
        mark = "" if verdict in expected.split("|") else "  (unexpected)"
        print(
            f"{name:<14}{expected:<14}{verdict:<10}{'' if score is None else f'{score:g}':>7}  {out}/summary.md{mark}"
        )
    print(
        f"\ndone in {time.monotonic() - t0:.0f}s. Open the dashboard over these reports with:\n"
        f"  harness dashboard --reports {args.out}"
    )
    unexpected = [
        f"{name} {verdict} (expected {expected})"
        for name, expected, verdict, _, _ in rows
        if verdict not in expected.split("|")
    ]
    if unexpected:
        # Exit 1 is a gate's ROLLBACK only: a demo judged otherwise than designed is the harness's fault.
        raise InternalError(f"verdicts differ from the expected ones: {'; '.join(unexpected)}")
    return 0
