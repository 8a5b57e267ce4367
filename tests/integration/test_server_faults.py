"""Each injected fault does what it says, on the shared reference server (faults cleared after)."""

import io
import time
from contextlib import contextmanager

import httpx
import pytest

from harness.datasets import shapes_sample
from metrics_text import sample_value, scrape
from reference_model.server.faults import FaultInjector
from reference_model.server.safety import DEFAULT_BLOCKLIST, SafetyFilter

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def png() -> bytes:
    buf = io.BytesIO()
    shapes_sample(3, seed=5).image.save(buf, format="PNG")
    return buf.getvalue()


@contextmanager
def faults(server, **spec):
    auth = {"X-Admin-Token": server.admin_token}
    r = httpx.post(server.url + "/admin/faults", json=spec, headers=auth)
    assert r.status_code == 200, r.text
    try:
        yield r.json()
    finally:
        cleared = httpx.delete(server.url + "/admin/faults", headers=auth)
        assert cleared.status_code == 200 and cleared.json()["active"] is False


def _post(server, png, **kw) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/caption",
        content=png,
        headers={"Content-Type": "image/png"},
        timeout=kw.pop("timeout", 30),
        **kw,
    )


def _metric(server, name: str, **labels: str) -> float:
    return sample_value(scrape(server.url), name, **labels) or 0.0


def test_error_rate_follows_the_seeded_draws(reference_server, png):
    expected_injector = FaultInjector()
    expected_injector.update({"error_rate": 0.5, "seed": 3})
    expected = [500 if expected_injector.draw_request() == "error" else 200 for _ in range(16)]
    assert 0 < expected.count(500) < 16
    with faults(reference_server, error_rate=0.5, seed=3) as state:
        assert state["active"] is True and state["faults"]["error_rate"] == 0.5
        got = [_post(reference_server, png) for _ in range(16)]
    assert [r.status_code for r in got] == expected
    errors = [r.json()["error"]["code"] for r in got if r.status_code == 500]
    assert set(errors) == {"injected_fault"}
    with faults(reference_server, error_rate=1.0):
        assert {_post(reference_server, png).status_code for _ in range(3)} == {500}
    assert _post(reference_server, png).status_code == 200


def test_added_latency_is_felt_by_every_request(reference_server, png):
    with faults(reference_server, latency_ms=300, jitter_ms=50):
        for _ in range(2):
            r = _post(reference_server, png)
            assert r.status_code == 200 and r.json()["server_latency_ms"] >= 300
    assert _post(reference_server, png).status_code == 200


def test_hang_gives_no_answer_until_the_client_gives_up(reference_server, png):
    gone = {"model_version": httpx.get(reference_server.url + "/v1/model").json()["version"], "status": "499"}
    before = _metric(reference_server, "caption_requests_total", **gone)
    with faults(reference_server, hang_rate=1.0):
        with pytest.raises(httpx.ReadTimeout):
            _post(reference_server, png, timeout=httpx.Timeout(5.0, read=0.6))
        deadline = time.monotonic() + 5
        while _metric(reference_server, "caption_requests_total", **gone) == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _metric(reference_server, "caption_requests_total", **gone) == before + 1
        assert httpx.get(reference_server.url + "/healthz").status_code == 200
    assert _post(reference_server, png).status_code == 200


def test_unsafe_output_slips_past_the_filter_unflagged(reference_server, png):
    before = _metric(reference_server, "caption_safety_flags_total", reason="blocklist")
    with faults(reference_server, unsafe_rate=1.0):
        answers = [_post(reference_server, png).json() for _ in range(3)]
    for a in answers:
        word = a["caption"].rsplit(" ", 1)[1]
        assert word in DEFAULT_BLOCKLIST and a["caption"].endswith(f" with {word}")
        assert a["safety"] == {"flagged": False, "reasons": []}
        assert SafetyFilter().check(a["caption"]).reasons == ("blocklist",)  # what an outside SLI sees
    assert _metric(reference_server, "caption_safety_flags_total", reason="blocklist") == before
    clean = _post(reference_server, png).json()
    assert not any(w in clean["caption"].split() for w in DEFAULT_BLOCKLIST)


def test_slow_start_set_at_runtime_makes_the_server_unready(reference_server, png):
    with faults(reference_server, slow_start_s=30) as state:
        assert state["slow_start_remaining_s"] > 29
        r = httpx.get(reference_server.url + "/readyz")
        assert (r.status_code, r.json()) == (503, {"ready": False, "status": "starting"})
        r = _post(reference_server, png)
        assert (r.status_code, r.json()["error"]["code"]) == (503, "not_ready")
        assert httpx.get(reference_server.url + "/healthz").status_code == 200
    assert httpx.get(reference_server.url + "/readyz").status_code == 200
    assert _post(reference_server, png).status_code == 200


def test_slow_start_at_launch_keeps_readyz_503_until_it_has_passed(server_factory, png):
    t0 = time.monotonic()
    srv = server_factory(
        admin_token="adm",
        wait=False,
        extra_args=["--enable-faults", "--faults", '{"slow_start_s": 2.0}', "--max-batch", "2"],
    )
    seen = []
    while time.monotonic() - t0 < 60:
        try:
            r = httpx.get(srv.url + "/readyz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        seen.append(r.json()["status"])
        if r.status_code == 200:
            break
        assert r.status_code == 503 and r.json()["ready"] is False
        if len(seen) == 1:
            cap = _post(srv, png)
            assert (cap.status_code, cap.json()["error"]["code"]) == (503, "not_ready")
            assert httpx.get(srv.url + "/healthz").status_code == 200
        time.sleep(0.1)
    assert seen[-1] == "ready" and "starting" in seen
    assert set(seen[:-1]) <= {"warming_up", "starting"}
    assert _post(srv, png).status_code == 200
