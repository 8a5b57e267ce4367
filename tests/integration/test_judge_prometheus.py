"""``harness judge`` on Prometheus scopes (Kayenta's scope): three real reference servers scraped by
a real Prometheus, each with its own ``track`` label: a baseline, an identical canary and a canary
that answers 500 on a fifth of its requests. The judge reads the servers' counters over the window
of the traffic: the flawed canary is rolled back on errors counted exactly, the identical one is
not, and what a scope cannot see (captions, quality, drift, client timeouts) is NoData.

The synthesis of rows from counters is tested first on a stand-in for Prometheus (no server)."""

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from cli_run import run_harness
from harness.canary.judgement import Settings, Source
from harness.canary.metric import JudgeConfig
from harness.canary.prom_scope import PromScope, check_selector, read_prom_side
from harness.errors import UsageError
from harness.resources import example_path
from prom_fixture import free_port, start_prometheus

N = 300  # caption requests sent to each server
ERROR_RATE = 0.2
TRACKS = ("baseline", "twin", "canary")
NOT_SEEN = ("blank_rate", "pii_rate", "degenerate_rate", "unusable_rate", "safety_flag_rate", "timeout_rate")
NOT_SEEN += ("quality", "calibration", "caption_length", "caption_changed", "output_drift")


def _harness(*args):
    return run_harness(*args)


