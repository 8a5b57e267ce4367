"""``harness judge``: the judgement over saved records: a gate's run folder judged again, or any
two record sets (imported service logs, a Hive-partitioned dataset, a traffic split's records)
or Prometheus scopes (``harness.canary.prom_scope``), once or at every interval of a live analysis. Exit 0 PROMOTE, 1 ROLLBACK, 2 HOLD.
``harness judge serve`` (``harness.cli.judge_serve``) is the same judgement as an HTTP API."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness.cli.notify import add_notify_options, notify_options
from harness.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "judge",
        help="judge a canary from saved records (a gate run folder, logs, a dataset) or Prometheus scopes; "
        "once or at every interval",
        epilog="harness judge serve --config FILE [--host H] [--port 8090] [--state DIR]: the judge as an "
        "HTTP API that Argo Rollouts and Flagger call, live analyses over the sources FILE lists "
        "(see harness judge serve --help).",
    )
    p.add_argument(
        "--baseline",
        required=True,
        type=_source,
        metavar="SOURCE",
        help="a gate run folder, or records: a .jsonl/.parquet file, a run folder, a Hive-partitioned dataset; "
        "or a Prometheus scope: prometheus:http://HOST:9090 with --baseline-selector",
    )
    p.add_argument("--canary", required=True, type=_source, metavar="SOURCE", help="the same kinds as --baseline")
    for role in ("baseline", "canary"):
        p.add_argument(
            f"--{role}-selector",
            default=None,
            metavar="SELECTOR",
            help=f"for a Prometheus scope: the label matchers of the {role}'s series, e.g. "
            f'\'{{app="captioner",track="{role}"}}\'',
        )
        p.add_argument(
            f"--{role}-where",
            action="append",
            default=[],
            metavar="COLUMN=VALUE",
            help=f"only {role} records with this value (repeatable), e.g. target={role}; "
            f"for a gate run folder: target=NAME picks its target (default: {role})",
        )
    p.add_argument(
        "--since", default=None, metavar="TIME", help="records from this time: unix seconds, ISO 8601, now-1h"
    )
    p.add_argument("--until", default=None, metavar="TIME", help="records before this time")
    p.add_argument("--spec", type=Path, default=None, help="SLO spec YAML (default: the run's, else examples/slo.yaml)")
    p.add_argument(
        "--judge-config",
        type=Path,
        default=None,
        help="judge settings YAML (default: the run's, else examples/judge.yaml's defaults)",
    )
    p.add_argument("--pass-threshold", type=float, default=None, help="promote at this score or above")
    p.add_argument("--marginal-threshold", type=float, default=None, help="hold from this score")
    p.add_argument("--latency-threshold", type=float, default=None, help="seconds (default: the spec's latency SLO)")
    p.add_argument("--quality-floor", type=float, default=None, help="per-image CIDEr-D floor (default: the spec's)")
    p.add_argument("--traffic-rps", type=float, default=None, help="production traffic for the burn projection")
    p.add_argument("--seed", type=int, default=None, help="seed of the judge's resampling (default: the run's, else 0)")
    p.add_argument(
        "--interval",
        default=None,
        metavar="DURATION",
        help="a live analysis: judge the cumulative data every DURATION (5m) until --lifetime is over",
    )
    p.add_argument("--lifetime", default=None, metavar="DURATION", help="how long the live analysis lasts (1h)")
    p.add_argument(
        "--spending",
        choices=("pocock", "obrien_fleming"),
        default="pocock",
        help="how the analysis spends its error rate over the looks (default: pocock)",
    )
    p.add_argument(
        "--replay-images",
        type=Path,
        default=None,
        metavar="STORE",
        help="a folder of the images the records name (STORE/<image_id>.png|jpg|jpeg|webp, or a COCO folder "
        "with references or instances.json): a seeded sample of them is captioned by both targets and judged "
        "paired, CLIPScore and, with instances.json, hallucination included",
    )
    p.add_argument("--replay-sample", type=int, default=200, metavar="N", help="images replayed at most (default: 200)")
    p.add_argument("--baseline-url", default=None, metavar="URL", help="the baseline service, for --replay-images")
    p.add_argument("--canary-url", default=None, metavar="URL", help="the canary service, for --replay-images")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per replayed request (default: 10)")
    p.add_argument("--concurrency", type=int, default=4, help="replayed requests in flight per target (default: 4)")
    add_notify_options(p)
    p.add_argument("--out", type=Path, required=True, help="report folder (decision.json, summary.md, looks)")
    p.add_argument("--json", action="store_true", help="print the decision record instead of the summary")
    p.set_defaults(func=run)


def _source(text: str) -> Path | str:
    """A path, or a Prometheus scope's ``prometheus:URL`` kept as text (a path would fold its //)."""
    return text if text.startswith("prometheus:") else Path(text)


