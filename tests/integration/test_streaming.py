"""Streamed chat completions (``openai-chat`` with ``stream: true``): the server-sent events read as
they arrive, the token timings (TTFT, ITL, TPOT) on constructed streams with exact times, every
broken stream recorded as an outcome, and the reference server's stream read by the official
``openai`` client and by the harness's own."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Iterator

import httpx
import pytest

from harness.client import AsyncCaptionClient, CaptionClient, to_record
from harness.protocols import Auth, ProtocolChoice, make_protocol
from harness.protocols.base import InvalidResponse
from harness.protocols.sse import ChatStream
from harness.records import COLUMNS, FIELD_KINDS, RequestRecord

MODEL = "tiny"


def chunk(content: str | None = None, *, role: bool = False, finish: str | None = None, **extra) -> bytes:
    delta: dict = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "tiny-v1",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        **extra,
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


def usage(completion: int, prompt: int = 7) -> bytes:
    doc = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "tiny-v1",
        "choices": [],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


class Clock:
    """The client's perf clock, moved by the stream itself: exact times."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def timed_transport(clock: Clock, parts: list[tuple[float, bytes]], status: int = 200, ctype="text/event-stream"):
    """A transport whose answer's body arrives as ``parts``: (seconds after sending, bytes)."""

    class Body(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            start = clock.now
            for at, data in parts:
                clock.now = start + at
                yield data

    class ABody(httpx.AsyncByteStream):
        async def __aiter__(self):
            start = clock.now
            for at, data in parts:
                clock.now = start + at
                yield data

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(status, headers={"content-type": ctype}, stream=Body())

    async def ahandler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(status, headers={"content-type": ctype}, stream=ABody())

    seen: list[dict] = []
    return httpx.MockTransport(handler), httpx.MockTransport(ahandler), seen


def stream_adapter(**kw):
    return make_protocol("openai-chat", {"model": MODEL, "stream": True, **kw})


def run_sync(parts, timeout=30.0, **kw):
    clock = Clock()
    transport, _, seen = timed_transport(clock, parts, **kw)
    http = httpx.Client(base_url="http://test", transport=transport)
    client = CaptionClient("http://test", timeout=timeout, adapter=stream_adapter(), http=http, perf=clock)
    return client.caption(b"png", request_id="r1"), seen


def run_async(parts, timeout=30.0, **kw):
    clock = Clock()
    _, transport, seen = timed_transport(clock, parts, **kw)

    async def go():
        http = httpx.AsyncClient(base_url="http://test", transport=transport)
        client = AsyncCaptionClient("http://test", timeout=timeout, adapter=stream_adapter(), http=http, perf=clock)
        try:
            return await client.caption(b"png", request_id="r1")
        finally:
            await http.aclose()

    return asyncio.run(go()), seen


WHOLE = [
    (0.250, chunk("a", role=True)),
    (0.300, chunk(" red")),
    (0.380, chunk(" circle")),
    (0.400, chunk(None, finish="stop")),
    (0.410, usage(3)),
    (0.420, DONE),
]


# ------------------------------------------------------------------------------ definitions


@pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])
def test_timings_of_a_whole_stream_are_exact(run):
    r, seen = run(WHOLE)
    assert r.outcome == "ok", r.error
    assert r.caption == "a red circle"
    assert r.completion_tokens == 3 and r.prompt_tokens == 7 and r.model_version == "tiny-v1"
    assert r.ttft_s == pytest.approx(0.250)
    assert r.itl_s == pytest.approx([0.050, 0.080])
    assert r.tpot_s == pytest.approx((0.380 - 0.250) / (3 - 1))
    assert r.latency_s == pytest.approx(0.420)  # end to end: the whole answer, [DONE] included
    assert r.ttft_s <= r.latency_s
    assert seen[0]["stream"] is True and seen[0]["stream_options"] == {"include_usage": True}


def test_tpot_uses_the_usage_count_when_a_chunk_carries_several_tokens():
    parts = [(0.1, chunk("a red")), (0.3, chunk(" circle on")), (0.35, usage(5)), (0.4, DONE)]
    r, _ = run_sync(parts)
    assert r.outcome == "ok" and r.completion_tokens == 5
    assert r.itl_s == pytest.approx([0.2])  # one gap per pair of token events
    assert r.tpot_s == pytest.approx(0.2 / 4)


