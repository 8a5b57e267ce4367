"""The reference server against hostile clients: bursts of large images, slow senders, connection
floods, odd API keys and request ids; and its request log. Real server processes on loopback."""

import asyncio
import io
import json
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import httpx
import pytest
from PIL import Image

from raw_socket import read_all

pytest.importorskip("torch")

from harness.datasets import shapes_sample  # noqa: E402
from reference_model.server.launch import SERVER_COMMAND  # noqa: E402

MB = 1024 * 1024


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def declared_png(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height RGB pixels, followed by a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(64))) + _chunk(b"IEND", b"")
    )


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _post(url: str, body: bytes, **headers) -> httpx.Response:
    return httpx.post(url + "/v1/caption", content=body, headers={"Content-Type": "image/png", **headers}, timeout=60)


def _log_lines(output: str) -> list[dict]:
    out = []
    for line in output.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.fixture(scope="module")
def png() -> bytes:
    return _png(shapes_sample(0, seed=11).image)


# ----------------------------------------------------------------------------- bounded memory


def test_intake_bounds_the_pixels_in_flight_and_frees_them():
    from reference_model.server.intake import ImageIntake, IntakeBusy

    small, big = _png(Image.new("RGB", (100, 100), (1, 2, 3))), _png(Image.new("RGB", (300, 200), (4, 5, 6)))
    gate = threading.Event()  # holds the first image in its decoding thread

    def prepare(im: Image.Image) -> Image.Image:
        assert gate.wait(30)
        return im.resize((8, 8))

    intake = ImageIntake(prepare, max_pixels=60_000, max_pixels_in_flight=69_999, threads=1)

    async def scenario():
        first = asyncio.ensure_future(intake.image(big))  # 60,000 pixels admitted
        await asyncio.sleep(0)
        try:
            assert intake.in_flight == 60_000
            with pytest.raises(IntakeBusy):
                await intake.image(small)  # 70,000 would pass: refused at once, nothing decoded
        finally:
            gate.set()
        out = await first
        assert intake.in_flight == 0
        again = await intake.image(small)  # room again once the first is done
        return out, again

    try:
        out, again = asyncio.run(scenario())
    finally:
        intake.stop()
    assert out.size == again.size == (8, 8) and intake.peak_in_flight == 60_000


def test_jpeg_decodes_at_the_smallest_scale_that_keeps_three_times_the_model_side():
    from reference_model.server.intake import ImageIntake

    buf = io.BytesIO()
    Image.new("RGB", (2000, 1500), (90, 160, 30)).save(buf, format="JPEG")
    seen = []

    def prepare(im: Image.Image) -> Image.Image:
        seen.append(im.size)
        return im.resize((64, 64))

    intake = ImageIntake(prepare, max_pixels=4096 * 4096, max_pixels_in_flight=4096 * 4096, threads=1, draft_side=64)
    try:
        out = asyncio.run(intake.image(buf.getvalue()))
    finally:
        intake.stop()
    # 1/8 would give 250 x 188, under 3 x 64 = 192 on the short side: 1/4 is the smallest scale.
    assert seen == [(500, 375)] and intake.peak_in_flight == 500 * 375 and out.size == (64, 64)


def test_burst_of_large_pngs_keeps_memory_bounded_and_the_server_alive(server_factory, png):
    srv = server_factory(extra_args=["--max-decode-pixels", str(4096 * 4096)])  # one 4096 x 4096 at a time
    assert _post(srv.url, png).status_code == 200
    idle = _rss(srv.pid)
    big = _png(Image.new("RGB", (4096, 4096), (200, 30, 90)))  # 58 kB, 48 MB decoded

    async def burst():
        limits = httpx.Limits(max_connections=70, max_keepalive_connections=70)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.post(srv.url + "/v1/caption", content=big, headers={"Content-Type": "image/png"})
                    for _ in range(64)
                )
            )

    answers = asyncio.run(burst())
    statuses = [r.status_code for r in answers]
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1, statuses
    for r in answers:
        if r.status_code == 503:
            assert r.json()["error"]["code"] == "decode_busy" and r.headers["retry-after"] == "1"
        else:
            assert r.json()["caption"]
    assert httpx.get(srv.url + "/healthz").json() == {"status": "ok"}
    assert _post(srv.url, png).status_code == 200

    too_big = declared_png(4097, 4096)  # refused from its header: nothing decoded
    r = _post(srv.url, too_big)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "image_too_large")
    assert "4097x4096" in r.json()["error"]["message"]

    deadline = time.monotonic() + 10
    while _rss(srv.pid) > idle + 500 * MB and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _rss(srv.pid) <= idle + 500 * MB, (idle / MB, _rss(srv.pid) / MB)


