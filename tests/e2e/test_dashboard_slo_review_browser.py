"""End to end: the dashboard's SLO review served by ``streamlit run`` and opened in a real headless
Chromium, reading a real Prometheus that serves a month of the captioning service's counters
(``tests/slo_history.py``: backfilled, every minute) with the rules ``harness rules`` generates
from the spec loaded. The list and an SLO's page show what ``PrometheusSource.history`` and
``build_review`` give for the same 28 days; an SLO that no metric shows has its note instead."""

from __future__ import annotations

import time

import pytest

from browser import DEADLINE_S, dashboard, needs_chromium
from harness.cli import main
from harness.slo import parse_spec
from harness.slo.prometheus import PrometheusSource
from harness.slo.review import build_review, review_grid
from slo_history import DAY, SPEC_YAML, History, start_history_prometheus

pytestmark = [needs_chromium, pytest.mark.slow]

# The History's spec, and a quality SLO: no Prometheus metric shows it.
SPEC = SPEC_YAML + "  - {name: quality, sli: quality, metric: CIDEr-D, threshold: 0.5, objective: 0.9, period: 28d}\n"
CELLS = "return Array.from(document.querySelectorAll('[data-testid=stDataFrame] td')).map(e => e.textContent)"
# Per chart: how many lines it drew and the text of its axes (the times on the x axis among them).
CHARTS = """return Array.from(document.querySelectorAll('.vega-embed svg')).map(svg => [
    svg.querySelectorAll('g.mark-line path').length,
    Array.from(svg.querySelectorAll('g.role-axis-label text')).map(t => t.textContent).join(' ')])"""


def _until(what: str, probe):
    end, seen = time.monotonic() + DEADLINE_S, None
    while time.monotonic() < end:
        seen = probe()
        if seen:
            return seen
        time.sleep(0.25)
    pytest.fail(f"{what} never came; last seen: {seen!r}")


def test_browser_shows_the_slo_review_from_prometheus(tmp_path, monkeypatch):
    history = History()
    start, end = history.window()  # the last 28 days of the month, ending at the last scrape
    root = tmp_path / "reports"
    root.mkdir()
    (root / "slo.yaml").write_text(SPEC)
    spec = parse_spec(SPEC)
    rules = tmp_path / "rules.yml"
    assert main(["rules", "--spec", str(root / "slo.yaml"), "--out", str(rules)]) == 0
    with start_history_prometheus(history, rule_files=[rules]) as prom:
        grid = review_grid(end, 28 * DAY, spec.slos)
        want = build_review(spec, PrometheusSource(prom.url).history(spec, grid), grid, {"kind": "prometheus"})
        by = {s.slo.name: s for s in want.slos}
        assert by["availability"].episodes and not by["quality"].has_data
        monkeypatch.setenv("HARNESS_PROMETHEUS", prom.url)
        monkeypatch.delenv("HARNESS_SLO_SPEC", raising=False)
        with dashboard(root, tmp_path) as (base, browser):
            browser.open(f"{base}/slo_list?window=28d&end={end:.0f}")
            browser.wait_for("SLO review", "What to decide", "from Prometheus at " + prom.url)
            cells = _until("the SLO table", lambda: browser.run(CELLS))
            for s in want.slos:
                i = cells.index(s.slo.name)
                sli = "no data" if s.sli.ratio is None else f"{s.sli.ratio:.3%}"
                left = "no data" if s.budget.remaining is None else f"{s.budget.remaining:.2%}"
                assert cells[i : i + 5] == [s.slo.name, f"{s.slo.objective * 100:g}%", "28d", sli, left]
            assert "quality: no data: Prometheus has no metric for a quality SLI" in browser.text()  # to decide

            avail = by["availability"]
            browser.open(f"{base}/slo_page?slo=availability&window=28d&end={end:.0f}")
            browser.wait_for(
                "SLO availability", "Budget left", f"{avail.budget.remaining:.2%}", "When alerts fired", "burn rates"
            )
            charts = _until(
                "every chart drawn",
                lambda: (c := browser.run(CHARTS)) and len(c) == 3 + len(avail.alerts) and all(n for n, _ in c) and c,
            )
            for lines, axes in charts:  # each chart drew its lines on the month's time axis
                assert lines >= 1 and "Oct" in axes, axes
            text = browser.text()
            for a in avail.alerts:
                w = a.window
                assert f"{w.severity}: {w.burn_rate:g}x over {w.long} and {w.short}" in text
                assert f"Long burn ({w.long}) now" in text

            browser.open(f"{base}/slo_page?slo=quality&window=28d&end={end:.0f}")
            browser.wait_for("SLO quality", "no data: Prometheus has no metric for a quality SLI")
            assert not browser.run("return document.querySelectorAll('.vega-embed').length")
