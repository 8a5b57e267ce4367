"""The traffic-splitting proxy on loopback, in front of real servers (the reference server, fixed-answer
servers, the fault proxy): each request goes where the seeded draw says, each captioning request is one
record with the upstream's name as its target, and upstream failures are recorded, never fatal."""

import http.client
import io
import json
import random
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pandas as pd
import pytest
from PIL import Image

from harness.load.calibration import CONTRACT_V1_BODY, FixedResponseServer
from harness.load.proxy import FaultProxy
from harness.load.split import SplitProxy, main, resolve_weights
from harness.records import COLUMNS, RECORDS_JSONL, load_records

N = 500
SEED = 1
PNG = {"Content-Type": "image/png"}


def _png(i: int, side: int = 16) -> bytes:
    img = Image.new("RGB", (side, side), ((37 * i) % 256, (91 * i) % 256, (13 * i) % 256))
    img.putpixel((i % side, (i // side) % side), (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _draws(weights: dict[str, float], n: int, seed: int = SEED, skip: int = 0) -> list[str]:
    """The upstreams the proxy's stream picks for requests skip..skip+n-1 (names in order, cumulative)."""
    rng = random.Random(f"{seed}:split")
    for _ in range(skip):
        rng.random()
    out = []
    for _ in range(n):
        x, acc = rng.random(), 0.0
        for name, w in weights.items():
            acc += w
            if x < acc:
                out.append(name)
                break
    return out


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _line_seen(path, field: str, value: str, within_s: float) -> float | None:
    """Seconds until a line of ``path`` has ``field`` = ``value`` (None: not within ``within_s``)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < within_s:
        if path.exists() and f'"{field}":"{value}"' in path.read_text():
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


def _headers(i: int) -> dict[str, str]:
    """Most requests name themselves and their image; every tenth names only its image (the id is the
    one the upstream echoes), and those ending in 5 only themselves."""
    if i % 10 == 0:
        return {**PNG, "X-Image-Id": f"anon-{i}"}
    if i % 10 == 5:
        return {**PNG, "X-Request-Id": f"req-{i}"}
    return {**PNG, "X-Request-Id": f"req-{i}", "X-Image-Id": f"img-{i % 50}"}


@pytest.fixture(scope="module")
def split_run(reference_server, tmp_path_factory):
    """500 captioning requests through a 0.8/0.2 split of the reference server (stable) and a
    fixed-answer server (canary), on four keep-alive connections, between two probes before and
    two after (so the probes take draws 0, 1 and N + 2, N + 3 of the stream)."""
    out = tmp_path_factory.mktemp("split")
    with (
        FixedResponseServer() as canary,
        SplitProxy({"stable": reference_server.url, "canary": canary.url}, {"canary": 0.2}, out, seed=SEED) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):

        def post(i: int):
            body = _png(i)
            t0 = time.time()
            r = client.post("/v1/caption", content=body, headers=_headers(i))
            return i, len(body), t0, time.time(), r

        probes = [client.get("/healthz"), client.get("/readyz")]
        sent = [post(0)]
        first_seen = _line_seen(out / RECORDS_JSONL, "image_id", "anon-0", 1.0)
        with ThreadPoolExecutor(4) as pool:
            sent += list(pool.map(post, range(1, N)))
        probes += [client.get("/v1/model"), client.get("/healthz")]
        counts = dict(proxy.counts)
    return {"out": out, "sent": sent, "probes": probes, "counts": counts, "first_seen": first_seen}


@pytest.mark.slow
def test_requests_go_where_the_seeded_draw_says(split_run) -> None:
    expected = _draws({"stable": 0.8, "canary": 0.2}, N + 4)
    answers = [r for *_, r in split_run["sent"]]
    probes = [r.headers["x-upstream"] for r in split_run["probes"]]
    assert probes == expected[:2] + expected[-2:]  # the probes draw too, in arrival order
    assert answers[0].headers["x-upstream"] == expected[2]
    targets = [r.headers["x-upstream"] for r in answers]
    assert targets.count("canary") == expected[2 : N + 2].count("canary")  # exactly the seeded draw
    assert 60 < targets.count("canary") < 140
    assert split_run["counts"] == {"stable": expected.count("stable"), "canary": expected.count("canary")}
    for r in answers:  # each answer came from the upstream the header names
        assert r.status_code == 200
        assert (r.json()["model_version"] == "fixed-1") == (r.headers["x-upstream"] == "canary")
    df = load_records(split_run["out"])
    by_image = dict(zip(df["image_id"], df["target"]))
    by_rid = dict(zip(df["request_id"], df["target"]))
    for i, *_, r in split_run["sent"]:  # the record names the upstream the client was told
        target = by_image[f"anon-{i}"] if i % 10 == 0 else by_rid[f"req-{i}"]
        assert target == r.headers["x-upstream"]


@pytest.mark.slow
def test_each_request_draws_once_in_arrival_order(tmp_path) -> None:
    probes = {0: "/healthz", 50: "/readyz", 120: "/v1/model", 200: "/metrics"}  # before request i
    weights = {"stable": 0.7, "canary": 0.3}
    got = []
    with (
        FixedResponseServer() as a,
        FixedResponseServer() as b,
        SplitProxy({"stable": a.url, "canary": b.url}, {"canary": 0.3}, tmp_path, seed=7) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        for i in range(201):
            if i in probes:
                got.append(client.get(probes[i]).headers["x-upstream"])
            if i < 200:
                got.append(client.post("/v1/caption", content=_png(i), headers=PNG).headers["x-upstream"])
    assert got == _draws(weights, 204, seed=7)
    assert (a.answered, b.answered) == (got.count("stable"), got.count("canary"))
    at = {i + k for k, i in enumerate(sorted(probes))}  # where the probes fall among the 204 requests
    recorded = [t for j, t in enumerate(got) if j not in at]
    assert list(load_records(tmp_path)["target"]) == recorded and proxy.recorded == 200


@pytest.mark.slow
def test_one_record_per_caption_request_as_the_client_saw_it(split_run) -> None:
    df = load_records(split_run["out"])
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert len(df) == N  # the probes are not recorded
    assert split_run["first_seen"] is not None and split_run["first_seen"] < 1.0  # readable at once
    assert all(p.status_code == 200 for p in split_run["probes"])
    canary_body = json.loads(CONTRACT_V1_BODY)
    rows = df.to_dict("records")
    anon = {row["image_id"]: row for row in rows if str(row["image_id"]).startswith("anon-")}
    named = {row["request_id"]: row for row in rows if str(row["request_id"]).startswith("req-")}
    assert len(anon) + len(named) == N
    for i, size, t0, t1, r in split_run["sent"]:
        doc = r.json()
        row = anon[f"anon-{i}"] if i % 10 == 0 else named[f"req-{i}"]
        assert (row["run_id"], row["scenario"], row["target"]) == ("production", "production", r.headers["x-upstream"])
        assert (row["outcome"], row["status"]) == ("ok", 200) and pd.isna(row["error"])
        assert (row["caption"], row["confidence"]) == (doc["caption"], doc["confidence"])
        assert row["model_version"] == doc["model_version"]
        assert row["safety_flagged"] == doc["safety"]["flagged"]
        assert row["image_bytes"] == size
        if i % 10 == 0:  # the id the upstream echoed
            assert row["request_id"] == r.headers.get("x-request-id", doc["request_id"])
        elif i % 10 == 5:
            assert pd.isna(row["image_id"])
        else:
            assert row["image_id"] == f"img-{i % 50}"
        assert t0 - 0.01 <= row["t_start"] <= t1
        assert 0 < row["latency_s"] <= (t1 - t0) + 0.01
        if row["target"] == "canary":
            assert (row["caption"], row["model_version"]) == (canary_body["caption"], "fixed-1")


@pytest.mark.slow
def test_client_connections_are_kept_alive(reference_server) -> None:
    with (
        FixedResponseServer() as other,
        SplitProxy({"stable": reference_server.url, "canary": other.url}, {"stable": 0.5}, None) as proxy,
    ):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            seen = []
            for i in range(4):
                conn.request("POST", "/v1/caption", body=_png(i), headers={"Content-Type": "image/png"})
                r = conn.getresponse()
                r.read()
                assert r.status == 200 and r.getheader("connection") is None
                seen.append(conn.sock)
        finally:
            conn.close()
    assert all(s is seen[0] for s in seen) and sum(proxy.counts.values()) == 4


@pytest.mark.slow
def test_upstream_failures_are_recorded_and_the_proxy_stays_up(reference_server, tmp_path) -> None:
    weights = {"stable": 0.25, "erring": 0.25, "hanging": 0.25, "dead": 0.25}
    n1, n2 = 16, 8
    plan = _draws(weights, n1 + n2)
    assert set(plan[:n1]) == set(weights) and "stable" in plan[n1:]  # every kind is exercised
    with (
        FaultProxy(reference_server.url, faults={"status_code": 502, "status_rate": 1.0}, seed=SEED) as erring,
        FaultProxy(reference_server.url, faults={"hang_rate": 1.0}, seed=SEED) as hanging,
        SplitProxy(
            {
                "stable": reference_server.url,
                "erring": erring.url,
                "hanging": hanging.url,
                "dead": f"http://127.0.0.1:{_closed_port()}",
            },
            weights,
            tmp_path,
            seed=SEED,
            timeout_s=1,
        ) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):

        def post(i: int):
            t0 = time.perf_counter()
            r = client.post("/v1/caption", content=_png(i), headers={"X-Request-Id": f"f-{i}", **PNG})
            return r, time.perf_counter() - t0

        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(post, range(n1)))
            later = list(pool.map(post, range(n1, n1 + n2)))  # after the failures
        assert hanging.counts["hangs"] == (plan.count("hanging"))
        assert erring.counts["statuses"] == plan.count("erring")
    status = {"stable": 200, "erring": 502, "hanging": 504, "dead": 502}
    for r, took in first + later:
        target = r.headers["x-upstream"]
        assert r.status_code == status[target], (target, r.text)
        if target == "hanging":
            assert 1.0 <= took < 3.0 and r.json()["error"]["code"] == "upstream_timeout"
        if target == "dead":
            assert r.json()["error"]["code"] == "bad_gateway"
        if target == "erring":
            assert r.json()["error"]["code"] == "injected_status"
    assert sorted(r.headers["x-upstream"] for r, _ in first + later) == sorted(plan)
    assert [r.status_code for r, _ in later if r.headers["x-upstream"] == "stable"]  # still answering
    df = load_records(tmp_path)
    assert len(df) == n1 + n2 and sorted(df["request_id"]) == sorted(f"f-{i}" for i in range(n1 + n2))
    expected = {
        "stable": ("ok", 200),
        "erring": ("http_error", 502),
        "hanging": ("timeout", 0),
        "dead": ("connection_error", 0),
    }
    for row in df.to_dict("records"):
        assert (row["outcome"], row["status"]) == expected[row["target"]], row
        if row["target"] == "stable":
            assert row["caption"] and pd.isna(row["error"])
        else:
            assert pd.isna(row["caption"]) and row["error"]
        if row["target"] == "hanging":
            assert 1.0 <= row["latency_s"] < 2.0
        if row["target"] == "erring":
            assert row["error"].startswith("HTTP 502: injected_status")
    assert proxy.counts == {k: plan.count(k) for k in weights}


@pytest.mark.slow
def test_an_answer_that_is_not_a_caption_is_invalid_response(tmp_path) -> None:
    with (
        FixedResponseServer(body=b'{"caption": 7}') as bad,
        FixedResponseServer(garbage=True) as garbage,
        SplitProxy({"bad": bad.url, "garbage": garbage.url}, {"bad": 0.5}, tmp_path, seed=SEED) as proxy,
        httpx.Client(base_url=proxy.url, timeout=10) as client,
    ):
        answers = [client.post("/v1/caption", content=_png(i), headers=PNG) for i in range(8)]
    assert {r.headers["x-upstream"] for r in answers} == {"bad", "garbage"}
    for r in answers:
        assert r.status_code == (200 if r.headers["x-upstream"] == "bad" else 502)
    df = load_records(tmp_path)
    assert set(df["outcome"]) == {"invalid_response"}
    assert set(zip(df["target"], df["status"])) == {("bad", 200), ("garbage", 0)}
    assert proxy.recorded == 8


@pytest.mark.slow
def test_the_module_runs_alone(tmp_path) -> None:
    with FixedResponseServer() as a, FixedResponseServer() as b:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.load.split",
                "--upstream",
                f"stable={a.url}",
                "--upstream",
                f"canary={b.url}",
                "--weight",
                "canary=0.2",
                "--records",
                str(tmp_path),
                "--port",
                "0",
                "--seed",
                str(SEED),
            ],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            line = proc.stdout.readline().strip()
            assert line.startswith("listening on http://127.0.0.1:"), line
            url = line.split()[-1]
            with httpx.Client(base_url=url, timeout=10) as client:
                targets = [
                    client.post("/v1/caption", content=_png(i), headers={"X-Request-Id": f"c-{i}", **PNG}).headers[
                        "x-upstream"
                    ]
                    for i in range(20)
                ]
            assert targets == _draws({"stable": 0.8, "canary": 0.2}, 20)
            assert _line_seen(tmp_path / RECORDS_JSONL, "request_id", "c-19", 1.0) is not None
        finally:
            proc.terminate()
            assert proc.wait(10) == 0
            proc.stdout.close()
    df = load_records(tmp_path)
    assert list(df["target"]) == targets and set(df["outcome"]) == {"ok"}


def test_bad_weights_are_refused_in_one_line() -> None:
    ups = {"stable": "http://127.0.0.1:9", "canary": "http://127.0.0.1:10"}
    cases = [
        ({"stable": 0.8, "canary": 0.1}, "must sum to 1"),
        ({"stable": 0.8, "canary": 0.3}, "must sum to 1"),
        ({"canary": 1.2}, "between 0 and 1"),
        ({"canary": -0.1}, "between 0 and 1"),
        ({"canary": float("nan")}, "between 0 and 1"),
        ({"canary": True}, "between 0 and 1"),
        ({"canary": "0.2"}, "between 0 and 1"),
        ({"other": 0.2}, "unknown upstream 'other'"),
        ({}, "at most one may take the remainder"),
    ]
    for weights, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            SplitProxy(ups, weights, None)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="nothing is left"):
        resolve_weights(["a", "b", "c"], {"a": 0.7, "b": 0.7})
    assert resolve_weights(["stable", "canary"], {"canary": 0.2}) == {"stable": 0.8, "canary": 0.2}
    assert resolve_weights(["a", "b"], {"a": 0.3, "b": 0.7 + 5e-10}) == {"a": 0.3, "b": 0.7 + 5e-10}
    with pytest.raises(ValueError, match="http:// URL"):
        SplitProxy({"stable": "https://example.com"}, {}, None)
    with pytest.raises(ValueError, match="upstream name"):
        SplitProxy({"bad name": "http://127.0.0.1:9"}, {}, None)
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        SplitProxy({"stable": "http://127.0.0.1:9"}, {}, None, timeout_s=0)
    proxy = SplitProxy({"only": "http://127.0.0.1:9"}, {}, None)
    assert proxy.weights == {"only": 1.0} and proxy.counts == {"only": 0}


def test_the_cli_refuses_bad_arguments_in_one_line(capsys, tmp_path) -> None:
    up = ["--upstream", "stable=http://127.0.0.1:9", "--upstream", "canary=http://127.0.0.1:10"]
    cases = [
        (up + ["--weight", "canary=1.5"], "weight of canary must be a number between 0 and 1"),
        (up + ["--weight", "canary=0.5", "--weight", "stable=0.6"], "weights must sum to 1"),
        (up + ["--weight", "canary=lots"], "--weight canary=lots: not a number"),
        (up + ["--weight", "nobody=0.1"], "unknown upstream 'nobody'"),
        (up, "at most one may take the remainder"),
        (["--upstream", "stable"], "--upstream takes NAME=VALUE"),
        (["--upstream", "a=http://127.0.0.1:9", "--upstream", "a=http://127.0.0.1:10"], "--upstream a given twice"),
        (["--upstream", "a=ftp://x"], "must be an http:// URL"),
        (up + ["--weight", "canary=0.2", "--timeout", "0"], "timeout_s must be positive"),
        (up + ["--weight", "canary=0.2", "--port", "70000"], "port must be a whole number"),
        ([], "the following arguments are required: --upstream"),
        (up + ["--weight", "canary=0.2", "--seed", "x"], "argument --seed: invalid int value"),
        (up + ["--weight", "canary=0.2", "--records", str(tmp_path / "f.txt" / "x")], "records: cannot write"),
    ]
    (tmp_path / "f.txt").write_text("a file, not a folder")
    for argv, message in cases:
        assert main(argv) == 64, argv
        captured = capsys.readouterr()
        assert captured.out == ""
        err = captured.err
        assert err.count("\n") == 1 and err.startswith("harness.load.split: error: "), err
        assert message in err, (message, err)