def test_without_usage_the_token_events_are_counted():
    parts = [(0.1, chunk("a")), (0.2, chunk(" b")), (0.4, chunk(" c")), (0.5, DONE)]
    r, _ = run_sync(parts)
    assert r.outcome == "ok" and r.completion_tokens == 3 and r.prompt_tokens is None
    assert r.tpot_s == pytest.approx(0.15)


def test_a_role_only_chunk_and_comments_are_not_tokens():
    parts = [
        (0.05, b": ping\n\n"),
        (0.10, chunk("", role=True)),
        (0.30, chunk("one")),
        (0.50, chunk(None, finish="stop")),
        (0.60, usage(1) + DONE),
    ]
    r, _ = run_sync(parts)
    assert r.outcome == "ok" and r.caption == "one"
    assert r.ttft_s == pytest.approx(0.30) and r.itl_s == [] and r.tpot_s is None


def test_events_split_across_reads_are_timed_when_they_complete():
    data = chunk("a") + chunk(" b")
    parts = [(0.1, data[:10]), (0.2, data[10:30]), (0.3, data[30:]), (0.4, b"data: [DO"), (0.5, b"NE]\r\n\r\n")]
    r, _ = run_sync(parts)
    assert r.outcome == "ok" and r.caption == "a b"
    assert r.ttft_s == pytest.approx(0.3)  # the first event's blank line came with the third read
    assert r.itl_s == pytest.approx([0.0])  # both events completed in that read
    assert r.latency_s == pytest.approx(0.5)


def test_crlf_and_multi_line_data_are_read_as_the_spec_says():
    reader = ChatStream(0.0)
    body = b'data: {"choices": [{"delta":\r\ndata: {"content": "x"}}]}\r\n\r\n' + b"event: x\r\nid: 3\r\n\r\n" + DONE
    reader.feed(body, 1.0)
    p = make_protocol("openai-chat", {"model": MODEL, "stream": True}).finish_stream(reader)
    assert p.caption == "x" and p.ttft_s == 1.0


def test_confidence_from_streamed_logprobs():
    lp = {"content": [{"token": "a", "logprob": -0.5}]}
    parts = [
        (0.1, chunk("a", role=True)[:-2].replace(b'"logprobs": null', b'"logprobs": ' + json.dumps(lp).encode())),
        (0.1, b"\n\n"),
        (0.2, DONE),
    ]
    r, _ = run_sync(parts)
    assert r.outcome == "ok" and r.confidence == pytest.approx(0.6065, abs=1e-4)


def test_a_stream_read_whole_is_parsed_untimed():
    """Load runs (Locust's client) read the body at once: the caption and counts, no timings."""
    body = b"".join(d for _, d in WHOLE)
    p = stream_adapter().parse(200, {}, body)
    assert p.caption == "a red circle" and p.completion_tokens == 3
    assert p.ttft_s is None and p.itl_s is None and p.tpot_s is None


def test_a_server_that_ignores_stream_answers_json_and_is_read_as_before():
    doc = {"model": "m", "choices": [{"message": {"content": "a dog"}}], "usage": {"completion_tokens": 2}}
    r, _ = run_sync([(0.2, json.dumps(doc).encode())], ctype="application/json")
    assert r.outcome == "ok" and r.caption == "a dog" and r.completion_tokens == 2 and r.ttft_s is None


def test_an_error_status_is_an_http_error():
    body = json.dumps({"error": {"code": "busy", "message": "queue full"}}).encode()
    r, _ = run_sync([(0.1, body)], status=503, ctype="application/json")
    assert r.outcome == "http_error" and r.status == 503 and "queue full" in r.error


# ------------------------------------------------------------------------------ broken streams


@pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])
def test_no_done_is_invalid_with_the_tokens_received(run):
    r, _ = run([(0.1, chunk("a")), (0.3, chunk(" b"))])
    assert r.outcome == "invalid_response"
    assert "without data: [DONE] after 2 token(s)" in r.error
    assert r.completion_tokens == 2 and r.caption is None
    assert r.ttft_s == pytest.approx(0.1) and r.itl_s == pytest.approx([0.2]) and r.tpot_s is None


