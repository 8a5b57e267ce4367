"""The SLO review report (``harness.slo.review_report``) on reviews built from synthetic histories
whose figures are worked out by hand below, and the review model's figures themselves
(``harness.slo.review``): burn rates from integer counts, the ``for`` hold, noisy episodes, the
exhaustion projection's closed form, markers outside the window."""

import dataclasses
import json
import re
from datetime import datetime, timezone
from fractions import Fraction

import numpy as np
import pytest

from harness.slo import parse_spec
from harness.slo.review import Episode, Marker, SLOHistory, build_review, review_grid
from harness.slo.review_report import (
    MAX_DRAWN,
    Y0,
    Y1,
    downsample,
    render_html,
    render_markdown,
    write_review,
)
from harness.slo.spec import SLO, AlertWindow, SLOSpec
from markup import markdown_html, parse_html

DAY, STEP = 86400, 60
END = 1_789_948_800.0  # 2026-09-21 00:00 UTC
WINDOW_START = END - 28 * DAY  # 2026-08-24 00:00 UTC
STEPS = 28 * 1440  # the window's steps at one minute

SPEC = """
version: 1
service: captioner
slos:
  - {name: availability, sli: availability, objective: 0.999, period: 28d}
  - {name: latency-500ms, sli: latency, threshold: 0.5, objective: 0.99, period: 28d}
  - {name: coverage, sli: coverage, objective: 0.995, period: 28d}
  - {name: quality, sli: quality, metric: CIDEr-D, threshold: 0.5, objective: 0.9, period: 28d}
"""

IMG = "<img src=x onerror=alert(1)>"
SERVICE = f"captioner {IMG} *bold*"
NOTE = f"no quality scores: {IMG} [link](http://x) | pipe"
DEPLOY = f"PROMOTE {IMG}"
DEPLOY_DETAIL = "*bold* | pipe [link](http://x)"
DRIFT_DETAIL = "confidence, <script>alert(1)</script>"
URL = "http://prom:9090/`x`<script>alert(1)</script>"
WARNING = f"decisions/x.json: not a decision record (ValueError); left out {IMG}"

# availability, 120 events a step: a 20% burst of 2h on day 10 (fires every alert), a stretch of 20h
# at one bad event every other step on day 20 (4.17x: the tickets only) and, on day 25, 5h at 2
# events a step with 5 bad in a row (a page on few events: noisy).
BURST, STRETCH, QUIET = 10 * 1440, 20 * 1440, 25 * 1440
AVAIL_TOTAL = 120 * STEPS - 118 * 300  # 4,803,000
AVAIL_BAD = 24 * 120 + 600 + 5  # 3,485


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M")


def _histories(spec, grid):
    w0 = grid.lead
    out = []
    for slo in spec.slos:
        if slo.name == "availability":
            total, bad = np.full(grid.n, 120.0), np.zeros(grid.n)
            bad[w0 + BURST : w0 + BURST + 120] = 24
            bad[w0 + STRETCH : w0 + STRETCH + 1200 : 2] = 1
            total[w0 + QUIET : w0 + QUIET + 300] = 2
            bad[w0 + QUIET + 100 : w0 + QUIET + 105] = 1
        elif slo.name == "latency-500ms":  # 2% bad throughout: twice its 1% budget
            total, bad = np.full(grid.n, 100.0), np.full(grid.n, 2.0)
        elif slo.name == "coverage":  # clean until the last day, then 1% bad: 2x its 0.5% budget
            total, bad = np.full(grid.n, 200.0), np.zeros(grid.n)
            bad[-1440:] = 2
        else:
            out.append(SLOHistory(slo, np.zeros(grid.n), np.zeros(grid.n), NOTE))
            continue
        out.append(SLOHistory(slo, total - bad, total))
    return out


@pytest.fixture(scope="module")
def review():
    spec = dataclasses.replace(parse_spec(SPEC), service=SERVICE)
    grid = review_grid(END, 28 * DAY, spec.slos)
    assert (grid.window_start, grid.end, grid.n - grid.lead) == (WINDOW_START, END, STEPS)
    markers = [
        Marker(WINDOW_START + 5 * DAY + 1800, "deploy", DEPLOY, DEPLOY_DETAIL, "d/decision.json"),
        Marker(WINDOW_START + 20 * DAY, "drift", "drift found", DRIFT_DETAIL),
        Marker(WINDOW_START - STEP, "deploy", "before the window"),
    ]
    source = {"kind": "prometheus", "url": URL}
    return build_review(spec, _histories(spec, grid), grid, source, markers, [WARNING])


