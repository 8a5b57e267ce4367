"""SLIs from a real Prometheus scraping the real reference server agree with the records of the same requests.

Tolerances: request counts and the availability and coverage SLIs within 1% (both sides count the
same requests; the margin is for a scrape that lands late on a busy machine); the latency SLI
within 0.05 (the client's latency includes the HTTP round trip the server does not see).
"""

import io
import time
import uuid

import httpx
import pytest

from harness.cli import main
from harness.datasets import generate_shapes
from harness.records import RecordWriter, RequestRecord, load_records
from harness.slo import evaluate_records, generate_rules, parse_spec
from harness.slo.prometheus import PrometheusSource
from prom_fixture import start_prometheus

SPEC = """
service: captioner
traffic_rps: 20
slos:
  - {name: availability, sli: availability, objective: 0.99}
  - {name: coverage, sli: coverage, objective: 0.99}
  - {name: latency-1s, sli: latency, threshold: 1.0, objective: 0.99}
  - {name: safety, sli: safety, objective: 0.999}
"""
N_IMAGES = 40
N_BAD_BODIES = 8
ERROR_RATE = 0.25


def png_bytes(n, seed=3):
    out = []
    for s in generate_shapes(n, seed, None, 64):
        buf = io.BytesIO()
        s.image.save(buf, format="PNG")
        out.append((str(s.image_id), buf.getvalue()))
    return out


def send(client, url, image_id, body, writer):
    rid = uuid.uuid4().hex
    t0 = time.time()
    r = client.post(url + "/v1/caption", content=body, headers={"Content-Type": "image/png", "X-Request-Id": rid})
    latency = time.time() - t0
    ok = r.status_code == 200
    data = r.json() if ok else {}
    writer.write(
        RequestRecord(
            run_id="prom",
            target="reference",
            scenario="agreement",
            request_id=rid,
            image_id=image_id,
            t_start=t0,
            latency_s=latency,
            status=r.status_code,
            outcome="ok" if ok else "http_error",
            error=None if ok else r.text[:200],
            caption=data.get("caption"),
            confidence=data.get("confidence"),
            model_version=data.get("model_version"),
            image_bytes=len(body),
            safety_flagged=(data.get("safety") or {}).get("flagged") if ok else None,
        )
    )
    return r.status_code


@pytest.fixture(scope="module")
def prometheus(reference_server, tmp_path_factory):
    """Prometheus scraping the reference server, with the rules generated from SPEC loaded."""
    rules = tmp_path_factory.mktemp("rules") / "rules.yml"
    rules.write_text(generate_rules(parse_spec(SPEC)).to_yaml())
    with start_prometheus([reference_server.url], [rules]) as prom:
        prom.wait_for('up{job="captioner"} == 1')
        yield prom


@pytest.fixture(scope="module")
def loaded(reference_server, prometheus, tmp_path_factory):
    """One load run against the reference server, with records, and the time range it ran in."""
    spec, prom = parse_spec(SPEC), prometheus
    tmp_path = tmp_path_factory.mktemp("load")
    url, admin = reference_server.url, {"X-Admin-Token": reference_server.admin_token}
    images = png_bytes(N_IMAGES + 1)
    writer = RecordWriter(tmp_path / "run")
    with httpx.Client(timeout=30) as client:
        try:
            # Before the range: make the 200, 400 and 500 series exist, so the range sees them grow.
            with RecordWriter(tmp_path / "warmup") as warm:
                send(client, url, *images[-1], warm)
                send(client, url, "bad", b"not an image", warm)
                client.post(url + "/admin/faults", json={"error_rate": 1.0}, headers=admin).raise_for_status()
                assert send(client, url, *images[-1], warm) == 500
            client.delete(url + "/admin/faults", headers=admin).raise_for_status()
            for status in ("200", "400", "500"):
                prom.wait_for(f'caption_requests_total{{status="{status}"}}')
            time.sleep(2.5)  # a scrape of the quiet counters inside the range
            start = time.time()
            time.sleep(2.5)
            client.post(
                url + "/admin/faults", json={"error_rate": ERROR_RATE, "seed": 11}, headers=admin
            ).raise_for_status()
            statuses = [send(client, url, *img, writer) for img in images[:N_IMAGES]]
            statuses += [send(client, url, f"bad{i}", b"\x89PNG broken", writer) for i in range(N_BAD_BODIES)]
        finally:
            client.delete(url + "/admin/faults", headers=admin)
            writer.close()
    time.sleep(3.0)  # the last scrape after the load, inside the range
    end = time.time()
    return spec, prom, load_records(tmp_path / "run"), start, end, statuses


