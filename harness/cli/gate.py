"""``harness gate``: baseline and canary side by side, judged; exit 0 PROMOTE, 1 ROLLBACK, 2 HOLD."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli.notify import add_notify_options, notify_options
from harness.errors import UsageError
from harness.protocols.options import add_protocol_options, protocol_choice


def register(sub) -> None:
    p = sub.add_parser("gate", help="judge a canary against its baseline (exit 0 promote, 1 rollback, 2 hold)")
    p.add_argument("--baseline", required=True, metavar="URL", help="the stable service")
    p.add_argument("--canary", required=True, metavar="URL", help="the candidate service")
    p.add_argument("--spec", type=Path, default=None, help="SLO spec YAML (default: the shipped examples/slo.yaml)")
    p.add_argument(
        "--scenario",
        default="steady",
        help="load scenario for both targets: a name (harness load --list) or a Locust file (default: steady)",
    )
    p.add_argument("--duration", default="60s", help="load duration: 90s, 2m (default: 60s)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--users", type=int, default=None, help="concurrent users per target (default: 4)")
    g.add_argument("--rate", type=float, default=None, help="open-loop requests per second per target")
    p.add_argument(
        "--dataset",
        default="shapes:200",
        help="shapes:N[:shift[@fraction]] or coco:DIR (default: shapes:200); with segments (a shift on a fraction, "
        "image entries' segment), the paired metrics are tested per segment too",
    )
    p.add_argument("--dataset-seed", type=int, default=12345)
    p.add_argument("--seed", type=int, default=0, help="seed of the load's arrivals and choices")
    p.add_argument("--concurrency", type=int, default=4, help="evaluation requests in flight per target")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for one answer")
    p.add_argument("--latency-threshold", type=float, default=None, help="seconds (default: the spec's latency SLO)")
    p.add_argument("--quality-floor", type=float, default=None, help="per-image CIDEr-D floor (default: the spec's)")
    p.add_argument("--traffic-rps", type=float, default=None, help="production traffic for the burn projection")
    p.add_argument(
        "--judge-config",
        type=Path,
        default=None,
        help="judge settings YAML: thresholds, group weights, tolerances (see examples/judge.yaml)",
    )
    p.add_argument(
        "--clip",
        default=None,
        metavar="PATH",
        help="the image-text encoder of the clipscore metric: 'embedded' (the shapes encoder shipped with the "
        "reference model), a local CLIP folder, or 'off' (default: the judge config's clip, else embedded)",
    )
    p.add_argument("--pass-threshold", type=float, default=None, help="promote at this score or above (default: 90)")
    p.add_argument("--marginal-threshold", type=float, default=None, help="hold from this score (default: 75)")
    p.add_argument("--api-key", default=None, help="token sent as a bearer token to both targets (prefer --auth-env)")
    add_protocol_options(p)
    for target in ("baseline", "canary"):
        add_protocol_options(p, target)
    add_notify_options(p)
    p.add_argument("--out", type=Path, required=True, help="report folder (decision.json, summary.md, ...)")
    p.add_argument("--json", action="store_true", help="print the decision record instead of the summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from harness.canary import JudgeConfig
    from harness.canary.config import load_judge_config
    from harness.canary.gate import GateConfig, run_gate
    from harness.cli.checks import at_least, http_url, not_negative, out_folder, positive
    from harness.duration import parse_duration
    from harness.resources import scenario_path
    from harness.verdicts import VERDICT_EXIT

    for name in ("baseline", "canary"):
        http_url(name, getattr(args, name))
    notify = notify_options(args)
    try:
        duration = parse_duration(args.duration)
    except ValueError as exc:
        raise UsageError(f"--duration: {exc}") from None  # the grammar takes positive durations only
    for name in ("timeout", "rate", "latency_threshold", "traffic_rps"):
        positive(name, getattr(args, name))
    not_negative("quality_floor", args.quality_floor)
    for name in ("users", "concurrency"):
        at_least(name, getattr(args, name), 1)
    for name in ("seed", "dataset_seed"):
        at_least(name, getattr(args, name), 0)
    out_folder(args.out)
    scenario_path(args.scenario)  # an unknown scenario is refused here, before any load
    judge_cfg = load_judge_config(args.judge_config) if args.judge_config else JudgeConfig()
    judge_cfg = replace(
        judge_cfg,
        pass_threshold=judge_cfg.pass_threshold if args.pass_threshold is None else args.pass_threshold,
        marginal_threshold=judge_cfg.marginal_threshold if args.marginal_threshold is None else args.marginal_threshold,
        seed=args.seed,
    )
    if not 0 <= judge_cfg.marginal_threshold <= judge_cfg.pass_threshold <= 100:
        raise UsageError("thresholds must satisfy 0 <= marginal <= pass <= 100")
    if args.clip is not None:
        judge_cfg = replace(judge_cfg, clip=_clip(args.clip))
    cfg = GateConfig(
        baseline=args.baseline,
        canary=args.canary,
        out=args.out,
        spec=args.spec,
        scenario=args.scenario,
        duration_s=duration,
        users=args.users if args.users or args.rate else 4,
        rate=args.rate,
        dataset=args.dataset,
        dataset_seed=args.dataset_seed,
        seed=args.seed,
        concurrency=args.concurrency,
        timeout_s=args.timeout,
        latency_threshold=args.latency_threshold,
        quality_floor=args.quality_floor,
        traffic_rps=args.traffic_rps,
        api_key=args.api_key,
        judge=judge_cfg,
        baseline_protocol=protocol_choice(args, "baseline"),
        canary_protocol=protocol_choice(args, "canary"),
        notify=notify,
    )
    rec = run_gate(cfg)
    if args.json:
        print(json.dumps(rec, indent=1))
    else:
        print((args.out / "summary.md").read_text())
    return VERDICT_EXIT[rec["verdict"]]


def _clip(value: str) -> str:
    """``--clip``: ``embedded``, ``off``, or a CLIP folder, loaded here (absolute) so that a folder
    that is missing (66), not a CLIP (65) or a machine without torch (69) stops the gate before any
    request is sent."""
    from harness.canary.metric import CLIP_EMBEDDED, CLIP_OFF

    if value in (CLIP_EMBEDDED, CLIP_OFF):
        return value
    from harness.quality.clipscore import shared_scorer

    folder = str(Path(value).expanduser().resolve())
    shared_scorer(folder)
    return folder
