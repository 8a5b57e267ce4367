"""SLIs, error budgets, burn rates and the projection on constructed records, against hand-computed values."""

import math

import pandas as pd
import pytest

from harness.records import RequestRecord
from harness.slo import evaluate_records, parse_spec, render_markdown
from harness.slo.budget import error_budget
from harness.slo.burn_rate import burn_rate, project, window_burns
from harness.slo.figures import record_figures
from harness.slo.sli import SLIValue, records_sli, sli_events
from harness.slo.spec import SLO
from harness.stats import wilson_interval

T = 1_000_000.0  # the evaluation time of the window tests


def rec(i, t, status=200, outcome="ok", latency=0.0, caption="a red circle", flagged=False, image_id=None):
    return RequestRecord(
        run_id="r",
        target="baseline",
        scenario="constructed",
        request_id=f"q{i}",
        image_id=image_id if image_id is not None else str(i),
        t_start=t,
        latency_s=latency,
        status=status,
        outcome=outcome,
        caption=caption if outcome == "ok" else None,
        confidence=0.9 if outcome == "ok" else None,
        safety_flagged=flagged if outcome == "ok" else None,
    ).to_dict()


def frame(rows):
    return pd.DataFrame(rows)


def slo(kind="availability", objective=0.99, threshold=None, **kw):
    return SLO(name=kind, sli=kind, objective=objective, threshold=threshold, **kw)


# ---- SLI definitions ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed():
    """1,000 requests: 846 ok, 10 invalid 200s, 100 x 500, 20 x 429, 10 x 400, 10 timeouts, 4 refused."""
    kinds = (
        [(200, "ok")] * 846
        + [(200, "invalid_response")] * 10
        + [(500, "http_error")] * 100
        + [(429, "http_error")] * 20
        + [(400, "http_error")] * 10
        + [(0, "timeout")] * 10
        + [(0, "connection_error")] * 4
    )
    rows = []
    for i, (status, outcome) in enumerate(kinds):
        latency = 30.0 if outcome == "timeout" else 0.0 if outcome == "connection_error" else 0.1 + (i % 10) * 0.1
        rows.append(rec(i, 1000.0 + i, status, outcome, latency))
    return frame(rows)


def test_availability_counts_5xx_429_and_no_response_as_bad(mixed):
    sli = records_sli(mixed, slo("availability"))
    # bad: 100 (500) + 20 (429) + 10 (timeout) + 4 (refused) + 10 (invalid body) = 144; 400s are good
    assert (sli.good, sli.total, sli.bad) == (856, 1000, 144)
    assert sli.error_ratio == 0.144


def test_coverage_is_captioned_over_sent(mixed):
    sli = records_sli(mixed, slo("coverage"))
    assert (sli.good, sli.total) == (846, 1000)


def test_latency_counts_responses_and_timeouts(mixed):
    # events: the 986 that got a response and the 10 timeouts; latencies cycle 0.1 .. 1.0 by i % 10
    sli = records_sli(mixed, slo("latency", threshold=0.5))
    responded_fast = sum(1 for i in range(986) if 0.1 + (i % 10) * 0.1 <= 0.5)
    assert (sli.good, sli.total) == (responded_fast, 996)
    assert responded_fast == 98 * 5 + 5  # 98 whole cycles of ten, then 0.1 .. 0.6


def test_safety_counts_flags_and_blocklisted_words_the_filter_missed():
    rows = [
        rec(0, 1.0, caption="a red circle"),
        rec(1, 2.0, caption="a [redacted] square", flagged=True),
        rec(2, 3.0, caption="a blue square with gun"),  # unflagged, but blocklisted
        rec(3, 4.0, caption="a Gunther triangle"),  # not a whole blocklisted word
        rec(4, 5.0, caption="a small circle", flagged=None),  # no verdict: only the text counts
        rec(5, 6.0, status=500, outcome="http_error"),  # no caption: not an event
    ]
    sli = records_sli(frame(rows), SLO("safe", "safety", 0.999, blocklist=("gun", "knife")))
    assert (sli.good, sli.total) == (3, 5)


