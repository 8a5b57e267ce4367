"""TTFT, ITL and TPOT of the reference server's streamed chat completions under load, as the harness
records them, beside what the official ``openai`` Python client's own timing gives.

One reference server (``tiny``); a few concurrent streams (``--concurrency``) for a bounded number
of requests (``--requests`` per round, ``--rounds`` rounds interleaved so that the machine's drift
hits every client alike), the same images in the same order:

- **harness (httpx)**: ``harness.client.AsyncCaptionClient`` with ``openai-chat``, ``stream: true``
  (what ``harness evaluate`` and the gate's evaluation record);
- **harness (Locust)**: ``harness load`` with the same adapter for ``--locust-seconds`` at the same
  concurrency (closed loop), its records;
- **openai client**: ``openai.OpenAI().chat.completions.create(stream=True)`` from
  ``--concurrency`` threads, timed the way a user of the client would: ``t0`` just before
  ``create``, each chunk when the client's iterator yields it; TTFT the first chunk with content,
  ITL the gaps between such chunks, TPOT (last - first) / (``usage.completion_tokens`` - 1).

**Agreement, request by request**: the openai client's requests are also read by the harness's own
stream reader (``harness.client.StreamRead``, the code both harness clients use): its httpx
transport hands every piece of the body, as it arrives, to a ``StreamRead`` with the same ``t0``
before the client parses it. Each request then has both clients' TTFT, gaps and TPOT of the same
bytes: the median absolute difference (target: within 1 ms) says the harness times a stream as
the official client does. The distributions of the separate runs differ by what the server did
(batching, the machine), not by how they were timed.

    python benchmarks/streaming.py [--requests 200] [--concurrency 4] [--rounds 2] [--locust-seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "tiny"
PROMPT = "Describe this image in one short sentence."


def _images(n: int) -> list[bytes]:
    from harness.datasets import generate_shapes
    from harness.load.payload import encode_png

    return [encode_png(s.image) for s in generate_shapes(n, seed=7)]


def _q(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] if s else float("nan")


def _adapter():
    from harness.protocols import make_protocol

    return make_protocol("openai-chat", {"model": MODEL, "stream": True, "prompt": PROMPT})


# ------------------------------------------------------------------------------ harness (httpx)


async def _harness_round(url: str, images: list[bytes], start: int, n: int, concurrency: int) -> list[dict]:
    from harness.client import AsyncCaptionClient

    out: list[dict] = []
    todo = iter(range(start, start + n))
    async with AsyncCaptionClient(url, 60.0, adapter=_adapter(), max_connections=concurrency) as client:

        async def worker() -> None:
            for i in todo:
                r = await client.caption(images[i % len(images)])
                if not r.ok:
                    raise RuntimeError(f"harness: {r.outcome} {r.error}")
                out.append({"ttft": r.ttft_s, "itl": r.itl_s, "tpot": r.tpot_s, "latency": r.latency_s})

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


# ------------------------------------------------------------------------------ the openai client


class _Tee(httpx.BaseTransport):
    """An httpx transport that hands each piece of a streamed body, as it arrives, to the calling
    thread's ``StreamRead`` (set before the request) before the openai client reads it."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.local = threading.local()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        reader = getattr(self.local, "reader", None)
        raw = resp.stream

        class Body(httpx.SyncByteStream):
            def __iter__(self):
                for data in raw:
                    if reader is not None:
                        reader.feed(data)  # timed now, before the client parses it
                    yield data

            def close(self) -> None:
                raw.close()

        return httpx.Response(resp.status_code, headers=resp.headers, stream=Body(), extensions=resp.extensions)

    def close(self) -> None:
        self.inner.close()


def _openai_client(url: str, tee: _Tee):
    import openai

    http = httpx.Client(transport=tee, timeout=60.0)
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60.0, http_client=http)