@pytest.fixture(scope="module")
def md(review):
    return render_markdown(review)


@pytest.fixture(scope="module")
def page(review):
    return render_html(review)


# ---- markdown ------------------------------------------------------------------------------


def test_markdown_decides_first_grouped_by_kind(md, review):
    lines = md.splitlines()
    assert lines[0] == r"# SLO review: captioner &lt;img src=x onerror=alert\(1\)&gt; \*bold\*"
    assert lines[2].startswith("Window 2026-08-24 00:00 to 2026-09-21 00:00 UTC (28d, one point every 1m); source: ")
    heads = [ln for ln in lines if ln.startswith(("## ", "### "))]
    assert heads[:5] == [
        "## What to decide",
        "### Overspent",
        "### Noisy alerts",
        "### No data",
        "## SLOs",
    ]
    at = {h: lines.index(h) for h in heads[:4]}
    assert lines[at["### Overspent"] + 2] == (
        "- latency-500ms spent 200% of its error budget over the window: more than its share; "
        "freeze risky changes or revisit the objective"
    )
    # coverage spent 7.1% with no alert, but at its last day's 2x its budget is gone within the window
    assert not any(d.slo == "coverage" for d in review.decisions)
    # 5 bad events of the 4,803 the window allows: 0.10%, against the 2% a 1h page stands for
    assert lines[at["### Noisy alerts"] + 2] == (
        r"- availability's page alert \(13.44x over 1h and 5m\) fired 1 time\(s\) while spending at most "
        r"0.10% of the budget, less than the 2.00% it stands for: noisy \(few events\)"
    )
    assert lines[at["### Noisy alerts"] + 3] == ""
    assert lines[at["### No data"] + 2].startswith("- quality: no quality scores: &lt;img")


def test_markdown_slo_table_gives_the_figures(md, review):
    spent = Fraction(AVAIL_BAD, 1) / (Fraction(1, 1000) * AVAIL_TOTAL)
    assert f"{100 * float(1 - spent):.1f}%" == "27.4%"
    cover_left = 1 - Fraction(2 * 1440) / (Fraction(5, 1000) * 200 * STEPS)
    assert f"{100 * float(cover_left):.1f}%" == "92.9%"
    # coverage: 37,440 bad events of budget left, spent at (2 - 1) x 0.005 x 200/60 a second: 26 days
    assert float((Fraction(5, 1000) * 200 * STEPS - 2880) / (Fraction(5, 1000) * Fraction(200, 60))) == 26 * DAY
    rows = [ln for ln in md.splitlines() if ln.startswith("| ")]
    assert rows[0].startswith("| SLO | SLI kind | objective | window | SLI over the window | good / total |")
    assert rows[2:6] == [
        f"| availability | availability | 99.9% | 28d | 99.927% | {AVAIL_TOTAL - AVAIL_BAD:,} / {AVAIL_TOTAL:,} "
        "| 27.4% | not at the last day's 0x | none | ▲ better |",
        "| latency-500ms | latency (threshold 0.5) | 99% | 28d | 98.000% | 3,951,360 / 4,032,000 | -100.0% "
        "| gone already (the last day's 2x) | **ticket** | ► steady |",
        "| coverage | coverage | 99.5% | 28d | 99.964% | 8,061,120 / 8,064,000 | 92.9% "
        "| gone in 26d at the last day's 2x | none | ▼ worse |",
        "| quality | quality (threshold 0.5) | 90% | 28d | no data | 0 / 0 | – | – | none | ? unknown |",
    ]
    assert review.slos[2].exhaustion_s == pytest.approx(26 * DAY, rel=1e-12)