# ----------------------------------------------------------------------------- slow senders


def _trickle(sock: socket.socket, data: bytes, every_s: float, stop: threading.Event) -> None:
    for i in range(len(data)):
        if stop.wait(every_s if i else 0):
            return
        try:
            sock.sendall(data[i : i + 1])
        except OSError:
            return


def test_slow_senders_are_cut_and_connections_capped(server_factory, png):
    srv = server_factory(extra_args=["--header-timeout-s", "1", "--body-timeout-s", "2", "--max-connections", "6"])
    head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n".encode()  # 40 s at 1 byte/s
    stop = threading.Event()
    try:
        # A header sent one byte a second: 408 and closed after the 1 s header timeout.
        slow = socket.create_connection(("127.0.0.1", srv.port))
        threading.Thread(target=_trickle, args=(slow, head, 1.0, stop), daemon=True).start()
        assert _post(srv.url, png).status_code == 200  # others are served meanwhile
        t0 = time.monotonic()
        got = read_all(slow, 15)
        cut_after = time.monotonic() - t0
        assert got.startswith(b"HTTP/1.1 408 ") and b'"header_timeout"' in got
        assert cut_after < 10  # long before the 40 s the whole header would take
        slow.close()

        # A body sent one byte a second: 408 body_timeout after the 2 s body timeout.
        slow_body = socket.create_connection(("127.0.0.1", srv.port))
        slow_body.sendall(
            f"POST /v1/caption HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
            f"Content-Length: {len(png)}\r\n\r\n".encode()
        )
        threading.Thread(target=_trickle, args=(slow_body, png, 1.0, stop), daemon=True).start()
        got = read_all(slow_body, 15)
        assert got.startswith(b"HTTP/1.1 408 ") and b'"body_timeout"' in got
        slow_body.close()

        # Headers over 64 KiB: 431 and closed.
        greedy = socket.create_connection(("127.0.0.1", srv.port))
        greedy.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n")
        got = read_all(greedy, 15)
        assert got.startswith(b"HTTP/1.1 431 ") and b'"headers_too_large"' in got
        greedy.close()

        # Six idle connections fill the cap: a seventh is answered 503 and closed at once.
        idle = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(6)]
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", srv.port))
        got = read_all(extra, 5)
        assert got.startswith(b"HTTP/1.1 503 ") and b'"too_many_connections"' in got
        extra.close()
        # The idle ones go after the header timeout, and the server serves again.
        for sock in idle:
            assert read_all(sock, 10).startswith(b"HTTP/1.1 408 ")
            sock.close()
        assert httpx.get(srv.url + "/healthz").status_code == 200
        assert _post(srv.url, png).status_code == 200
    finally:
        stop.set()


# ----------------------------------------------------------------------------- keys, ids, logs

# A server whose captioner raises on an all-red image: a real unexpected exception.
_FAILING_SERVER = """
import sys
import reference_model
from reference_model.tiny import TinyCaptioner

class Failing(TinyCaptioner):
    def caption(self, images):
        if any(im.getpixel((0, 0)) == (255, 0, 0) for im in images):
            raise RuntimeError("red is not a caption")
        return super().caption(images)

reference_model.load_captioner = lambda spec, device=None: Failing(spec, device=device)
from reference_model.server.__main__ import main
sys.exit(main(sys.argv[1:]))
"""
KEY = "clé-ü✓"