@pytest.mark.parametrize(
    "bad, says",
    [
        (b"data: {not json\n\n", "not JSON"),
        (b"data: [1, 2]\n\n", "not a JSON object"),
        (b'data: {"choices": {"0": 1}}\n\n', "choices is not a list"),
        (b'data: {"choices": [{"delta": "x"}]}\n\n', "delta object"),
        (b'data: {"choices": [{"delta": {"content": 5}}]}\n\n', "not text"),
        (b'data: {"error": {"message": "engine died"}}\n\n', "engine died"),
        (b"data: \xff\xfe\n\n", "UTF-8"),
    ],
)
def test_a_malformed_event_is_invalid_with_the_tokens_received(bad, says):
    r, _ = run_sync([(0.1, chunk("a")), (0.2, bad), (0.3, chunk(" b")), (0.4, DONE)])
    assert r.outcome == "invalid_response", r
    assert says in r.error and "after 1 token(s)" in r.error
    assert r.completion_tokens == 1 and r.ttft_s == pytest.approx(0.1)


def test_done_without_any_chunk_is_invalid():
    r, _ = run_sync([(0.1, DONE)])
    assert r.outcome == "invalid_response" and "no chat.completion.chunk" in r.error


def test_an_endless_line_is_refused_not_buffered():
    reader = ChatStream(0.0)
    with pytest.raises(InvalidResponse, match="longer than"):
        for _ in range(20):
            reader.feed(b"x" * 100_000, 1.0)


@pytest.mark.parametrize("run", [run_sync, run_async], ids=["sync", "async"])
def test_a_stream_that_trickles_past_the_timeout_is_a_timeout(run):
    parts = [(0.1 * i, chunk(f" w{i}")) for i in range(1, 40)]  # a token every 0.1 s, never [DONE]
    r, _ = run(parts, timeout=1.0)
    # the read that brings the token at 1.1 s is the first past the timeout: it still counts
    assert r.outcome == "timeout" and "past the 1s timeout after 11 token(s)" in r.error
    assert r.completion_tokens == 11 and r.latency_s == pytest.approx(1.1)
    assert r.ttft_s == pytest.approx(0.1) and len(r.itl_s) == 10


class RawServer:
    """A loopback HTTP server that answers every connection with ``script``: a list of bytes to
    send and pauses (floats, seconds), then closes (or, with ``hang``, waits until stopped)."""

    def __init__(self, script: list, hang: bool = False):
        self.script, self.hang = script, hang
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")][0][15:])
                while len(body) < length:
                    body += conn.recv(65536)
                for step in self.script:
                    if isinstance(step, float):
                        time.sleep(step)
                    else:
                        conn.sendall(step)
                if self.hang:
                    self.stop.wait(10)

    def close(self) -> None:
        self.stop.set()
        self.sock.close()
        self.thread.join(5)


HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_connection_cut_midway_is_recorded_never_raised(kind):
    server = RawServer([HEAD, http_chunk(chunk("a")), 0.05, http_chunk(chunk(" b")), 0.05, b"5\r\nda"])
    try:
        r = _real_call(server.url, kind, timeout=5.0)
    finally:
        server.close()
    assert r.outcome == "connection_error", r
    assert "the stream broke" in r.error and "after 2 token(s)" in r.error
    assert r.completion_tokens == 2 and len(r.itl_s) == 1 and 0.03 < r.itl_s[0] < 1.0


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_server_that_stalls_midway_is_a_timeout_not_a_hang(kind):
    server = RawServer([HEAD, http_chunk(chunk("a"))], hang=True)
    t = time.perf_counter()
    try:
        r = _real_call(server.url, kind, timeout=0.5)
    finally:
        server.close()
    assert time.perf_counter() - t < 3.0
    assert r.outcome == "timeout" and "after 1 token(s)" in r.error and r.completion_tokens == 1


def test_a_clean_end_without_done_over_a_real_socket():
    server = RawServer([HEAD, http_chunk(chunk("a")), b"0\r\n\r\n"])
    try:
        r = _real_call(server.url, "sync", timeout=5.0)
    finally:
        server.close()
    assert r.outcome == "invalid_response" and "without data: [DONE]" in r.error


def _real_call(url: str, kind: str, timeout: float):
    if kind == "sync":
        with CaptionClient(url, timeout=timeout, adapter=stream_adapter()) as c:
            return c.caption(b"png")

    async def go():
        async with AsyncCaptionClient(url, timeout=timeout, adapter=stream_adapter()) as c:
            return await c.caption(b"png")

    return asyncio.run(go())


# ------------------------------------------------------------------------------ records, options


