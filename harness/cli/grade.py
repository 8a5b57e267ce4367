"""``harness grade``: a multimodal model as judge of captions (a rubric, a 1 to 5 score and a
reason per caption, over an OpenAI-compatible chat endpoint), and, given people's ratings of the
same captions, how far it agrees with them and whether it may gate."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.cli.clipscore import add_captions_and_images
from harness.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser(
        "grade",
        help="score captions with a multimodal model as judge; its agreement with people's ratings",
    )
    add_captions_and_images(p)
    p.add_argument(
        "--judge", required=True, metavar="URL", help="root URL of an OpenAI-compatible server (/v1/chat/completions)"
    )
    p.add_argument("--model", required=True, metavar="NAME", help="the judge model's name at that server")
    p.add_argument(
        "--auth-env", default=None, metavar="VAR", help="environment variable holding the judge's token (bearer)"
    )
    p.add_argument(
        "--auth-header", default=None, metavar="HEADER", help="send the --auth-env token in this header instead"
    )
    p.add_argument(
        "--ratings",
        type=Path,
        default=None,
        metavar="FILE",
        help="people's ratings (the rating page's ratings.csv: image_id, rater, rating[, caption]): agreement",
    )
    p.add_argument(
        "--min-kappa",
        type=float,
        default=0.6,
        metavar="K",
        help="weighted kappa the judge needs to gate (default: 0.6)",
    )
    p.add_argument(
        "--min-pairs",
        type=int,
        default=30,
        metavar="N",
        help="captions both judged and rated the judge needs to gate (default: 30)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the answers' cache (judge-answers.jsonl): a caption asked before is not asked again",
    )
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for judge.json and judge.md")
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="requests in flight at most (default: 4)")
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="seconds to wait for one answer (default: 60)"
    )
    p.add_argument(
        "--retries",
        type=int,
        choices=(0, 1),
        default=1,
        help="send a request that got no answer, a 429 or a 5xx once more (default: 1)",
    )
    p.add_argument(
        "--max-tokens", type=int, default=200, metavar="N", help="longest answer asked for, in tokens (default: 200)"
    )
    p.add_argument(
        "--price-per-1k-tokens",
        type=float,
        default=None,
        metavar="PRICE",
        help="price of 1,000 tokens (prompt and answer) to report the run's cost",
    )
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import at_least, http_url, not_negative, out_folder, positive
    from harness.progress import Progress
    from harness.protocols import Auth
    from harness.quality.agreement import agreement, gate_allowed, pair_ratings
    from harness.quality.captions import load_candidates
    from harness.quality.hybrid import load_rated_captions
    from harness.quality.judge_model import AnswerCache, ModelJudge, find_images, judge_captions
    from harness.quality.judge_report import JudgeReport, write_judge_report

    http_url("judge", args.judge)
    at_least("concurrency", args.concurrency, 1)
    at_least("max_tokens", args.max_tokens, 1)
    at_least("min_pairs", args.min_pairs, 1)
    at_least("bootstrap", args.bootstrap, 0)
    at_least("seed", args.seed, 0)
    positive("timeout", args.timeout)
    not_negative("price_per_1k_tokens", args.price_per_1k_tokens)
    if not -1.0 <= args.min_kappa <= 1.0:
        raise UsageError(f"--min-kappa must be in [-1, 1] (got {args.min_kappa:g})")
    if args.auth_header and not args.auth_env:
        raise UsageError("--auth-header needs --auth-env (the variable holding the token)")
    out_folder(args.out)
    out_folder(args.cache, "--cache")
    auth = None
    if args.auth_env:
        auth = Auth(args.auth_env, "header" if args.auth_header else "bearer", args.auth_header or "Authorization")

    captions = load_candidates(args.captions)
    rated = load_rated_captions(args.ratings) if args.ratings is not None else None
    items = find_images(captions, args.images)
    judge = ModelJudge(
        args.judge,
        args.model,
        timeout_s=args.timeout,
        retries=args.retries,
        max_tokens=args.max_tokens,
        price_per_1k_tokens=args.price_per_1k_tokens,
        auth=auth,
        concurrency=args.concurrency,
    )
    cache = AnswerCache(args.cache) if args.cache is not None else None
    bar = Progress(len(items), "captions")
    try:
        result = judge_captions(judge, items, cache, progress=bar)
    finally:
        bar.close()
    found, gating = None, None
    if rated is not None:
        pairs = pair_ratings(((j.image_id, j.caption, j.score) for j in result.judgements), rated)
        found = agreement(pairs, n_resamples=args.bootstrap, seed=args.seed)
        gating = gate_allowed(found, args.min_kappa, args.min_pairs)
    report = JudgeReport(
        judge.describe(), result, found, gating, str(args.ratings) if args.ratings is not None else None
    )
    print(report.table())
    js, md = write_judge_report(report, args.out)
    print(f"wrote {js} and {md}")
    return 0