def test_quality_from_a_joined_table_or_no_data():
    rows = [rec(i, float(i), image_id=img) for i, img in enumerate(["a", "b", "c", "d"])]
    rows.append(rec(9, 9.0, status=500, outcome="http_error", image_id="a"))
    q = SLO("q", "quality", 0.9, threshold=0.5, metric="CIDEr-D")  # no such column: "quality" is used
    table = pd.DataFrame({"image_id": ["a", "b", "c"], "quality": [0.7, 0.5, 0.2]})
    sli = records_sli(frame(rows), q, table)
    assert (sli.good, sli.total, sli.note) == (2, 3, "")
    none = records_sli(frame(rows), q)
    assert (none.total, none.ratio) == (0, None)
    assert none.note.startswith("no data")


def test_quality_from_the_quality_stage_json(tmp_path):
    import json

    from harness.slo.sli import load_quality

    rows = [rec(i, float(i), image_id=str(i)) for i in range(4)]
    doc = {
        "n_images": 4,
        "per_image": [
            {"image_id": i, "caption": "x", "CIDEr-D": s, "BLEU-4": 0.9} for i, s in enumerate([0.9, 0.1, 0.6, None])
        ],
    }
    (tmp_path / "quality.json").write_text(json.dumps(doc))
    table = load_quality(tmp_path / "quality.json")
    cider = SLO("q", "quality", 0.9, threshold=0.5, metric="CIDEr-D")
    assert (lambda v: (v.good, v.total))(records_sli(frame(rows), cider, table)) == (2, 3)
    bleu = SLO("b", "quality", 0.9, threshold=0.5, metric="BLEU-4")
    assert (lambda v: (v.good, v.total))(records_sli(frame(rows), bleu, table)) == (4, 4)
    spice = records_sli(frame(rows), SLO("s", "quality", 0.9, threshold=0.5, metric="SPICE"), table)
    assert spice.note == "no data: no per-image SPICE scores in the quality table"


def test_event_time_is_when_the_answer_came():
    events, _ = sli_events(frame([rec(0, 100.0, latency=2.5)]), slo())
    assert events["t"].tolist() == [102.5]


# ---- error budget ------------------------------------------------------------------------------


def test_error_budget_exact(mixed):
    b = error_budget(records_sli(mixed, slo("availability")), 0.99)
    assert (b.allowed, b.bad, b.consumed, b.remaining) == (10.0, 144.0, 14.4, -13.4)
    b2 = error_budget(SLIValue("x", "availability", 9_995, 10_000), 0.999)
    assert (b2.allowed, b2.consumed, b2.remaining) == (10.0, 0.5, 0.5)
    empty = error_budget(SLIValue("x", "availability", 0, 0), 0.999)
    assert (empty.consumed, empty.remaining) == (None, None)


def test_burn_rate_is_exact():
    assert burn_rate(0.144, 0.99) == 14.4  # plain floats give 14.399999999999986
    assert burn_rate(0.0005, 0.999) == 0.5


# ---- burn rates over the alert windows ---------------------------------------------------------


def group(start, end, n, bad, first_id):
    """``n`` events evenly inside ``(start, end]``, the first ``bad`` of them 500s."""
    step = (end - start) / n
    return [
        rec(first_id + k, start + step * (k + 1), *((500, "http_error") if k < bad else (200, "ok"))) for k in range(n)
    ]


def window_records(bad_1h_early=65):
    rows = []
    rows += group(T - 300, T, 100, 15, 0)  # last 5m: 100 events, 15 bad
    rows += group(T - 1800, T - 300, 450, 64, 1000)  # rest of 30m: 450 events, 64 bad
    rows += group(T - 3600, T - 1800, 450, bad_1h_early, 2000)  # rest of 1h: 450 events
    rows += group(T - 6 * 3600, T - 3600, 5000, 0, 3000)  # rest of 6h: clean
    rows += group(T - 3 * 86400, T - 6 * 3600, 4000, 56, 9000)  # rest of 3d: 4,000 events, 56 bad
    return frame(rows)


