"""Throughput and latency of the reference server, against the model's own batched speed.

Prints, in one run on this machine:
  1. raw in-process batched throughput of the model at the server's max batch (images/s);
  2. the server's saturated throughput over HTTP (closed loop, many connections) and its ratio
     to (1); the same server with --max-batch 1 and the batching gain;
  3. p50/p95/p99 latency at 25%, 50% and 75% of the saturated rate (open loop, Poisson arrivals,
     latency measured from each request's scheduled arrival, so queueing delay is counted).
The load generator is a separate process speaking minimal HTTP/1.1 over keep-alive connections.

    python benchmarks/server.py [--seconds 8] [--max-batch 32] [--threads 1] [--connections 64]

With ``--backend null`` the server runs the ``null`` model (it answers at once), so what the
server spends is its own cost outside the model: for each front end of ``--frontend-workers``
(0: the single-process server; N: N front-end worker processes) it prints, at saturation, the
images/s, the CPU per image of the process that owns the model and of the whole server (that
process and its children), side by side; ``--rounds`` repeats them in turn.

    python benchmarks/server.py --backend null [--frontend-workers 0,2] [--rounds 2] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _images(n: int, seed: int = 7) -> list[bytes]:
    from harness.datasets import generate_shapes
    from harness.load.payload import encode_png

    return [encode_png(s.image) for s in generate_shapes(n, seed=seed)]


# ----------------------------------------------------------------------------- load generator


def _request(host: str, port: int, body: bytes) -> bytes:
    head = (
        f"POST /v1/caption HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes) -> int:
    writer.write(payload)
    status = int((await reader.readline()).split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def _closed_loop(host: str, port: int, payloads: list[bytes], conns: int, seconds: float, warm: float):
    """``conns`` connections, each sending its next request as soon as the last is answered."""
    t_start = time.perf_counter()
    t_measure, t_end = t_start + warm, t_start + warm + seconds
    done = {"ok": 0, "other": 0, "total": 0}

    async def worker(i: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        k = i
        while True:
            now = time.perf_counter()
            if now >= t_end:
                break
            status = await _exchange(reader, writer, payloads[k % len(payloads)])
            done["total"] += 1
            k += conns
            if time.perf_counter() >= t_measure and time.perf_counter() < t_end:
                done["ok" if status == 200 else "other"] += 1
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(conns)))
    return {"rps": done["ok"] / seconds, "ok": done["ok"], "other": done["other"], "total": done["total"]}


async def _open_loop(host: str, port: int, payloads: list[bytes], rate: float, seconds: float, seed: int):
    """Poisson arrivals at ``rate``/s; each request takes an idle connection or opens one."""
    rng = random.Random(seed)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    latencies: list[float] = []
    errors = 0
    tasks = []

    async def one(scheduled: float, payload: bytes) -> None:
        nonlocal errors
        conn = idle.pop() if idle else await asyncio.open_connection(host, port)
        status = await _exchange(*conn, payload)
        latencies.append(time.perf_counter() - scheduled)
        if status != 200:
            errors += 1
        idle.append(conn)

    t0 = time.perf_counter()
    t, k = t0, 0
    while t < t0 + seconds:
        t += rng.expovariate(rate)
        delay = t - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(t, payloads[k % len(payloads)])))
        k += 1
    await asyncio.gather(*tasks)
    for _, w in idle:
        w.close()
    latencies.sort()

    def q(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000.0

    return {
        "sent": len(tasks),
        "errors": errors,
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "achieved_rps": len(tasks) / seconds,
    }


def loadgen_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["closed", "open"], required=True)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    payloads = [_request("127.0.0.1", a.port, b) for b in _images(64)]
    cpu0 = time.process_time()
    if a.mode == "closed":
        result = asyncio.run(_closed_loop("127.0.0.1", a.port, payloads, a.connections, a.seconds, warm=1.0))
    else:
        result = asyncio.run(_open_loop("127.0.0.1", a.port, payloads, a.rate, a.seconds, a.seed))
    result["cpu_s"] = time.process_time() - cpu0
    print(json.dumps(result))


def _process_cpu_s(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` and its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> tuple[float, float, int]:
    """CPU seconds of ``pid`` alone and of ``pid`` with its living descendants, and how many
    processes that is (Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    own, total = _process_cpu_s(pid), 0.0
    for p in tree:
        try:
            total += _process_cpu_s(p)
        except OSError:  # ended since
            pass
    return own, total, len(tree)


def _saturate_tree(srv, seconds: float, connections: int) -> dict:
    """Closed-loop run against ``srv``: images/s and CPU per image of the server's main process
    (the one that owns the model), of all its processes, and of the load generator."""
    own0, total0, _ = _tree_cpu_s(srv.pid)
    out = _loadgen(srv.port, "--mode", "closed", "--seconds", str(seconds), "--connections", str(connections))
    own1, total1, procs = _tree_cpu_s(srv.pid)
    n = max(1, out["total"])
    out["model_process_cpu_ms"] = 1000 * (own1 - own0) / n
    out["server_cpu_ms"] = 1000 * (total1 - total0) / n
    out["loadgen_cpu_ms"] = 1000 * out["cpu_s"] / n
    out["processes"] = procs
    return out


def null_backend(a: argparse.Namespace) -> None:
    """The server's own CPU per image outside the model, for each front end of ``--frontend-workers``."""
    from reference_model.server.launch import start_server

    workers = [int(w) for w in a.frontend_workers.split(",")]
    cores = os.cpu_count()
    print(f"machine: {cores} cores ({_cpu_name()}), load average at start {os.getloadavg()[0]:.2f}")
    print(
        f"backend null (captions at once), max batch {a.max_batch}, {a.connections} connections, closed loop, "
        f"{a.seconds:g} s per run after 1 s of warm-up; load generator = 1 separate process; no CPU pinning"
    )
    common = ["--threads", str(a.threads), "--max-wait-ms", "5", "--max-queue", "1024"]
    results: dict[int, list[dict]] = {w: [] for w in workers}
    for _ in range(a.rounds):
        for w in workers:
            extra = ["--max-batch", str(a.max_batch), *common]
            if w:
                extra += ["--frontend-workers", str(w)]
            with start_server("null", extra_args=extra) as srv:
                results[w].append(_saturate_tree(srv, a.seconds, a.connections))
    print("front end                     images/s  non-200  model process ms/image  whole server ms/image  load gen")
    for w in workers:
        name = "single process" if w == 0 else f"{w} worker process{'es' if w > 1 else ''}"
        for r in results[w]:
            print(
                f"  {name:26s} {r['rps']:9.1f} {r['other']:8d} {r['model_process_cpu_ms']:23.3f} "
                f"{r['server_cpu_ms']:22.3f} {r['loadgen_cpu_ms']:9.3f}   ({r['processes']} processes)"
            )
    print(f"load average at end {os.getloadavg()[0]:.2f}")


def _saturate(srv, seconds: float, connections: int) -> dict:
    """Closed-loop run against ``srv``, with the server's and the load generator's CPU per request."""
    cpu0 = _process_cpu_s(srv.pid)
    out = _loadgen(srv.port, "--mode", "closed", "--seconds", str(seconds), "--connections", str(connections))
    out["server_cpu_ms"] = 1000 * (_process_cpu_s(srv.pid) - cpu0) / max(1, out["total"])
    out["loadgen_cpu_ms"] = 1000 * out["cpu_s"] / max(1, out["total"])
    return out


def _loadgen(port: int, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--loadgen", "--port", str(port), *args],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the benchmark


def raw_throughput(model: str, batch: int, threads: int, seconds: float, device: str) -> tuple[float, float]:
    """Images per second of ``captioner.caption`` on decoded images, batches of ``batch``, and the
    CPU milliseconds per image."""
    import torch

    from harness.image import decode_image
    from reference_model import load_captioner

    torch.set_num_threads(threads)
    images = [decode_image(b) for b in _images(batch)]
    cap = load_captioner(model, device)
    cap.caption(images)
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        cap.caption(images)
        n += len(images)
    return n / (time.perf_counter() - t0), 1000 * (time.process_time() - c0) / n


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "cpu unknown"


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch

        return f"{device} ({torch.cuda.get_device_name(device)})"
    return device


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny")
    p.add_argument("--seconds", type=float, default=8.0, help="measuring time of each phase")
    p.add_argument("--max-batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads of the model and the server")
    p.add_argument("--connections", type=int, default=64, help="closed-loop connections at saturation")
    p.add_argument(
        "--backend",
        choices=["model", "null"],
        default="model",
        help="model: the model of --model, raw and served; null: the server's own CPU per image, no model",
    )
    p.add_argument(
        "--frontend-workers",
        default="0,2",
        help="with --backend null: the front ends to compare, comma-separated (0: single process)",
    )
    p.add_argument("--rounds", type=int, default=1, help="with --backend null: runs of each front end, in turn")
    a = p.parse_args()
    if a.backend == "null":
        null_backend(a)
        return

    from reference_model.device import pick_device
    from reference_model.server.launch import start_server

    device = pick_device()

    cores = os.cpu_count()
    print(f"machine: {cores} cores ({_cpu_name()}), load average at start {os.getloadavg()[0]:.2f}")
    print(f"model device: {_device_name(device)} (the server picks the same)")
    print(
        f"sharing: server = 1 process (asyncio event loop thread + 1 inference thread with {a.threads} torch "
        f"thread(s)); load generator = 1 separate process (1 asyncio thread); no CPU pinning, "
        f"so all share the {cores} cores"
    )

    raw_before, _ = raw_throughput(a.model, a.max_batch, a.threads, a.seconds, device)

    common = ["--threads", str(a.threads), "--max-wait-ms", "5", "--max-queue", "1024"]
    with start_server(a.model, extra_args=["--max-batch", str(a.max_batch), *common]) as srv:
        sat = _saturate(srv, a.seconds, a.connections)
        rows = []
        for share in (0.25, 0.50, 0.75):
            rate = share * sat["rps"]
            lat = _loadgen(
                srv.port,
                "--mode",
                "open",
                "--seconds",
                str(a.seconds),
                "--rate",
                f"{rate:.3f}",
                "--seed",
                str(int(share * 100)),
            )
            rows.append((share, rate, lat))
    with start_server(a.model, extra_args=["--max-batch", "1", *common]) as srv:
        one = _saturate(srv, a.seconds, a.connections)
    raw_after, raw_cpu = raw_throughput(a.model, a.max_batch, a.threads, a.seconds, device)
    raw = (raw_before + raw_after) / 2
    print(
        f"raw model, in process, batch {a.max_batch}: {raw:8.1f} images/s"
        f"  (mean of {raw_before:.1f} before and {raw_after:.1f} after the server runs); "
        f"CPU {raw_cpu:.2f} ms/image"
    )
    print(
        f"server, max batch {a.max_batch}, {a.connections} connections: {sat['rps']:8.1f} images/s"
        f"  = {sat['rps'] / raw:.2f} x raw (goal >= 0.9); non-200: {sat['other']}; CPU per image: "
        f"server {sat['server_cpu_ms']:.2f} ms, load generator {sat['loadgen_cpu_ms']:.2f} ms"
    )
    print(
        f"server, max batch 1,  {a.connections} connections: {one['rps']:8.1f} images/s"
        f"  -> batching gain {sat['rps'] / one['rps']:.2f} x (goal >= 3); non-200: {one['other']}; CPU per "
        f"image: server {one['server_cpu_ms']:.2f} ms, load generator {one['loadgen_cpu_ms']:.2f} ms"
    )
    print("open-loop Poisson arrivals against the max-batch server (latency from scheduled arrival):")
    print("  load  rate/s   sent  non-200   p50 ms   p95 ms   p99 ms")
    for share, rate, lat in rows:
        print(
            f"  {share:4.0%} {rate:7.1f} {lat['sent']:6d} {lat['errors']:8d} {lat['p50_ms']:8.1f} "
            f"{lat['p95_ms']:8.1f} {lat['p99_ms']:8.1f}"
        )
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        loadgen_main(sys.argv[2:])
    else:
        main()
