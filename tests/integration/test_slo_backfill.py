"""A month of service history (tests/slo_history.py) three ways: counted exactly in Python, backfilled
into a real Prometheus and read by ``PrometheusSource``, and evaluated by promtool with the rules
``harness rules`` generates. All three agree.

Exactness: the History's samples lie on whole minutes and every query asks at a scrape instant, so
each window holds a sample at both of its ends; Prometheus 2.x takes a range ``[t - w, t]`` closed,
so ``rate`` extrapolates by exactly 1 and a window's ratio is its counts' ratio up to float
rounding (1e-9 relative is ample: the latency SLI's ``count - bucket`` loses most, about 1e-14).
(Prometheus 3 opens the range on the left and would scale the last w - 1m by w / (w - 1m): exact
only where a window's first minute is like the rest.) Counts between two instants are the
counters' values there: equal, not close.

Promtool evaluates every rule at every minute from its data's start, about 2 ms a minute for one
SLO's rules, so it gets slices of the month, each starting the alert's longest window (6 hours for
pages, 3 days for tickets) before its first check, and checks every minute of the slice after that:
the minutes at which promtool fires an alert are exactly the History's there. The ticket's slice
(four days) takes most of this file's 15-20 s; backfilling and starting Prometheus take about a second.
"""

from __future__ import annotations

import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import pytest

from harness.slo import generate_rules
from harness.slo.prometheus import PrometheusSource
from promtool_eval import AlertCheck, ValueCheck, alert_checks, promtool_test
from slo_history import DAY, HOUR, History, default_spec, expanded_values, start_history_prometheus

SPEC = default_spec()
HISTORY = History()
AVAILABILITY, LATENCY = SPEC.slo("availability"), SPEC.slo("latency-300ms")

PAGE = HISTORY.step_of("page")  # day 6 14:00: two hours of 2% errors
TICKET = HISTORY.step_of("ticket")  # day 12 06:00: sixteen hours of 0.5% errors
BURST = HISTORY.step_of("burst")  # day 18 03:00: ten minutes of 10% errors at 1 rps, in a quiet night
SLOW = HISTORY.step_of("latency")  # day 24 10:00: four hours of 10% slow requests
QUIET = HISTORY.step(HISTORY.t0 + 9 * DAY + 12 * HOUR)

# Steps at which each alert fires, per the History (steps are minutes after 2026-10-01T00:00Z).
EXPECTED_SPANS = {
    "CaptionerAvailabilityPageBurn": [(PAGE + 41, PAGE + 141), (BURST + 9, BURST + 14)],
    "CaptionerAvailabilityTicketBurn": [(TICKET + 807, TICKET + 960 + 292)],
    "CaptionerLatency300msPageBurn": [(SLOW + 202, SLOW + 240 + 13)],
    "CaptionerLatency300msTicketBurn": [],
}


def ids(slo):
    return f'sloth_id="captioner-{slo.name}"'


# ---- the History itself -----------------------------------------------------------------------


def test_the_history_fires_where_its_stretches_say():
    assert HISTORY.alert_spans(SPEC) == EXPECTED_SPANS
    # no window's ratio is within 1e-9 of an alert's threshold: float arithmetic cannot decide otherwise
    for slo in SPEC.slos:
        for w in slo.windows:
            assert HISTORY.near_limit(slo, w) == [], (slo.name, w)
    # 20x at the page stretch: the 1h window reaches 13.44x after 41 minutes (24 x 41 / 72,000 >= 0.01344)
    assert HISTORY.burn_rate(AVAILABILITY, HISTORY.at(PAGE + 60), 3600) == 20
    assert HISTORY.burn_rate(AVAILABILITY, HISTORY.at(PAGE + 40), 3600) < Fraction("13.44")
    # the noisy page: 60 bad requests, an eighth of a percent of the month's budget
    start, end = HISTORY.window()
    good, total = HISTORY.counts(AVAILABILITY, HISTORY.at(BURST), HISTORY.at(BURST + 10))
    assert (good, total) == (540, 600)
    assert Fraction(60) / (Fraction(1, 1000) * HISTORY.counts(AVAILABILITY, start, end)[1]) < Fraction(1, 750)
    assert HISTORY.counts(AVAILABILITY, start, end) == (47_964_900, 47_973_600)
    assert HISTORY.counts(LATENCY, start, end) == (47_944_800, 47_973_600)


def test_promtool_series_are_the_history_series():
    for row, series in zip(HISTORY.to_promtool_series(), HISTORY.series()):
        assert row["series"] == series.selector()
        assert expanded_values(row["values"]) == series.values.tolist()
    assert len(HISTORY.to_promtool_series()[1]["values"].split()) == 7  # one segment per run of the 500s
    sliced = HISTORY.to_promtool_series(PAGE - 10, PAGE + 10)[1]["values"]
    assert sliced == "0+0x10 24+24x9"


