"""The reference server's endpoints and input validation, over HTTP on a loopback port."""

import io
import json
import struct
import zlib
from pathlib import Path

import httpx
import pytest
from PIL import Image

from harness.datasets import shapes_sample
from metrics_text import scrape
from reference_model.server.metrics import METRIC_NAMES

WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "reference_model" / "weights"

pytest.importorskip("torch")


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int = 20000) -> bytes:
    """A whole, valid greyscale PNG of side x side zero pixels: small on disk, huge decoded."""
    comp = zlib.compressobj(9)
    row = bytes(1 + side)  # filter byte + one byte per pixel
    block = row * 256
    parts = []
    for _ in range(side // 256):
        parts.append(comp.compress(block))
    parts.append(comp.compress(row * (side % 256)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def png() -> bytes:
    return _encode(shapes_sample(0, seed=11).image, "PNG")


def _caption(url: str, body: bytes, ctype: str = "image/png", **kw) -> httpx.Response:
    return httpx.post(
        url + "/v1/caption", content=body, headers={"Content-Type": ctype, **kw.pop("headers", {})}, timeout=30, **kw
    )


def test_health_ready_model_and_openapi(reference_server):
    url = reference_server.url
    assert httpx.get(url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(url + "/readyz")
    assert (r.status_code, r.json()) == (200, {"ready": True, "status": "ready"})
    m = httpx.get(url + "/v1/model").json()
    assert m["name"] == "tiny" and m["version"].startswith("tiny-") and m["device"] == "cpu"
    assert m["batching"] == {"max_batch": 32, "max_wait_ms": 5.0, "max_queue": 256}
    assert m["faults_enabled"] is True and m["api_key_required"] is False and m["ready"] is True
    schema = httpx.get(url + "/openapi.json").json()
    assert {"/v1/caption", "/healthz", "/readyz", "/metrics", "/v1/model", "/admin/faults"} <= set(schema["paths"])
    body = schema["paths"]["/v1/caption"]["post"]["requestBody"]["content"]
    assert set(body) == {"image/png", "image/jpeg", "image/webp", "multipart/form-data"}


def test_caption_raw_and_multipart_with_request_id_and_embedding(reference_server, png):
    url = reference_server.url
    r = _caption(url, png, headers={"X-Request-Id": "req-42"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert r.headers["x-request-id"] == "req-42" and body["request_id"] == "req-42"
    assert set(body) == {"request_id", "caption", "confidence", "model_version", "server_latency_ms", "safety"}
    assert 0.0 <= body["confidence"] <= 1.0 and body["caption"]
    assert body["safety"] == {"flagged": False, "reasons": []}
    assert body["model_version"] == httpx.get(url + "/v1/model").json()["version"]

    multi = httpx.post(
        url + "/v1/caption",
        params={"return_embedding": "true"},
        files={"image": ("a.png", png, "image/png")},
        timeout=30,
    )
    assert multi.status_code == 200, multi.text
    mb = multi.json()
    assert mb["caption"] == body["caption"] and abs(mb["confidence"] - body["confidence"]) < 1e-3
    d_model = json.loads((WEIGHTS_DIR / "tiny.json").read_text())["config"]["d_model"]
    assert len(mb["embedding"]) == d_model and all(isinstance(v, float) for v in mb["embedding"])
    assert len(multi.headers["x-request-id"]) == 32  # made up when none was sent

    jpeg = _encode(shapes_sample(0, seed=11).image, "JPEG")
    assert _caption(url, jpeg, "image/jpeg").status_code == 200
    webp = _encode(shapes_sample(0, seed=11).image, "WEBP")
    assert _caption(url, webp, "image/webp").status_code == 200


def _status_counts(url: str) -> dict[str, float]:
    return {s.labels["status"]: s.value for s in scrape(url) if s.name == "caption_requests_total"}


def test_malformed_inputs_answer_4xx_and_the_server_keeps_serving(reference_server, png):
    url = reference_server.url
    before = _status_counts(url)
    jpeg = _encode(shapes_sample(1, seed=11).image, "JPEG")
    limit = 10 * 1024 * 1024
    corpus = [
        ("truncated png", png[: len(png) // 2], "image/png", 400, "invalid_image"),
        ("truncated jpeg", jpeg[: len(jpeg) // 2], "image/jpeg", 400, "invalid_image"),
        ("zero bytes", b"", "image/png", 400, "invalid_image"),
        ("text as png", b"this is a caption, not a picture\n" * 4, "image/png", 400, "invalid_image"),
        ("20000x20000 bomb", png_bomb(), "image/png", 413, "image_too_large"),
        ("wrong content type", png, "text/plain", 415, "unsupported_media_type"),
        ("no content type", png, "", 415, "unsupported_media_type"),
        ("oversize body", bytes(limit + 1), "image/png", 413, "body_too_large"),
        ("multipart without image field", None, None, 400, "invalid_multipart"),
    ]
    for name, body, ctype, status, code in corpus:
        if body is None:
            r = httpx.post(url + "/v1/caption", files={"picture": ("a.png", png, "image/png")}, timeout=30)
        else:
            headers = {"Content-Type": ctype} if ctype else {}
            r = httpx.post(url + "/v1/caption", content=body, headers=headers, timeout=30)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), name
        assert r.json()["error"]["message"], name

    def chunks():  # no Content-Length: the limit is enforced on the streamed body
        for _ in range(11):
            yield bytes(1024 * 1024)

    r = httpx.post(url + "/v1/caption", content=chunks(), headers={"Content-Type": "image/png"}, timeout=30)
    assert (r.status_code, r.json()["error"]["code"]) == (413, "body_too_large")
    r = _caption(url, png, params={"return_embedding": "maybe"})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_parameter")
    r = _caption(url, png, headers={"X-Request-Id": "x" * 200})
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_request_id")

    assert httpx.get(url + "/healthz").status_code == 200
    assert _caption(url, png).status_code == 200
    after = _status_counts(url)
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert delta == {"400": 7, "413": 3, "415": 2, "200": 1}


def test_unknown_route_and_method_use_the_error_shape(reference_server):
    r = httpx.get(reference_server.url + "/nope")
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = httpx.get(reference_server.url + "/v1/caption")
    assert (r.status_code, r.json()["error"]["code"]) == (405, "method_not_allowed")


def test_exposition_has_exactly_the_contract_metric_names(reference_server, png):
    assert _caption(reference_server.url, png).status_code == 200
    r = httpx.get(reference_server.url + "/metrics")
    assert r.headers["content-type"].startswith("text/plain")
    types = {line.split()[2]: line.split()[3] for line in r.text.splitlines() if line.startswith("# TYPE ")}
    assert types == {
        "caption_requests_total": "counter",
        "caption_request_duration_seconds": "histogram",
        "caption_batch_size": "histogram",
        "caption_queue_depth": "gauge",
        "caption_confidence": "histogram",
        "caption_safety_flags_total": "counter",
        "caption_model_info": "gauge",
        "caption_jobs_total": "counter",
        "caption_job_lag_seconds": "histogram",
        "caption_jobs_pending": "gauge",
        "caption_job_callbacks_total": "counter",
    }
    assert set(types) == set(METRIC_NAMES)
    for le in ("0.05", "0.1", "0.2", "0.3", "0.5", "1.0", "2.5", "5.0", "10.0"):
        assert f'caption_request_duration_seconds_bucket{{le="{le}"}}' in r.text
    version = httpx.get(reference_server.url + "/v1/model").json()["version"]
    assert f'caption_model_info{{device="cpu",name="tiny",version="{version}"}} 1.0' in r.text
    assert f'caption_requests_total{{model_version="{version}",status="200"}}' in r.text
    assert "_created" not in r.text


def test_admin_endpoints_need_the_token(reference_server):
    url = reference_server.url + "/admin/faults"
    assert httpx.get(url).status_code == 401
    assert httpx.post(url, json={"error_rate": 1}, headers={"X-Admin-Token": "wrong"}).status_code == 401
    auth = {"X-Admin-Token": reference_server.admin_token}
    got = httpx.get(url, headers=auth).json()
    assert got["active"] is False and got["faults"]["error_rate"] == 0.0
    r = httpx.post(url, json={"error_rate": 2}, headers=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_faults")
    r = httpx.post(url, json={"volume": 11}, headers=auth)
    assert r.status_code == 400 and "volume" in r.json()["error"]["message"]
    r = httpx.post(url, content=b"{not json", headers=auth)
    assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_json")
    assert httpx.get(url, headers=auth).json()["active"] is False


def test_deeply_nested_json_is_the_clients_error_on_every_json_route(reference_server):
    """A body nested 100,000 deep is refused 400 on each route that reads JSON; it is never a
    500 that a client could use to burn the service's availability SLO."""
    deep = b"[" * 100_000 + b"]" * 100_000
    auth = {"X-Admin-Token": reference_server.admin_token, "Content-Type": "application/json"}
    for path in ("/admin/faults", "/v1/chat/completions", "/v2/models/tiny/infer"):
        r = httpx.post(reference_server.url + path, content=deep, headers=auth, timeout=30)
        assert r.status_code == 400, (path, r.status_code, r.text[:200])
        assert "nested too deeply" in r.text
    assert httpx.get(reference_server.url + "/healthz").status_code == 200


def test_api_key_guards_v1_but_not_probes_and_faults_off_hides_admin(server_factory, png):
    srv = server_factory(extra_args=["--max-batch", "4"], env={"CAPTION_API_KEY": "k-123"})
    assert _caption(srv.url, png).status_code == 401
    assert _caption(srv.url, png, headers={"X-API-Key": "nope"}).json()["error"]["code"] == "unauthorized"
    assert _caption(srv.url, png, headers={"X-API-Key": "k-123"}).status_code == 200
    assert _caption(srv.url, png, headers={"Authorization": "Bearer k-123"}).status_code == 200
    assert httpx.get(srv.url + "/v1/model").status_code == 401
    assert httpx.get(srv.url + "/v1/model", headers={"X-API-Key": "k-123"}).json()["api_key_required"] is True
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(srv.url + probe).status_code == 200
    r = httpx.get(srv.url + "/admin/faults", headers={"X-Admin-Token": "anything"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    assert "/admin/faults" not in httpx.get(srv.url + "/openapi.json").json()["paths"]
    text = httpx.get(srv.url + "/metrics").text
    assert 'status="401"' in text