def _openai_one(client, tee: _Tee, png: bytes) -> dict:
    from harness.client import StreamRead

    url = "data:image/png;base64," + base64.b64encode(png).decode()
    messages = [
        {
            "role": "user",
            "content": [{"type": "text", "text": PROMPT}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]
    t0 = time.perf_counter()
    tee.local.reader = reader = StreamRead(_adapter(), t0, 60.0)
    times: list[float] = []
    usage = None
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=64,
        temperature=0,
        logprobs=True,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        t = time.perf_counter()
        if chunk.choices and chunk.choices[0].delta.content:
            times.append(t)
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
    t_end = time.perf_counter()
    tee.local.reader = None
    h = reader.result("r", time.time(), 200)
    if not h.ok:
        raise RuntimeError(f"harness reader: {h.outcome} {h.error}")
    n = usage if usage is not None else len(times)
    return {
        "openai": {
            "ttft": times[0] - t0,
            "itl": [b - a for a, b in zip(times, times[1:])],
            "tpot": (times[-1] - times[0]) / (n - 1) if n > 1 and len(times) > 1 else None,
            "latency": t_end - t0,
        },
        "harness": {"ttft": h.ttft_s, "itl": h.itl_s, "tpot": h.tpot_s, "latency": h.latency_s},
    }


def _openai_round(url: str, images: list[bytes], start: int, n: int, concurrency: int) -> list[dict]:
    tee = _Tee()
    client = _openai_client(url, tee)
    try:
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda i: _openai_one(client, tee, images[i % len(images)]), range(start, start + n)))
    finally:
        client.close()


# ------------------------------------------------------------------------------ harness (Locust)


def _locust(url: str, seconds: float, users: int) -> list[dict]:
    from harness.load import LoadRun, run_load
    from harness.records import load_records

    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "chat.yaml"
        adapter.write_text(f"protocol: openai-chat\nmodel: {MODEL}\nstream: true\nprompt: {PROMPT}\n")
        options = {"adapter": str(adapter), "seed": 7, "pool_size": 32}
        outcome = run_load(LoadRun("steady", Path(tmp) / "run", url, seconds, users, None, options=options))
        if outcome.returncode != 0:
            raise RuntimeError(f"harness load failed: {outcome.log_tail()}")
        df = load_records(Path(tmp) / "run")
    ok = df[df["outcome"] == "ok"]
    return [
        {"ttft": r.ttft_s, "itl": list(r.itl_s), "tpot": r.tpot_s, "latency": r.latency_s}
        for r in ok.itertuples()
        if r.ttft_s == r.ttft_s  # not NaN
    ]


# ------------------------------------------------------------------------------ figures


def _figures(rows: list[dict]) -> dict:
    ttft = [r["ttft"] for r in rows]
    itl = [g for r in rows for g in r["itl"]]
    tpot = [r["tpot"] for r in rows if r["tpot"] is not None]
    lat = [r["latency"] for r in rows]
    ms = 1000.0
    return {
        "requests": len(rows),
        "ttft_p50_ms": _q(ttft, 0.5) * ms,
        "ttft_p95_ms": _q(ttft, 0.95) * ms,
        "itl_p50_ms": _q(itl, 0.5) * ms,
        "itl_p95_ms": _q(itl, 0.95) * ms,
        "tpot_p50_ms": _q(tpot, 0.5) * ms,
        "tpot_p95_ms": _q(tpot, 0.95) * ms,
        "latency_p50_ms": _q(lat, 0.5) * ms,
        "latency_p95_ms": _q(lat, 0.95) * ms,
    }