def _section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_markdown_alerts_and_episodes_per_slo(md):
    avail = _section(md, "SLO availability")
    alerts = [ln for ln in avail.split("### Alerts", 1)[1].split("### Episodes")[0].splitlines() if ln.startswith("| ")]
    assert alerts[0] == (
        "| severity | factor | long / short | burn now (long / short) | peak long burn | episodes | firing now "
        "| noisy episodes |"
    )
    # the 20% burst: 24 bad a step over a 1h window of 7.2 allowed (200x); the tickets' 3d window
    # still holds the stretch's 600 and the quiet burst's 5 bad events at the end
    assert alerts[2] == "| page | 13.44x | 1h / 5m | 0 / 0 | 200 | 2 | no | **1 noisy** |"
    assert alerts[3] == "| page | 5.6x | 6h / 30m | 0 / 0 | 66.7 | 1 | no | none |"
    assert [r.split(" | ")[5] for r in alerts[4:6]] == ["2", "2"]
    episodes = [ln for ln in avail.split("### Episodes", 1)[1].splitlines() if ln.startswith("| ")]
    assert episodes[0] == "| alert | from | start (UTC) | end (UTC) | lasted | budget spent | its share | noisy |"
    # the burst's page: both windows meet 13.44x from its 5th step (5 x 24 bad over 7.2 allowed)
    # to 4 steps after its last (then the 5m window empties); the episode starts at that step's end
    start, end = WINDOW_START + (BURST + 5) * STEP, WINDOW_START + (BURST + 125) * STEP
    assert (_utc(start), _utc(end)) == ("2026-09-03 00:05", "2026-09-03 02:05")
    assert episodes[2] == (
        f"| page 13.44x over 1h / 5m | burn rates | {_utc(start)} | {_utc(end)} | 2h | 59.96% | 2.00% | no |"
    )
    # the quiet page: the 1h window holds 2 of the 5 bad events from the burst's 2nd step, the
    # 5m window some until 4 steps after its last: 8 steps, 5 bad of 4,803 allowed
    quiet = WINDOW_START + (QUIET + 102) * STEP
    assert episodes[-1] == (
        f"| page 13.44x over 1h / 5m | burn rates | {_utc(quiet)} | {_utc(quiet + 8 * STEP)} | 8m | 0.10% | 2.00% "
        "| **noisy** |"
    )
    assert _utc(quiet) == "2026-09-18 01:42"
    latency = _section(md, "SLO latency-500ms")
    assert "| ticket 0.9333x over 3d / 6h | burn rates | 2026-08-24 00:01 | still firing at the end | 28d |" in latency
    assert "No alert condition held over the window." in _section(md, "SLO coverage")
    assert "### Alerts" not in _section(md, "SLO quality")


def test_markdown_keeps_hostile_text_inert(md):
    rendered = markdown_html(md)
    assert not {"img", "a", "script", "em", "del", "h4"} & set(rendered.tags)
    assert not [a for a in rendered.attrs if a[1].startswith("on") or a[1] in ("href", "src")]
    text = "".join(rendered.text)
    for hostile in (SERVICE, NOTE, DEPLOY, DEPLOY_DETAIL, DRIFT_DETAIL, WARNING, URL):
        assert hostile in text
    # every table keeps its shape: the pipes in the texts stay inside their cells
    assert [set(t) for t in rendered.tables] == [{10}] + [{8}] * 5 + [{4}]
    markers = _section(md, "Markers").splitlines()
    assert markers[3] == (
        r"| 2026-08-29 00:30 | deploy | PROMOTE &lt;img src=x onerror=alert\(1\)&gt; "
        r"| \*bold\* \| pipe \[link\]\(http\://x\) |"
    )
    assert markers[4].startswith("| 2026-09-13 00:00 | drift | drift found | confidence, &lt;script&gt;")
    assert len([ln for ln in markers if ln.startswith("| ")]) == 4  # the marker before the window is left out


# ---- HTML ----------------------------------------------------------------------------------


def test_html_is_self_contained_and_escaped(page):
    assert "<script" not in page and "<img" not in page
    parsed = parse_html(page)
    assert not {"script", "img", "a", "iframe", "object", "link", "image", "foreignobject"} & set(parsed.tags)
    loading = ("href", "src", "srcset", "srcdoc", "data", "action", "formaction", "xlink:href", "style")
    assert not [a for a in parsed.attrs if a[1].startswith("on") or a[1] in loading]
    assert "http-equiv" in {a[1] for a in parsed.attrs} and "default-src 'none'" in page
    text = "".join(parsed.text)
    for hostile in (SERVICE, NOTE, DEPLOY, DEPLOY_DETAIL, DRIFT_DETAIL, WARNING, URL):
        assert hostile in text
    assert "https://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_html_has_the_tables_of_the_markdown(page):
    parsed = parse_html(page)
    assert [set(t) for t in parsed.tables] == [{10}] + [{8}] * 5 + [{4}]
    text = "".join(parsed.text)
    assert "gone in 26d at the last day's 2x" in text and "▲ better" in text and "still firing at the end" in text


