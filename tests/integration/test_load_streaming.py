"""Streamed chat completions under load: the Locust user reads a streamed answer as it arrives and
records the same ``ttft_s``, ``itl_s`` and ``tpot_s`` as ``harness.client`` (one reader,
``harness.client.StreamRead``), Locust's own response time stays end to end, and every broken
stream is a record with its outcome and the tokens it delivered, never a crash or a hang. The
fault proxy relays a stream event by event and moves its first token or its gaps."""

from __future__ import annotations

import csv
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from harness.client import CaptionClient
from harness.load.launch import LoadRun, run_load
from harness.load.proxy import FaultProxy, ProxyFaults
from harness.load.summary import ABORTED_ERROR
from harness.protocols import make_protocol
from harness.records import load_records

pytestmark = pytest.mark.slow  # real Locust runs in processes of their own

MODEL = "tiny"


def _adapter_file(tmp_path: Path) -> Path:
    f = tmp_path / "chat.yaml"
    f.write_text(f"protocol: openai-chat\nmodel: {MODEL}\nstream: true\n")
    return f


def _locust_aggregate(out: Path) -> dict:
    with open(out / "locust_stats.csv", newline="") as fh:
        return next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")


def _load(tmp_path: Path, url: str, duration: float, users: int, **options):
    out = tmp_path / "run"
    opts = {"adapter": str(_adapter_file(tmp_path)), "seed": 1, "pool_size": 8, **options}
    outcome = run_load(LoadRun("steady", out, url, duration, users, None, options=opts))
    assert outcome.returncode == 0 and outcome.summary is not None, outcome.log_tail()
    return out, outcome.summary, load_records(out)


# ------------------------------------------------------------------------------ the reference server


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("torch")
    from reference_model.server.launch import start_server

    with start_server(MODEL, extra_args=["--threads", "1"]) as srv:
        yield srv


def test_a_load_run_times_every_stream_as_the_client_does(server, tmp_path):
    out, summary, df = _load(tmp_path, server.url, 3.0, 2)
    assert len(df) == summary["requests"] == summary["locust"]["requests"] > 20
    answered = df[df["error"].ne(ABORTED_ERROR) | df["error"].isna()]
    assert set(answered["outcome"]) == {"ok"}, answered["error"].dropna().unique()[:3]
    for r in answered.itertuples():
        itl = list(r.itl_s)
        assert r.caption and r.completion_tokens >= 2 and r.confidence is not None
        # the definitions (docs/reference/protocols.md): TTFT within the end-to-end latency, one gap
        # per pair of token events (the reference server sends one word per event and an end of
        # sequence without text, counted in usage), TPOT the span of the token events over tokens - 1
        assert 0 < r.ttft_s <= r.latency_s
        assert len(itl) == len(r.caption.replace(",", " ,").split()) - 1
        assert r.ttft_s + sum(itl) <= r.latency_s + 1e-9
        assert r.tpot_s == pytest.approx(sum(itl) / (r.completion_tokens - 1), abs=1e-9)
    # Locust's own response time is the record's end-to-end latency (reported once the stream ended)
    agg = _locust_aggregate(out)
    assert int(agg["Request Count"]) == len(df)
    assert float(agg["Average Response Time"]) == pytest.approx(df["latency_s"].mean() * 1000.0, rel=1e-3)
    assert float(agg["Average Response Time"]) >= answered["ttft_s"].mean() * 1000.0
    # the same image streamed by the httpx client gives the same caption and token count
    one = answered.iloc[0]
    adapter = make_protocol("openai-chat", {"model": MODEL, "stream": True})
    with CaptionClient(server.url, adapter=adapter) as c:
        from harness.load.payload import pool_from_dataset

        pool = pool_from_dataset("shapes", 8, 1, 128)  # the run's pool: pool_size 8, seed 1, 128 px
        payload = next(p for p in pool.items if p.image_id == one.image_id)
        r = c.caption(payload.body, payload.content_type)
    assert r.caption == one.caption and r.completion_tokens == one.completion_tokens


