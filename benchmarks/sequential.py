"""Interval analysis under repeated looks: how often an identical canary is ever rolled back when
it is judged at every look, with the judge's alpha spending against Kayenta's fixed level per
interval, and at which look each flaw of the zoo is caught. Records only (simulated production
traffic, ``harness.canary.simulation``), no servers, seeded.

Each simulated canary is a baseline and a canary of the same service (``--baseline-requests`` and
``--canary-requests`` over the lifetime: a 20% traffic split), judged on the cumulative records at
each of ``--looks`` looks. Four rules are compared on the same data:

- ``spending``: the judge as it runs in a live analysis (each look tested at its alpha-spending
  level, the judge's tolerances);
- ``fixed``: the same judge testing every look at its full level (98% confidence);
- ``kayenta fixed``: Kayenta's defaults: every look at the full level, no tolerance on the effect
  (any significant change in the harmful direction fails the metric);
- ``kayenta spending``: no tolerance, but alpha spent over the looks.

The spending rule is the real judge (``judge`` with the look); the other three reclassify its
metric results from their p-values, effects and tolerances at their own level (a test's p-value
does not depend on the level it is compared with).

    .venv/bin/python benchmarks/sequential.py --canaries 500 --looks 12 --flaw-seeds 20
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.canary.judge import _direction_class, decide, judge  # noqa: E402
from harness.canary.metric import JudgeConfig, for_traffic  # noqa: E402
from harness.canary.observations import TargetData, metric_samples  # noqa: E402
from harness.canary.sequential import Look  # noqa: E402
from harness.canary.simulation import SIMULATED_FLAWS, simulate_traffic  # noqa: E402

RULES = ("spending", "fixed", "kayenta fixed", "kayenta spending")
ALPHA = 0.02


def _reclassify(results, cfg: JudgeConfig, level: float, tolerance: bool):
    out = []
    for r in results:
        if r.classification in ("NoData", "Info") or r.p_value is None or r.effect is None:
            out.append(r)
            continue
        spec = cfg.metric(r.name)
        tol = r.tolerance if tolerance else 0.0
        cls = _direction_class(spec, r.effect, r.p_value < level, tol)
        out.append(replace(r, classification=cls, failed=cls in ("High", "Low")))
    return out


def _one(job: tuple) -> dict:
    """One simulated canary: the verdict of every rule at every look (stopping a rule at its first
    ROLLBACK), and the look each rule first rolled it back (None: never)."""
    index, flaw, args = job
    L = 3600.0
    b = simulate_traffic(args.baseline_requests, target="baseline", seed=2 * index, duration_s=L)
    c = simulate_traffic(
        args.canary_requests, target="canary", seed=2 * index + 1, flaw=flaw, fraction=args.fraction, duration_s=L
    )
    cfg = for_traffic(JudgeConfig(seed=index))  # traffic records only, as in a live analysis
    first: dict[str, int | None] = dict.fromkeys(RULES)
    final: dict[str, str] = {}
    for k in range(1, args.looks + 1):
        end = L * k / args.looks
        tb, tc = TargetData(None, b[b["t_start"] < end]), TargetData(None, c[c["t_start"] < end])
        look = Look(k, args.looks, ALPHA)
        seq_cfg = replace(cfg, look=look)
        samples = metric_samples(cfg.metrics, tb, tc)
        v = judge(samples, seq_cfg)
        verdicts = {"spending": v.verdict}
        fixed_cfg = replace(cfg, look=None) if k == args.looks else replace(cfg, look=look)
        for rule, level, tol in (
            ("fixed", ALPHA, True),
            ("kayenta fixed", ALPHA, False),
            ("kayenta spending", look.level, False),
        ):
            verdicts[rule] = decide(_reclassify(v.metrics, cfg, level, tol), fixed_cfg).verdict
        for rule in RULES:
            if first[rule] is None and verdicts[rule] == "ROLLBACK":
                first[rule] = k
            if k == args.looks:
                final[rule] = "ROLLBACK" if first[rule] is not None else verdicts[rule]
        if flaw is not None and all(first[r] is not None for r in RULES):
            final = {r: "ROLLBACK" for r in RULES}
            break
    return {"index": index, "flaw": flaw, "first": first, "final": final}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--canaries", type=int, default=500, help="identical canaries (default: 500)")
    p.add_argument("--looks", type=int, default=12)
    p.add_argument("--flaw-seeds", type=int, default=20, help="canaries per flaw (default: 20)")
    p.add_argument("--fraction", type=float, default=0.1, help="share of requests a flaw touches (default: 0.1)")
    p.add_argument("--baseline-requests", type=int, default=4800)
    p.add_argument("--canary-requests", type=int, default=1200)
    p.add_argument("--flaws", default="all", help=f"comma-separated, of: {', '.join(SIMULATED_FLAWS)}; none")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    flaws = [] if args.flaws == "none" else list(SIMULATED_FLAWS) if args.flaws == "all" else args.flaws.split(",")
    jobs = [(i, None, args) for i in range(args.canaries)]
    jobs += [(10_000 + 100 * j + s, f, args) for j, f in enumerate(flaws) for s in range(args.flaw_seeds)]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(_one, jobs, chunksize=4))
    took = time.perf_counter() - t0
    same = [r for r in rows if r["flaw"] is None]
    print(
        f"{len(same)} identical canaries, {args.looks} looks, {args.baseline_requests} baseline and "
        f"{args.canary_requests} canary requests over the lifetime; {took:.0f} s on {args.workers} workers\n"
    )
    if same:
        print("| rule | ever rolled back | PROMOTE at the end | HOLD at the end |")
        print("| --- | --- | --- | --- |")
        for rule in RULES:
            ever = sum(r["first"][rule] is not None for r in same)
            promoted = sum(r["final"][rule] == "PROMOTE" for r in same)
            held = sum(r["final"][rule] == "HOLD" for r in same)
            n = len(same)
            print(f"| {rule} | {ever}/{n} ({ever / n:.1%}) | {promoted}/{n} | {held}/{n} |")
        print()
    if flaws:
        print(
            f"| flaw ({args.fraction:.0%} of requests) | "
            + " | ".join(f"{r}: rolled back, median look" for r in RULES)
            + " |"
        )
        print("| --- |" + " --- |" * len(RULES))
        for f in flaws:
            fr = [r for r in rows if r["flaw"] == f]
            cells = []
            for rule in RULES:
                looks = sorted(r["first"][rule] for r in fr if r["first"][rule] is not None)
                med = looks[len(looks) // 2] if looks else None
                promoted = sum(r["final"].get(rule) == "PROMOTE" for r in fr)
                cell = f"{len(looks)}/{len(fr)}, look {med}" if looks else f"0/{len(fr)}"
                cells.append(cell + (f"; {promoted} promoted" if promoted else ""))
            print(f"| {f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
