"""What recording costs the load generator: requests per second of a plain Locust FastHttpUser
and of the harness's recording user (scenarios/steady.py: adapter, classification, one record
per request written to records.jsonl) against the same fixed-answer loopback endpoint, and their
ratio (goal: recording costs at most 10%, a ratio of at least 0.90).

The endpoint runs in its own process; each Locust run is one process (one core), rounds
alternate plain/recording and the median of each is reported. Alongside requests per second it
reports the CPU time the Locust process spends per request (user + system time from
/proc/PID/stat over the middle of the run, divided by requests), which other load on the machine
disturbs less than throughput.

    python benchmarks/load.py [--duration 8] [--users 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _rps(csv_path: Path) -> tuple[float, int]:
    with open(csv_path, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Name"] == "Aggregated"]
    return float(rows[0]["Requests/s"]), int(rows[0]["Request Count"])


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (``None`` without /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _run(
    locustfile: Path, url: str, out: Path, duration: float, users: int, harness: bool
) -> tuple[float, int, float | None]:
    argv = [
        sys.executable,
        "-m",
        "harness.load.run",
        "-f",
        str(locustfile),
        "--host",
        url,
        "-u",
        str(users),
        "--csv",
        str(out / "locust"),
        "--loglevel",
        "ERROR",
    ]
    if harness:
        argv += ["--duration", f"{duration:g}", "--out", str(out)]
    else:
        argv += ["-t", f"{int(duration)}s"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)
    cpu_rate = None
    try:  # CPU seconds per second over the middle of the run: from 1.5 s after the stats start to 1.5 s before the end
        deadline = time.monotonic() + 60.0
        while not (out / "locust_stats.csv").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if duration > 4.0 and proc.poll() is None:
            time.sleep(1.5)
            c0, t0 = _cpu_s(proc.pid), time.monotonic()
            time.sleep(duration - 3.0)
            c1, t1 = _cpu_s(proc.pid), time.monotonic()
            if c0 is not None and c1 is not None and proc.poll() is None:
                cpu_rate = (c1 - c0) / (t1 - t0)
    finally:
        rc = proc.wait(duration + 120.0)
    if rc != 0:
        raise SystemExit(f"the Locust run ({locustfile.name}) exited with status {rc}")
    rps, n = _rps(out / "locust_stats.csv")
    if harness:
        records = sum(1 for _ in open(out / "records.jsonl"))
        if records != n:
            raise SystemExit(f"records ({records}) and Locust's count ({n}) differ")
    return rps, n, (cpu_rate / rps * 1e6 if cpu_rate is not None and rps else None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=8.0, help="seconds per run")
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    server = subprocess.Popen(
        [sys.executable, "-m", "harness.load.calibration", "--port", "0"], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        url = json.loads(server.stdout.readline())["url"]
        plain, recording = [], []
        cpu: dict[str, list[float]] = {"plain": [], "recording": []}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.rounds):
                for kind in ("plain", "recording"):
                    out = Path(tmp) / f"{kind}-{r}"
                    out.mkdir()
                    f = ROOT / ("benchmarks/plain_locustfile.py" if kind == "plain" else "scenarios/steady.py")
                    rps, n, us = _run(f, url, out, args.duration, args.users, kind == "recording")
                    (plain if kind == "plain" else recording).append(rps)
                    if us is not None:
                        cpu[kind].append(us)
                    shown = f", {us:.1f} us CPU/request" if us is not None else ""
                    print(f"round {r + 1} {kind:9} {rps:9.1f} req/s ({n} requests{shown})", flush=True)
                    time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(10)
    p_med, r_med = statistics.median(plain), statistics.median(recording)
    ratio = r_med / p_med if p_med else float("nan")
    cores = os.cpu_count()
    print(f"\nplain FastHttpUser      {p_med:9.1f} req/s (median of {args.rounds})")
    print(f"harness recording user  {r_med:9.1f} req/s (median of {args.rounds})")
    print(f"ratio recording/plain   {ratio:9.3f}  (recording costs {100 * (1 - ratio):.1f}%; goal <= 10%)")
    if cpu["plain"] and cpu["recording"]:
        c_p, c_r = statistics.median(cpu["plain"]), statistics.median(cpu["recording"])
        print(
            f"CPU per request         plain {c_p:.1f} us, recording {c_r:.1f} us (median of {len(cpu['plain'])}): "
            f"recording adds {c_r - c_p:.1f} us ({100 * (c_r / c_p - 1):.1f}%)"
        )
    print(
        f"setup: {args.users} users, {args.duration:g} s per run, one Locust process, endpoint in its own "
        f"process, {cores} cores"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
