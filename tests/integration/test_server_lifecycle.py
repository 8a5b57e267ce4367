"""Batching, overflow, deadlines and draining of the reference server, under real concurrency."""

import io
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from harness.datasets import shapes_sample
from metrics_text import sample_value, scrape
from reference_model.server.launch import start_server

pytestmark = pytest.mark.slow  # real servers started, signalled and stopped

pytest.importorskip("torch")

ADMIN = "lifecycle-admin"


@pytest.fixture(scope="module")
def pngs() -> list[bytes]:
    out = []
    for i in range(8):
        buf = io.BytesIO()
        shapes_sample(i, seed=21).image.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def _post(url: str, png: bytes, timeout: float = 60) -> httpx.Response:
    return httpx.post(url + "/v1/caption", content=png, headers={"Content-Type": "image/png"}, timeout=timeout)


def _concurrently(url: str, pngs: list[bytes], n: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: _post(url, pngs[i % len(pngs)]), range(n)))


def _histogram(url: str, name: str) -> tuple[float, float]:
    samples = scrape(url)
    return sample_value(samples, f"{name}_count") or 0.0, sample_value(samples, f"{name}_sum") or 0.0


def _gauge(url: str, name: str) -> float:
    value = sample_value(scrape(url), name)
    if value is None:
        raise AssertionError(f"{name} not exposed")
    return value


def _set_faults(url: str, token: str, **spec) -> None:
    assert httpx.post(url + "/admin/faults", json=spec, headers={"X-Admin-Token": token}).status_code == 200


def test_concurrent_requests_are_batched(reference_server, pngs):
    url, token = reference_server.url, reference_server.admin_token
    batches0, images0 = _histogram(url, "caption_batch_size")
    _set_faults(url, token, latency_ms=150)  # the first batch is slow, so the others queue behind it
    try:
        answers = _concurrently(url, pngs, 24)
    finally:
        httpx.delete(url + "/admin/faults", headers={"X-Admin-Token": token})
    assert [r.status_code for r in answers] == [200] * 24
    batches, images = _histogram(url, "caption_batch_size")
    assert images - images0 == 24
    assert batches - batches0 < 24  # so at least one batch held more than one image
    by_image = {}
    for i, r in enumerate(answers):
        by_image.setdefault(i % len(pngs), set()).add(r.json()["caption"])
    assert all(len(c) == 1 for c in by_image.values())  # batching does not change a caption


@pytest.fixture(scope="module")
def tight_server():
    """One image per batch, two waiting at most, a two-second deadline."""
    args = ["--enable-faults", "--max-batch", "1", "--max-queue", "2", "--request-timeout-s", "2.0"]
    with start_server("tiny", admin_token=ADMIN, extra_args=args) as srv:
        yield srv


def test_overflow_answers_429_with_retry_after_and_every_request_is_answered(tight_server, pngs):
    _set_faults(tight_server.url, ADMIN, latency_ms=200)
    try:
        answers = _concurrently(tight_server.url, pngs, 16)
    finally:
        httpx.delete(tight_server.url + "/admin/faults", headers={"X-Admin-Token": ADMIN})
    statuses = [r.status_code for r in answers]
    assert len(statuses) == 16 and set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 3 and statuses.count(429) >= 1, statuses
    for r in answers:
        if r.status_code == 429:
            assert r.json()["error"]["code"] == "queue_full"
            assert int(r.headers["retry-after"]) >= 1
    text = httpx.get(tight_server.url + "/metrics").text
    assert 'status="429"' in text
    assert _post(tight_server.url, pngs[0]).status_code == 200


def test_deadline_answers_503_instead_of_waiting(tight_server, pngs):
    _set_faults(tight_server.url, ADMIN, latency_ms=2500)
    try:
        r = _post(tight_server.url, pngs[0])
    finally:
        httpx.delete(tight_server.url + "/admin/faults", headers={"X-Admin-Token": ADMIN})
    assert (r.status_code, r.json()["error"]["code"]) == (503, "deadline_exceeded")
    assert "retry-after" in r.headers


def test_sigterm_drains_unready_at_once_and_no_in_flight_request_is_lost(pngs):
    command = (sys.executable, "-m", "harness", "serve")
    args = ["--enable-faults", "--max-batch", "1", "--drain-s", "1.0"]
    n = 5
    with start_server("tiny", admin_token=ADMIN, extra_args=args, command=command) as srv:
        _set_faults(srv.url, ADMIN, latency_ms=600)
        results: list[httpx.Response] = []
        lock = threading.Lock()

        def send(i: int) -> None:
            r = _post(srv.url, pngs[i])
            with lock:
                results.append(r)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while _gauge(srv.url, "caption_queue_depth") < n - 1 and time.monotonic() < deadline:
            time.sleep(0.01)  # until one request is being captioned and the others wait
        srv.process.send_signal(signal.SIGTERM)
        r = httpx.get(srv.url + "/readyz")
        assert (r.status_code, r.json()) == (503, {"ready": False, "status": "draining"})
        late = _post(srv.url, pngs[0])
        assert (late.status_code, late.json()["error"]["code"]) == (503, "draining")
        for t in threads:
            t.join(60)
        assert srv.process.wait(30) == 0
        assert [r.status_code for r in results] == [200] * n
        assert "stopped" in srv.output()
