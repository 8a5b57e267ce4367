"""Per-segment SLOs: an SLO with ``segment:`` counts only the events of that segment, from records
(their ``segment`` column) and from Prometheus (the series' ``segment`` label). An hour of traffic
of two segments, built minute by minute, is counted by hand, evaluated from its records and, as
counters backfilled into a real Prometheus (``prom_fixture``), by ``PrometheusSource``: the three
agree exactly."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.records import COLUMNS
from harness.slo import evaluate_records
from harness.slo.prometheus import PrometheusSource
from harness.slo.promql import DURATION, REQUESTS, le_label
from harness.slo.spec import native_spec
from prom_fixture import start_backfilled_prometheus

T0 = 1_790_812_800  # 2026-10-01T00:00:00Z, a whole minute
MINUTES = 60
THRESHOLD = 0.3
LATENCY = {"sli": "latency", "threshold": THRESHOLD, "objective": 0.9}
SPEC = native_spec(
    [
        {
            "service": "captioner",
            "slos": [
                {"name": "availability", "sli": "availability", "objective": 0.99},
                {"name": "availability-dark", "sli": "availability", "objective": 0.99, "segment": "low_light"},
                {"name": "availability-day", "sli": "availability", "objective": 0.99, "segment": "unshifted"},
                {"name": "latency-dark", **LATENCY, "segment": "low_light"},
                {"name": "latency-day", **LATENCY, "segment": "unshifted"},
                {"name": "latency-nowhere", **LATENCY, "segment": "x"},
            ],
        }
    ],
    "inline",
)


def _minute(segment: str, m: int) -> list[tuple[int, float]]:
    """(status, latency) of each request of ``segment`` answered in minute ``m`` (1 to MINUTES): the
    low-light images are fewer, fail more and are slower."""
    if segment == "low_light":
        n, errors, slow = 5, int(m % 4 == 0), 2 if m % 3 == 0 else 0
    else:
        n, errors, slow = 45, int(m % 10 == 0), 1
    return [(500 if j < errors else 200, 0.8 if errors <= j < errors + slow else 0.05) for j in range(n)]


SEGMENTS = ("low_light", "unshifted")
TRAFFIC = {(s, m): _minute(s, m) for s in SEGMENTS for m in range(1, MINUTES + 1)}


def _records() -> pd.DataFrame:
    rows = []
    for (segment, m), requests in TRAFFIC.items():
        for j, (status, latency) in enumerate(requests):
            answered = T0 + 60 * m - 30 + j * 0.1  # inside minute m: the counter at T0 + 60 m holds it
            row = dict.fromkeys(COLUMNS)
            row.update(
                run_id="segments",
                target="production",
                request_id=f"{segment}-{m}-{j}",
                image_id=f"{segment}-{j}",
                t_start=answered - latency,
                latency_s=latency,
                status=status,
                outcome="ok" if status == 200 else "http_error",
                caption="a small red circle" if status == 200 else None,
                segment=segment,
            )
            rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _by_hand(segment: str | None, kind: str) -> tuple[int, int]:
    """(good, total) of one SLO over the hour."""
    requests = [r for (s, _), rs in TRAFFIC.items() if segment in (None, s) for r in rs]
    if kind == "availability":
        return sum(status < 500 for status, _ in requests), len(requests)
    return sum(latency <= THRESHOLD for _, latency in requests), len(requests)


def _openmetrics(path) -> None:
    """Each segment's counters at every minute, as a server labelling its requests by segment
    exports them (requests by status, the duration histogram at the threshold's bucket)."""
    lines = [f"# TYPE {REQUESTS.removesuffix('_total')} counter"]
    series: dict[str, list[int]] = {}
    hist: dict[str, list[int]] = {}
    for segment in SEGMENTS:
        ok = bad = fast = count = 0
        for m in range(MINUTES + 1):
            for status, latency in TRAFFIC.get((segment, m), []):
                ok, bad = ok + (status == 200), bad + (status != 200)
                fast, count = fast + (latency <= THRESHOLD), count + 1
            for status, value in (("200", ok), ("500", bad)):
                key = f'{REQUESTS}{{segment="{segment}",status="{status}"}}'
                series.setdefault(key, []).append(value)
            for name, value in (
                (f'{DURATION}_bucket{{le="{le_label(THRESHOLD)}",segment="{segment}"}}', fast),
                (f'{DURATION}_bucket{{le="+Inf",segment="{segment}"}}', count),
                (f'{DURATION}_count{{segment="{segment}"}}', count),
            ):
                hist.setdefault(name, []).append(value)
    for key, values in series.items():
        lines += [f"{key} {v} {T0 + 60 * m}" for m, v in enumerate(values)]
    lines.append(f"# TYPE {DURATION} histogram")
    for key, values in hist.items():
        lines += [f"{key} {v} {T0 + 60 * m}" for m, v in enumerate(values)]
    path.write_text("\n".join(lines) + "\n# EOF\n")


EXPECTED = {
    "availability": _by_hand(None, "availability"),
    "availability-dark": _by_hand("low_light", "availability"),
    "availability-day": _by_hand("unshifted", "availability"),
    "latency-dark": _by_hand("low_light", "latency"),
    "latency-day": _by_hand("unshifted", "latency"),
    "latency-nowhere": (0, 0),
}


def test_the_hand_counts_differ_by_segment():
    assert EXPECTED["availability-dark"] == (285, 300) and EXPECTED["availability-day"] == (2694, 2700)
    assert EXPECTED["latency-dark"] == (260, 300) and EXPECTED["latency-day"] == (2640, 2700)


def test_segment_slos_from_records_count_exactly_their_segment():
    report = evaluate_records(SPEC, _records(), clock=T0 + 86400)
    got = {r.slo.name: (r.sli.good, r.sli.total) for r in report.results}
    assert got == EXPECTED
    by_name = {r.slo.name: r for r in report.results}
    assert by_name["availability-dark"].met is False and by_name["availability-day"].met is True
    assert by_name["latency-nowhere"].sli.note == "no data: no events in segment 'x'"
    assert report.to_dict()["slos"][1]["segment"] == "low_light"
    # Records that name no segment give a segment SLO no events, never all of them.
    bare = evaluate_records(SPEC, _records().drop(columns="segment"), clock=T0 + 86400)
    assert {r.slo.name: r.sli.total for r in bare.results}["availability-dark"] == 0


@pytest.mark.slow
def test_segment_slos_from_prometheus_match_the_records(tmp_path):
    _openmetrics(tmp_path / "segments.om")
    with start_backfilled_prometheus(tmp_path / "segments.om") as prom:
        report = PrometheusSource(prom.url).evaluate(SPEC, T0, T0 + 60 * MINUTES)
    got = {r.slo.name: (r.sli.good, r.sli.total) for r in report.results}
    assert got == EXPECTED
