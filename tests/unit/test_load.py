"""The load package's parts: summary maths, arrivals, payloads, the fault proxy, the CLI's checks."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from harness.cli import main as cli_main
from harness.client import CaptionClient
from harness.datasets import generate_shapes, write_coco
from harness.duration import parse_duration
from harness.image import ImageDecodeError, ImageTooLargeError, decode_image
from harness.load.arrivals import ArrivalClock, gamma_gaps
from harness.load.calibration import FixedResponseServer
from harness.load.launch import LoadRun, available_scenarios, locust_argv, resolve_scenario, secret_env
from harness.load.payload import coco_pool, malformed_payloads, pool_from_dataset, shapes_pool
from harness.load.proxy import FaultProxy, ProxyFaults
from harness.load.summary import ABORTED_ERROR, saturation_point, summarize, sweep_curve
from harness.records import COLUMNS


def _df(rows: list[dict]) -> pd.DataFrame:
    full = [{c: r.get(c) for c in COLUMNS} for r in rows]
    return pd.DataFrame(full, columns=list(COLUMNS))


def _row(t: float, lat: float, outcome: str = "ok", status: int = 200, **kw) -> dict:
    return {"t_start": t, "latency_s": lat, "outcome": outcome, "status": status, **kw}


# -- summary ----------------------------------------------------------------------------------------


def test_summary_figures_are_exact_on_constructed_records() -> None:
    rows = [_row(100.0 + i * 0.1, 0.1 * (i + 1)) for i in range(10)]  # ok latencies 0.1 .. 1.0
    rows += [
        _row(101.0, 0.05, "http_error", 429),
        _row(101.1, 0.05, "http_error", 500),
        _row(101.2, 2.0, "timeout", 0, error="TimeoutError: timed out"),
        _row(101.3, 0.01, "connection_error", 0),
        _row(101.4, 0.3, "invalid_response", 200),
        _row(101.5, 0.2, "timeout", 0, error=ABORTED_ERROR),
    ]
    s = summarize(
        _df(rows),
        run_id="r",
        scenario="steady",
        host="http://x",
        started_at=100.0,
        ended_at=104.0,
        latency_threshold_s=0.5,
        request_timeout_s=2.0,
        locust={"requests": 16, "failures": 6},
    )
    assert s.requests == 16 and s.duration_s == 4.0
    assert s.outcomes == {"ok": 10, "http_error": 2, "timeout": 2, "connection_error": 1, "invalid_response": 1}
    assert s.status_counts == {"0": 3, "200": 11, "429": 1, "500": 1}
    assert s.throughput_rps == 4.0 and s.ok_rps == 2.5
    assert s.error_rate == pytest.approx(6 / 16)
    assert s.error_rate_by_kind["timeout"] == pytest.approx(2 / 16)
    ok = np.arange(1, 11) * 0.1
    for q in (50, 90, 95, 99):
        assert s.latency_s[f"p{q}"] == pytest.approx(np.percentile(ok, q))
    assert s.goodput == {"threshold_s": 0.5, "rps": 1.25, "fraction": pytest.approx(5 / 16)}
    assert sum(b["requests"] for b in s.timeline) == 16
    joined = " | ".join(s.notes)
    assert "1 of 16 requests failed to connect" in joined and "invalid_response" in joined
    assert "1 of 16 requests timed out" in joined and "1 request(s) were cut off" in joined
    assert "1 requests were refused with 429" in joined
    assert "differ" not in joined


def test_summary_says_when_the_target_was_unreachable_and_counts_disagree() -> None:
    rows = [_row(10.0 + i, 0.001, "connection_error", 0) for i in range(3)]
    s = summarize(_df(rows), host="http://127.0.0.1:9", locust={"requests": 4, "failures": 4})
    assert s.notes[0] == "target unreachable at http://127.0.0.1:9: all 3 requests failed to connect (connection_error)"
    assert "records (3) and Locust's request count (4) differ" in s.notes
    empty = summarize(_df([]))
    assert empty.requests == 0 and empty.notes == ["no requests were sent"] and empty.throughput_rps is None


def test_sweep_curve_and_saturation_point() -> None:
    # levels 1, 2, 4 users for 4 s each: 5, 10 and 10.5 ok requests per second after the settle second
    rows = []
    for start, _users, rps, lat in ((0.0, 1, 5, 0.2), (4.0, 2, 10, 0.2), (8.0, 4, 10.5, 0.4)):
        n = int(rps * 3)
        rows += [_row(start + 1.0 + k * (3.0 / n), lat) for k in range(n)]
    stages = [
        {"kind": "users", "t": 0.0, "users": 1},
        {"kind": "users", "t": 4.0, "users": 2},
        {"kind": "users", "t": 8.0, "users": 4},
    ]
    curve = sweep_curve(_df(rows), stages, 12.0)
    assert [c["users"] for c in curve] == [1, 2, 4]
    assert [c["throughput_rps"] for c in curve] == [5.0, 10.0, 10.333]
    sat = saturation_point(curve)
    assert sat["users"] == 2 and sat["max_throughput_rps"] == 10.333
    s = summarize(_df(rows), scenario="sweep", started_at=0.0, ended_at=12.0, plan=stages)
    assert s.sweep["saturation"]["users"] == 2


# -- arrivals, payloads, durations ----------------------------------------------------------------


def test_arrival_clock_follows_its_gamma_schedule() -> None:
    now = [0.0]
    clock = ArrivalClock(rate=10.0, burstiness=0.5, seed=3, clock=lambda: now[0], block=8)
    delays = [clock.next_delay() for _ in range(20)]
    expected = np.concatenate([[0.0], np.cumsum(ArrivalClock(10.0, 0.5, 3, block=8)._rng.gamma(0.5, 0.2, 8))])
    assert delays[:9] == pytest.approx(list(expected))
    now[0] = 100.0  # far behind schedule: every slot is due, and counted late
    assert clock.next_delay() == 0.0 and clock.late == 1
    gaps = gamma_gaps(20000, 50.0, 1.0, seed=1)
    assert gaps.mean() == pytest.approx(1 / 50, rel=0.03)
    with pytest.raises(ValueError):
        ArrivalClock(0.0)


def test_payload_pools_and_the_malformed_corpus(tmp_path: Path) -> None:
    a, b = shapes_pool(3, seed=5), shapes_pool(3, seed=5)
    assert [p.body for p in a.items] == [p.body for p in b.items] and a.items[0].width == 128
    assert pool_from_dataset("shapes:low_light:0.5", 2, 5, 64).name == "shapes:5:low_light:0.5"
    write_coco(generate_shapes(4, 1), tmp_path / "coco")
    coco = coco_pool(tmp_path / "coco", limit=3)
    assert len(coco) == 3 and coco.items[0].content_type == "image/png" and coco.items[0].height == 128
    bad = {p.image_id.split(":", 1)[1]: p for p in malformed_payloads(max_body_bytes=1000)}
    assert set(bad) == {"truncated_png", "truncated_jpeg", "empty", "text_as_image", "bomb", "wrong_type", "oversize"}
    assert all(p.malformed for p in bad.values())
    with pytest.raises(ImageTooLargeError):
        decode_image(bad["bomb"].body)
    for k in ("truncated_png", "truncated_jpeg", "empty", "text_as_image"):
        with pytest.raises(ImageDecodeError):
            decode_image(bad[k].body)
    assert len(bad["oversize"].body) == 1001 and bad["wrong_type"].content_type == "text/plain"
    assert len(bad["bomb"].body) < 2000


def test_durations() -> None:
    assert [parse_duration(x) for x in ("90", "90s", "2m", "1h30m", "2.5s")] == [90, 90, 120, 5400, 2.5]
    for bad in ("", "2x", "m", "5m3"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# -- the fault proxy ------------------------------------------------------------------------------------


def test_fault_proxy_relays_and_injects_each_fault() -> None:
    png = b"\x89PNG" + b"\x00" * 10000
    with (
        FixedResponseServer() as up,
        FaultProxy(up.url, admin_token="tok", seed=1) as proxy,
        httpx.Client(timeout=5) as http,
    ):
        direct = http.post(up.url + "/v1/caption", content=png)
        relayed = http.post(proxy.url + "/v1/caption", content=png, headers={"Content-Type": "image/png"})
        assert relayed.status_code == 200 and relayed.content == direct.content
        admin = {"X-Admin-Token": "tok"}
        assert http.get(proxy.url + "/admin/faults").status_code == 401
        assert http.post(proxy.url + "/admin/faults", json={"bogus": 1}, headers=admin).status_code == 400
        assert http.post(proxy.url + "/admin/faults", json={"error_rate": 2}, headers=admin).status_code == 400

        http.post(proxy.url + "/admin/faults", json={"latency_ms": 150}, headers=admin)
        t0 = time.perf_counter()
        assert http.post(proxy.url + "/v1/caption", content=png).status_code == 200
        assert time.perf_counter() - t0 >= 0.15

        http.post(proxy.url + "/admin/faults", json={"latency_ms": 0, "error_rate": 1}, headers=admin)
        r = http.post(proxy.url + "/v1/caption", content=png)
        assert r.status_code == 500 and r.json()["error"]["code"] == "injected_fault"

        http.post(proxy.url + "/admin/faults", json={"error_rate": 0, "bandwidth_bps": 20000}, headers=admin)
        t0 = time.perf_counter()
        assert http.post(proxy.url + "/v1/caption", content=png).status_code == 200
        assert time.perf_counter() - t0 >= 10000 / 20000

        state = http.delete(proxy.url + "/admin/faults", headers=admin).json()
        assert state["active"] is False and state["faults"]["bandwidth_bps"] == 0

        http.post(proxy.url + "/admin/faults", json={"reset_rate": 1}, headers=admin)
        with CaptionClient(proxy.url, timeout=5) as c:
            assert c.caption(png).outcome == "connection_error"
        http.post(proxy.url + "/admin/faults", json={"reset_rate": 0, "hang_rate": 1}, headers=admin)
        with CaptionClient(proxy.url, timeout=0.3) as c:
            assert c.caption(png).outcome == "timeout"
        assert proxy.counts["resets"] == 1 and proxy.counts["hangs"] == 1


def test_fault_proxy_answers_502_when_the_upstream_is_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with FaultProxy(f"http://127.0.0.1:{port}") as proxy:
        r = httpx.post(proxy.url + "/v1/caption", content=b"x", timeout=5)
        assert r.status_code == 502 and r.json()["error"]["code"] == "bad_gateway"
    assert ProxyFaults().with_updates({"seed": 3}).active is False


# -- scenarios, launcher and CLI checks ---------------------------------------------------------------


def test_every_scenario_is_listed_and_resolvable() -> None:
    names = available_scenarios()
    expected = {
        "steady",
        "step",
        "spike",
        "soak",
        "poisson",
        "sweep",
        "latency_injection",
        "error_burst",
        "hang",
        "restart",
        "cold_start",
        "high_res",
        "bad_inputs",
        "overflow",
    }
    assert expected <= set(names) and all(names[n] for n in expected)
    path = resolve_scenario("steady")
    run = LoadRun("steady", Path("/tmp/x"), "http://h:1", 5.0, 3, None, 2, options={"seed": 4, "api_key": None})
    argv = locust_argv(run, path, "master", 5599)
    assert argv[:2] == ["-f", str(path)] and "--seed=4" in argv and not any("api-key" in a for a in argv)
    # credentials go in the processes' environment, never on a command line `ps` shows
    run = replace(run, options={"seed": 4, "api_key": "k-123", "admin_token": "t-456"})
    for role in ("master", "worker", "local"):
        each = locust_argv(run, path, role, 5599)
        assert not any("k-123" in a or "t-456" in a for a in each), each
    assert secret_env(run) == {"HARNESS_API_KEY": "k-123", "HARNESS_ADMIN_TOKEN": "t-456"}
    assert argv[argv.index("--expect-workers") + 1] == "2" and argv[argv.index("--duration") + 1] == "5"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenario", "nope", "--target", "http://x", "--out", "{tmp}/o"], "unknown scenario 'nope'"),
        (["--scenario", "steady", "--out", "{tmp}/o"], "--target URL is required"),
        (["--scenario", "steady", "--target", "ftp://x", "--out", "{tmp}/o"], "http:// or https://"),
        (["--scenario", "steady", "--target", "http://x"], "--out DIR is required"),
        (["--scenario", "steady", "--target", "http://x", "--out", "{tmp}/o", "--users", "0"], "--users must be"),
        (["--scenario", "steady", "--target", "http://x", "--out", "{tmp}/o", "--dataset", "{tmp}/none"], "not found"),
        (["--scenario", "steady", "--target", "http://x", "--out", "{tmp}/full"], "already holds records.jsonl"),
    ],
)
def test_cli_usage_errors_are_one_line(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "records.jsonl").write_text("")
    code = cli_main(["load", *[a.replace("{tmp}", str(tmp_path)) for a in args]])
    err = capsys.readouterr().err
    assert code in (64, 66) and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_rejects_users_with_rate(capsys) -> None:
    assert cli_main(["load", "--scenario", "steady", "--target", "http://x", "--users", "2", "--rate", "3"]) == 64
    assert "--users and --rate go one at a time" in capsys.readouterr().err
