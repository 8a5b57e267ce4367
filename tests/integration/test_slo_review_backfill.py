"""The SLO review over a month of history backfilled into a real Prometheus (tests/slo_history.py).

``harness slo review --prometheus`` must give the same SLI, budget left and burn rates as
``harness slo --prometheus`` and as the History's exact counts, and its alert episodes must be the
minutes at which the History fires each generated alert, which ``test_slo_backfill.py`` pins against
promtool's own evaluation of the rules ``harness rules`` writes. The generated rules are loaded,
so the review also reads the ``ALERTS`` series (empty: Prometheus evaluates the rules at its own
clock, long after the history); what fires now is asked only of a window that ends now.
"""

from __future__ import annotations

import json

import pytest

from harness.cli import main
from harness.slo import generate_rules
from harness.slo.prometheus import PrometheusSource
from harness.slo.review import build_review, review_grid
from slo_history import DAY, History, default_spec, start_history_prometheus

pytestmark = pytest.mark.slow

SPEC = default_spec()
HISTORY = History()
START, END = HISTORY.window()  # the 28 days that end at the last scrape


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review-prom")
    rules = folder / "rules.yml"
    rules.write_text(generate_rules(SPEC).to_yaml(), encoding="utf-8")
    with start_history_prometheus(HISTORY, rule_files=[rules]) as prom:
        yield prom


@pytest.fixture(scope="module")
def review(served):
    grid = review_grid(END, 28 * DAY, SPEC.slos)
    histories = PrometheusSource(served.url).history(SPEC, grid)
    return build_review(SPEC, histories, grid, {"kind": "prometheus", "url": served.url})


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def test_the_grid_is_the_history_s_scrapes(review):
    assert (review.start, review.end, review.grid.step_s) == (START, END, 60.0)
    assert review.grid.start == HISTORY.t0  # the lead-in: the 3 days of the longest alert window


def test_sli_and_budget_are_the_history_s_and_harness_slo_s(review, served):
    report = PrometheusSource(served.url).evaluate(SPEC, START, END)
    by_name = {r.slo.name: r for r in report.results}
    for s in review.slos:
        good, total = HISTORY.counts(s.slo, START, END)
        assert (s.sli.good, s.sli.total) == (good, total), s.slo.name
        assert (by_name[s.slo.name].sli.good, by_name[s.slo.name].sli.total) == (good, total)
        left = float(HISTORY.budget_remaining(s.slo, START, END))
        assert s.budget.remaining == pytest.approx(left, rel=1e-12)
        assert by_name[s.slo.name].budget.remaining == pytest.approx(left, rel=1e-12)
        # the burn-down ends at the budget left over the window
        assert s.remaining[-1] == pytest.approx(left, rel=1e-12)
        # and, at any step, is the budget left over the events from the window's start to it
        k = 10 * 1440
        mid = float(HISTORY.budget_remaining(s.slo, START, START + (k + 1) * 60))
        assert s.remaining[k] == pytest.approx(mid, rel=1e-12)


@pytest.mark.parametrize("minutes", [6 * 1440 + 14 * 60 + 60, 12 * 1440 + 6 * 60 + 900, 18 * 1440 + 190, 9 * 1440])
def test_burn_rates_at_each_step_are_the_history_s(review, minutes):
    k = minutes  # a History step (minutes after t0); the review's step i ends at t0 + (lead + i + 1) min
    i = k - review.grid.lead - 1
    for s in review.slos:
        expected = HISTORY.window_burns(s.slo, HISTORY.at(k))
        for a, e in zip(s.alerts, expected):
            for got, want in ((a.long_burn[i], e.long_burn), (a.short_burn[i], e.short_burn)):
                assert got == pytest.approx(float(want), rel=1e-9, abs=1e-12), (s.slo.name, a.window.long, k)
            assert bool(a.condition[i]) == e.fires


def test_episodes_are_the_minutes_the_alerts_fire(review):
    lead = review.grid.lead
    first_in_window = lead + 1  # the History step that ends the window's first step
    for s in review.slos:
        for severity in ("page", "ticket"):
            spans = []
            for a in s.alerts:
                if a.window.severity != severity:
                    continue
                for e in a.episodes:
                    first = HISTORY.step(e.start)
                    last = HISTORY.step(e.end) - 1 if e.end is not None else HISTORY.steps
                    spans.append((first, last))
            expected = HISTORY.firing_spans(s.slo, severity, start=first_in_window)
            assert _merged(spans) == expected, (s.slo.name, severity)


def test_what_to_decide_names_the_noisy_page(review):
    avail = review.slos[0]
    assert avail.slo.name == "availability"
    noisy = [e for a in avail.alerts for e in a.episodes if e.noisy]
    # the quiet night's ten-minute burst: 60 bad requests, under the 2% of the budget a page stands for
    assert [HISTORY.step(e.start) for e in noisy] == [HISTORY.step_of("burst") + 9]
    assert noisy[0].spent == pytest.approx(60 / (0.001 * avail.sli.total), rel=1e-9)
    assert [d.kind for d in review.decisions if d.slo == "availability"] == ["noisy_alert"]
    # the rules are loaded but evaluated at Prometheus' own clock: ALERTS holds no episode in the month,
    # and what fires now is not the state at a window that ended weeks ago (not asked)
    for s in review.slos:
        assert all(a.firing_now is None and a.fired == () for a in s.alerts)


def test_the_command_writes_the_same_review(served, tmp_path, capsys):
    out = tmp_path / "review"
    spec = tmp_path / "slo.yaml"
    from slo_history import SPEC_YAML

    spec.write_text(SPEC_YAML, encoding="utf-8")
    code = main(
        ["slo", "review", "--spec", str(spec), "--prometheus", served.url, "--end", str(END), "--out", str(out)]
    )
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "review.json").read_text(encoding="utf-8"))
    assert (doc["start"], doc["end"], doc["window"]) == (START, END, "28d")
    for row in doc["slos"]:
        slo = SPEC.slo(row["name"])
        good, total = HISTORY.counts(slo, START, END)
        assert (row["sli"]["good"], row["sli"]["total"]) == (good, total)
    assert (out / "review.md").read_text(encoding="utf-8").startswith("# SLO review: captioner")
    assert "<svg" in (out / "review.html").read_text(encoding="utf-8")
