"""A burst of large images against the reference server: resident memory and /healthz latency.

Starts the server (tiny model) as a child process on a loopback port, waits until it is ready,
then sends --rounds bursts of --burst concurrent POSTs of one --side x --side PNG (a flat
colour: about 58 kB for 4096 x 4096, 48 MB decoded), while one connection polls /healthz every
20 ms and the server's RSS is sampled every 10 ms. Prints per round: the statuses, idle RSS,
peak RSS, RSS 2 s after, and /healthz p50/max during the burst.

    python benchmarks/server_burst.py [--burst 64] [--side 4096] [--rounds 3] [--tree PATH]

``--tree PATH`` runs the server from another checkout (e.g. ``git archive HEAD | tar -x -C
PATH``), to compare two versions side by side on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS")


def _poll_health(port: int, stop, out) -> None:
    """In a process of its own (so the burst's client does not delay it): GET /healthz over one
    keep-alive connection every 20 ms until ``stop`` is set; the latencies (ms) go to ``out``."""
    import socket

    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", port))
    times = []
    while not stop.is_set():
        t0 = time.perf_counter()
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                raise RuntimeError("server closed the /healthz connection")
            data += chunk
        times.append((time.perf_counter() - t0) * 1000.0)
        if not data.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"/healthz answered {data[:40]!r}")
        time.sleep(0.02)
    sock.close()
    out.send(times)


def big_png(side: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 90)).save(buf, format="PNG")
    return buf.getvalue()


async def _burst(url: str, port: int, pid: int, body: bytes, n: int, settle_s: float, quiet_s: float) -> dict:
    import multiprocessing

    import httpx

    limits = httpx.Limits(max_connections=n + 4, max_keepalive_connections=n + 4)
    done = asyncio.Event()
    rss: list[float] = []

    async def sample_rss() -> None:
        while not done.is_set():
            rss.append(_rss_mb(pid))
            await asyncio.sleep(0.01)

    idle = _rss_mb(pid)
    ctx = multiprocessing.get_context("fork")
    # The same polling with no burst, for comparison on this machine now.
    stop = ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    poller = ctx.Process(target=_poll_health, args=(port, stop, sender), daemon=True)
    poller.start()
    await asyncio.sleep(quiet_s)
    stop.set()
    quiet = receiver.recv() if receiver.poll(30) else []
    poller.join(10)
    stop = ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    poller = ctx.Process(target=_poll_health, args=(port, stop, sender), daemon=True)
    poller.start()
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        sampler = asyncio.create_task(sample_rss())
        await asyncio.sleep(0.3)
        t0 = time.perf_counter()
        answers = await asyncio.gather(
            *(client.post(url + "/v1/caption", content=body, headers={"Content-Type": "image/png"}) for _ in range(n))
        )
        took = time.perf_counter() - t0
        stop.set()
        done.set()
        await sampler
    health = receiver.recv() if receiver.poll(30) else []
    poller.join(10)
    if not health:
        raise RuntimeError("the /healthz poller measured nothing")
    await asyncio.sleep(settle_s)
    statuses = Counter(r.status_code for r in answers)
    return {
        "statuses": dict(sorted(statuses.items())),
        "seconds": took,
        "idle_mb": idle,
        "peak_mb": max(rss),
        "after_mb": _rss_mb(pid),
        "health_n": len(health),
        "health_p50_ms": statistics.median(health),
        "health_max_ms": max(health),
        "quiet_p50_ms": statistics.median(quiet),
        "quiet_max_ms": max(quiet),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--burst", type=int, default=64, help="concurrent requests per burst")
    p.add_argument("--side", type=int, default=4096, help="side of the square PNG sent")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--settle-s", type=float, default=2.0, help="wait before reading RSS after a burst")
    p.add_argument("--quiet-s", type=float, default=3.0, help="poll /healthz this long with no burst first")
    p.add_argument("--tree", type=Path, default=None, help="run the server from this checkout")
    p.add_argument("--server-args", default="", help="more server options, space-separated")
    a = p.parse_args()

    from reference_model.server.launch import start_server

    body = big_png(a.side)
    cores = os.cpu_count()
    print(f"machine: {cores} cores, load average at start {os.getloadavg()[0]:.2f}")
    print(
        f"body: {a.side}x{a.side} PNG of {len(body)} bytes ({a.side * a.side * 3 / 2**20:.0f} MB decoded as RGB), "
        f"{a.burst} at once, {a.rounds} rounds"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(a.tree), os.environ.get("PYTHONPATH", "")])} if a.tree else None
    cwd = a.tree or ROOT
    with start_server("tiny", extra_args=a.server_args.split(), env=env, cwd=cwd) as srv:
        print(f"server: {srv.url} (pid {srv.pid}, from {cwd})")
        print("                                                            /healthz in burst   /healthz quiet")
        print(
            "round  statuses                 burst s  idle MB  peak MB  after MB     n  p50 ms  max ms  p50 ms  max ms"
        )
        for i in range(a.rounds):
            r = asyncio.run(_burst(srv.url, srv.port, srv.pid, body, a.burst, a.settle_s, a.quiet_s))
            shown = ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
            print(
                f"{i + 1:5d}  {shown:24s} {r['seconds']:7.1f} {r['idle_mb']:8.0f} {r['peak_mb']:8.0f} "
                f"{r['after_mb']:9.0f} {r['health_n']:5d} {r['health_p50_ms']:7.1f} {r['health_max_ms']:7.1f} "
                f"{r['quiet_p50_ms']:7.1f} {r['quiet_max_ms']:7.1f}"
            )
    print(f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