def _agreement(pairs: list[dict]) -> dict:
    """Per request, the harness reader's and the openai client's timings of the same bytes."""
    dt = [abs(p["harness"]["ttft"] - p["openai"]["ttft"]) for p in pairs]
    dg, dp, mismatched = [], [], 0
    for p in pairs:
        h, o = p["harness"], p["openai"]
        if len(h["itl"]) != len(o["itl"]):
            mismatched += 1
            continue
        dg += [abs(a - b) for a, b in zip(h["itl"], o["itl"])]
        if h["tpot"] is not None and o["tpot"] is not None:
            dp.append(abs(h["tpot"] - o["tpot"]))
    ms = 1000.0
    return {
        "requests": len(pairs),
        "gap_count_mismatches": mismatched,
        "ttft_mad_ms": statistics.median(dt) * ms,
        "ttft_p95_abs_ms": _q(dt, 0.95) * ms,
        "ttft_max_abs_ms": max(dt) * ms,
        "itl_mad_ms": statistics.median(dg) * ms if dg else float("nan"),
        "itl_p95_abs_ms": _q(dg, 0.95) * ms,
        "itl_max_abs_ms": max(dg) * ms if dg else float("nan"),
        "tpot_mad_ms": statistics.median(dp) * ms if dp else float("nan"),
        "tpot_max_abs_ms": max(dp) * ms if dp else float("nan"),
        "within_1ms": statistics.median(dt) < 1e-3
        and (not dg or statistics.median(dg) < 1e-3)
        and (not dp or statistics.median(dp) < 1e-3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="requests per client per round")
    ap.add_argument("--concurrency", type=int, default=4, help="streams at once (threads, tasks, Locust users)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--locust-seconds", type=float, default=5.0, help="the Locust run's length (0: none)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    import openai

    from reference_model.server.launch import start_server

    images = _images(32)
    harness_rows: list[dict] = []
    pairs: list[dict] = []
    t = time.time()
    with start_server(MODEL, extra_args=["--threads", "1"]) as srv:
        asyncio.run(_harness_round(srv.url, images, 0, args.concurrency * 2, args.concurrency))  # warm up
        _openai_round(srv.url, images, 0, args.concurrency * 2, args.concurrency)
        for r in range(args.rounds):
            start = r * args.requests
            harness_rows += asyncio.run(_harness_round(srv.url, images, start, args.requests, args.concurrency))
            pairs += _openai_round(srv.url, images, start, args.requests, args.concurrency)
        locust_rows = _locust(srv.url, args.locust_seconds, args.concurrency) if args.locust_seconds > 0 else []
    took = time.time() - t

    figures = {
        "harness (httpx)": _figures(harness_rows),
        "harness (Locust)": _figures(locust_rows) if locust_rows else None,
        "openai client": _figures([p["openai"] for p in pairs]),
        "harness reader, same streams": _figures([p["harness"] for p in pairs]),
    }
    agreement = _agreement(pairs)
    print(
        f"reference server {MODEL}, {args.concurrency} concurrent streams, {args.rounds} x {args.requests} requests "
        f"per client, openai {openai.__version__}, {took:.0f} s"
    )
    cols = ("requests", "ttft_p50_ms", "ttft_p95_ms", "itl_p50_ms", "itl_p95_ms", "tpot_p50_ms", "tpot_p95_ms")
    cols += ("latency_p50_ms", "latency_p95_ms")
    print(f"{'':30}" + "".join(f"{c.replace('_ms', ''):>13}" for c in cols))
    for name, f in figures.items():
        if f is None:
            continue
        print(f"{name:30}" + "".join(f"{f[c]:>13.0f}" if c == "requests" else f"{f[c]:>13.3f}" for c in cols))
    print(
        f"agreement, {agreement['requests']} requests (harness reader vs openai client, same bytes): "
        f"median |dTTFT| {agreement['ttft_mad_ms']:.3f} ms (p95 {agreement['ttft_p95_abs_ms']:.3f}, "
        f"max {agreement['ttft_max_abs_ms']:.3f}); median |dITL| {agreement['itl_mad_ms']:.3f} ms "
        f"(p95 {agreement['itl_p95_abs_ms']:.3f}, max {agreement['itl_max_abs_ms']:.3f}); median |dTPOT| "
        f"{agreement['tpot_mad_ms']:.4f} ms (max {agreement['tpot_max_abs_ms']:.3f}); gap counts differing: "
        f"{agreement['gap_count_mismatches']}; within 1 ms: {agreement['within_1ms']}"
    )
    if args.json:
        doc = {"figures": figures, "agreement": agreement, "args": vars(args) | {"json": str(args.json)}}
        args.json.write_text(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
