"""The reference server against hostile inputs: a v2 request of more images than the queue holds,
versions that are not the loaded model's, headers over the bound in one read, requests uvicorn's
parser refuses (and its log lines), and photos stored sideways with an EXIF orientation. Real
server processes on loopback, raw sockets where the bytes matter."""

import base64
import io
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from harness.datasets import shapes_sample
from harness.image import decode_image
from metrics_text import sample_value, scrape
from raw_socket import read_all

pytest.importorskip("torch")

ADMIN = "hostile-admin-token"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _v2_body(images: list[bytes]) -> bytes:
    data = [base64.b64encode(im).decode() for im in images]
    return json.dumps({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [len(data)], "data": data}]}).encode()


def _infer(url: str, images: list[bytes], path: str = "/v2/models/tiny/infer") -> httpx.Response:
    return httpx.post(url + path, content=_v2_body(images), headers={"Content-Type": "application/json"}, timeout=60)


def _batched(url: str) -> tuple[float, float]:
    """Images inferred so far and batches run (warm-up included)."""
    samples = scrape(url)
    return sample_value(samples, "caption_batch_size_sum"), sample_value(samples, "caption_batch_size_count")


def _raw(port: int, data: bytes, timeout: float = 15) -> bytes:
    """Send ``data`` in one write and read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        return read_all(sock, timeout)


def _split(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], {k.lower(): v for k, v in headers.items()}, body


@pytest.fixture(scope="module")
def png() -> bytes:
    return _png(shapes_sample(0, seed=11).image)


# ------------------------------------------------------- a multi-image request: all or nothing


def test_a_v2_request_of_more_images_than_the_queue_holds_is_413_and_none_is_inferred(server_factory, png):
    srv = server_factory()  # --max-queue 256
    tiny = _png(Image.new("RGB", (16, 16), (10, 200, 30)))
    before = _batched(srv.url)

    r = _infer(srv.url, [tiny] * 2000)
    assert r.status_code == 413
    assert r.json() == {
        "error": "2000 images in one request, more than the queue holds (256): send at most 256 per request"
    }
    assert "retry-after" not in r.headers

    t0 = time.monotonic()
    ok = _infer(srv.url, [png])
    assert ok.status_code == 200 and time.monotonic() - t0 < 5
    assert len(ok.json()["outputs"][0]["data"]) == 1
    assert _batched(srv.url) == (before[0] + 1, before[1] + 1)  # the one image of the normal request
    samples = scrape(srv.url)
    assert sample_value(samples, "caption_queue_depth") == 0
    assert sample_value(samples, "caption_requests_total", status="413", model_version=ok.json()["model_version"]) == 1


def test_a_v2_request_the_queue_has_no_room_for_is_429_as_a_whole(server_factory, png):
    srv = server_factory(extra_args=["--enable-faults", "--max-queue", "6", "--max-batch", "2"], admin_token=ADMIN)
    r = httpx.post(srv.url + "/admin/faults", json={"latency_ms": 1500}, headers={"X-Admin-Token": ADMIN})
    assert r.status_code == 200
    before = _batched(srv.url)
    answers: dict[str, httpx.Response] = {}

    def send(name: str, n: int) -> None:
        answers[name] = _infer(srv.url, [png] * n)

    first = threading.Thread(target=send, args=("first", 1))  # its batch holds the worker 1.5 s
    first.start()
    time.sleep(0.3)
    queued = threading.Thread(target=send, args=("queued", 4))  # waits: 4 of the 6 places
    queued.start()
    deadline = time.monotonic() + 5
    while sample_value(scrape(srv.url), "caption_queue_depth") != 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sample_value(scrape(srv.url), "caption_queue_depth") == 4

    refused = _infer(srv.url, [png] * 3)  # 3 more do not fit: none of them is queued
    assert refused.status_code == 429
    assert refused.json() == {"error": "queue full (6 waiting)"}
    assert int(refused.headers["retry-after"]) >= 1
    assert sample_value(scrape(srv.url), "caption_queue_depth") == 4

    fits = threading.Thread(target=send, args=("fits", 2))  # exactly the 2 places left
    fits.start()
    for t in (first, queued, fits):
        t.join(60)
    assert {k: v.status_code for k, v in answers.items()} == {"first": 200, "queued": 200, "fits": 200}
    assert [len(answers[k].json()["outputs"][0]["data"]) for k in ("first", "queued", "fits")] == [1, 4, 2]
    # [first], [queued x2], [queued x2], [fits x2]: nothing of the refused request was inferred.
    assert _batched(srv.url) == (before[0] + 7, before[1] + 4)
    httpx.delete(srv.url + "/admin/faults", headers={"X-Admin-Token": ADMIN})


# ------------------------------------------------------------------------- model versions


def test_a_version_other_than_the_models_is_404_in_each_protocols_shape(reference_server, png):
    url = reference_server.url
    meta = httpx.get(url + "/v2/models/tiny").json()
    (version,) = meta["versions"]
    assert version.startswith("tiny-")

    r = _infer(url, [png], "/v2/models/tiny/versions/999/infer")
    assert r.status_code == 404
    assert r.json() == {"error": f"version '999' of model 'tiny' is not served here (serving version {version!r})"}
    r = _infer(url, [png], f"/v2/models/tiny/versions/{version}/infer")
    assert r.status_code == 200 and r.json()["model_version"] == version
    r = _infer(url, [png], f"/v2/models/{version}/versions/{version}/infer")  # named by its version
    assert r.status_code == 200

    r = httpx.get(url + "/v2/models/tiny/versions/999")
    assert r.status_code == 404 and r.json()["error"].startswith("version '999' of model 'tiny'")
    assert httpx.get(url + f"/v2/models/tiny/versions/{version}").json() == meta
    r = httpx.get(url + "/v2/models/tiny/versions/999/ready")
    assert (r.status_code, r.json()) == (503, {"ready": False})
    r = httpx.get(url + f"/v2/models/tiny/versions/{version}/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True})

    ctype = {"Content-Type": "image/png"}
    r = httpx.post(url + "/predictions/tiny/999", content=png, headers=ctype, timeout=30)
    assert r.status_code == 404
    assert r.json() == {
        "code": 404,
        "type": "ModelNotFoundException",
        "message": f"version '999' of model 'tiny' is not served here (serving version {version!r})",
    }
    r = httpx.post(url + f"/predictions/tiny/{version}", content=png, headers=ctype, timeout=30)
    assert r.status_code == 200 and r.json()["caption"]
    assert httpx.post(url + "/predictions/tiny", content=png, headers=ctype, timeout=30).status_code == 200


# ------------------------------------------------------------------- headers in one read


def test_headers_over_64_kib_in_one_read_are_431(reference_server, png):
    port = reference_server.port
    pad = b"X-Pad: " + b"a" * 70_000 + b"\r\n"
    got = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n")
    status, headers, body = _split(got)
    assert status == "HTTP/1.1 431 Request Header Fields Too Large"
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert json.loads(body) == {"error": {"code": "headers_too_large", "message": "request headers over 65536 bytes"}}

    # A request line over the bound, in one read.
    got = _raw(port, b"GET /healthz?" + b"q" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 431 ") and b'"headers_too_large"' in got

    # Pipelined behind a small request, in the same read: the second one's headers count too.
    small = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    got = _raw(port, small + b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + pad + b"\r\n")
    assert got.endswith(b'{"error": {"code": "headers_too_large", "message": "request headers over 65536 bytes"}}')
    assert got.count(b"HTTP/1.1 431 ") == 1 and got.count(b"HTTP/1.1 ") <= 2

    # Headers just under the bound, and a body far over it sharing the headers' read, are served.
    got = _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: " + b"a" * 60_000 + b"\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 200 ")
    noisy = _png(Image.frombytes("RGB", (256, 256), np.random.default_rng(3).bytes(256 * 256 * 3)))
    assert len(noisy) > 150_000
    head = f"POST /v1/caption HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(noisy)}\r\n"
    got = _raw(port, head.encode() + b"Connection: close\r\n\r\n" + noisy)
    status, _, body = _split(got)
    assert status == "HTTP/1.1 200 OK" and json.loads(body)["caption"]


def test_headers_pipelined_behind_a_request_in_flight_stop_the_reading(reference_server, png):
    admin = {"X-Admin-Token": reference_server.admin_token}
    assert httpx.post(reference_server.url + "/admin/faults", json={"latency_ms": 1500}, headers=admin).is_success
    try:
        sock = socket.create_connection(("127.0.0.1", reference_server.port))
        head = f"POST /v1/caption HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {len(png)}\r\n\r\n"
        sock.sendall(head.encode() + png)
        time.sleep(0.2)  # the caption is in its batch for 1.5 s; the next request's headers never end
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        sock.settimeout(0.2)
        sent, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < 3:
            try:
                sent += sock.send(b"a" * 16384)
            except socket.timeout:
                time.sleep(0.05)
            except OSError:  # closed by the server
                break
        got = read_all(sock, 10)
        sock.close()
    finally:
        httpx.delete(reference_server.url + "/admin/faults", headers=admin)
    # The server read no more than the bound (the rest sat in the kernel's buffers), answered the
    # request in flight, and closed the connection.
    assert sent < 32 * 1024 * 1024
    status, headers, body = _split(got)
    assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close" and json.loads(body)["caption"]


# ------------------------------------------------------ parser errors and the server's log


def _is_stdout(line: str) -> bool:
    return line.startswith(("serving ", "listening on ", "stopped"))


def test_parser_errors_answer_the_json_shape_and_the_log_is_json_only(server_factory, png):
    srv = server_factory(extra_args=["--access-log"])
    for raw in (
        b"NOT A REQUEST LINE\r\n\r\n",  # malformed request line
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",  # a space in a field name
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
    ):
        status, headers, body = _split(_raw(srv.port, raw))
        assert status == "HTTP/1.1 400 Bad Request", raw
        assert headers["content-type"] == "application/json" and headers["connection"] == "close"
        assert json.loads(body) == {
            "error": {"code": "invalid_http_request", "message": "malformed HTTP request (request line or headers)"}
        }
    assert httpx.post(srv.url + "/v1/caption", content=png, headers={"Content-Type": "image/png"}).status_code == 200

    deadline = time.monotonic() + 10
    while srv.output().count("Invalid HTTP request received.") < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [ln for ln in srv.output().splitlines() if ln and not _is_stdout(ln)]
    records = [json.loads(ln) for ln in lines]  # every line of the log is JSON
    warnings = [r for r in records if r.get("logger") == "uvicorn.error"]
    assert len(warnings) == 3
    for w in warnings:
        assert set(w) == {"ts", "event", "level", "logger", "message"}
        assert (w["event"], w["level"], w["message"]) == ("log", "warning", "Invalid HTTP request received.")
    access = [r for r in records if r.get("logger") == "uvicorn.access"]
    assert any('"POST /v1/caption HTTP/1.1" 200' in r["message"] for r in access), access
    assert any(r.get("event") == "request" and r["path"] == "/v1/caption" for r in records)


# ------------------------------------------------------------------------ EXIF orientation


def _asymmetric() -> Image.Image:
    """48 x 32: a white block at the top left, a blue band at the right, grey elsewhere."""
    a = np.full((32, 48, 3), 90, np.uint8)
    a[:8, :16] = 255
    a[:, 40:] = (0, 0, 255)
    return Image.fromarray(a)


def _jpeg(img: Image.Image, orientation: int | None) -> bytes:
    buf = io.BytesIO()
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    img.save(buf, format="JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_decoding_applies_the_exif_orientation():
    img = _asymmetric()
    stored = np.asarray(decode_image(_jpeg(img, None)))
    # 6: stored turned 90 degrees anticlockwise, shown turned back clockwise.
    rotated = np.asarray(decode_image(_jpeg(img, 6)))
    assert rotated.shape == (48, 32, 3)
    assert np.array_equal(rotated, np.rot90(stored, k=-1))
    assert rotated[:16, 24:].min() > 200 and rotated[-8:, :].mean(axis=(0, 1))[2] > 200  # white top right, blue bottom
    for orientation, expected in ((1, stored), (3, np.rot90(stored, 2)), (8, np.rot90(stored)), (2, stored[:, ::-1])):
        assert np.array_equal(np.asarray(decode_image(_jpeg(img, orientation))), expected), orientation


def test_the_server_intake_applies_the_exif_orientation():
    import asyncio

    from reference_model.server.intake import ImageIntake

    img = _asymmetric()
    stored = np.asarray(decode_image(_jpeg(img, None)))
    intake = ImageIntake(lambda im: im.copy(), max_pixels=10**6, max_pixels_in_flight=10**6, threads=1, draft_side=64)
    try:
        got = asyncio.run(intake.image(_jpeg(img, 6)))
    finally:
        intake.stop()
    assert np.array_equal(np.asarray(got), np.rot90(stored, k=-1))


def test_the_server_captions_a_photo_as_its_exif_orientation_shows_it(reference_server):
    url = reference_server.url
    img = shapes_sample(2, seed=11).image
    stored = decode_image(_jpeg(img, None))
    shown = stored.transpose(Image.Transpose.ROTATE_270)  # what orientation 6 shows

    def embedding(body: bytes, ctype: str) -> np.ndarray:
        r = httpx.post(
            url + "/v1/caption", params={"return_embedding": "true"}, content=body, headers={"Content-Type": ctype}
        )
        assert r.status_code == 200, r.text
        return np.asarray(r.json()["embedding"])

    sideways = embedding(_png(stored), "image/png")
    upright = embedding(_png(shown), "image/png")
    assert not np.allclose(sideways, upright, atol=1e-3)  # the model sees the difference
    assert np.allclose(embedding(_jpeg(img, 6), "image/jpeg"), upright, atol=1e-5)


# ---------------------------------------------------------- an answer before the body was read


def test_an_answer_sent_before_the_body_was_read_says_the_connection_closes(reference_server):
    """The server closes a connection whose request body it did not read; the answer says so
    (``Connection: close``), so a client never sends its next request on it."""
    head = "POST /v1/caption HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n"
    with socket.create_connection(("127.0.0.1", reference_server.port), timeout=10) as s:
        s.sendall(head.encode())  # the body never comes
        answer = b""
        while b"\r\n\r\n" not in answer and (data := s.recv(4096)):
            answer += data
    status, *fields = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    assert status.startswith("HTTP/1.1 415")
    assert "connection: close" in [f.lower() for f in fields], fields