def test_window_burn_rates_and_fire_decisions_exact():
    spec_slo = slo("availability", 0.99)
    events, _ = sli_events(window_records(), spec_slo)
    page1, page2, ticket1, ticket = window_burns(events, spec_slo, at=T, since=T - 3 * 86400)
    # page 14.4x: 1h = 144 bad / 1,000 = 14.4x; 5m = 15 / 100 = 15x: both at or above 14.4 -> fires
    assert (page1.long_events, page1.short_events) == (1000, 100)
    assert (page1.long_burn, page1.short_burn, page1.fires) == (14.4, 15.0, True)
    # page 6x: 6h = 144 / 6,000 = 2.4x; 30m = 79 / 550 = 14.36x: the long window is calm -> silent
    assert (page2.long_events, page2.short_events) == (6000, 550)
    assert page2.long_burn == 2.4 and page2.short_burn == pytest.approx(79 / 5.5, abs=0) and not page2.fires
    # ticket 3x: 2h = 144 / 2,000 = 7.2x; 1d = 144 / 7,091 = 2.03x (its 1,091 oldest events are clean) -> silent
    assert (ticket1.factor, ticket1.long, ticket1.short) == (3.0, "1d", "2h")
    assert (ticket1.long_events, ticket1.short_events, ticket1.short_burn, ticket1.fires) == (7091, 2000, 7.2, False)
    assert ticket1.long_burn == pytest.approx(144 / 70.91, rel=1e-12)
    # ticket 1x: 3d = 200 / 10,000 = 2x; 6h = 2.4x -> fires
    assert (ticket.long_events, ticket.long_burn, ticket.short_burn, ticket.fires) == (10000, 2.0, 2.4, True)
    assert (page1.covered, ticket.covered) == (1.0, 1.0)


def test_just_below_the_factor_does_not_page():
    spec_slo = slo("availability", 0.99)
    events, _ = sli_events(window_records(bad_1h_early=64), spec_slo)
    page1 = window_burns(events, spec_slo, at=T)[0]
    assert (page1.long_burn, page1.short_burn, page1.fires) == (14.3, 15.0, False)


def test_short_window_recovery_stops_the_page():
    rows = group(T - 3600, T - 300, 900, 300, 0) + group(T - 300, T, 100, 0, 1000)
    spec_slo = slo("availability", 0.99)
    events, _ = sli_events(frame(rows), spec_slo)
    page1 = window_burns(events, spec_slo, at=T, since=T - 3600)[0]
    assert (page1.long_burn, page1.short_burn, page1.fires) == (30.0, 0.0, False)
    assert page1.covered == 1.0


def test_a_short_run_covers_a_small_share_of_the_windows():
    rows = group(T - 120, T, 240, 0, 0)
    spec_slo = slo("availability", 0.99)
    events, _ = sli_events(frame(rows), spec_slo)
    burns = window_burns(events, spec_slo, at=T, since=T - 120)
    assert [b.covered for b in burns] == [120 / 3600, 120 / 21600, 120 / 86400, 120 / 259200]
    assert [b.long_burn for b in burns] == [0.0, 0.0, 0.0, 0.0]


# ---- projection onto production traffic ---------------------------------------------------------

Z95 = 1.959963984540054


def wilson(bad, n):
    p = bad / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return centre - half, centre + half


def test_projection_of_a_short_run_exact():
    spec_slo = slo("availability", 0.999)
    page1, page2, ticket1, ticket = project(
        SLIValue("availability", "availability", 1970, 2000), spec_slo, traffic_rps=50
    )
    # 30 / 2,000 = 1.5% errors = 15x a 0.1% budget
    assert (page1.error_ratio, page1.burn_rate, page1.fires) == (0.015, 15.0, True)
    assert page1.budget_consumed == 15 * 3600 / 2_592_000 == 1 / 48  # of the 30-day budget, in the 1h window
    assert page2.budget_consumed == 15 * 21600 / 2_592_000 == 0.125
    assert ticket1.budget_consumed == 15 * 86400 / 2_592_000 == 0.5
    assert ticket.budget_consumed == 15 * 259200 / 2_592_000 == 1.5
    assert (page1.long_window_events, page1.long_window_bad) == (180_000, 2_700)
    assert page1.period_budget_events == 0.001 * 50 * 2_592_000 == 129_600
    assert page1.exhaustion_s == 172_800 and page1.to_dict()["exhaustion"] == "2d"
    lo, hi = wilson(30, 2000)
    assert wilson_interval(30, 2000) == pytest.approx((lo, hi), rel=1e-12)
    assert page1.burn_low == pytest.approx(lo / 0.001, rel=1e-12) and page1.burn_high == pytest.approx(
        hi / 0.001, rel=1e-12
    )
    assert 6 < page1.burn_low < 14.4  # the interval straddles 14.4 but clears 6
    assert (page1.decision, page2.decision, ticket1.decision, ticket.decision) == (
        "inconclusive",
        "fires",
        "fires",
        "fires",
    )