def test_prometheus_and_records_agree(loaded):
    spec, prom, records, start, end, statuses = loaded
    assert statuses.count(400) == N_BAD_BODIES and 0 < statuses.count(500) < N_IMAGES
    from_records = evaluate_records(spec, records)
    from_prom = PrometheusSource(prom.url).evaluate(spec, start, end)
    by_name = {r.slo.name: r for r in from_prom.results}
    for rec in from_records.results:
        p = by_name[rec.slo.name]
        if rec.slo.sli in ("availability", "coverage"):
            assert p.sli.total == pytest.approx(rec.sli.total, rel=0.01), rec.slo.name
            assert p.sli.good == pytest.approx(rec.sli.good, rel=0.01), rec.slo.name
            assert p.sli.ratio == pytest.approx(rec.sli.ratio, abs=0.01), rec.slo.name
        elif rec.slo.sli == "latency":
            assert p.sli.ratio == pytest.approx(rec.sli.ratio, abs=0.05)
        elif rec.slo.sli == "safety":  # shapes captions carry no blocklisted word: both see none
            assert rec.sli.ratio == 1.0 and p.sli.ratio == 1.0
    n = N_IMAGES + N_BAD_BODIES
    assert from_records.results[0].sli.total == n
    fails = statuses.count(500)
    assert from_records.results[0].sli.bad == fails
    assert from_records.results[1].sli.bad == fails + N_BAD_BODIES
    f = from_prom.figures
    assert f.statuses == {"200": statuses.count(200), "400": N_BAD_BODIES, "500": fails}
    assert f.p50_s is not None and f.p50_s <= f.p95_s <= f.p99_s
    # the projection of the same error ratio is the same decision from either source
    assert [p.fires for p in from_prom.results[0].projection] == [p.fires for p in from_records.results[0].projection]


def test_generated_rules_record_the_same_error_ratio(loaded):
    spec, prom, records, start, end, statuses = loaded
    # The 5m window holds the load and the warm-up (one 500 in three requests); a series' first
    # sample is not counted as growth, so the warm-up shows or not as its series were new or not.
    ratio = float(prom.wait_for('slo:sli_error:ratio_rate5m{sloth_slo="availability"}')[0]["value"][1])
    n, fails = N_IMAGES + N_BAD_BODIES, statuses.count(500)
    low, high = sorted((fails / n, (fails + 1) / (n + 3)))
    assert low - 0.01 <= ratio <= high + 0.01
    burn = float(prom.wait_for('slo:current_burn_rate:ratio{sloth_slo="availability"}')[0]["value"][1])
    assert low / 0.01 - 1 <= burn <= high / 0.01 + 1  # the same ratio over the 0.01 budget
    remaining = prom.wait_for('slo:period_error_budget_remaining:ratio{sloth_slo="availability"}')
    assert float(remaining[0]["value"][1]) < 1.0
    info = prom.wait_for('sloth_slo_info{sloth_slo="latency-1s"}')[0]["metric"]
    assert (info["sloth_service"], info["sloth_objective"], info["sloth_sli"]) == ("captioner", "99", "latency")