def test_openmetrics_text(tmp_path):
    path = HISTORY.to_openmetrics(tmp_path / "h.om")
    lines = path.read_text().splitlines()
    assert lines[0] == "# TYPE caption_requests counter" and lines[-1] == "# EOF"
    assert lines[1] == (
        'caption_requests_total{instance="captioner:8000",job="captioner",model_version="v1",status="200"} 0 1790812800'
    )
    assert len(lines) == 3 + 5 * (HISTORY.steps + 1)


# ---- a real Prometheus on the backfilled month -------------------------------------------------


@pytest.fixture(scope="module")
def prom():
    with start_history_prometheus(HISTORY) as served:  # its 25 MB of OpenMetrics text removed after
        yield served


@pytest.mark.slow
def test_prometheus_gives_the_month_exactly(prom):
    start, end = HISTORY.window()
    report = PrometheusSource(prom.url).evaluate(SPEC, start, end)
    for result in report.results:
        good, total = HISTORY.counts(result.slo, start, end)
        assert (result.sli.good, result.sli.total) == (good, total), result.slo.name
        assert result.budget.remaining == pytest.approx(float(HISTORY.budget_remaining(result.slo, start, end)), 1e-12)
        # the window ends in a quiet day: nothing burns, nothing fires
        assert [b.fires for b in result.windows] == [False] * 4
        assert [b.long_burn for b in result.windows] == [0.0] * 4
    assert report.figures.requests == 47_973_600
    assert report.figures.statuses == {"200": 47_964_900, "500": 8_700}
    by_name = {r.slo.name: r for r in report.results}
    assert by_name["availability"].budget.remaining == pytest.approx(1 - 8700 / 47_973.6, 1e-12)
    assert by_name["latency-300ms"].budget.remaining == pytest.approx(1 - 28_800 / 479_736, 1e-12)


INSTANTS = {
    "page +60m": PAGE + 60,  # 1h at 20x: the quick page
    "page +110m": PAGE + 110,  # 6h at 6.1x as well: the slow page too
    "ticket +15h": TICKET + 900,  # 1d at 3.1x, 3d at 1.04x: the ticket, and no page at 5x
    "burst +10m": BURST + 10,  # 1h at 16.7x on 3,600 requests: a page on 60 errors
    "quiet day": QUIET,
    "latency +220m": SLOW + 220,  # 6h at 6.1x, 30m at 10x: the slow page
}


SHOWS = {
    "page +60m": {("availability", "page")},
    "page +110m": {("availability", "page")},
    "ticket +15h": {("availability", "ticket")},
    "burst +10m": {("availability", "page")},
    "quiet day": set(),
    "latency +220m": {("latency-300ms", "page")},
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(INSTANTS))
def test_window_burns_are_the_history_s(prom, name):
    k = INSTANTS[name]
    at = HISTORY.at(k)
    source = PrometheusSource(prom.url)
    for slo in SPEC.slos:
        got, expected = source.window_burns(slo, SPEC, at), HISTORY.window_burns(slo, at)
        assert len(got) == len(expected) == 4
        for g, e in zip(got, expected):
            where = (name, slo.name, g.severity, g.long)
            assert (g.severity, g.factor) == (e.severity, e.factor), where
            assert g.long_burn == pytest.approx(float(e.long_burn), rel=1e-9, abs=0), where
            assert g.short_burn == pytest.approx(float(e.short_burn), rel=1e-9, abs=0), where
            assert (g.long_events, g.short_events) == (e.long_events, e.short_events), where
            assert g.fires == e.fires, where
        for severity in ("page", "ticket"):
            fires = any(g.fires for g in got if g.severity == severity)
            assert fires == bool(HISTORY.firing(slo, severity)[k]), (name, slo.name, severity)
    # what each instant was chosen to show
    fired = {(slo.name, s) for slo in SPEC.slos for s in ("page", "ticket") if HISTORY.firing(slo, s)[k]}
    assert fired == SHOWS[name]


# ---- promtool's rule evaluation of the same series --------------------------------------------


def _slice(slo, severities, first, last, warmup, values=()):
    """A promtool run of ``slo``'s generated rules over steps ``first - warmup`` .. ``last``,
    checking each alert at every step of ``[first, last]``."""
    since = first - warmup
    checks = []
    for severity in severities:
        checks += alert_checks(HISTORY, SPEC, slo, severity, since, first, last)
    rules = generate_rules(dataclasses.replace(SPEC, slos=(slo,))).to_yaml()
    return dict(history=HISTORY, rules_yaml=rules, alerts=checks, values=list(values), start=since, end=last)


def _ratio(slo, window, k, seconds):
    return ValueCheck(
        k, f"slo:sli_error:ratio_rate{window}{{{ids(slo)}}}", HISTORY.error_ratio(slo, HISTORY.at(k), seconds)
    )