def _where(items: list[str], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        col, eq, value = item.partition("=")
        if not eq or not col.strip():
            raise UsageError(f"{option}: expected COLUMN=VALUE (got {item!r})")
        out[col.strip()] = value
    return out


def _duration(option: str, text: str | None) -> float | None:
    from harness.duration import parse_duration

    if text is None:
        return None
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None  # the grammar takes positive durations only
    return value


def _replay(args: argparse.Namespace, sources, run_id: str, seed: int):
    """Replay a seeded sample of the images the records name to both targets: (role -> records,
    per-image quality, quality document; the replayed COCO folder; what was replayed, as the
    record's ``inputs.replay`` says it)."""
    from harness.canary.gate import _parallel, _probe
    from harness.canary.judgement import read_side
    from harness.canary.replay import replay, replay_dataset, replay_ids
    from harness.errors import InputMissingError, ServiceUnavailableError
    from harness.protocols import ProtocolChoice

    sides = {r: read_side(s, r) for r, s in sources.items()}
    for r, side in sides.items():
        if side.load is None or not len(side.load):
            raise InputMissingError(f"--{r}: no records in {sources[r].describe()}")
    ids = replay_ids(sides["baseline"].load, sides["canary"].load, args.replay_sample, seed)
    if not ids:
        raise InputMissingError("--replay-images: the records name no image (image_id)")
    found = replay_dataset(args.replay_images, ids, args.out)
    urls = {"baseline": args.baseline_url, "canary": args.canary_url}
    adapter = ProtocolChoice().build()
    probes = _parallel({r: (lambda u=u: _probe(u, args.timeout, None, adapter)) for r, u in urls.items()})
    for r, (info, why) in probes.items():
        if info is None:
            raise ServiceUnavailableError(f"--{r}-url {urls[r]} is unavailable: {why}")
    replayed = replay(
        urls["baseline"], urls["canary"], found.folder, args.out, run_id, args.timeout, None, args.concurrency
    )
    return replayed, found.folder, found.summary(args.replay_images, args.replay_sample)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from harness.canary import JudgeConfig
    from harness.canary.config import load_judge_config
    from harness.canary.judgement import (
        JUDGE_YAML,
        RUN_JSON,
        Settings,
        Source,
        judge_run,
        judge_sources,
        read_manifest,
        source_inputs,
    )
    from harness.cli.checks import at_least, not_negative, out_folder, positive, time_option
    from harness.errors import InputMissingError
    from harness.resources import example_path
    from harness.verdicts import VERDICT_EXIT

    since, until = time_option(args, "since"), time_option(args, "until")
    for name in ("latency_threshold", "traffic_rps"):
        positive(name, getattr(args, name))
    not_negative("quality_floor", args.quality_floor)
    at_least("seed", args.seed, 0)
    notify = notify_options(args)
    out_folder(args.out)
    interval, lifetime = _duration("--interval", args.interval), _duration("--lifetime", args.lifetime)
    if (interval is None) != (lifetime is None):
        raise UsageError("--interval and --lifetime go together")
    if interval is not None and args.until is not None:
        raise UsageError("--until does not go with --interval: a live analysis ends when --lifetime is over")
    if interval is not None and lifetime < interval:
        raise UsageError(f"--lifetime ({args.lifetime}) must be at least one --interval ({args.interval})")
    if args.replay_images is not None:
        if interval is not None:
            raise UsageError("--replay-images goes with a single judgement for now")
        if not args.baseline_url or not args.canary_url:
            raise UsageError("--replay-images needs --baseline-url and --canary-url")
        at_least("replay_sample", args.replay_sample, 1)
        positive("timeout", args.timeout)
        at_least("concurrency", args.concurrency, 1)
        if not args.replay_images.is_dir():
            raise InputMissingError(f"--replay-images {args.replay_images}: not a folder")
    elif args.baseline_url or args.canary_url:
        raise UsageError("--baseline-url and --canary-url go with --replay-images")
    where = {r: _where(getattr(args, f"{r}_where"), f"--{r}-where") for r in ("baseline", "canary")}
    scope = {r: isinstance(getattr(args, r), str) for r in ("baseline", "canary")}
    for r in ("baseline", "canary"):
        selector = getattr(args, f"{r}_selector")
        if scope[r]:
            from harness.canary.prom_scope import PromScope

            PromScope.parse(getattr(args, r), selector, f"--{r}")
            if where[r]:
                raise UsageError(f"--{r}-where does not go with a Prometheus scope: use --{r}-selector")
        elif selector is not None:
            raise UsageError(f"--{r}-selector goes with a Prometheus scope (--{r} prometheus:http://HOST:9090)")
    if any(scope.values()) and interval is None:
        if since is None:
            raise UsageError("a Prometheus scope needs --since (and --until, default now) or --interval")
        until = time.time() if until is None else until
    if since is not None and until is not None and until <= since:
        raise UsageError("--until must be after --since")
    for role in ("baseline", "canary"):
        path = getattr(args, role)
        if not scope[role] and not path.exists():
            raise InputMissingError(f"--{role}: {path} not found")
    sources = {
        r: Source(
            getattr(args, r),
            where[r] or ({"target": r} if not scope[r] and (getattr(args, r) / RUN_JSON).is_file() else {}),
            since,
            until,
            selector=getattr(args, f"{r}_selector"),
        )
        for r in ("baseline", "canary")
    }
    run_folder = args.baseline if sources["baseline"].is_run else args.canary if sources["canary"].is_run else None
    if args.judge_config is not None:
        judge_cfg = load_judge_config(args.judge_config)
        if run_folder is not None and args.seed is None:  # the run's resampling, unless asked otherwise
            judge_cfg = replace(judge_cfg, seed=read_manifest(run_folder).seed)
    elif run_folder is not None and (run_folder / JUDGE_YAML).exists():
        judge_cfg = load_judge_config(run_folder / JUDGE_YAML)
    else:
        judge_cfg = JudgeConfig()
    judge_cfg = replace(
        judge_cfg,
        pass_threshold=judge_cfg.pass_threshold if args.pass_threshold is None else args.pass_threshold,
        marginal_threshold=judge_cfg.marginal_threshold if args.marginal_threshold is None else args.marginal_threshold,
        seed=judge_cfg.seed if args.seed is None else args.seed,
    )
    if not 0 <= judge_cfg.marginal_threshold <= judge_cfg.pass_threshold <= 100:
        raise UsageError("thresholds must satisfy 0 <= marginal <= pass <= 100")
    overrides = (args.latency_threshold, args.quality_floor, args.traffic_rps, since, until, interval)
    same_run = (
        run_folder is not None
        and not any(scope.values())
        and args.baseline.resolve() == args.canary.resolve()
        and not args.baseline_where
        and not args.canary_where
        and all(v is None for v in overrides)
        and args.replay_images is None
    )
    if same_run:
        asked = (args.judge_config, args.seed, args.pass_threshold, args.marginal_threshold)
        rec = judge_run(
            run_folder, args.out, judge_cfg if any(v is not None for v in asked) else None, args.spec, notify=notify
        )
    else:
        saved = read_manifest(run_folder).inputs if run_folder is not None else {}
        spec = args.spec or (
            run_folder / "slo.yaml"
            if run_folder is not None and (run_folder / "slo.yaml").exists()
            else example_path("slo.yaml")
        )
        settings = Settings(
            spec,
            judge_cfg,
            args.latency_threshold or saved.get("latency_threshold_s"),
            args.quality_floor if args.quality_floor is not None else saved.get("quality_floor"),
            args.traffic_rps or saved.get("traffic_rps"),
            seed=judge_cfg.seed,
        )
        run_id = f"judge-{time.strftime('%Y%m%dT%H%M%S')}"
        if interval is not None:
            from harness.canary.analysis import AnalysisPlan, run_analysis

            plan = AnalysisPlan(
                interval, lifetime, since if since is not None else time.time(), judge_cfg.alpha, args.spending
            )
            live = {r: replace(s, since=None, until=None) for r, s in sources.items()}
            inputs = source_inputs(sources["baseline"], sources["canary"])
            rec = run_analysis(
                live["baseline"], live["canary"], args.out, settings, plan, run_id=run_id, inputs=inputs, notify=notify
            )
        else:
            replay: dict = {}
            replayed_inputs = None
            if args.replay_images is not None:
                replayed, dataset, replayed_inputs = _replay(args, sources, run_id, judge_cfg.seed)
                replay = {"dataset": dataset, "replayed": replayed}
            inputs = source_inputs(sources["baseline"], sources["canary"], replay=replayed_inputs)
            rec = judge_sources(
                sources["baseline"],
                sources["canary"],
                args.out,
                settings,
                run_id=run_id,
                inputs=inputs,
                strict=True,
                notify=notify,
                **replay,
            )
    if args.json:
        print(json.dumps(rec, indent=1))
    else:
        print((args.out / "summary.md").read_text())
    return VERDICT_EXIT[rec["verdict"]]
