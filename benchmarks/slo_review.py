"""The SLO review's speed on a 28-day window at one minute, from Prometheus and from records.

- Prometheus: the month of ``tests/slo_history.py`` (two SLOs, 20 requests/s, every minute)
  backfilled into a real Prometheus with ``promtool``, then ``PrometheusSource.history`` and
  ``build_review`` over the last 28 days (3 days of lead-in: 44,640 steps).
- Records: N synthetic records spread over 31 days in a Hive-partitioned dataset (seeded; 0.2% of
  them 500s, a two-hour stretch at 20%), then ``records_review`` over the last 28 days.

Each is timed ``--rounds`` times in this process (median and range printed); the first round of
each includes what a cold cache costs.

    python benchmarks/slo_review.py [--records 1200000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

DAY = 86400.0


def _timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _say(what: str, times: list[float]) -> None:
    print(f"{what:52s} median {statistics.median(times):6.2f} s  (min {min(times):.2f}, max {max(times):.2f})")


def _records(folder: Path, n: int, t0: float, seed: int = 0) -> None:
    import pyarrow as pa

    from harness.records import write_dataset

    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(t0, t0 + 31 * DAY, n))
    status = np.where(rng.random(n) < 0.002, 500, 200)
    burst = (t >= t0 + 10 * DAY) & (t < t0 + 10 * DAY + 7200)
    status[burst & (rng.random(n) < 0.2)] = 500
    ok = status == 200
    write_dataset(
        pa.table(
            {
                "run_id": pa.array(np.full(n, "prod"), pa.string()),
                "target": pa.array(np.full(n, "baseline"), pa.string()),
                "scenario": pa.array(np.full(n, "traffic"), pa.string()),
                "request_id": pa.array(np.arange(n).astype(str), pa.string()),
                "image_id": pa.array((np.arange(n) % 1000).astype(str), pa.string()),
                "t_start": pa.array(t),
                "latency_s": pa.array(rng.lognormal(np.log(0.08), 0.5, n)),
                "status": pa.array(status.astype(np.int64)),
                "outcome": pa.array(np.where(ok, "ok", "http_error"), pa.string()),
                "caption": pa.array(np.where(ok, "a red circle", None), pa.string()),
            }
        ),
        folder,
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=float, default=1.2e6, help="records over the 31 days")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)

    from harness.slo.history import records_review
    from harness.slo.prometheus import PrometheusSource
    from harness.slo.review import build_review, review_grid
    from slo_history import History, default_spec, start_history_prometheus

    spec = default_spec()
    history = History()
    _start, end = history.window()
    with start_history_prometheus(history) as prom:
        print(f"backfilled {history.days} days in {prom.timings['backfill_s']:.2f} s")
        source = PrometheusSource(prom.url)

        def from_prometheus() -> None:
            grid = review_grid(end, 28 * DAY, spec.slos)
            build_review(spec, source.history(spec, grid), grid, {"kind": "prometheus"})

        _say("Prometheus: history + review of 28 days at 1m", _timed(from_prometheus, args.rounds))

    with tempfile.TemporaryDirectory(prefix="slo-review-bench-") as tmp:
        folder = Path(tmp) / "records"
        n = int(args.records)
        t = time.perf_counter()
        _records(folder, n, history.t0)
        print(f"wrote {n:,} records in {time.perf_counter() - t:.1f} s")
        _say(
            f"records ({n:,}): review of 28 days at 1m",
            _timed(lambda: records_review(spec, folder, 28 * DAY, float(end)), args.rounds),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