# Page windows reach back 6 hours, ticket windows 3 days: each slice starts that far before its checks.
SLICES = {
    "page": _slice(
        AVAILABILITY,
        ["page"],
        PAGE - 60,
        PAGE + 300,
        7 * 60,
        [
            _ratio(AVAILABILITY, "1h", PAGE + 60, 3600),
            _ratio(AVAILABILITY, "5m", PAGE + 60, 300),
            _ratio(AVAILABILITY, "6h", PAGE + 110, 6 * 3600),
            ValueCheck(PAGE + 60, f"slo:current_burn_rate:ratio{{{ids(AVAILABILITY)}}}", 20),
            ValueCheck(PAGE - 30, f"slo:sli_error:ratio_rate1h{{{ids(AVAILABILITY)}}}", 0),
        ],
    ),
    "burst": _slice(
        AVAILABILITY, ["page"], BURST - 60, BURST + 60, 7 * 60, [_ratio(AVAILABILITY, "1h", BURST + 10, 3600)]
    ),
    "ticket": _slice(
        AVAILABILITY,
        ["page", "ticket"],
        TICKET - 60,
        TICKET + 960 + 330,
        3 * 24 * 60,
        [
            _ratio(AVAILABILITY, w, TICKET + 900, s)
            for w, s in (("2h", 7200), ("6h", 21600), ("1d", 86400), ("3d", 259200))
        ],
    ),
    "latency": _slice(
        LATENCY,
        ["page"],
        SLOW - 60,
        SLOW + 300,
        7 * 60,
        [_ratio(LATENCY, "6h", SLOW + 220, 21600), _ratio(LATENCY, "30m", SLOW + 220, 1800)],
    ),
}


# Pages that wait 10 minutes (``for: 10m``, as an OpenSLO spec's alertAfter writes): the History
# holds the condition for the rule's ``for`` as promtool does; the ten-minute burst no longer pages.
WAITING = dataclasses.replace(
    AVAILABILITY,
    windows=tuple(
        dataclasses.replace(w, alert_after_s=600) if w.severity == "page" else w for w in AVAILABILITY.windows
    ),
)
SLICES_WITH_FOR = {
    f"{name}, for 10m": _slice(WAITING, ["page"], first, last, 7 * 60)
    for name, first, last in (("page", PAGE - 60, PAGE + 300), ("burst", BURST - 60, BURST + 60))
}


# The same checks on rules for a 0.99 objective (ten times the budget): the burst no longer pages,
# and promtool says so. The checks are not empty.
LOOSE = dataclasses.replace(AVAILABILITY, objective=0.99)
SLICES_THAT_FAIL = {
    "burst, 0.99 rules": dict(
        SLICES["burst"], rules_yaml=generate_rules(dataclasses.replace(SPEC, slos=(LOOSE,))).to_yaml()
    )
}


@pytest.fixture(scope="module")
def promtool_runs():
    """Every slice's promtool run, two at a time, the longest first (the ticket's: three days of warm-up)."""
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    runs = {**SLICES, **SLICES_WITH_FOR, **SLICES_THAT_FAIL}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(promtool_test, **runs[name]) for name in sorted(runs, key=lambda n: n != "ticket")}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLICES))
def test_promtool_fires_as_the_history_says(promtool_runs, name):
    run = promtool_runs[name]
    assert run.ok, run.output[-4000:]
    checks: list[AlertCheck] = SLICES[name]["alerts"]
    fired = sorted(c.step for c in checks if c.firing)
    assert fired, "each slice shows an alert firing"
    assert any(not c.firing for c in checks)
    # the steps promtool found firing, as spans: exactly the History's within the checked steps
    first, last = checks[0].step, checks[-1].step
    for alert, spans in EXPECTED_SPANS.items():
        inside = [(a, b) for a, b in spans if first <= a and b <= last]
        mine = sorted({c.step for c in checks if c.alert == alert and c.firing})
        assert mine == [k for a, b in inside for k in range(a, b + 1)], alert


@pytest.mark.slow
def test_promtool_holds_a_page_for_its_for_as_the_history_does(promtool_runs):
    for name in SLICES_WITH_FOR:
        assert promtool_runs[name].ok, promtool_runs[name].output[-4000:]
    assert "for: 10m" in SLICES_WITH_FOR["page, for 10m"]["rules_yaml"]
    assert HISTORY.firing_spans(WAITING, "page", PAGE - 60, PAGE + 300) == [(PAGE + 51, PAGE + 141)]
    assert HISTORY.firing_spans(WAITING, "page", BURST - 60, BURST + 60) == []
    assert any(c.firing for c in SLICES_WITH_FOR["page, for 10m"]["alerts"])


@pytest.mark.slow
def test_promtool_fails_on_rules_with_another_budget(promtool_runs):
    run = promtool_runs["burst, 0.99 rules"]
    assert not run.ok
    assert "FAILED" in run.output and "CaptionerAvailabilityPageBurn" in run.output


def test_a_check_before_the_windows_fill_is_refused():
    with pytest.raises(ValueError, match="need data from step"):
        alert_checks(HISTORY, SPEC, AVAILABILITY, "ticket", TICKET - DAY // 60, TICKET, TICKET + 10)
