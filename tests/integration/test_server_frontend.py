"""The server with front-end worker processes (``--frontend-workers``): the same answers as the
single-process server, its guards and protocols, jobs, faults, metrics and readiness through
the model process, admission when full, a worker killed with SIGKILL, the model process's
memory under a burst, draining."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from harness.datasets import shapes_sample
from metrics_text import sample_value, scrape
from reference_model.server.launch import start_server

pytestmark = pytest.mark.slow  # real servers started, signalled and stopped

pytest.importorskip("torch")

ADMIN = "frontend-admin"
WORKERS = 2
PNG = {"Content-Type": "image/png"}


@pytest.fixture(scope="module")
def pngs() -> list[bytes]:
    out = []
    for i in range(8):
        buf = io.BytesIO()
        shapes_sample(i, seed=33).image.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="module")
def front():
    args = ["--frontend-workers", str(WORKERS), "--enable-faults"]
    with start_server("tiny", admin_token=ADMIN, extra_args=args) as srv:
        yield srv


def _post(url: str, body: bytes, headers: dict | None = None, timeout: float = 30.0) -> httpx.Response:
    # A new connection each time: the model process hands it to either worker.
    return httpx.post(url + "/v1/caption", content=body, headers=headers or PNG, timeout=timeout)


def _faults(url: str, method: str = "POST", **spec) -> dict:
    r = httpx.request(method, url + "/admin/faults", json=spec or None, headers={"X-Admin-Token": ADMIN}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(stat[1]) == pid and stat[0] != "Z":
                out.append(int(entry.name))
    return sorted(out)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _declared_png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(64))) + _chunk(b"IEND", b"")
    )


def test_frontend_answers_the_same_captions_as_one_process(reference_server, front, pngs):
    for png in pngs:
        one = httpx.post(
            reference_server.url + "/v1/caption?return_embedding=true", content=png, headers=PNG, timeout=30
        )
        many = httpx.post(front.url + "/v1/caption?return_embedding=true", content=png, headers=PNG, timeout=30)
        assert one.status_code == many.status_code == 200, (one.text, many.text)
        a, b = one.json(), many.json()
        assert a["caption"] == b["caption"] and a["model_version"] == b["model_version"]
        assert a["safety"] == b["safety"]
        assert b["confidence"] == pytest.approx(a["confidence"], abs=1e-4)
        assert b["embedding"] == pytest.approx(a["embedding"], abs=1e-3)


def test_frontend_guards_answer_the_same_codes(reference_server, front, pngs):
    cases = [
        (b"not an image at all", PNG),  # undecodable
        (_declared_png(4097, 4096), PNG),  # over --max-pixels, refused from its header
        (b"", PNG),  # empty
        (pngs[0], {"Content-Type": "text/plain"}),  # content type
        (pngs[0], {**PNG, "X-Request-Id": "has space"}),  # malformed request id
    ]
    for body, headers in cases:
        one, many = _post(reference_server.url, body, headers), _post(front.url, body, headers)
        assert (many.status_code, many.json()["error"]["code"]) == (one.status_code, one.json()["error"]["code"])
    for srv in (reference_server, front):  # a body declared over --max-body-bytes: refused before it is read
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/caption HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 11534336\r\n\r\n"
            )
            assert sock.recv(4096).split(b" ", 2)[1] == b"413"


def test_frontend_serves_every_protocol_and_jobs(front, pngs):
    url, png = front.url, pngs[1]
    expected = _post(url, png).json()["caption"]
    data_url = "data:image/png;base64," + base64.b64encode(png).decode()
    chat = httpx.post(
        url + "/v1/chat/completions",
        json={
            "model": "tiny",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url}}]}],
        },
        timeout=30,
    )
    assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"] == expected
    v2 = httpx.post(
        url + "/v2/models/tiny/infer",
        json={
            "inputs": [
                {"name": "image", "shape": [2], "datatype": "BYTES", "data": [base64.b64encode(png).decode()] * 2}
            ]
        },
        timeout=30,
    )
    assert v2.status_code == 200, v2.text
    outputs = {o["name"]: o["data"] for o in v2.json()["outputs"]}
    assert outputs["caption"] == [expected, expected]
    assert httpx.post(url + "/predictions/tiny", content=png, headers=PNG, timeout=30).json()["caption"] == expected
    assert (
        httpx.post(url + "/models/tiny", content=png, headers=PNG, timeout=30).json()[0]["generated_text"] == expected
    )
    # A job accepted by one worker is read through others: the job lives in the model process.
    job = httpx.post(url + "/v1/caption:async", content=png, headers=PNG, timeout=30)
    assert job.status_code == 202, job.text
    location = job.headers["Location"]
    doc: dict = {}
    for _ in range(100):
        doc = httpx.get(url + location, timeout=10).json()
        if doc["status"] != "pending":
            break
        time.sleep(0.1)
    assert doc["status"] == "done" and doc["result"]["caption"] == expected
    assert httpx.get(url + "/v1/jobs/" + "0" * 32, timeout=10).status_code == 404


def test_frontend_faults_readiness_and_metrics(front, pngs):
    url = front.url
    before = sample_value(scrape(url), "caption_requests_total", status="500", model_version="tiny-899fcdb9") or 0.0
    try:
        state = _faults(url, error_rate=1.0)
        assert state["faults"]["error_rate"] == 1.0 and state["active"]
        assert httpx.get(url + "/admin/faults", headers={"X-Admin-Token": ADMIN}).json()["faults"]["error_rate"] == 1.0
        codes = [_post(url, pngs[0]) for _ in range(4)]
        assert {(r.status_code, r.json()["error"]["code"]) for r in codes} == {(500, "injected_fault")}
        _faults(url, "DELETE")
        _faults(url, unsafe_rate=1.0)
        r = _post(url, pngs[0])
        assert r.status_code == 200 and " with " in r.json()["caption"] and not r.json()["safety"]["flagged"]
        _faults(url, "DELETE")
        assert (
            httpx.post(url + "/admin/faults", json={"error_rate": 2}, headers={"X-Admin-Token": ADMIN}).status_code
            == 400
        )
        _faults(url, slow_start_s=1.5)  # every worker is told: unready on any connection
        assert [httpx.get(url + "/readyz").status_code for _ in range(4)] == [503] * 4
        assert _post(url, pngs[0]).json()["error"]["code"] == "not_ready"
        deadline = time.monotonic() + 10
        while httpx.get(url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "still unready long after the slow start"
            time.sleep(0.1)
    finally:
        _faults(url, "DELETE")
    samples = scrape(url)  # every worker's counts, added up
    assert sample_value(samples, "caption_requests_total", status="500", model_version="tiny-899fcdb9") == before + 4
    info = [s for s in samples if s.name == "caption_model_info"]
    assert [(s.labels, s.value) for s in info] == [({"name": "tiny", "version": "tiny-899fcdb9", "device": "cpu"}, 1.0)]
    assert (sample_value(samples, "caption_batch_size_count") or 0) > 0


def test_frontend_keeps_the_model_process_memory_bounded(front):
    """A burst of large images: they are decoded in the workers; the model process only sees
    64 x 64 prepared images and its memory does not grow with the burst."""
    from PIL import Image

    buf = io.BytesIO()
    Image.effect_noise((1024, 1024), 64).convert("RGB").save(buf, format="PNG", compress_level=1)
    big = buf.getvalue()
    for _ in range(4):  # warm: allocations that stay
        assert _post(front.url, big).status_code == 200
    idle = _rss_mb(front.pid)
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: _post(front.url, big, timeout=60).status_code, range(48)))
    assert set(codes) <= {200, 503} and codes.count(200) >= 12
    assert _rss_mb(front.pid) < idle + 40


def test_frontend_answers_429_when_full_and_recovers(server_factory, pngs):
    args = ["--frontend-workers", "2", "--max-queue", "2", "--max-batch", "1", "--max-wait-ms", "0", "--enable-faults"]
    srv = server_factory("null", extra_args=args, admin_token=ADMIN)
    _faults(srv.url, latency_ms=400)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: _post(srv.url, pngs[i % len(pngs)]), range(12)))
    codes = [r.status_code for r in answers]
    assert set(codes) <= {200, 429} and 200 in codes and 429 in codes, codes
    full = [r for r in answers if r.status_code == 429]
    assert all(r.json()["error"]["code"] == "queue_full" and int(r.headers["Retry-After"]) >= 1 for r in full)
    _faults(srv.url, "DELETE")
    assert _post(srv.url, pngs[0]).status_code == 200


def _send_waiting(url: str, pngs, n: int, answers: list) -> list[threading.Thread]:
    """``n`` requests posted from threads, each answer (or the HTTP error of one lost without an
    answer) appended to ``answers``; returned once all ``n`` wait in the model process."""

    def one(png: bytes) -> None:
        try:
            answers.append(_post(url, png))
        except httpx.HTTPError as exc:  # a request lost without an answer fails the test that sent it
            answers.append(exc)

    threads = [threading.Thread(target=one, args=(pngs[i],)) for i in range(n)]
    start = _in_model(url)
    for t in threads:
        t.start()
    _wait_in_model(url, start, n)
    return threads


def test_a_killed_worker_is_replaced_and_its_requests_answered_503(server_factory, pngs):
    srv = server_factory("tiny", extra_args=["--frontend-workers", "2", "--enable-faults"], admin_token=ADMIN)
    workers = _children(srv.pid)
    assert len(workers) == 2
    _faults(srv.url, latency_ms=1500)  # requests wait in the model process
    answers: list = []
    threads = _send_waiting(srv.url, pngs, 4, answers)  # two per worker
    os.kill(workers[0], signal.SIGKILL)
    for t in threads:
        t.join(30)
    assert all(isinstance(a, httpx.Response) for a in answers), answers  # none lost without an answer
    codes = [(a.status_code, a.json().get("error", {}).get("code")) for a in answers]
    assert set(codes) <= {(200, None), (503, "worker_died")} and (503, "worker_died") in codes, codes
    assert all(a.headers.get("Retry-After") == "1" for a in answers if a.status_code == 503)
    _faults(srv.url, "DELETE")
    assert [_post(srv.url, png).status_code for png in pngs[:4]] == [200] * 4
    deadline = time.monotonic() + 20
    while True:
        now = _children(srv.pid)
        if len(now) == 2 and workers[0] not in now:
            break
        assert time.monotonic() < deadline, f"worker not replaced: {now}"
        time.sleep(0.1)
    assert "front-end worker 0" in srv.output()  # the log says which ended and how
    # Draining after it: the requests in flight are answered, the process ends with 0.
    _faults(srv.url, latency_ms=800)
    answers.clear()
    threads = _send_waiting(srv.url, pngs, 2, answers)
    srv.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert [a.status_code for a in answers] == [200, 200]
    assert srv.process.wait(30) == 0
    assert "stopped" in srv.output()
    assert not [p for p in now if _running(p)]


def test_a_hung_worker_is_killed_replaced_and_its_requests_answered_503(server_factory, pngs):
    """A worker that stops without dying (SIGSTOP: as a deadlock or a blocked event loop looks from
    outside) answers no check for --worker-stall-s: the model process kills it, answers its
    unanswered requests 503 worker_died, and starts another; the other worker's requests are answered
    (connections go to the worker with the fewest, so most often two each)."""
    srv = server_factory(
        "tiny", extra_args=["--frontend-workers", "2", "--worker-stall-s", "2", "--enable-faults"], admin_token=ADMIN
    )
    workers = _children(srv.pid)
    assert len(workers) == 2
    _faults(srv.url, latency_ms=1500)
    answers: list = []
    threads = _send_waiting(srv.url, pngs, 4, answers)
    os.kill(workers[0], signal.SIGSTOP)
    for t in threads:
        t.join(30)
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    codes = [(a.status_code, a.json().get("error", {}).get("code")) for a in answers]
    assert set(codes) <= {(200, None), (503, "worker_died")} and (503, "worker_died") in codes, codes
    deadline = time.monotonic() + 20
    while True:
        now = _children(srv.pid)
        if len(now) == 2 and workers[0] not in now:
            break
        assert time.monotonic() < deadline, f"worker not replaced: {now}"
        time.sleep(0.1)
    assert not _running(workers[0])
    assert "front-end worker 0" in srv.output() and "has not answered for" in srv.output()
    _faults(srv.url, "DELETE")
    assert [_post(srv.url, png).status_code for png in pngs[:4]] == [200] * 4


def _in_model(url: str) -> float:
    """Images batched so far in the model process, plus those waiting in its queue."""
    samples = scrape(url)
    return (sample_value(samples, "caption_batch_size_sum") or 0) + (sample_value(samples, "caption_queue_depth") or 0)


def _wait_in_model(url: str, start: float, n: int) -> None:
    """Until ``n`` more images than ``start`` (``_in_model`` before they were sent) reached the model process."""
    deadline = time.monotonic() + 20
    while _in_model(url) < start + n:
        assert time.monotonic() < deadline, "the requests did not reach the model process"
        time.sleep(0.05)


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_frontend_traces_join_the_workers_and_the_model_process(server_factory, pngs, tmp_path):
    """Spans from every process in one file: a request's steps in its worker, a job's in the
    model process, under its submission's trace."""
    spans_file = tmp_path / "spans.jsonl"
    srv = server_factory("tiny", extra_args=["--frontend-workers", "2", "--spans-file", str(spans_file)])
    traces = [f"{i + 1:032x}" for i in range(4)]
    for i, trace in enumerate(traces[:3]):
        r = _post(srv.url, pngs[i], {**PNG, "traceparent": f"00-{trace}-{i + 1:016x}-01"})
        assert r.status_code == 200
    job = httpx.post(
        srv.url + "/v1/caption:async", content=pngs[3], headers={**PNG, "traceparent": f"00-{traces[3]}-{9:016x}-01"}
    )
    assert job.status_code == 202
    for _ in range(100):
        if httpx.get(srv.url + job.headers["Location"]).json()["status"] != "pending":
            break
        time.sleep(0.1)
    assert srv.stop() == 0  # the spans left are written at shutdown
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    steps = {"POST /v1/caption", "admission", "decode", "queue", "batch", "generate_content tiny"}
    for trace in traces[:3]:
        assert {s["name"] for s in spans if s["trace_id"] == trace} == steps
    assert {"POST /v1/caption:async", "job", "queue", "batch"} <= {
        s["name"] for s in spans if s["trace_id"] == traces[3]
    }


def test_frontend_options_are_refused_in_one_line():
    for extra, needle in (
        (["--frontend-workers", "65"], "--frontend-workers must be 0..64"),
        (["--frontend-workers", "-1"], "--frontend-workers must be 0..64"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "reference_model.server", "--model", "null", *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 64, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and needle in lines[0], out.stderr