def test_the_record_keeps_the_timings():
    r, _ = run_sync(WHOLE)
    rec = to_record(r, run_id="run", target="canary", scenario="s")
    assert isinstance(rec, RequestRecord)
    assert rec.ttft_s == pytest.approx(0.25) and rec.itl_s == pytest.approx([0.05, 0.08])
    assert FIELD_KINDS["itl_s"] == "vector" and FIELD_KINDS["ttft_s"] == FIELD_KINDS["tpot_s"] == "real"
    assert COLUMNS[-5:] == ("ttft_s", "itl_s", "tpot_s", "trace_id", "segment")


def test_stream_is_an_adapter_file_option(tmp_path):
    f = tmp_path / "a.yaml"
    f.write_text("protocol: openai-chat\nmodel: m\nstream: true\n")
    adapter = ProtocolChoice(adapter=str(f)).build()
    assert adapter.streams and adapter.describe()["stream"] is True
    assert not make_protocol("openai-chat", {"model": "m"}).streams
    assert "stream" not in make_protocol("openai-chat", {"model": "m"}).describe()
    f.write_text("protocol: openai-chat\nmodel: m\nstream: yes please\n")
    with pytest.raises(Exception, match="stream must be true or false"):
        ProtocolChoice(adapter=str(f)).build()


# ------------------------------------------------------------------------------ the reference server

ENV = "CAPTION_STREAM_TEST_TOKEN"


def _png(i: int = 3) -> bytes:
    import io

    from harness.datasets import shapes_sample

    buf = io.BytesIO()
    shapes_sample(i, 0).image.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def secret() -> str:
    import secrets

    return "sk-stream-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def server(secret):
    pytest.importorskip("torch")
    from reference_model.server.launch import start_server

    with start_server(MODEL, extra_args=["--threads", "1"], env={"CAPTION_API_KEY": secret}) as srv:
        yield srv


def _messages(png: bytes) -> list[dict]:
    import base64

    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in the image?"},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        }
    ]


@pytest.mark.slow
def test_the_openai_package_reads_the_reference_servers_stream(server, secret) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=secret, max_retries=0, timeout=30)
    whole = client.chat.completions.create(model=MODEL, logprobs=True, messages=_messages(_png()))
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            logprobs=True,
            messages=_messages(_png()),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    with_choice = [c for c in chunks if c.choices]
    assert with_choice[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in with_choice)
    assert text == whole.choices[0].message.content
    assert with_choice[-1].choices[0].finish_reason == "stop"
    streamed = [t for c in with_choice if c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [(t.token, t.logprob) for t in streamed] == [(t.token, t.logprob) for t in whole.choices[0].logprobs.content]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens
    # without include_usage: no usage chunk
    plain = list(client.chat.completions.create(model=MODEL, messages=_messages(_png()), stream=True))
    assert all(c.choices for c in plain) and "".join(c.choices[0].delta.content or "" for c in plain) == text
    short = list(client.chat.completions.create(model=MODEL, max_tokens=2, messages=_messages(_png()), stream=True))
    assert short[-1].choices[0].finish_reason == "length"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model=MODEL, messages=_messages(_png()), stream=False, stream_options={"include_usage": True}
        )


@pytest.mark.slow
def test_the_harness_client_times_the_reference_servers_stream(server, secret, monkeypatch) -> None:
    monkeypatch.setenv(ENV, secret)
    png = _png()
    plain = ProtocolChoice("openai-chat", model=MODEL, auth_env=ENV).build()
    with CaptionClient(server.url, timeout=30, adapter=plain) as c:
        base = c.caption(png)
    adapter = make_protocol("openai-chat", {"model": MODEL, "stream": True})
    adapter.use_auth(Auth(ENV))
    with CaptionClient(server.url, timeout=30, adapter=adapter) as c:
        r = c.caption(png)

    async def go():
        async with AsyncCaptionClient(server.url, timeout=30, adapter=adapter) as c:
            return await c.caption(png)

    ra = asyncio.run(go())
    for got in (r, ra):
        assert got.outcome == "ok", got.error
        assert got.caption == base.caption and got.completion_tokens == base.completion_tokens
        assert abs(got.confidence - base.confidence) <= 1e-9 and got.model_version == base.model_version
        assert 0 < got.ttft_s <= got.latency_s
        words = len(base.caption.replace(",", " ,").split())
        assert len(got.itl_s) == words - 1  # one token event per word; the end of sequence has no text
        assert got.tpot_s is not None and got.tpot_s >= 0
        assert got.ttft_s + sum(got.itl_s) <= got.latency_s + 1e-9