def test_html_draws_each_chart_with_the_markers(page):
    # 3 SLOs with data: burn-down, SLI and one per alert (4): 18 charts; none for the one without
    assert page.count("<svg") == 3 * (2 + 4)
    assert page.count('class="marker deploy"') == 18 and page.count('class="marker drift"') == 18
    titles = re.findall(r"<svg[^>]*><title>([^<]*)</title>", page)
    assert titles[:3] == [
        "availability: error budget left over the window",
        "availability: error ratio and events per 1m",
        "availability: page alert, burn rate over 1h and 5m against 13.44x (log scale)",
    ]
    assert not any(t.startswith("quality") for t in titles)
    # the marker's label on the chart is escaped text too
    assert "PROMOTE &lt;img src=x oner" in page
    # shaded episodes: the availability page 1h/5m chart shades its 2 episodes
    first_alert = page.split("<svg")[3]
    assert first_alert.count('class="episode"') == 2
    # coverage's projection: a dashed line from the window's end to zero
    coverage = page.split("<svg")[13]
    assert "coverage: error budget left" in coverage and "gone in 26d" in coverage
    assert coverage.count('stroke-dasharray="5 3"') == 1


def test_html_downsamples_lines_and_keeps_peaks(page):
    for pts in re.findall(r'<polyline points="([^"]*)"', page):
        assert len(pts.split(" ")) <= MAX_DRAWN
    # the 5m window's one-step peak (5 bad of 10 events: 500x) survives the buckets' maximum
    first_alert = page.split("<svg")[3]
    short = re.findall(r'<polyline points="([^"]*)" fill="none" stroke="#e07b24"', first_alert)
    highest = min(float(p.split(",")[1]) for run in short for p in run.split(" "))
    top = np.log10(1 + 500 * 1.15)
    assert highest == pytest.approx(Y0 - np.log10(501) / top * (Y0 - Y1), abs=0.06)


