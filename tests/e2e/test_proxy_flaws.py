"""The fault proxy's output faults (the flaw zoo), in front of the real reference server: each flaw
rewrites exactly the answers its seeded stream picks, and nothing else."""

import asyncio
import io
import json
import random
import time

import httpx
import pytest

from harness.client import CaptionClient
from harness.datasets import generate_shapes
from harness.datasets.scene import COLOURS
from harness.faults import FaultFields
from harness.load.background import BackgroundServer
from harness.load.proxy import (
    CAPTION_FAULTS,
    DEFAULT_APPEND_TEXT,
    SWAP_GROUPS,
    FaultProxy,
    ProxyFaults,
    dechunk,
    flaw_caption,
    main,
    rewrite_json_answer,
)
from harness.quality.chair import NEVER_DRAWN_SHAPES

N_IMAGES = 24
SEED = 11


@pytest.fixture(scope="module")
def pngs() -> list[bytes]:
    out = []
    for sample in generate_shapes(N_IMAGES, seed=SEED):
        buf = io.BytesIO()
        sample.image.save(buf, "PNG")
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="module")
def direct(reference_server, pngs) -> list[tuple[str, float]]:
    """What the server itself answers for each image: the unfaulted caption and confidence."""
    with CaptionClient(reference_server.url) as c:
        results = [c.caption(png) for png in pngs]
    assert all(r.ok and r.caption for r in results)
    return [(r.caption, r.confidence) for r in results]


def _through(proxy: FaultProxy, pngs: list[bytes], n: int):
    with CaptionClient(proxy.url, timeout=10) as c:
        return [c.caption(pngs[i % len(pngs)]) for i in range(n)]


def _picked(kind: str, rate: float, n: int, seed: int = SEED) -> list[int]:
    """The indices the proxy's ``kind`` stream picks among ``n`` draws in a row."""
    rng = random.Random(f"{seed}:{kind}")
    return [i for i in range(n) if rng.random() < rate]


def _group(word: str) -> tuple[str, ...] | None:
    return next((g for g in SWAP_GROUPS if word in g), None)