def test_empty_api_key_is_refused_at_start():
    out = subprocess.run([*SERVER_COMMAND, "--api-key", "", "--port", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 64
    assert out.stderr.strip().splitlines()[-1] == (
        "reference_model.server: error: --api-key must not be empty (leave it out to serve without a key)"
    )
    assert "Traceback" not in out.stderr


def test_utf8_key_request_log_and_the_traceback_of_a_real_500(server_factory, png):
    srv = server_factory(command=(sys.executable, "-c", _FAILING_SERVER), extra_args=["--api-key", KEY])
    utf8 = KEY.encode("utf-8")
    assert _post(srv.url, png).status_code == 401
    assert _post(srv.url, png, **{"X-API-Key": b""}).status_code == 401
    assert _post(srv.url, png, **{"X-API-Key": "cl"}).status_code == 401
    assert _post(srv.url, png, **{"X-API-Key": KEY.encode("utf-8")[:-1]}).status_code == 401
    ok = _post(srv.url, png, **{"X-API-Key": utf8, "X-Request-Id": "log-me-1"})
    assert ok.status_code == 200, ok.text
    assert _post(srv.url, png, Authorization=b"Bearer " + utf8).status_code == 200

    red = _png(Image.new("RGB", (32, 32), (255, 0, 0)))
    boom = _post(srv.url, red, **{"X-API-Key": utf8, "X-Request-Id": "boom-1"})
    assert (boom.status_code, boom.json()["error"]["code"]) == (500, "internal")

    deadline = time.monotonic() + 10
    while "boom-1" not in srv.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = _log_lines(srv.output())
    request = [ln for ln in lines if ln.get("event") == "request" and ln["request_id"] == "log-me-1"]
    assert len(request) == 1
    line = request[0]
    assert set(line) == {
        "ts",
        "event",
        "request_id",
        "method",
        "path",
        "status",
        "latency_ms",
        "batch_size",
        "model_version",
    }
    assert (line["method"], line["path"], line["status"], line["batch_size"]) == ("POST", "/v1/caption", 200, 1)
    assert line["latency_ms"] > 0 and line["model_version"].startswith("tiny-")
    refused = [ln for ln in lines if ln.get("event") == "request" and ln["status"] == 401]
    assert len(refused) == 4 and all(ln["batch_size"] is None for ln in refused)
    errors = [ln for ln in lines if ln.get("event") == "error"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "boom-1" and errors[0]["error"] == "RuntimeError: red is not a caption"
    assert errors[0]["traceback"].startswith("Traceback (most recent call last):")
    assert "in caption" in errors[0]["traceback"]
    failed = [ln for ln in lines if ln.get("event") == "request" and ln["request_id"] == "boom-1"]
    assert [ln["status"] for ln in failed] == [500]


def test_injected_500_logs_no_traceback_and_405_names_allowed_methods(reference_server, png):
    url, auth = reference_server.url, {"X-Admin-Token": reference_server.admin_token}
    r = httpx.get(url + "/v1/caption")
    assert (r.status_code, r.json()["error"]["code"], r.headers["allow"]) == (405, "method_not_allowed", "POST")
    r = httpx.delete(url + "/healthz")
    assert (r.status_code, r.headers["allow"]) == (405, "GET")
    try:
        assert httpx.post(url + "/admin/faults", json={"error_rate": 1.0}, headers=auth).status_code == 200
        r = _post(url, png, **{"X-Request-Id": "injected-1"})
        assert (r.status_code, r.json()["error"]["code"]) == (500, "injected_fault")
    finally:
        httpx.delete(url + "/admin/faults", headers=auth)
    deadline = time.monotonic() + 10
    while '"injected-1"' not in reference_server.output() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = _log_lines(reference_server.output())
    assert [ln["status"] for ln in lines if ln.get("request_id") == "injected-1"] == [500]
    assert not [ln for ln in lines if ln.get("event") == "error" and ln.get("request_id") == "injected-1"]


@pytest.mark.parametrize("rid", ["", "a b", "x" * 129, "é"])
def test_request_ids_outside_the_schema_are_refused(reference_server, png, rid):
    r = _post(reference_server.url, png, **{"X-Request-Id": rid.encode("utf-8")})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request_id")
    assert len(r.headers["x-request-id"]) == 32  # a fresh one names the answer


def test_request_id_at_the_schema_limits_is_echoed(reference_server, png):
    for rid in ("!", "~" * 128):
        r = _post(reference_server.url, png, **{"X-Request-Id": rid})
        assert (r.status_code, r.headers["x-request-id"], r.json()["request_id"]) == (200, rid, rid)