def test_downsample_buckets():
    first, last = downsample(STEPS)
    k = -(-STEPS // MAX_DRAWN)  # 51 steps a bucket
    assert len(first) == -(-STEPS // k) <= MAX_DRAWN
    assert first[1] == k and last[0] == k - 1 and last[-1] == STEPS - 1
    first, last = downsample(10)
    assert first.tolist() == list(range(10)) and last.tolist() == list(range(10))


def test_write_review_writes_three_files(review, tmp_path):
    paths = write_review(review, tmp_path / "out")
    assert set(paths) == {"json", "md", "html"}
    assert {p.name for p in paths.values()} == {"review.json", "review.md", "review.html"}
    assert json.loads(paths["json"].read_text(encoding="utf-8")) == json.loads(review.to_json())
    assert paths["md"].read_text(encoding="utf-8") == render_markdown(review)
    assert paths["html"].read_text(encoding="utf-8") == render_html(review)


def test_nothing_to_decide():
    slo = SLO("steady", "availability", 0.999, 30 * DAY)
    grid = review_grid(END, DAY, [slo])
    total, bad = np.full(grid.n, 1000.0), np.zeros(grid.n)
    bad[::5] = 1  # 0.2 bad a step: 20% of the budget, never near an alert
    review = build_review(SLOSpec("svc", (slo,)), [SLOHistory(slo, total - bad, total)], grid, {"kind": "records"})
    assert review.decisions == ()
    md = render_markdown(review)
    assert "Nothing to decide" in md and "No deploy or drift report in the window." in md
    assert "## Warnings" not in md


def test_never_at_risk_when_little_spent_no_alert_and_no_exhaustion_ahead():
    slo = SLO("loose", "availability", 0.99, 30 * DAY)
    grid = review_grid(END, 7 * DAY, [slo])
    total, bad = np.full(grid.n, 1000.0), np.zeros(grid.n)
    bad[::20] = 1  # 0.05 bad a step in 1,000: 0.5% of the budget
    review = build_review(SLOSpec("svc", (slo,)), [SLOHistory(slo, total - bad, total)], grid, {"kind": "records"})
    assert [(d.kind, d.text) for d in review.decisions] == [
        (
            "never_at_risk",
            "loose spent 0.5% of its error budget and no alert condition was met: never at risk; "
            "the objective (0.99) may be too loose",
        )
    ]
    lines = render_markdown(review).splitlines()
    at = lines.index("### Never at risk")
    assert lines[at + 2] == (
        "- loose spent 0.5% of its error budget and no alert condition was met: never at risk; "
        r"the objective \(0.99\) may be too loose"
    )


# ---- review figures ------------------------------------------------------------------------

PAGE = AlertWindow.from_budget("page", 2, 3600, 300, 30 * DAY)  # 14.4x over 1h and 5m: 2% of 30 days' budget
# 5,000 events a step; a burst of 720 bad a step (144x) for 8 steps at S0, and at S1 3,960 bad then,
# 58 steps later, 360: the 1h window holds 14.4x for the 2 steps it holds both
S0, S1 = 600, 900


def _exact(window: AlertWindow, total=None, bad=None):
    slo = SLO("exact", "availability", 0.999, 30 * DAY, windows=(window,))
    grid = review_grid(END, DAY, [slo])
    if total is None:
        total, bad = np.full(grid.n, 5000.0), np.zeros(grid.n)
        bad[grid.lead + S0 : grid.lead + S0 + 8] = 720
        bad[grid.lead + S1], bad[grid.lead + S1 + 58] = 3960, 360
    history = SLOHistory(slo, total - bad, total)
    return build_review(SLOSpec("svc", (slo,)), [history], grid, {"kind": "records"}), total, bad


def _meets_exactly(total, bad, lead, steps, factor=Fraction(72, 5), budget=Fraction(1, 1000)):
    """Window steps where the trailing ``steps`` sums burn at ``factor`` or faster, in integers."""
    t, b = (
        np.concatenate([[0], np.cumsum(total.astype(np.int64))]),
        np.concatenate([[0], np.cumsum(bad.astype(np.int64))]),
    )
    out = []
    for i in range(lead, len(total)):
        lo = max(0, i + 1 - steps)
        out.append(Fraction(int(b[i + 1] - b[lo])) >= factor * budget * int(t[i + 1] - t[lo]))
    return np.array(out)


def test_an_exact_burn_fires_the_steps_the_maths_says():
    assert PAGE.burn_rate == 14.4
    review, total, bad = _exact(PAGE)
    s, grid = review.slos[0], review.grid
    a = s.alerts[0]
    expected = _meets_exactly(total, bad, grid.lead, 60) & _meets_exactly(total, bad, grid.lead, 5)
    assert np.array_equal(a.condition, expected)
    # the 1h window meets 14.4x once it holds 6 of the 8 bursting steps (6 x 720 = 4,320 bad of
    # 300,000 events: exactly 14.4x) and the 5m window while it holds one: S0+5 .. S0+11
    assert np.flatnonzero(a.condition).tolist() == list(range(S0 + 5, S0 + 12)) + [S1 + 58, S1 + 59]
    assert a.long_burn[S0 + 5] == pytest.approx(14.4, rel=1e-15)
    ws = grid.window_start
    first, second = a.episodes
    assert (first.start, first.end) == (ws + (S0 + 6) * STEP, ws + (S0 + 13) * STEP)
    assert (second.start, second.end) == (ws + (S1 + 59) * STEP, ws + (S1 + 61) * STEP)
    # what the first spent: its 8 x 720 bad events of the day's 7,200 allowed; it stands for 2%
    assert first.spent == pytest.approx(8 * 720 / 7200) and first.share == pytest.approx(0.02) and not first.noisy
    assert s.budget.remaining == pytest.approx(1 - (8 * 720 + 4320) / 7200)
    assert s.remaining[S0 + 7] == pytest.approx(1 - 5760 / (5 * (S0 + 8)))
    # strictly above 14.4x: the step at exactly 14.4x no longer counts
    strict, _, _ = _exact(dataclasses.replace(PAGE, strict=True))
    assert np.flatnonzero(strict.slos[0].alerts[0].condition)[0] == S0 + 6


def test_the_for_hold_delays_the_episode_and_drops_short_runs():
    review, _, _ = _exact(dataclasses.replace(PAGE, alert_after_s=120))
    (episode,) = review.slos[0].alerts[0].episodes  # the 2-step run at S1 only pends
    ws = review.grid.window_start
    assert episode.start == ws + (S0 + 5 + 2 + 1) * STEP  # firing 2 steps after the condition first held
    assert episode.end == ws + (S0 + 13) * STEP


def test_a_burst_on_few_events_is_noisy():
    slo = SLO("exact", "availability", 0.999, 30 * DAY, windows=(PAGE,))
    grid = review_grid(END, DAY, [slo])
    k = grid.lead + 300
    total, bad = np.full(grid.n, 5000.0), np.zeros(grid.n)
    total[k : k + 120] = 2
    bad[k + 60 : k + 65] = 1
    review, _, _ = _exact(PAGE, total, bad)
    a = review.slos[0].alerts[0]
    assert np.flatnonzero(a.condition).tolist() == list(range(300 + 61, 300 + 69))
    (e,) = a.episodes
    allowed = 0.001 * (5000 * (1440 - 120) + 2 * 120)
    assert e.start == grid.window_start + (300 + 62) * STEP
    assert e.spent == pytest.approx(5 / allowed) and e.share == pytest.approx(0.02) and e.noisy
    (d,) = review.decisions
    assert d.kind == "noisy_alert" and "fired 1 time(s)" in d.text


def test_the_exhaustion_projection_is_the_closed_form():
    slo = SLO("cover", "availability", 0.999, 30 * DAY)
    grid = review_grid(END, 2 * DAY, [slo])
    total, bad = np.full(grid.n, 2000.0), np.zeros(grid.n)
    bad[-1440:] = 3  # the last day at 1.5x
    review = build_review(SLOSpec("svc", (slo,)), [SLOHistory(slo, total - bad, total)], grid, {"kind": "records"})
    s = review.slos[0]
    budget, n, spent = Fraction(1, 1000), 2000 * 2880, 3 * 1440
    burn = Fraction(3 * 1440) / (budget * 2000 * 1440)
    rate = Fraction(2000, STEP)  # events a second over the last day
    closed = (budget * n - spent) / (budget * rate * (burn - 1))
    assert (burn, closed) == (Fraction(3, 2), DAY)
    assert s.recent_burn == pytest.approx(1.5) and s.exhaustion_s == pytest.approx(float(closed), rel=1e-12)
    assert s.trend == "worse"
    assert "| gone in 1d at the last day's 1.5x |" in render_markdown(review)
    # at the last day's 1x it never goes
    bad[-1440:] = 2
    flat = build_review(SLOSpec("svc", (slo,)), [SLOHistory(slo, total - bad, total)], grid, {"kind": "records"})
    assert flat.slos[0].exhaustion_s is None and flat.slos[0].recent_burn == pytest.approx(1.0)
    assert "| not at the last day's 1x |" in render_markdown(flat)


def test_markers_outside_the_window_are_left_out():
    slo = SLO("a", "availability", 0.999, 30 * DAY)
    grid = review_grid(END, DAY, [slo])
    ws = grid.window_start
    markers = [Marker(t, "deploy", str(t)) for t in (END + 1, ws, ws - 1, END)]
    review = build_review(
        SLOSpec("svc", (slo,)), [SLOHistory(slo, np.zeros(grid.n), np.zeros(grid.n))], grid, {}, markers
    )
    assert [m.t for m in review.markers] == [ws, END]


def test_prometheus_alerts_are_shown_beside_the_burn_rates():
    review, _, _ = _exact(PAGE)
    slo, grid = review.slos[0].slo, review.grid
    history = SLOHistory(
        slo,
        np.full(grid.n, 5000.0),
        np.full(grid.n, 5000.0),
        fired=(Episode("page", grid.window_start + 3600, grid.window_start + 7200, source="prometheus"),),
        firing=frozenset({"page"}),
    )
    prom = build_review(SLOSpec("svc", (slo,)), [history], grid, {"kind": "prometheus", "url": "http://p"})
    md = render_markdown(prom)
    assert "| page | 14.4x | 1h / 5m | 0 / 0 | 0 | 0 (Prometheus: 1) | **yes (Prometheus)** | **1 noisy** |" in md
    assert "| page 14.4x over 1h / 5m | prometheus | 2026-09-20 01:00 | 2026-09-20 02:00 | 1h | 0.00% | 2.00% |" in md
    page = render_html(prom)
    assert page.count('class="fired"') == 1 and 'class="episode"' not in page


def test_the_json_says_when_the_budget_is_gone(review):
    latency, coverage = review.slos[1].to_dict(), review.slos[2].to_dict()
    assert (latency["exhaustion_s"], latency["exhaustion"]) == (0.0, "0s")
    assert coverage["exhaustion"] == "26d"