def test_projection_of_a_clean_run():
    page1, page2, ticket1, ticket = project(SLIValue("a", "availability", 2000, 2000), slo("availability", 0.999), 10)
    assert [p.burn_rate for p in (page1, page2, ticket1, ticket)] == [0.0, 0.0, 0.0, 0.0]
    assert [p.fires for p in (page1, page2, ticket1, ticket)] == [False, False, False, False]
    assert page1.exhaustion_s is None and page1.budget_consumed == 0.0
    upper = Z95**2 / (2000 + Z95**2)  # Wilson's upper bound at zero errors
    assert page1.burn_high == pytest.approx(upper / 0.001, rel=1e-12)
    assert (page1.decision, page2.decision, ticket1.decision, ticket.decision) == (
        "silent",
        "silent",
        "silent",
        "inconclusive",
    )


def test_projection_at_exactly_the_factor_fires_and_without_data_says_so():
    (p,) = project(
        SLIValue("a", "availability", 856, 1000),
        slo("availability", 0.99, windows=(SLO("x", "availability", 0.9).windows[0],)),
        1,
    )
    assert (p.burn_rate, p.fires) == (14.4, True)
    (none,) = project(
        SLIValue("a", "availability", 0, 0),
        slo("availability", 0.99, windows=(SLO("x", "availability", 0.9).windows[0],)),
        1,
    )
    assert (none.burn_rate, none.fires, none.decision) == (None, False, "no data")


# ---- figures -----------------------------------------------------------------------------------


def test_figures_exact():
    rows = [rec(i, 100.0 + 9 * i, latency=0.1 * (i + 1)) for i in range(10)]  # last answer at 181 + 1.0
    rows.append(rec(10, 150.0, status=500, outcome="http_error", latency=0.05))
    f = record_figures(frame(rows), price_per_hour=3.6)
    assert (f.requests, f.captions, f.duration_s) == (11, 10, 82.0)
    assert f.throughput_rps == 11 / 82.0 and f.coverage == 10 / 11
    assert (f.p50_s, f.p95_s, f.p99_s) == pytest.approx((0.55, 0.955, 0.991), abs=1e-12)
    assert f.cost_per_1000 == pytest.approx(3.6 * (82.0 / 3600) / 10 * 1000, rel=1e-12)
    assert f.outcomes == {"http_error": 1, "ok": 10} and f.statuses == {"200": 10, "500": 1}
    assert record_figures(frame(rows)).cost_per_1000 is None


# ---- the whole report --------------------------------------------------------------------------

SPEC = """
service: captioner
traffic_rps: 50
price_per_hour: 2.0
slos:
  - {name: availability, sli: availability, objective: 0.99}
  - {name: fast, sli: latency, threshold: 0.5, objective: 0.99}
  - {name: quality, sli: quality, threshold: 0.5, objective: 0.9}
"""


def test_evaluate_records_and_markdown(mixed):
    report = evaluate_records(parse_spec(SPEC), mixed)
    d = report.to_dict()
    avail, fast, quality = d["slos"]
    assert (avail["sli"]["good"], avail["sli"]["total"], avail["met"]) == (856, 1000, False)
    assert avail["budget"]["remaining"] == -13.4
    assert [p["burn_rate"] for p in avail["projection"]] == [14.4, 14.4, 14.4, 14.4]
    assert [p["factor"] for p in avail["projection"]] == [14.4, 6.0, 3.0, 1.0]
    assert [p["fires"] for p in avail["projection"]] == [True, True, True, True]
    assert quality["met"] is None and quality["sli"]["note"].startswith("no data")
    assert d["traffic_rps"] == 50 and d["figures"]["requests"] == 1000
    assert report.to_json()  # strict JSON: no NaN anywhere
    md = render_markdown(d)
    assert "| availability | availability | 99.00% | 85.600% | 856 / 1000 | -1340.0% | **no** |" in md
    assert "Projection at 50 requests/s" in md
