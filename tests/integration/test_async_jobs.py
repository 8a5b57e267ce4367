"""Asynchronous captioning end to end: the job routes of the reference server, the async load
scenario's pipeline figures against the server's own metrics, and the pipeline lag SLI from the
records (exact on constructed ones) and from a real Prometheus scraping the same server."""

import http.server
import io
import json
import socket
import threading
import time

import httpx
import pandas as pd
import pytest

from harness.datasets import shapes_sample
from harness.records import COLUMNS, load_records
from harness.slo import evaluate_records, generate_rules, parse_spec, render_markdown
from harness.slo.job_figures import MISSING_EXPIRED, MISSING_PENDING, gate_figures, pipeline_figures
from metrics_text import sample_value, scrape
from reference_model.server.jobs import callback_allowed
from reference_model.server.metrics import LAG_BUCKETS

TOKEN = "async-admin"
JOB_QUEUE = 10
TTL_S = 3.0
SPEC = """
service: captioner
slos:
  - {name: lag-1s, sli: lag, threshold: 1.0, objective: 0.9}
  - {name: coverage, sli: coverage, objective: 0.9}
"""


def _png(seed: int = 5) -> bytes:
    buf = io.BytesIO()
    shapes_sample(3, seed=seed).image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def jobs_server():
    pytest.importorskip("torch")
    from reference_model.server.launch import start_server

    args = ["--enable-faults", "--job-queue", str(JOB_QUEUE), "--job-ttl-s", str(TTL_S), "--max-batch", "4"]
    with start_server("tiny", admin_token=TOKEN, extra_args=args) as srv:
        yield srv


def _jobs_metrics(url: str) -> dict[str, float]:
    samples = scrape(url)
    out = {
        s: sample_value(samples, "caption_jobs_total", state=s) or 0.0
        for s in ("submitted", "done", "failed", "expired", "rejected")
    }
    out["pending"] = sample_value(samples, "caption_jobs_pending") or 0.0
    for r in ("delivered", "refused", "failed", "skipped"):
        out[f"callback_{r}"] = sample_value(samples, "caption_job_callbacks_total", result=r) or 0.0
    for b in LAG_BUCKETS:
        out[f"le={b}"] = sample_value(samples, "caption_job_lag_seconds_bucket", le=str(float(b))) or 0.0
    return out


def _delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in after}


def _faults(url: str, **spec):
    r = httpx.post(url + "/admin/faults", json=spec, headers={"X-Admin-Token": TOKEN})
    assert r.status_code == 200, r.text


def _clear(url: str):
    assert httpx.delete(url + "/admin/faults", headers={"X-Admin-Token": TOKEN}).status_code == 200