def _one_line(p):
    lines = [line for line in p.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, p.stderr
    return lines[0]


def _scope_args(url, canary_selector='{track="canary"}', baseline_selector='{app="captioner",track="baseline"}'):
    return [
        "judge",
        "--baseline",
        f"prometheus:{url}",
        "--baseline-selector",
        baseline_selector,
        "--canary",
        f"prometheus:{url}",
        "--canary-selector",
        canary_selector,
    ]


def _metrics(rec):
    return {m["name"]: m for m in rec["metrics"]}


# ---------------------------------------------------------------------------- without a server


class _Stand:
    """Answers the queries ``read_prom_side`` makes from fixed counter values at two instants."""

    def __init__(self, before, after, resets=(), increase=None):
        self.before, self.after, self.resets, self.increase = before, after, set(resets), increase or {}

    def _rows(self, values, name):
        return [
            {"metric": {"__name__": name, **dict(k[1])}, "value": [0, str(v)]}
            for k, v in values.items()
            if k[0] == name
        ]

    def query(self, expr, at):
        name = expr.split("(")[-1].split("{")[0] if "(" in expr else expr.split("{")[0]
        if expr.startswith("last_over_time("):
            return self._rows(self.after, name)
        if expr.startswith("resets("):
            return [r for r in self._rows(self.after, name) if r["metric"].get("status") in self.resets]
        if expr.startswith("increase("):
            return self._rows(self.increase, name)
        return self._rows(self.before, name)


def _series(name, values, **labels):
    return {(name, tuple(sorted({**labels, label: k}.items()))): v for label, kv in values.items() for k, v in kv}


def test_a_scope_is_turned_into_one_row_per_request_at_bucket_resolution():
    req, dur, conf = "caption_requests_total", "caption_request_duration_seconds_bucket", "caption_confidence_bucket"
    before = {
        **_series(req, {"status": [("200", 10)]}, model_version="v1"),
        **_series(dur, {"le": [("0.01", 5), ("0.1", 10), ("+Inf", 10)]}),
        **_series(conf, {"le": [("0.5", 4), ("1.0", 10), ("+Inf", 10)]}),
    }
    after = {
        **_series(req, {"status": [("200", 18), ("500", 2), ("499", 1)]}, model_version="v1"),
        **_series(dur, {"le": [("0.01", 7), ("0.1", 19), ("+Inf", 21)]}),
        **_series(conf, {"le": [("0.5", 6), ("1.0", 18), ("+Inf", 18)]}),
    }
    side = read_prom_side(PromScope("http://x", '{track="c"}'), 1000.0, 1060.0, source=_Stand(before, after))
    df = side.load
    assert not side.captions and not side.timeouts and side.evaluation is None
    assert len(df) == 11 and sorted(df["status"].value_counts().items()) == [(0, 1), (200, 8), (500, 2)]
    assert dict(df["outcome"].value_counts()) == {"ok": 8, "http_error": 2, "timeout": 1}
    # 2 requests in the 10 ms bucket, 7 in the 100 ms one, 2 above: placed at 0.1 s (the largest bound)
    assert sorted(df["latency_s"]) == [0.01] * 2 + [0.1] * 9
    ok = df[df["outcome"] == "ok"]
    assert sorted(ok["confidence"]) == [0.5] * 2 + [1.0] * 6 and df["confidence"].isna().sum() == 3
    assert df["caption"].isna().all() and set(df["model_version"]) == {"v1"}
    assert df["t_start"].between(1000.0, 1060.0).all()


def test_a_reset_counter_is_read_with_increase_rounded_to_whole_requests():
    req = "caption_requests_total"
    dur = "caption_request_duration_seconds_bucket"
    before = _series(req, {"status": [("200", 50)]})
    after = {**_series(req, {"status": [("200", 4)]}), **_series(dur, {"le": [("0.01", 6), ("+Inf", 6)]})}
    stand = _Stand(before, after, resets={"200"}, increase=_series(req, {"status": [("200", 5.6)]}))
    side = read_prom_side(PromScope("http://x", '{track="c"}'), 0.0, 60.0, source=stand)
    assert len(side.load) == 6 and (side.load["latency_s"] == 0.01).all()


def test_a_selector_with_no_series_is_a_side_with_no_records():
    side = read_prom_side(PromScope("http://x", '{track="none"}'), 0.0, 60.0, source=_Stand({}, {}))
    assert side.load is None and side.evaluation is None


@pytest.mark.parametrize("good", ['{track="canary"}', '{app="captioner", track=~"can.*",}', '{ a != "x\\"y" }'])
def test_good_selectors(good):
    assert check_selector(good) == good.strip()


@pytest.mark.parametrize("bad", ["track=canary", "{track=canary}", "{}", '{track="a"', '{__name__="x"}', ""])
def test_bad_selectors_are_a_usage_error_naming_the_option(bad):
    with pytest.raises(UsageError, match="^--canary-selector: "):
        check_selector(bad, "--canary-selector")


def test_a_malformed_selector_exits_64_with_one_line(tmp_path):
    args = _scope_args("http://127.0.0.1:9", canary_selector="track=canary")
    p = _harness(*args, "--since", "now-5m", "--out", tmp_path / "r")
    assert p.returncode == 64 and "--canary-selector" in _one_line(p)


def test_a_scope_without_a_window_exits_64_with_one_line(tmp_path):
    p = _harness(*_scope_args("http://127.0.0.1:9"), "--out", tmp_path / "r")
    assert p.returncode == 64 and "needs --since" in _one_line(p)


def test_prometheus_on_a_closed_port_exits_69_with_one_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    p = _harness(*_scope_args(url), "--since", "now-5m", "--out", tmp_path / "r")
    assert p.returncode == 69, p.stderr
    assert url in _one_line(p) and 'track="baseline"}' in _one_line(p)


def test_prometheus_down_is_a_hold_look_in_an_analysis(tmp_path):
    from harness.canary.analysis import AnalysisPlan, run_analysis

    url = f"prometheus:http://127.0.0.1:{free_port()}"
    now = time.time()
    plan = AnalysisPlan(60.0, 60.0, now - 120.0, 0.02)
    src = [Source(url, selector=f'{{track="{t}"}}') for t in ("baseline", "canary")]
    rec = run_analysis(*src, tmp_path, Settings(example_path("slo.yaml"), JudgeConfig()), plan, run_id="t")
    assert rec["verdict"] == "HOLD" and any("could not be read" in r for r in rec["reasons"])


# ---------------------------------------------------------------------------- real servers


def _png():
    from harness.datasets import generate_shapes

    buf = io.BytesIO()
    next(iter(generate_shapes(1, 3, None, 64))).image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def scopes():
    """Three reference servers scraped by one Prometheus, N caption requests sent to each at once;
    the traffic's window and the statuses each server answered."""
    pytest.importorskip("torch")
    import httpx

    from reference_model.server.launch import start_server

    faults = ["--enable-faults", "--faults", json.dumps({"error_rate": ERROR_RATE, "seed": 7})]
    with ExitStack() as st:
        servers = {
            t: st.enter_context(
                start_server("tiny", admin_token="t", extra_args=["--threads", "1", *(faults if t == "canary" else [])])
            )
            for t in TRACKS
        }
        prom = st.enter_context(start_prometheus({s.url: {"app": "captioner", "track": t} for t, s in servers.items()}))
        prom.wait_for("count(up == 1) == 3")
        since = time.time()
        body = _png()
        jobs = [(t, i) for i in range(N) for t in TRACKS]  # interleaved: the servers see the same load
        with httpx.Client(timeout=10) as client:

            def send(job):
                r = client.post(
                    servers[job[0]].url + "/v1/caption", content=body, headers={"Content-Type": "image/png"}
                )
                return job[0], r.status_code

            with ThreadPoolExecutor(6) as pool:
                sent = list(pool.map(send, jobs, timeout=60))
        statuses = {t: [s for tt, s in sent if tt == t] for t in TRACKS}
        for t in TRACKS:  # the last scrape after the traffic
            prom.wait_for(f'sum(caption_requests_total{{track="{t}"}}) == {N}')
            prom.wait_for(f'sum(caption_request_duration_seconds_count{{track="{t}"}}) == {N}')
            prom.wait_for(f'sum(caption_confidence_count{{track="{t}"}}) == {statuses[t].count(200)}')
        yield prom, since, time.time(), statuses


@pytest.mark.slow
def test_a_canary_that_fails_a_fifth_of_its_requests_is_rolled_back_on_exact_counts(scopes, tmp_path):
    prom, since, until, statuses = scopes
    assert 0.1 < statuses["canary"].count(500) / N < 0.3 and set(statuses["baseline"]) == {200}
    p = _harness(*_scope_args(prom.url), "--since", since - 1, "--until", until, "--out", tmp_path, "--json")
    assert p.returncode == 1, p.stderr[-3000:]
    rec = json.loads(p.stdout)
    m = _metrics(rec)
    err = m["error_rate"]
    assert err["classification"] == "High" and err["n_canary"] == N and err["n_baseline"] == N
    for name in ("latency_p50", "latency_p95", "latency_p99", "confidence", "goodput"):
        assert m[name]["classification"] != "NoData", m[name]
        assert m[name]["n_canary"] == (N if name == "goodput" else statuses["canary"].count(200))
    for name in NOT_SEEN:
        assert m[name]["classification"] == "NoData", m[name]
    assert {s["name"] for s in rec["slos"]} == {"availability", "latency-500ms"}
    assert rec["inputs"]["targets"]["canary"]["url"].startswith(f'prometheus:{prom.url} {{track="canary"}}')
    assert rec["figures"]["canary"]["coverage"] is None and rec["figures"]["canary"]["requests"] == N


@pytest.mark.slow
def test_an_identical_canary_is_not_rolled_back(scopes, tmp_path):
    prom, since, until, _ = scopes
    args = _scope_args(prom.url, canary_selector='{track="twin"}')
    p = _harness(*args, "--since", since - 1, "--until", until, "--out", tmp_path, "--json")
    assert p.returncode in (0, 2), p.stderr[-3000:]
    m = _metrics(json.loads(p.stdout))
    assert m["error_rate"]["classification"] == "Pass" and m["error_rate"]["n_canary"] == N
    assert m["blank_rate"]["classification"] == "NoData" and m["quality"]["classification"] == "NoData"


@pytest.mark.slow
def test_a_selector_that_matches_nothing_exits_66_with_one_line(scopes, tmp_path):
    prom, since, until, _ = scopes
    args = _scope_args(prom.url, canary_selector='{track="nowhere"}')
    p = _harness(*args, "--since", since - 1, "--until", until, "--out", tmp_path)
    assert p.returncode == 66, p.stderr
    line = _one_line(p)
    assert "--canary" in line and prom.url in line and '{track="nowhere"}' in line


@pytest.mark.slow
def test_a_look_whose_scope_has_no_series_yet_holds(scopes, tmp_path):
    from harness.canary.analysis import AnalysisPlan, run_analysis

    prom, since, until, _ = scopes
    plan = AnalysisPlan(until - since + 1, until - since + 1, since - 1, 0.02)
    src = [Source(f"prometheus:{prom.url}", selector=f'{{track="{t}"}}') for t in ("baseline", "nowhere")]
    rec = run_analysis(*src, tmp_path, Settings(example_path("slo.yaml"), JudgeConfig()), plan, run_id="t")
    assert rec["verdict"] == "HOLD" and any("canary: no records in" in r for r in rec["reasons"])