def test_harness_slo_reads_prometheus(loaded, tmp_path):
    import json

    spec, prom, records, start, end, statuses = loaded
    spec_file = tmp_path / "slo.yaml"
    spec_file.write_text(SPEC)
    out = tmp_path / "out"
    code = main(
        [
            "slo",
            "--spec",
            str(spec_file),
            "--prometheus",
            prom.url,
            "--start",
            f"{start:.3f}",
            "--end",
            f"{end:.3f}",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads((out / "slo.json").read_text())
    assert data["source"] == {"kind": "prometheus", "url": prom.url}
    avail = data["slos"][0]
    assert avail["sli"]["total"] == pytest.approx(N_IMAGES + N_BAD_BODIES, rel=0.01)
    assert "| availability |" in (out / "slo.md").read_text()


def test_dashboard_queries_run_on_the_live_prometheus(loaded):
    import json
    from pathlib import Path

    spec, prom, records, start, end, statuses = loaded
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "dashboards/grafana/caption-slo.json").read_text())
    answered = {}
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = (
                target["expr"]
                .replace("$__rate_interval", "1m")
                .replace("$service", "captioner")
                .replace('"$slo"', '".*"')
                .replace('"$job"', '".*"')
            )
            r = httpx.get(prom.url + "/api/v1/query", params={"query": expr, "time": end}, timeout=10)
            assert r.status_code == 200 and r.json()["status"] == "success", (panel["title"], r.text)
            answered.setdefault(panel["title"], []).append(bool(r.json()["data"]["result"]))
    for title in (
        "Latency percentiles",
        "Current burn rate (5m)",
        "Requests by status",
        "Batch size",
        "Caption confidence",
        "Queue depth",
        "Burn rate per alert window",
    ):
        assert any(answered[title]), title


def test_an_openslo_documents_queries_are_what_prometheus_is_asked(loaded):
    """examples/openslo.yaml's own queries, sent as written, see the same requests as the records."""
    from pathlib import Path

    from harness.slo import load_spec

    _, prom, records, start, end, statuses = loaded
    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "openslo.yaml")
    asked = []
    source = PrometheusSource(prom.url)
    query = source.query
    source.query = lambda expr, at: asked.append(expr) or query(expr, at)
    report = source.evaluate(spec, start, end)
    assert any('caption_requests_total{status=~"5..|429|499"}[' in q for q in asked)
    assert any('caption_request_duration_seconds_bucket{le="0.5"}[' in q for q in asked)
    avail = {r.slo.name: r for r in report.results}["availability"]
    from_records = evaluate_records(spec, records).results[0]
    assert from_records.slo.name == "availability" and from_records.sli.total == N_IMAGES + N_BAD_BODIES
    assert avail.sli.ratio == pytest.approx(from_records.sli.ratio, abs=0.02)
    assert avail.windows[0].long_burn is not None


# An SLO of an hour whose one alert looks at 20 s and 5 s: the load's few seconds are enough for it.
REVIEW_SPEC = """
service: captioner
slos:
  - name: availability
    sli: availability
    objective: 0.99
    period: 1h
    windows:
      - {severity: page, burn_rate: 2, long: 20s, short: 5s}
"""


def test_slo_review_from_the_live_prometheus_and_from_the_records_agree(loaded):
    """The same seconds reviewed from Prometheus (the server's counters, scraped every second) and
    from the records of the requests: the same SLI within the margin above, and the page's
    condition met in both while a quarter of the answers failed."""
    import math

    from harness.slo.history import records_history
    from harness.slo.review import build_review, review_grid

    _spec, prom, records, start, end, statuses = loaded
    spec = parse_spec(REVIEW_SPEC)
    end_s = math.floor(end)
    grid = review_grid(end_s, end_s - math.ceil(start), spec.slos, step_s=1.0)
    from_prom = build_review(spec, PrometheusSource(prom.url).history(spec, grid), grid, {"kind": "prometheus"})
    from_records = build_review(spec, records_history(spec, [records], grid), grid, {"kind": "records"})
    p, r = from_prom.slos[0], from_records.slos[0]
    n, fails = N_IMAGES + N_BAD_BODIES, statuses.count(500)
    assert (r.sli.total, r.sli.bad) == (n, fails)
    assert p.sli.total == pytest.approx(n, rel=0.01) and p.sli.bad == pytest.approx(fails, rel=0.01)
    assert p.budget.remaining == pytest.approx(r.budget.remaining, abs=0.5)  # the same 1% budget, a few counts
    # a quarter of the answers failed: 25x a 1% budget over both windows, so the page's condition held
    assert p.alerts[0].episodes and r.alerts[0].episodes
    assert p.alerts[0].peak >= 2 and r.alerts[0].peak >= 2
