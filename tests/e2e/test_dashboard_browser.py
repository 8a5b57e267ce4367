"""End to end: the dashboard served by ``streamlit run`` and opened in a real headless Chromium
(Debian's ``chromium``, driven through ``chromedriver`` over the W3C WebDriver protocol)."""

import pytest

from browser import dashboard, needs_chromium
from dashboard_fixture import build_reports

pytestmark = [needs_chromium, pytest.mark.slow]


def test_browser_shows_the_verdict(tmp_path):
    reports = build_reports(tmp_path / "reports")
    rec = reports.new_decision
    with dashboard(reports.root, tmp_path) as (base, browser):
        browser.open(base + "/")
        browser.wait_for(
            f"Verdict: ROLLBACK (score {rec['score']:g})", rec["reasons"][-1], "tiny-slow", "Canary decision"
        )
        browser.open(base + "/oncall")
        browser.wait_for(f"Last verdict (run run-b): ROLLBACK (score {rec['score']:g})", "P95 latency")
