"""Records at production scale: wall time and peak memory of the weekly drift report and of an SLO
evaluation over a Hive-partitioned parquet dataset of 1M, 3M and 10M records a week.

For each size the script writes two weeks of synthetic records (``date=.../target=.../part-*.parquet``;
N records in the reference week and N in the current week; a 384-d embedding on one record in a
hundred, as a production service samples them; seeded), then runs, each in a process of its own:

- ``harness drift --reference DS --until WEEK2 --current DS --since WEEK2`` (the weekly report),
- ``harness slo --records DS --since WEEK2`` (every SLO of ``examples/slo.yaml`` over the week),
- ``harness slo review --records DS --window 7d --end END`` (the SLO review of the week at one
  minute, its alert windows' lead-in read from the week before),

and reports each one's wall time and peak resident memory (``os.wait4``: the child's own maximum
RSS). The records are generated in a process of their own too: a child's maximum RSS starts at its
parent's at the fork, so a parent that held the generated records would set every child's figure.
DuckDB, BLAS and the drift detectors get 2 threads. The dataset is deleted afterwards.

    nice -n 10 python benchmarks/scale.py [--sizes 1e6,3e6,1e7] [--dir /tmp/scale] [--keep]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY = 86400.0
WEEK_START = 1_795_046_400.0  # 2026-11-19 00:00 UTC: the reference week, then the current week
EMBEDDING_SHARE = 0.01
DIMS = 384
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black")
SHAPES = ("circle", "square", "triangle", "star", "cross")
PLACES = ("on a grey background", "in a dark room", "on a white table", "in the sky", "on grass")


def _captions() -> np.ndarray:
    return np.array([f"a {c} {s} {p}" for c in COLOURS for s in SHAPES for p in PLACES], dtype=object)


def day_of_records(n: int, day: int, rng: np.random.Generator, basis: np.ndarray):
    """One day's records as a pyarrow Table (``n`` records spread over the day)."""
    import pyarrow as pa

    t = WEEK_START + day * DAY + np.sort(rng.uniform(0.0, DAY, n))
    latency = rng.lognormal(np.log(0.08), 0.5, n)
    u = rng.random(n)
    status = np.where(u < 0.004, 500, np.where(u < 0.006, 429, np.where(u < 0.008, 0, 200))).astype(np.int64)
    outcome = np.where(status == 200, "ok", np.where(status == 0, "timeout", "http_error"))
    ok = status == 200
    caps = _captions()
    caption = caps[rng.integers(0, len(caps), n)]
    confidence = np.clip(rng.beta(8, 2, n), 0.0, 1.0)
    size = rng.choice(np.array([256, 384, 512, 640]), n)
    image_bytes = (size * size * rng.uniform(0.4, 0.8, n)).astype(np.int64)
    target = np.where(rng.random(n) < 0.9, "baseline", "canary")
    ids = np.char.add(f"d{day:02d}-", np.arange(n).astype(str))
    with_vec = ok & (rng.random(n) < EMBEDDING_SHARE)
    k = int(with_vec.sum())
    vecs = (rng.standard_normal((k, basis.shape[0])) @ basis).astype(np.float32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    offsets[1:] = np.cumsum(np.where(with_vec, DIMS, 0))
    emb = pa.ListArray.from_arrays(pa.array(offsets), pa.array(vecs.ravel()), mask=pa.array(~with_vec))
    mask = pa.array(~ok)
    return pa.table(
        {
            "run_id": pa.array(np.full(n, "production"), pa.string()),
            "target": pa.array(target, pa.string()),
            "scenario": pa.array(np.full(n, "traffic"), pa.string()),
            "request_id": pa.array(ids, pa.string()),
            "image_id": pa.array(rng.integers(0, 10**7, n).astype(str), pa.string()),
            "t_start": pa.array(t),
            "latency_s": pa.array(latency),
            "status": pa.array(status),
            "outcome": pa.array(outcome, pa.string()),
            "error": pa.nulls(n, pa.string()),
            "caption": pa.array(caption, pa.string(), mask=np.asarray(mask)),
            "confidence": pa.array(confidence, mask=np.asarray(mask)),
            "model_version": pa.array(np.full(n, "tiny-1.0"), pa.string()),
            "image_bytes": pa.array(image_bytes),
            "image_w": pa.array(size.astype(np.int64)),
            "image_h": pa.array(size.astype(np.int64)),
            "safety_flagged": pa.array(rng.random(n) < 0.001, mask=np.asarray(mask)),
            "embedding": emb,
        }
    )


def generate(folder: Path, per_week: int, seed: int = 0) -> float:
    """Two weeks of records (``per_week`` each) under ``folder``; returns the seconds it took."""
    from harness.records import write_dataset

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    spectrum = 1.0 / np.sqrt(np.arange(1, DIMS + 1))
    basis = np.linalg.qr(rng.standard_normal((DIMS, DIMS)))[0] * spectrum[:, None]
    for day in range(14):
        n = per_week // 7 + (1 if day % 7 < per_week % 7 else 0)
        write_dataset(day_of_records(n, day, np.random.default_rng([seed, day]), basis), folder, part=f"part-{day}")
    return time.perf_counter() - t0


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS in GiB, exit code) of one command in a process of its own."""
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    err = proc.stderr.read().decode(errors="replace").strip().splitlines()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 3):
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {err[-1] if err else ''}")
    return wall, usage.ru_maxrss / 2**20, proc.returncode


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1e6,3e6,1e7", help="records per week, comma-separated")
    p.add_argument("--dir", type=Path, default=Path("/tmp/harness-scale"), help="where the datasets go")
    p.add_argument("--keep", action="store_true", help="keep the generated datasets")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generate", type=Path, help=argparse.SUPPRESS)  # the child that writes one dataset
    args = p.parse_args(argv)
    if args.generate is not None:
        print(f"{generate(args.generate, int(float(args.sizes)), args.seed):.1f}")
        return 0
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    harness = [sys.executable, "-m", "harness"]
    since = str(WEEK_START + 7 * DAY)
    rows = []
    for n in sizes:
        ds = args.dir / f"records-{n}"
        out = args.dir / f"out-{n}"
        shutil.rmtree(ds, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
        try:
            child = [sys.executable, __file__, "--generate", str(ds), "--sizes", str(n), "--seed", str(args.seed)]
            gen = float(subprocess.run(child, check=True, capture_output=True, text=True).stdout.split()[-1])
            disk = sum(f.stat().st_size for f in ds.rglob("*.parquet")) / 2**30
            print(f"{n:,} records a week: generated 2 weeks in {gen:.0f} s, {disk:.2f} GiB of parquet", flush=True)
            drift = measure(
                harness
                + [
                    "drift",
                    "--reference",
                    str(ds),
                    "--reference-until",
                    since,
                    "--current",
                    str(ds),
                    "--since",
                    since,
                    "--out",
                    str(out / "drift"),
                    "--seed",
                    str(args.seed),
                ]
            )
            print(f"  drift report  {drift[0]:7.1f} s  {drift[1]:5.2f} GiB  exit {drift[2]}", flush=True)
            slo = measure(
                harness
                + [
                    "slo",
                    "--spec",
                    str(ROOT / "examples" / "slo.yaml"),
                    "--records",
                    str(ds),
                    "--since",
                    since,
                    "--out",
                    str(out / "slo"),
                ]
            )
            print(f"  SLO report    {slo[0]:7.1f} s  {slo[1]:5.2f} GiB", flush=True)
            review = measure(
                harness
                + [
                    "slo",
                    "review",
                    "--spec",
                    str(ROOT / "examples" / "slo.yaml"),
                    "--records",
                    str(ds),
                    "--window",
                    "7d",
                    "--end",
                    str(WEEK_START + 14 * DAY),
                    "--out",
                    str(out / "review"),
                ]
            )
            print(f"  SLO review    {review[0]:7.1f} s  {review[1]:5.2f} GiB", flush=True)
            rows.append((n, disk, drift, slo, review))
        finally:
            if not args.keep:
                shutil.rmtree(ds, ignore_errors=True)
                shutil.rmtree(out, ignore_errors=True)
    print(
        "\n| records a week | parquet (2 weeks) | weekly drift report | SLO evaluation of the week "
        "| SLO review of the week |"
    )
    print("| --- | --- | --- | --- | --- |")
    for n, disk, d, s, r in rows:
        print(
            f"| {n:,} | {disk:.2f} GiB | {d[0]:.1f} s, {d[1]:.2f} GiB peak | {s[0]:.1f} s, {s[1]:.2f} GiB peak "
            f"| {r[0]:.1f} s, {r[1]:.2f} GiB peak |"
        )
    print(f"\nsetup: {os.cpu_count()} cores, 2 threads for DuckDB and BLAS, each command a process of its own")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
