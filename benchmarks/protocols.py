"""What each protocol costs, side by side in one run against one reference server: the harness's
client sends the same images through every protocol in turn (closed loop, the same concurrency),
rounds interleaved so that drift of the machine hits every protocol alike.

Prints per protocol: requests per second, p50 and p95 latency, request bytes per image, and each
figure's ratio to contract v1's.

    python benchmarks/protocols.py [--requests 200] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _images(n: int) -> list[bytes]:
    from harness.datasets import generate_shapes
    from harness.load.payload import encode_png

    return [encode_png(s.image) for s in generate_shapes(n, seed=7)]


async def _run(url: str, adapter, images: list[bytes], n: int, concurrency: int) -> tuple[float, list[float]]:
    from harness.client import AsyncCaptionClient

    latencies: list[float] = []
    todo = iter(range(n))

    async with AsyncCaptionClient(url, 60.0, adapter=adapter, max_connections=concurrency) as client:

        async def worker() -> None:
            for i in todo:
                r = await client.caption(images[i % len(images)])
                if not r.ok:
                    raise RuntimeError(f"{adapter.name}: {r.outcome} {r.error}")
                latencies.append(r.latency_s)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - t0, latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per protocol per round")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    from harness.protocols import PROTOCOLS, ProtocolChoice
    from reference_model.server.launch import start_server

    images = _images(32)
    adapters = {name: ProtocolChoice(name, model="tiny").build() for name in PROTOCOLS}
    sizes = {
        name: statistics.mean(len(a.request(im, "image/png", "r").content) for im in images)
        for name, a in adapters.items()
    }
    walls: dict[str, float] = {n: 0.0 for n in adapters}
    lats: dict[str, list[float]] = {n: [] for n in adapters}
    with start_server("tiny", extra_args=["--threads", "1"]) as srv:
        for a in adapters.values():  # warm each route once
            asyncio.run(_run(srv.url, a, images, args.concurrency, args.concurrency))
        for _ in range(args.rounds):
            for name, a in adapters.items():
                wall, lat = asyncio.run(_run(srv.url, a, images, args.requests, args.concurrency))
                walls[name] += wall
                lats[name] += lat
    total = args.requests * args.rounds
    print(f"{total} requests per protocol, concurrency {args.concurrency}, {args.rounds} interleaved rounds")
    print(
        f"{'protocol':14} {'req/s':>8} {'ratio':>6} {'p50 ms':>8} {'ratio':>6} {'p95 ms':>8} {'ratio':>6} "
        f"{'bytes/req':>10} {'ratio':>6}"
    )
    base = None
    for name in adapters:
        rps = total / walls[name]
        q = statistics.quantiles(lats[name], n=20)
        row = (rps, q[9] * 1000, q[18] * 1000, sizes[name])
        base = base or row
        print(
            f"{name:14} {row[0]:8.1f} {row[0] / base[0]:6.2f} {row[1]:8.1f} {row[1] / base[1]:6.2f} "
            f"{row[2]:8.1f} {row[2] / base[2]:6.2f} {row[3]:10.0f} {row[3] / base[3]:6.2f}"
        )


if __name__ == "__main__":
    main()
