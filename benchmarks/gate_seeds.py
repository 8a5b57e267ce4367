"""How often the gate gets each canary right across seeds (real servers, real load, on loopback).

    .venv/bin/python benchmarks/gate_seeds.py [--seeds 20] [--duration 6] [--images 60]

For each seed, the same stable server is judged against an identical canary, a canary with 60 ms
injected per batch, and the undertrained checkpoint. Prints the verdict counts per canary; the
goal: the latency and undertrained canaries are never promoted, the identical one is rolled back
at most once.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.canary.gate import GateConfig, run_gate  # noqa: E402
from reference_model.server.launch import start_server  # noqa: E402

CANARIES = {
    "identical": ("tiny", []),
    "latency": ("tiny", ["--enable-faults", "--admin-token", "bench", "--faults", '{"latency_ms": 60}']),
    "undertrained": ("tiny-undertrained", []),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--images", type=int, default=60)
    a = p.parse_args()
    counts: dict[str, collections.Counter] = {k: collections.Counter() for k in CANARIES}
    t0 = time.monotonic()
    with ExitStack() as st, tempfile.TemporaryDirectory() as tmp:
        stable = st.enter_context(start_server("tiny", extra_args=["--threads", "1"]))
        canaries = {k: st.enter_context(start_server(m, extra_args=["--threads", "1", *x])) for k, (m, x) in CANARIES.items()}
        for seed in range(a.seeds):
            for name, srv in canaries.items():
                out = Path(tmp) / f"{name}-{seed}"
                rec = run_gate(GateConfig(stable.url, srv.url, out, duration_s=a.duration, users=2,
                                          dataset=f"shapes:{a.images}", dataset_seed=1000 + seed, seed=seed,
                                          concurrency=2), log=lambda m: None)
                counts[name][rec["verdict"]] += 1
                print(f"seed {seed:2d} {name:<13} {rec['verdict']:<9} score {rec['score']}", flush=True)
    print(f"\n{a.seeds} seeds, {a.duration:g}s of load and {a.images} images per gate, "
          f"{time.monotonic() - t0:.0f}s in all")
    print(f"{'canary':<14}{'PROMOTE':>8}{'HOLD':>6}{'ROLLBACK':>10}")
    for name, c in counts.items():
        print(f"{name:<14}{c['PROMOTE']:>8}{c['HOLD']:>6}{c['ROLLBACK']:>10}")
    ok = (counts["latency"]["PROMOTE"] == 0 and counts["undertrained"]["PROMOTE"] == 0
          and counts["identical"]["ROLLBACK"] <= 1)
    print("goal met" if ok else "goal NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