# ------------------------------------------------------------------------------ SLI kinds ttft, itl

SLO_SPEC = """
service: chat
traffic_rps: 1
slos:
  - {name: first-token, sli: ttft, threshold: 0.5, objective: 0.9}
  - {name: gaps, sli: itl, threshold: 0.05, objective: 0.99}
  - {name: fast, sli: latency, threshold: 2, objective: 0.9}
"""


def _stream_records(tmp_path, rows: list[dict]):
    from harness.records import RecordWriter, compact, load_records

    base = {"run_id": "r", "target": "canary", "scenario": "s", "image_id": None, "status": 200, "outcome": "ok"}
    base["caption"] = "a"
    with RecordWriter(tmp_path) as w:
        for i, row in enumerate(rows):
            full = {**base, "request_id": f"q{i}", "t_start": 1_700_000_000.0 + i, "latency_s": 1.0, **row}
            w.write(RequestRecord(**full))
    compact(tmp_path)
    return load_records(tmp_path)


def test_ttft_and_itl_slis_from_streamed_records(tmp_path):
    from harness.slo import evaluate_records, parse_spec

    rows = [
        {"ttft_s": 0.2, "itl_s": [0.01, 0.02, 0.09], "completion_tokens": 4},
        {"ttft_s": 0.7, "itl_s": [0.03], "completion_tokens": 2},
        {"ttft_s": 0.4, "itl_s": [], "completion_tokens": 1},
        # a stream cut by the timeout before its first token: a bad TTFT event, no gaps
        {"outcome": "timeout", "status": 200, "caption": None, "completion_tokens": 0},
        # a request that never began a stream (refused): no TTFT event
        {"outcome": "http_error", "status": 429, "caption": None},
    ]
    df = _stream_records(tmp_path, rows)
    assert list(df["itl_s"].iloc[0]) == pytest.approx([0.01, 0.02, 0.09])
    d = evaluate_records(parse_spec(SLO_SPEC), df).to_dict()
    ttft, itl, _ = d["slos"]
    assert (ttft["sli"]["good"], ttft["sli"]["total"]) == (2, 4)
    assert (itl["sli"]["good"], itl["sli"]["total"]) == (3, 4)


def test_ttft_and_itl_slis_of_a_target_that_does_not_stream_have_no_data(tmp_path):
    from harness.slo import evaluate_records, parse_spec

    df = _stream_records(tmp_path, [{}, {}])
    d = evaluate_records(parse_spec(SLO_SPEC), df).to_dict()
    ttft, itl, fast = d["slos"]
    assert ttft["sli"]["total"] == 0 and ttft["sli"]["note"].startswith("no data")
    assert itl["sli"]["total"] == 0 and itl["sli"]["note"].startswith("no data")
    assert ttft["met"] is None and itl["met"] is None and fast["sli"]["total"] == 2
    old = df.drop(columns=["ttft_s", "itl_s", "tpot_s"])  # records written before the columns existed
    d = evaluate_records(parse_spec(SLO_SPEC), old).to_dict()
    assert [s["sli"]["total"] for s in d["slos"]] == [0, 0, 2]


# ------------------------------------------------------------------------------ judge metrics


def _healthy(rng, n=400, images=200):
    """One target's observations of every default metric but the streamed ones."""
    import numpy as np
    import pandas as pd

    ids = [f"img{i}" for i in range(images)]
    lat = rng.lognormal(np.log(0.08), 0.3, n)
    zeros = np.zeros(n)
    conf = pd.Series(np.clip(rng.normal(0.97, 0.02, images), 0, 1), index=ids)
    out = {name: zeros for name in ("error_rate", "timeout_rate", "unusable_rate", "blank_rate")}
    out.update({name: zeros for name in ("degenerate_rate", "pii_rate", "safety_flag_rate")})
    out.update(latency_p50=lat, latency_p95=lat, latency_p99=lat, goodput=(lat < 0.3).astype(float))
    out.update(
        quality=pd.Series(np.clip(rng.normal(6.0, 1.0, images), 0, 10), index=ids),
        confidence=conf,
        calibration=(conf - 1.0) ** 2,
        caption_length=pd.Series(rng.integers(4, 14, images).astype(float), index=ids),
        caption_changed=pd.Series(["a caption"] * images, index=ids),
    )
    return out