def test_the_proxy_relays_a_stream_event_by_event_and_moves_its_tokens(server):
    import io

    from harness.datasets import shapes_sample

    buf = io.BytesIO()
    shapes_sample(3, 0).image.save(buf, "PNG")
    png = buf.getvalue()
    adapter = make_protocol("openai-chat", {"model": MODEL, "stream": True})

    def run(faults: dict, n: int = 3):
        with FaultProxy(server.url, faults=faults, seed=1) as proxy, CaptionClient(proxy.url, adapter=adapter) as c:
            results = [c.caption(png) for _ in range(n)]
            return results, dict(proxy.counts)

    plain, counts = run({})
    assert all(r.outcome == "ok" for r in plain) and counts["first_tokens"] == counts["token_gaps"] == 0
    assert max(max(r.itl_s) for r in plain) < 0.05  # relayed as it came, not held back
    late, counts = run({"first_token_ms": 150, "first_token_rate": 1.0})
    assert counts["first_tokens"] == 3 and counts["token_gaps"] == 0
    assert all(r.outcome == "ok" and 0.15 <= r.ttft_s and max(r.itl_s) < 0.05 for r in late)
    slow, counts = run({"token_gap_ms": 20, "token_gap_rate": 1.0})
    assert counts["token_gaps"] == 3 and counts["first_tokens"] == 0
    for r, p in zip(slow, plain):
        assert r.outcome == "ok" and r.caption == p.caption and r.ttft_s < 0.15
        # each event leaves the proxy 20 ms after the one before; the client's reads jitter around that
        assert sorted(r.itl_s)[len(r.itl_s) // 2] >= 0.018 and r.tpot_s >= 0.015
    half, counts = run({"token_gap_ms": 1, "token_gap_rate": 0.5}, n=40)
    assert 8 <= counts["token_gaps"] <= 32  # a seeded draw per streamed answer


def test_stream_faults_follow_the_shared_fault_rules():
    assert not ProxyFaults(first_token_ms=200).active and ProxyFaults(first_token_ms=200, first_token_rate=0.1).active
    assert ProxyFaults(token_gap_ms=5, token_gap_rate=1).active
    with pytest.raises(ValueError, match="first_token_rate is a probability: at most 1"):
        ProxyFaults(first_token_rate=1.5)
    with pytest.raises(ValueError, match="token_gap_ms must not be negative"):
        ProxyFaults(token_gap_ms=-1)


# ------------------------------------------------------------------------------ broken streams

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"


def _event(content: str | None = None, finish: str | None = None, role: bool = False) -> bytes:
    delta = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "scripted-1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _usage(n: int) -> bytes:
    doc = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "scripted-1", "choices": []}
    doc["usage"] = {"prompt_tokens": 3, "completion_tokens": n, "total_tokens": 3 + n}
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def _c(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


END = b"0\r\n\r\n"
# Each request gets the next script, in turn: bytes to send and pauses (seconds), then the
# connection closes ("hang": it stays open, silent, until the client gives up).
SCRIPTS = {
    "timed": [HEAD, _c(_event("a", role=True)), 0.1, _c(_event(" b")), 0.1, _c(_event(" c")), 0.02]
    + [_c(_event(finish="stop") + _usage(4) + b"data: [DONE]\n\n"), END],
    "cut": [HEAD, _c(_event("a", role=True)), 0.05, _c(_event(" b")), 0.05, b"5\r\nda"],
    "malformed": [HEAD, _c(_event("a", role=True)), _c(b"data: {not json\n\n"), _c(_event(" b")), END],
    "no_done": [HEAD, _c(_event("a", role=True)), _c(_event(" b", finish="stop")), END],
    "stall": [HEAD, _c(_event("a", role=True)), "hang"],
    "trickle": [HEAD] + [x for i in range(12) for x in (_c(_event(f" w{i}")), 0.15)],
}


class ScriptedServer:
    """A loopback HTTP server answering its n-th request with ``SCRIPTS``' (n mod 6)-th script."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.served: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    got = conn.recv(65536)
                    if not got:
                        return
                    data += got
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(int(h[15:]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                while len(body) < length:
                    body += conn.recv(65536)
                with self.lock:
                    name = list(SCRIPTS)[len(self.served) % len(SCRIPTS)]
                    self.served.append(name)
                for step in SCRIPTS[name]:
                    if step == "hang":
                        self.stop.wait(10)
                    elif isinstance(step, float):
                        time.sleep(step)
                    else:
                        conn.sendall(step)
            except OSError:
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def test_broken_streams_under_load_are_recorded_never_raised(tmp_path):
    srv = ScriptedServer()
    try:
        t = time.monotonic()
        out, summary, df = _load(tmp_path, srv.url, 4.0, 1, request_timeout=0.5, pool_size=2)
        took = time.monotonic() - t
    finally:
        srv.close()
    assert took < 30  # nothing hung the run
    assert len(df) == summary["requests"] == summary["locust"]["requests"]
    df = df[df["error"].ne(ABORTED_ERROR) | df["error"].isna()]  # the request the run's end cut short
    served = srv.served[: len(df)]
    assert len(served) == len(df) >= len(SCRIPTS) and set(served) == set(SCRIPTS)
    rows = {name: [r for r, s in zip(df.sort_values("t_start").itertuples(), served) if s == name] for name in SCRIPTS}
    for r in rows["timed"]:  # the same timings the httpx client gives (tests/integration/test_streaming.py)
        assert r.outcome == "ok" and r.caption == "a b c" and r.completion_tokens == 4
        assert r.ttft_s < 0.1 and len(r.itl_s) == 2 and all(0.09 <= g < 0.3 for g in r.itl_s)
        assert r.tpot_s == pytest.approx(sum(r.itl_s) / 3) and r.ttft_s + sum(r.itl_s) <= r.latency_s
    for r in rows["cut"]:
        assert r.outcome == "connection_error" and r.status == 200 and not isinstance(r.caption, str)
        assert "the stream broke" in r.error and "after 2 token(s)" in r.error
        assert r.completion_tokens == 2 and len(r.itl_s) == 1 and 0.03 < r.itl_s[0] < 1.0
    for r in rows["malformed"]:
        assert r.outcome == "invalid_response" and "not JSON" in r.error and "after 1 token(s)" in r.error
        assert r.completion_tokens == 1
    for r in rows["no_done"]:
        assert r.outcome == "invalid_response" and "without data: [DONE] after 2 token(s)" in r.error
    for r in rows["stall"]:  # silent after one token: cut by the read timeout
        assert r.outcome == "timeout" and "the stream broke" in r.error and "after 1 token(s)" in r.error
        assert r.completion_tokens == 1 and r.ttft_s > 0 and 0.5 <= r.latency_s < 2.0
    for r in rows["trickle"]:  # never silent for long, never done: cut by the whole stream's timeout
        assert r.outcome == "timeout" and "ran past the 0.5s timeout after" in r.error
        assert 3 <= r.completion_tokens <= 5 and 0.5 < r.latency_s < 1.0
    # Locust counted each failure by its outcome, with its end-to-end time
    with open(out / "locust_failures.csv", newline="") as fh:
        failures = {row["Error"]: int(row["Occurrences"]) for row in csv.DictReader(fh)}
    assert any("connection_error 200" in e for e in failures) and any("invalid_response 200" in e for e in failures)
    agg = _locust_aggregate(out)
    assert float(agg["Max Response Time"]) >= 500.0  # the stalled and trickling streams, timed to their end


def test_a_streaming_adapter_against_a_server_that_ignores_stream(tmp_path):
    """A JSON answer to a stream request is read whole, untimed, as the httpx client reads it."""
    from harness.load.calibration import FixedResponseServer

    doc = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "a red circle"}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 3},
    }
    with FixedResponseServer(body=json.dumps(doc).encode()) as srv:
        _, summary, df = _load(tmp_path, srv.url, 2.0, 1)
    assert summary["outcomes"]["ok"] > 0 and set(df["caption"].dropna()) == {"a red circle"}
    assert df["ttft_s"].isna().all() and df["tpot_s"].isna().all()


def test_httpx_reads_the_proxys_relayed_stream_as_chunks(server):
    """The relayed answer is chunked, one event a chunk, with the upstream's headers."""
    body = {
        "model": MODEL,
        "stream": True,
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _data_url()}}]}],
    }
    with FaultProxy(server.url) as proxy, httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        assert r.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.headers
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) >= 3


def _data_url() -> str:
    import base64
    import io

    from harness.datasets import shapes_sample

    buf = io.BytesIO()
    shapes_sample(3, 0).image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