def _poll(client: httpx.Client, url: str, location: str, limit_s: float = 20.0) -> dict:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        doc = client.get(url + location).json()
        if doc["status"] != "pending":
            return doc
        time.sleep(0.05)
    raise AssertionError(f"job {location} still pending after {limit_s} s")


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((self.path, json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_async_route_answers_the_sync_document_and_calls_back(jobs_server):
    url, png = jobs_server.url, _png()
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    before = _jobs_metrics(url)
    try:
        with httpx.Client(timeout=30) as c:
            callback = f"http://127.0.0.1:{receiver.server_address[1]}/hook?x=1"
            r = c.post(
                url + "/v1/caption:async",
                params={"callback": callback},
                content=png,
                headers={"Content-Type": "image/png", "X-Request-Id": "job-1"},
            )
            assert r.status_code == 202 and r.headers["x-request-id"] == "job-1"
            doc = r.json()
            assert r.headers["location"] == f"/v1/jobs/{doc['job_id']}" and doc["status"] == "pending"
            done = _poll(c, url, r.headers["location"])
            sync = c.post(
                url + "/v1/caption", content=png, headers={"Content-Type": "image/png", "X-Request-Id": "sync-1"}
            ).json()
            assert done["status"] == "done" and done["lag_s"] > 0 and done["finished_at"] >= done["submitted_at"]
            result = done["result"]
            assert set(result) == set(sync)
            drop = {"request_id", "server_latency_ms"}
            assert {k: v for k, v in result.items() if k not in drop} == {
                k: v for k, v in sync.items() if k not in drop
            }
            assert result["request_id"] == "job-1"
            deadline = time.monotonic() + 10
            while not _Receiver.got and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _Receiver.got == [("/hook?x=1", done)]
            # a callback to a port nobody listens on: the job is done, the callback counted as failed
            with socket.socket() as closed:
                closed.bind(("127.0.0.1", 0))
                dead = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
            r2 = c.post(
                url + "/v1/caption:async",
                params={"callback": dead},
                content=png,
                headers={"Content-Type": "image/png", "X-Request-Id": "job-2"},
            )
            assert _poll(c, url, r2.headers["location"])["status"] == "done"
            deadline = time.monotonic() + 10
            while _delta(_jobs_metrics(url), before)["callback_failed"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            # refusals: a callback host off the allow list, a bad image, an unknown job
            far = c.post(
                url + "/v1/caption:async",
                params={"callback": "http://169.254.169.254/x"},
                content=png,
                headers={"Content-Type": "image/png"},
            )
            assert far.status_code == 400 and far.json()["error"]["code"] == "callback_not_allowed"
            bad = c.post(url + "/v1/caption:async", content=b"not an image", headers={"Content-Type": "image/png"})
            assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_image"
            assert c.get(url + "/v1/jobs/nope").status_code == 404
    finally:
        receiver.shutdown()
    d = _delta(_jobs_metrics(url), before)
    assert (d["submitted"], d["done"], d["rejected"], d["pending"]) == (2, 2, 0, 0)
    assert (d["callback_delivered"], d["callback_refused"], d["callback_failed"], d["callback_skipped"]) == (1, 0, 1, 0)


def test_callback_allow_list():
    assert callback_allowed("http://127.0.0.1:9/x") is None
    assert callback_allowed("https://localhost/x") is None
    assert callback_allowed("http://[::1]:8080/") is None
    assert callback_allowed("http://hooks.internal/x", ("hooks.internal",)) is None
    for url in (
        "http://10.0.0.1/x",
        "http://example.com/",
        "ftp://127.0.0.1/",
        "http://u:p@127.0.0.1/",
        "http://127.0.0.1:99999/",
        "/relative",
    ):
        assert callback_allowed(url) is not None, url


def test_full_queue_answers_429_and_unworked_jobs_expire(jobs_server):
    url, png = jobs_server.url, _png()
    before = _jobs_metrics(url)
    _faults(url, stall_s=TTL_S + 1.0)
    try:
        with httpx.Client(timeout=30) as c:
            answers = [
                c.post(url + "/v1/caption:async", content=png, headers={"Content-Type": "image/png"})
                for _ in range(JOB_QUEUE + 2)
            ]
            assert [a.status_code for a in answers] == [202] * JOB_QUEUE + [429, 429]
            assert int(answers[-1].headers["retry-after"]) >= 1
            assert answers[-1].json()["error"]["code"] == "queue_full"
            docs = [_poll(c, url, a.headers["location"], 10) for a in answers[:JOB_QUEUE]]
    finally:
        _clear(url)
    assert {d["status"] for d in docs} == {"expired"}
    d = _delta(_jobs_metrics(url), before)
    assert (d["submitted"], d["expired"], d["rejected"], d["done"], d["pending"]) == (JOB_QUEUE, JOB_QUEUE, 2, 0, 0)


def test_backfill_scenario_counts_missing_captions_as_the_server_does(jobs_server, tmp_path):
    """A burst over the job queue while the worker is stalled, with a share of the jobs dropped:
    the summary's refused, expired and done jobs and its lag distribution are the server's
    counts exactly (and the numbers the queue bound and the seeded drops give)."""
    from harness.load.launch import LoadRun, run_load
    from reference_model.server.faults import FaultInjector

    burst, url = 16, jobs_server.url
    draws = FaultInjector()
    draws.update({"drop_rate": 0.3, "seed": 4})
    dropped = sum(draws.draw_drop() for _ in range(JOB_QUEUE))
    assert 0 < dropped < JOB_QUEUE
    before = _jobs_metrics(url)
    _faults(url, stall_s=60, drop_rate=0.3, seed=4)
    run = LoadRun(
        "backfill",
        tmp_path / "run",
        url,
        30,
        burst,
        None,
        options={"seed": 1, "pool_size": 4, "image_size": 64, "request_timeout": 10},
    )
    done: list = []
    loader = threading.Thread(target=lambda: done.append(run_load(run)))
    loader.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the whole burst is in (queued or refused): unstall
            d = _delta(_jobs_metrics(url), before)
            if d["submitted"] + d["rejected"] >= burst:
                break
            time.sleep(0.1)
    finally:
        _clear(url)
        loader.join(60)
    outcome = done[0]
    assert outcome.returncode == 0 and outcome.summary is not None, outcome.log_tail()
    p = outcome.summary["pipeline"]
    d = _delta(_jobs_metrics(url), before)
    df = load_records(tmp_path / "run")
    assert len(df) == p["jobs"] == burst == d["submitted"] + d["rejected"] == outcome.summary["locust"]["requests"]
    assert p["rejected"] == d["rejected"] == burst - JOB_QUEUE
    assert p["expired"] == d["expired"] == dropped and p["pending"] == 0 and p["failed"] == d["failed"] == 0
    assert p["done"] == d["done"] == JOB_QUEUE - dropped and p["missing"] == p["rejected"] + p["expired"]
    assert outcome.summary["outcomes"]["timeout"] == p["expired"]
    assert (df["error"] == MISSING_EXPIRED).sum() == p["expired"]
    lag = df.loc[df["outcome"] == "ok", "latency_s"]
    for b in LAG_BUCKETS:  # the records' lags are the server's: every histogram bucket agrees
        assert int((lag <= b).sum()) == d[f"le={b}"], b
    assert p["lag_p50_s"] <= p["lag_p95_s"] <= p["lag_p99_s"] <= p["lag_max_s"] == pytest.approx(lag.max())
    t = df["t_start"]
    ok = df["outcome"] == "ok"
    assert p["drain_s"] == pytest.approx((t[ok] + df.loc[ok, "latency_s"]).max() - t.min(), abs=1e-5)
    assert p["drained"] is False


def _record(
    i: int, t: float, latency: float, status: int, outcome: str, caption: str | None = None, error: str | None = None
) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(
        run_id="r",
        target="t",
        scenario="backfill",
        request_id=f"q{i}",
        t_start=t,
        latency_s=latency,
        status=status,
        outcome=outcome,
        caption=caption,
        error=error,
    )
    return row


def test_lag_sli_is_exact_on_constructed_records():
    rows = [
        _record(0, 100.0, 0.4, 200, "ok", "a cat"),  # good
        _record(1, 100.5, 1.0, 200, "ok", "a dog"),  # good: at the threshold
        _record(2, 101.0, 1.5, 200, "ok", "a cow"),  # too late
        _record(3, 101.0, 0.01, 429, "http_error", error="job queue full"),  # refused: missing
        _record(4, 102.0, 1.5, 0, "timeout", error=MISSING_EXPIRED),  # expired: missing
        _record(5, 102.0, 9.0, 0, "timeout", error=MISSING_PENDING),  # never finished: missing
        _record(6, 102.0, 0.2, 500, "http_error", error="job failed: internal: boom"),  # failed
        _record(7, 103.0, 0.01, 400, "http_error", error="invalid image"),  # the client's fault: no job
        _record(8, 103.0, 0.3, 200, "ok", ""),  # an empty caption is no caption
    ]
    df = pd.DataFrame(rows)
    report = evaluate_records(parse_spec(SPEC), df)
    lag, coverage = report.results
    assert (lag.sli.good, lag.sli.total) == (2, 8)
    assert (coverage.sli.good, coverage.sli.total) == (3, 9)
    f = pipeline_figures(df)
    assert {k: f[k] for k in ("jobs", "done", "missing", "rejected", "failed", "expired", "pending")} == {
        "jobs": 8,
        "done": 3,
        "missing": 5,
        "rejected": 1,
        "failed": 2,
        "expired": 1,
        "pending": 1,
    }
    assert f["lag_p50_s"] == 1.0 and f["lag_max_s"] == 1.5 and f["drain_s"] == pytest.approx(102.5 - 100.0)
    assert f["drained"] is False
    assert lag.sli.figures["missing"] == 5
    assert gate_figures(f) == {
        "lag_p50_s": 1.0,
        "lag_p95_s": f["lag_p95_s"],
        "lag_p99_s": f["lag_p99_s"],
        "drain_s": f["drain_s"],
        "missing_captions": 5,
    }
    assert gate_figures(None) == {}
    md = render_markdown(report.to_dict())
    name = parse_spec(SPEC).slos[0].name
    assert f"### {name}: lag figures\n\n| figure | value |\n| --- | --- |\n| jobs | 8 |\n| done | 3 |\n" in md
    assert "| missing | 5 |" in md and "| lag p50 | 1000.0 ms |" in md and "| drain | 2.5 s |" in md
    assert "| drained | no |" in md and "coverage figures" not in md  # a kind without figures adds none


def test_lag_rules_use_the_job_metrics():
    text = generate_rules(parse_spec(SPEC)).to_yaml()
    assert 'caption_jobs_total{state=~"submitted|rejected"}' in text
    assert 'caption_job_lag_seconds_bucket{le="1.0"}' in text


def test_lag_sli_from_prometheus_agrees_with_the_records(jobs_server, tmp_path):
    from harness.records import RecordWriter, RequestRecord
    from harness.slo.prometheus import PrometheusSource
    from prom_fixture import start_prometheus

    spec = parse_spec(SPEC)
    rules = tmp_path / "rules.yml"
    rules.write_text(generate_rules(spec).to_yaml())
    url, png = jobs_server.url, _png(7)
    with start_prometheus([url], [rules]) as prom:
        prom.wait_for('caption_jobs_total{state="submitted"}')
        time.sleep(2.5)  # a scrape of the quiet counters inside the range
        start = time.time()
        time.sleep(1.5)
        writer = RecordWriter(tmp_path / "run")
        _faults(url, drop_rate=0.25, seed=2)
        try:
            with httpx.Client(timeout=30) as c:
                sent = []
                for i in range(12):
                    t0 = time.time()
                    r = c.post(url + "/v1/caption:async", content=png, headers={"Content-Type": "image/png"})
                    sent.append((f"p{i}", t0, r))
                for rid, t0, r in sent:
                    if r.status_code != 202:
                        writer.write(
                            RequestRecord(
                                run_id="p",
                                target="ref",
                                scenario="agreement",
                                request_id=rid,
                                image_id=None,
                                t_start=t0,
                                latency_s=0.0,
                                status=r.status_code,
                                outcome="http_error",
                                error=r.text[:200],
                            )
                        )
                        continue
                    doc = _poll(c, url, r.headers["location"], 10)
                    ok = doc["status"] == "done"
                    writer.write(
                        RequestRecord(
                            run_id="p",
                            target="ref",
                            scenario="agreement",
                            request_id=rid,
                            image_id=None,
                            t_start=t0,
                            latency_s=doc["lag_s"] if ok else TTL_S,
                            status=200 if ok else 0,
                            outcome="ok" if ok else "timeout",
                            error=None if ok else MISSING_EXPIRED,
                            caption=doc["result"]["caption"] if ok else None,
                        )
                    )
        finally:
            _clear(url)
            writer.close()
        time.sleep(3.0)  # the last scrape after the jobs, inside the range
        end = time.time()
        records = load_records(tmp_path / "run")
        from_records = evaluate_records(spec, records).results[0].sli
        from_prom = PrometheusSource(prom.url).evaluate(spec, start, end).results[0].sli
        assert from_records.total == 12 and 0 < from_records.good < 12
        assert from_prom.total == pytest.approx(from_records.total, abs=0.5)
        assert from_prom.good == pytest.approx(from_records.good, abs=0.5)
        ratio = prom.wait_for('slo:sli_error:ratio_rate5m{sloth_slo="lag-1s"}')
        assert 0.0 < float(ratio[0]["value"][1]) < 1.0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--job-queue", "0"], "--job-queue must be at least 1 (got 0)"),
        (["--job-ttl-s", "0"], "--job-ttl-s must be above 0"),
        (["--job-keep-s", "-1"], "--job-keep-s must not be negative"),
        (["--callback-allow", "http://x/"], "--callback-allow takes a host name or IPv4 address, not 'http://x/'"),
    ],
)
def test_job_options_are_checked(args, message, capsys):
    from harness.cli import main

    assert main(["serve", *args]) == 64
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
