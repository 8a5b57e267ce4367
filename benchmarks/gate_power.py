"""The gate's power: how often it catches each flaw of the zoo, and how often it rolls back a
canary that is fine (real servers, the fault proxy, real load, on loopback).

    .venv/bin/python benchmarks/gate_power.py [--seeds 10] [--fractions 0.05,0.1,0.2]
        [--images 200] [--duration 10] [--fine-seeds 20] [--flaws all] [--rows power.jsonl]

For each seed (a different evaluation world, load seed and fault draws), a stable reference
server is judged against a second one behind the fault proxy (the stable one behind a proxy
without faults, so both answers take the same path; each proxy in a process of its own), with
each flaw class of
``harness.load.flaws`` on 5%, 10% and 20% of the requests; then against an identical canary
(the same proxy, no faults) and the ``int8`` model, over ``--fine-seeds`` seeds. A flaw is
caught when the gate rolls it back or holds it. Every gate's row is appended to ``--rows`` as it
finishes, so a long run can be summarized again with ``--summarize FILE``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.canary.gate import GateConfig, run_gate  # noqa: E402
from harness.load.flaws import FLAWS, flaw_faults  # noqa: E402
from harness.load.proxy import ProxyProcess  # noqa: E402


def _gate(stable: str, canary: str, out: Path, a, seed: int, faults: dict) -> dict:
    rec = run_gate(
        GateConfig(
            stable,
            canary,
            out,
            duration_s=a.duration,
            users=a.users,
            dataset=f"shapes:{a.images}",
            dataset_seed=1000 + seed,
            seed=seed,
            concurrency=4,
            faults=faults,
        )
    )
    failed = [m["name"] for m in rec["metrics"] if m["failed"]]
    under = [m["name"] for m in rec["metrics"] if m.get("adequate") is False]
    by = {m["name"]: m for m in rec["metrics"]}
    lat = {
        k: [by[k]["baseline"], by[k]["canary"], by[k]["n_baseline"], by[k]["n_canary"]]
        for k in ("latency_p50", "latency_p95", "latency_p99")
        if k in by
    }
    return {
        "verdict": rec["verdict"],
        "score": rec["score"],
        "failed": failed,
        "underpowered": under,
        "quality_detectable": by.get("quality", {}).get("detectable"),
        "latency": lat,
    }


def summarize(rows: list[dict]) -> str:
    caught: dict[tuple[str, float], collections.Counter] = collections.defaultdict(collections.Counter)
    fine: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in rows:
        if r["canary"] in ("identical", "int8"):
            fine[r["canary"]][r["verdict"]] += 1
        else:
            caught[(r["canary"], r["fraction"])][r["verdict"]] += 1
    fractions = sorted({f for _, f in caught})
    flaws = [f for f in FLAWS if any((f, x) in caught for x in fractions)]
    lines = [
        "| flaw | " + " | ".join(f"{x:.0%} of requests" for x in fractions) + " |",
        "| --- | " + " | ".join("---" for _ in fractions) + " |",
    ]
    for f in flaws:
        cells = []
        for x in fractions:
            c = caught.get((f, x))
            if not c:
                cells.append("–")
                continue
            n = sum(c.values())
            cells.append(f"{c['ROLLBACK'] + c['HOLD']}/{n} ({c['ROLLBACK']} rollback)")
        lines.append(f"| {f} | " + " | ".join(cells) + " |")
    if fine:
        lines += ["", "| fine canary | PROMOTE | HOLD | ROLLBACK |", "| --- | --- | --- | --- |"]
        for name, c in fine.items():
            lines.append(f"| {name} | {c['PROMOTE']} | {c['HOLD']} | {c['ROLLBACK']} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--fractions", default="0.05,0.1,0.2")
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--duration", type=float, default=10.0, help="load seconds per target")
    p.add_argument("--users", type=int, default=4)
    p.add_argument("--fine-seeds", type=int, default=20, help="seeds for the identical and int8 canaries")
    p.add_argument("--flaws", default="all", help=f"comma-separated, of: {', '.join(FLAWS)}")
    p.add_argument("--rows", type=Path, default=None, help="append each gate's row to this JSONL file")
    p.add_argument("--summarize", type=Path, default=None, help="print the table of a rows file and stop")
    a = p.parse_args()
    if a.summarize:
        print(summarize([json.loads(line) for line in a.summarize.read_text().splitlines() if line.strip()]))
        return 0
    from reference_model.server.launch import start_server

    flaws = list(FLAWS) if a.flaws == "all" else a.flaws.split(",")
    fractions = [float(x) for x in a.fractions.split(",")]
    rows: list[dict] = []
    t0 = time.monotonic()

    def record(row: dict) -> None:
        rows.append(row)
        print(
            f"{time.monotonic() - t0:7.0f}s seed {row['seed']:2d} {row['canary']:<13} {row['fraction']:<5} "
            f"{row['verdict']:<9} {row['score']} {','.join(row['failed'])}",
            flush=True,
        )
        if a.rows:
            with a.rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")

    with ExitStack() as st, tempfile.TemporaryDirectory() as tmp:
        args = ["--threads", "1"]
        stable = st.enter_context(start_server("tiny", extra_args=args))
        twin = st.enter_context(start_server("tiny", extra_args=args))
        int8 = st.enter_context(start_server("tiny:int8", extra_args=args))
        stable = st.enter_context(ProxyProcess(stable.url))  # the same path as the canary's
        n = 0
        for seed in range(max(a.seeds, a.fine_seeds)):
            if seed < a.fine_seeds:
                with ProxyProcess(twin.url, seed=seed) as proxy:
                    row = _gate(stable.url, proxy.url, Path(tmp) / f"g{n}", a, seed, {})
                record({"canary": "identical", "fraction": 0.0, "seed": seed, **row})
                with ProxyProcess(int8.url, seed=seed) as proxy:
                    row = _gate(stable.url, proxy.url, Path(tmp) / f"g{n}i", a, seed, {})
                record({"canary": "int8", "fraction": 0.0, "seed": seed, **row})
                n += 1
            if seed >= a.seeds:
                continue
            for flaw in flaws:
                for frac in fractions:
                    faults = flaw_faults(flaw, frac)
                    with ProxyProcess(twin.url, faults=faults, seed=seed) as proxy:
                        row = _gate(stable.url, proxy.url, Path(tmp) / f"g{n}", a, seed, faults)
                    n += 1
                    record({"canary": flaw, "fraction": frac, "seed": seed, **row})
    print(
        f"\n{a.seeds} seeds per flaw and fraction, {a.fine_seeds} per fine canary; {a.images} images and "
        f"{a.duration:g}s of load per target and gate; {time.monotonic() - t0:.0f}s in all\n"
    )
    print(summarize(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