def _samples(base, can):
    from harness.canary import MetricSample

    return {k: MetricSample(base.get(k), can.get(k)) for k in set(base) | set(can)}


STREAMED = ("ttft_p50", "ttft_p95", "itl_p95")


def test_streamed_metrics_of_targets_that_do_not_stream_change_no_verdict():
    import numpy as np

    from harness.canary import DEFAULT_METRICS, JudgeConfig, judge

    assert {m.name for m in DEFAULT_METRICS if m.streamed} == set(STREAMED)
    without = JudgeConfig(metrics=tuple(m for m in DEFAULT_METRICS if not m.streamed))
    for seed, slow in ((1, 1.0), (2, 1.6), (3, 1.15)):  # a healthy, a slow and a marginal canary
        rng = np.random.default_rng(seed)
        base, can = _healthy(rng), _healthy(rng)
        for k in ("latency_p50", "latency_p95", "latency_p99"):
            can[k] = can[k] * slow
        s = _samples(base, can)
        with_streamed, plain = judge(s, JudgeConfig()), judge(s, without)
        assert with_streamed.to_dict() == plain.to_dict()
        assert not {r.name for r in with_streamed.metrics} & set(STREAMED)


def test_observations_of_records_without_streams_are_none():
    import pandas as pd

    from harness.canary.observations import TargetData, itl, ttft

    plain = pd.DataFrame({"outcome": ["ok", "ok"], "latency_s": [0.1, 0.2]})
    assert ttft(TargetData(load=plain)) is None and itl(TargetData(load=plain)) is None
    nulls = plain.assign(ttft_s=[None, None], itl_s=[None, None])
    assert ttft(TargetData(load=nulls)) is None and itl(TargetData(load=nulls)) is None
    streamed = plain.assign(ttft_s=[0.05, None], itl_s=[[0.01, 0.02], None])
    assert list(ttft(TargetData(load=streamed))) == [0.05] and list(itl(TargetData(load=streamed))) == [0.01, 0.02]


@pytest.mark.parametrize("where", ["first token", "between tokens"])
def test_a_canary_slower_to_stream_fails_its_streamed_metric(where):
    import numpy as np
    import pandas as pd

    from harness.canary import JudgeConfig, MetricSample, judge
    from harness.canary.observations import TargetData, itl, ttft

    rng = np.random.default_rng(7)

    def load(n=400, extra_ttft=0.0, itl_scale=1.0):
        t = rng.lognormal(np.log(0.05), 0.2, n)
        late = rng.random(n) < 0.1  # 200 ms more before the first token on a tenth of the requests
        gaps = [list(rng.lognormal(np.log(0.01), 0.2, 8) * itl_scale) for _ in range(n)]
        return pd.DataFrame({"outcome": "ok", "ttft_s": t + extra_ttft * late, "itl_s": gaps})

    base, can = (
        TargetData(load=load()),
        TargetData(load=load(extra_ttft=0.2) if where == "first token" else load(itl_scale=2.0)),
    )
    s = _samples(_healthy(rng), _healthy(rng))

    s["ttft_p50"] = s["ttft_p95"] = MetricSample(ttft(base), ttft(can))
    s["itl_p95"] = MetricSample(itl(base), itl(can))
    v = judge(s, JudgeConfig())
    by = {r.name: r for r in v.metrics}
    failed = "ttft_p95" if where == "first token" else "itl_p95"
    assert by[failed].classification == "High", by[failed].reason
    assert v.verdict != "PROMOTE"


def test_itl_s_is_checked_and_imported_as_a_list_of_numbers():
    import pandas as pd

    from harness.errors import DataError
    from harness.records import check_types
    from harness.records.importer import _vector

    good = pd.DataFrame({"ttft_s": [0.1, None], "itl_s": [[0.01, 0.02], None]})
    check_types(good, "x")
    with pytest.raises(DataError, match="itl_s is not a list of numbers"):
        check_types(pd.DataFrame({"itl_s": ["0.1"]}), "x")
    with pytest.raises(DataError, match="ttft_s is not a finite number"):
        check_types(pd.DataFrame({"ttft_s": ["soon"]}), "x")
    assert _vector("[0.01, 0.02]", "itl_s") == [0.01, 0.02] and _vector([], "itl_s") == []
    with pytest.raises(ValueError, match="itl_s: not a JSON list"):
        _vector("fast", "itl_s")