def _check_flaw(kind: str, before: str, after: str) -> None:
    """What the contract of each caption fault promises, whatever the draw."""
    old, new = before.split(), after.split()
    if kind == "replace":
        diff = [(a, b) for a, b in zip(old, new) if a != b]
        assert len(new) == len(old) and len(diff) == 1, (before, after)
        ((a, b),) = diff
        assert _group(a) is not None and _group(a) == _group(b), (a, b)
    elif kind == "reorder":
        assert sorted(new) == sorted(old) and new != old
    elif kind == "truncate":
        assert new == old[: max(1, len(old) // 2)] and len(new) < len(old)
    elif kind == "repeat":
        tail = new[len(old) :]
        assert new[: len(old)] == old
        assert any(
            len(tail) % k == 0 and 3 <= len(tail) // k <= 5 and tail == old[-k:] * (len(tail) // k) for k in (2, 3)
        ), after
    elif kind == "blank":
        assert after == ""
    elif kind == "add_object":
        colour, shape = after.removeprefix(before + " and a ").split()
        assert after.startswith(before + " and a ") and colour in COLOURS and shape in NEVER_DRAWN_SHAPES
    else:
        assert after == before + DEFAULT_APPEND_TEXT


def test_every_caption_fault_at_rate_one_rewrites_every_answer(reference_server, pngs, direct) -> None:
    for kind in CAPTION_FAULTS:
        faults = ProxyFaults(caption_fault=kind, caption_fault_rate=1.0)
        with FaultProxy(reference_server.url, faults=faults, seed=SEED) as proxy:
            got = _through(proxy, pngs, N_IMAGES)
        assert proxy.counts["captions"] == N_IMAGES and proxy.counts["confidences"] == 0
        edit = random.Random(f"{SEED}:caption_text")
        for r, (caption, confidence) in zip(got, direct):
            assert (r.outcome, r.status, r.confidence) == ("ok", 200, confidence)
            _check_flaw(kind, caption, r.caption)
            assert r.caption == flaw_caption(caption, kind, edit)  # the seeded stream fixes every edit


def test_a_fraction_of_captions_degrade_while_confidence_stays_pinned(reference_server, pngs, direct) -> None:
    n, rate = 120, 0.2
    spec = {
        "caption_fault": "replace",
        "caption_fault_rate": rate,
        "confidence_value": 0.99,
        "confidence_on_fault": True,
        "confidence_rate": 0.5,
    }  # the rate is ignored: confidence follows the fault
    assert 0.99 not in {c for _, c in direct}
    with FaultProxy(reference_server.url, faults=spec, seed=SEED) as proxy:
        got = _through(proxy, pngs, n)
    faulted = [i for i, r in enumerate(got) if r.caption != direct[i % N_IMAGES][0]]
    pinned = [i for i, r in enumerate(got) if r.confidence == 0.99]
    assert all(r.ok for r in got)
    assert faulted == pinned == _picked("caption", rate, n)
    assert proxy.counts["captions"] == proxy.counts["confidences"] == len(faulted)
    assert 7 <= len(faulted) <= 41  # mean 24, four standard deviations either way
    for i in faulted:
        _check_flaw("replace", direct[i % N_IMAGES][0], got[i].caption)


def test_confidence_override_draws_on_its_own(reference_server, pngs, direct) -> None:
    with FaultProxy(reference_server.url, faults={"confidence_value": 0.0, "confidence_rate": 0.5}, seed=SEED) as proxy:
        got = _through(proxy, pngs, N_IMAGES)
    expected = _picked("confidence", 0.5, N_IMAGES)
    assert 0 < len(expected) < N_IMAGES
    assert [i for i, r in enumerate(got) if r.confidence == 0.0] == expected
    assert [r.caption for r in got] == [c for c, _ in direct]
    assert proxy.counts["confidences"] == len(expected) and proxy.counts["captions"] == 0


def test_injected_status_replaces_the_answer_with_a_json_error(reference_server, pngs, direct) -> None:
    n, rate = 40, 0.3
    with FaultProxy(reference_server.url, faults={"status_code": 502, "status_rate": rate}, seed=SEED) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=10) as http:
            got = [
                http.post("/v1/caption", content=pngs[i % N_IMAGES], headers={"Content-Type": "image/png"})
                for i in range(n)
            ]
            assert http.get("/healthz").status_code == 200  # other routes are relayed as they are
            assert http.get("/v1/model").status_code == 200
            state = http.get("/admin/faults")
    expected = _picked("status", rate, n)
    assert 0 < len(expected) < n
    assert [i for i, r in enumerate(got) if r.status_code == 502] == expected
    assert proxy.counts["statuses"] == len(expected) and proxy.counts["requests"] == n + 2
    for i, r in enumerate(got):
        if i in expected:
            assert r.json()["error"]["code"] == "injected_status" and r.headers["content-type"] == "application/json"
        else:
            assert r.status_code == 200 and r.json()["caption"] == direct[i % N_IMAGES][0]
    assert state.status_code == 404  # no admin token: the fault API is off


def test_slow_requests_are_exactly_the_counted_ones(reference_server, pngs) -> None:
    n, rate, slow_ms = 20, 0.3, 200
    with FaultProxy(reference_server.url, faults={"slow_rate": rate, "slow_ms": slow_ms}, seed=SEED) as proxy:
        with httpx.Client(base_url=proxy.url, timeout=10) as http:
            took = []
            for i in range(n):
                t0 = time.perf_counter()
                r = http.post("/v1/caption", content=pngs[i], headers={"Content-Type": "image/png"})
                assert r.status_code == 200
                took.append(time.perf_counter() - t0)
    expected = _picked("slow", rate, n)
    assert 0 < len(expected) < n and proxy.counts["slowdowns"] == len(expected)
    assert all(took[i] >= slow_ms / 1000 for i in expected)
    others = sorted(t for i, t in enumerate(took) if i not in expected)
    assert others[len(others) // 2] < slow_ms / 1000


def test_errors_and_other_answers_are_relayed_untouched(reference_server, pngs) -> None:
    spec = {"caption_fault": "blank", "caption_fault_rate": 1.0, "confidence_value": 0.5, "confidence_rate": 1.0}
    with FaultProxy(reference_server.url, faults=spec, seed=SEED) as proxy, httpx.Client(timeout=10) as http:
        bad = http.post(proxy.url + "/v1/caption", content=b"not an image", headers={"Content-Type": "image/png"})
        same = http.post(
            reference_server.url + "/v1/caption", content=b"not an image", headers={"Content-Type": "image/png"}
        )
        model = http.get(proxy.url + "/v1/model")
        assert (bad.status_code, bad.content) == (same.status_code, same.content) and bad.status_code == 400
        assert model.json() == http.get(reference_server.url + "/v1/model").json()
        ok = http.post(
            proxy.url + "/v1/caption?return_embedding=true",
            content=pngs[0],
            headers={"Content-Type": "image/png", "X-Request-Id": "r-1"},
        )
    doc = ok.json()
    assert ok.status_code == 200 and int(ok.headers["content-length"]) == len(ok.content)
    assert (doc["caption"], doc["confidence"], doc["request_id"]) == ("", 0.5, "r-1")
    assert len(doc["embedding"]) > 0 and set(doc["safety"]) == {"flagged", "reasons"}
    assert proxy.counts["captions"] == proxy.counts["confidences"] == 1


# -- chunked upstream answers ----------------------------------------------------------------------

_DOC = {
    "request_id": "r",
    "caption": "a large red square above a small blue circle",
    "confidence": 0.8,
    "model_version": "m",
    "server_latency_ms": 3.0,
    "safety": {"flagged": False, "reasons": []},
}


def _chunked(payload: bytes, step: int = 7) -> bytes:
    parts = [
        b"%x;ext=1\r\n%s\r\n" % (len(payload[i : i + step]), payload[i : i + step])
        for i in range(0, len(payload), step)
    ]
    return b"".join(parts) + b"0\r\nX-Trailer: 1\r\n\r\n"


class _ChunkedUpstream(BackgroundServer):
    """Answers every request with ``_DOC`` in chunked framing (as ``content_type``)."""

    name = "chunked upstream"

    def __init__(self, content_type: str = "application/json"):
        super().__init__()
        self.host, self.port, self.content_type = "127.0.0.1", 0, content_type

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        length = [int(line.split(b":")[1]) for line in lines if line.startswith(b"content-length:")]
        await reader.readexactly(length[0] if length else 0)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            % self.content_type.encode()
            + _chunked(json.dumps(_DOC).encode())
        )
        await writer.drain()
        writer.close()

    async def serve(self) -> None:
        server = await asyncio.start_server(self._answer, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await server.serve_forever()


def test_a_chunked_answer_is_decoded_rewritten_and_reframed() -> None:
    payload = json.dumps(_DOC).encode()
    assert dechunk(_chunked(payload)) == payload
    with pytest.raises(ValueError):
        dechunk(b"5\r\nabc\r\n0\r\n\r\n")
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Keep: 1\r\n\r\n"
    out = rewrite_json_answer(head, _chunked(payload), lambda d: {**d, "caption": ""})
    new_head, body = out.split(b"\r\n\r\n", 1)
    assert new_head.split(b"\r\n") == [
        b"HTTP/1.1 200 OK",
        b"Content-Type: application/json",
        b"X-Keep: 1",
        b"Content-Length: %d" % len(body),
    ]
    assert json.loads(body) == {**_DOC, "caption": ""}
    assert rewrite_json_answer(head, _chunked(payload), lambda d: None) is None
    assert (
        rewrite_json_answer(head.replace(b"200 OK", b"500 Internal Server Error"), _chunked(payload), lambda d: {})
        is None
    )
    as_text = head.replace(b"application/json", b"text/plain")
    assert rewrite_json_answer(as_text, _chunked(payload), lambda d: {}) is None
    assert rewrite_json_answer(head, _chunked(b"[1, 2]"), lambda d: {}) is None

    spec = {"caption_fault": "truncate", "caption_fault_rate": 1.0}
    with _ChunkedUpstream() as up, FaultProxy(up.url, faults=spec) as proxy:
        r = httpx.post(proxy.url + "/v1/caption", content=b"png", timeout=5)
        assert "transfer-encoding" not in r.headers and int(r.headers["content-length"]) == len(r.content)
        assert r.json() == {**_DOC, "caption": "a large red square"}
    with _ChunkedUpstream("text/plain") as up, FaultProxy(up.url, faults=spec) as proxy:
        r = httpx.post(proxy.url + "/v1/caption", content=b"png", timeout=5)
        assert r.headers["transfer-encoding"] == "chunked" and r.json() == _DOC
    assert proxy.counts["captions"] == 0


# -- settings -----------------------------------------------------------------------------------------


def test_flaw_fields_are_checked_one_line_each() -> None:
    cases = {
        "caption_fault": ("upside_down", "caption_fault must be one of replace, reorder"),
        "status_code": (200, "status_code must be between 400 and 599"),
        "confidence_value": (1.5, "confidence_value must be between 0 and 1"),
        "confidence_on_fault": ("yes", "confidence_on_fault must be true or false"),
        "append_text": (7, "append_text must be a string"),
        "slow_rate": (2, "slow_rate is a probability: at most 1"),
        "slow_ms": (-1, "slow_ms must not be negative"),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(ValueError, match=message) as err:
            ProxyFaults().with_updates({name: value})
        assert "\n" not in str(err.value)
        with pytest.raises(ValueError, match=message):
            ProxyFaults(**{name: value})
    with pytest.raises(ValueError, match="status_code must be an integer"):
        ProxyFaults(status_code=502.0)
    f = ProxyFaults().with_updates({"caption_fault": "blank", "caption_fault_rate": 1, "confidence_value": None})
    assert (f.caption_fault, f.caption_fault_rate, f.confidence_value) == ("blank", 1.0, None)
    assert f.with_updates({"caption_fault": ""}).caption_fault is None  # empty: off
    # the fields the proxy shares with the reference server keep their rules, at the proxy too
    shared = FaultFields.parse({"latency_ms": 5, "seed": None})
    assert (shared.latency_ms, shared.seed) == (5.0, None) and type(shared.latency_ms) is float
    for bad, message in (
        ({"latency_ms": 3_600_001}, "latency_ms is over one hour"),
        ({"slow_start_s": 3601}, "slow_start_s is over one hour"),
        ({"latency_ms": "1"}, "latency_ms must be a number$"),
        ({"latency_ms": True}, "latency_ms must be a number$"),
        ({"latency_ms": float("nan")}, "latency_ms must be a number$"),
        ({"seed": 1.5}, "seed must be an integer or null"),
        ({"colour": 1, "latency_ms": -1}, r"unknown fault field\(s\): colour \(known: "),
    ):
        for model in (FaultFields, ProxyFaults):
            with pytest.raises(ValueError, match=message):
                model.parse(bad)
    with pytest.raises(ValueError, match="append_text is over 1000 characters"):
        ProxyFaults(append_text="x" * 1001)
    with pytest.raises(ValueError, match="bandwidth_bps must be between 0 and 1e"):
        ProxyFaults(bandwidth_bps=-1)


def test_active_means_something_is_injected() -> None:
    off = [
        ProxyFaults(),
        ProxyFaults(seed=3),
        ProxyFaults(append_text="x"),
        ProxyFaults(status_code=404),
        ProxyFaults(caption_fault="blank"),
        ProxyFaults(caption_fault_rate=0.5),
        ProxyFaults(slow_ms=100),
        ProxyFaults(slow_rate=0.5),
        ProxyFaults(confidence_value=0.9),
        ProxyFaults(confidence_value=0.9, confidence_on_fault=True, confidence_rate=1.0),
    ]
    on = [
        ProxyFaults(caption_fault="blank", caption_fault_rate=0.1),
        ProxyFaults(status_rate=0.1),
        ProxyFaults(slow_rate=0.1, slow_ms=10),
        ProxyFaults(confidence_value=0.9, confidence_rate=0.1),
        ProxyFaults(latency_ms=1),
    ]
    assert [f.active for f in off] == [False] * len(off)
    assert [f.active for f in on] == [True] * len(on)


def test_the_cli_rejects_a_bad_flaw_in_one_line(capsys) -> None:
    assert main(["--upstream", "http://127.0.0.1:9", "--status-code", "200", "--status-rate", "1"]) == 64
    assert capsys.readouterr().out.strip() == "harness.load.proxy: error: status_code must be between 400 and 599"
    with pytest.raises(SystemExit) as exit_:
        main(["--upstream", "http://127.0.0.1:9", "--caption-fault", "sideways"])
    assert exit_.value.code == 2
