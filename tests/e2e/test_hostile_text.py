"""Text a target returns stays text: a hostile service (tests/hostile.py: a real HTTP server on a
loopback port, with script tags, event handlers, markdown images and links, backticks, table
pipes, terminal escapes and a 100 kB caption in its captions, model name, versions and errors)
is judged by the gate and evaluated; every report it leads to, and the dashboard over them in a
real Chromium, is checked: no payload runs and nothing loads from the tracker."""

import contextlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from browser import dashboard, needs_chromium
from harness.canary.gate import GateConfig, run_gate
from harness.cli import main
from harness.drift.report import CSP
from harness.text import one_line
from hostile import Corpus, Tracker, hostile_corpus, hostile_service, tracker
from markup import markdown_html, parse_html

pytestmark = pytest.mark.slow

RUN = "hostile"
# Elements that may appear in drift.html: its own page, tables and inline SVG plots, nothing else.
DRIFT_TAGS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "h1",
    "h2",
    "p",
    "code",
    "table",
    "tr",
    "th",
    "td",
    "ul",
    "li",
    "div",
    "figure",
    "svg",
    "rect",
    "line",
    "text",
    "circle",
}
# Attributes through which a page loads or links something.
LOADING_ATTRS = (
    "href",
    "src",
    "srcset",
    "srcdoc",
    "data",
    "action",
    "formaction",
    "poster",
    "background",
    "xlink:href",
    "style",
)


@dataclass(frozen=True)
class Hostile:
    tracker: Tracker
    root: Path
    run: Path
    rec: dict
    baseline: Corpus
    canary: Corpus
    evaluate: Path
    evaluate_out: "Output"


@dataclass(frozen=True)
class Output:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One gate run and one ``harness evaluate`` against hostile services, for every test here."""
    tmp = tmp_path_factory.mktemp("hostile")
    with tracker() as t:
        base, can = hostile_corpus(t.url, "base"), hostile_corpus(t.url, "can")
        with hostile_service(base, "b") as b_url, hostile_service(can, "c") as c_url:
            root = tmp / "reports"
            rec = run_gate(
                GateConfig(
                    b_url, c_url, root / RUN, duration_s=2.0, users=1, dataset="shapes:12", concurrency=2, run_id=RUN
                )
            )
            ev = tmp / "evaluate"
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(
                    [
                        "evaluate",
                        "--target",
                        c_url,
                        "--dataset",
                        "shapes:6",
                        "--metrics",
                        "cider",
                        "--bootstrap",
                        "0",
                        "--coverage",
                        "0.5",
                        "--out",
                        str(ev),
                    ]
                )
        yield Hostile(t, root, root / RUN, rec, base, can, ev, Output(code, out.getvalue(), err.getvalue()))


def _inert(html, what: str) -> None:
    assert not {"script", "img", "a", "iframe", "object", "svg", "link", "style", "b", "image"} & set(html.tags), what
    assert not [a for a in html.attrs if a[1].startswith("on") or a[1] in LOADING_ATTRS], what


def test_the_run_saw_every_payload(hostile):
    """The gate judged what the services answered: every hostile caption, both versions and names."""
    rec = hostile.rec
    targets = rec["inputs"]["targets"]
    assert targets["baseline"]["model_version"] == hostile.baseline.version
    assert targets["canary"]["model"] == hostile.canary.name
    df = pd.read_parquet(hostile.run / "records.parquet")
    assert set(df["caption"].dropna()) == set(hostile.baseline.captions) | set(hostile.canary.captions)
    assert (df["outcome"] == "http_error").any() and df["error"].dropna().str.contains("boom").any()
    assert max(len(w["caption"] or "") for w in rec["worst_captions"]) > 90_000
    assert rec["findings"]


def test_summary_md_keeps_target_text_inert(hostile):
    md = (hostile.run / "summary.md").read_text()
    assert "\x1b" not in md and "\u202e" not in md
    html = markdown_html(md)
    _inert(html, "summary.md")
    assert html.tags.count("h2") == 1 and not {"h1", "h4", "del", "em"} & set(html.tags)
    rows = [set(t) for t in html.tables]
    assert rows[0] == {3} and len(html.tables[0]) == 4  # header, url, model, model version: one cell each
    text = "".join(html.text)
    for corpus in (hostile.baseline, hostile.canary):
        assert one_line(corpus.name) in text and one_line(corpus.version) in text  # shown, as text


def test_drift_html_is_escaped_and_forbids_scripts(hostile):
    page = (hostile.run / "drift.html").read_text()
    html = parse_html(page)
    assert set(html.tags) <= DRIFT_TAGS
    assert not [a for a in html.attrs if a[1].startswith("on") or a[1] in LOADING_ATTRS]
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert hostile.tracker.url not in page  # captions reach it as tokens, never as markup


def test_evaluate_output_is_inert(hostile):
    done = hostile.evaluate_out
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr and "\u202e" not in done.stdout + done.stderr
    assert f"model {one_line(hostile.canary.version, 120)}\n" in done.stdout
    doc = json.loads((hostile.evaluate / "quality.json").read_text())
    assert doc["run"]["model_versions"] == [hostile.canary.version]  # the file keeps what was said, as data


PAGES = {  # path: what the page shows once drawn
    "/": ("Canary decision", "summary.md"),
    "/drift": ("Drift report", "Download drift.html"),
    "/executive": ("Executive view", "Across runs"),
    "/oncall": ("On-call view", "Requests"),
    "/debug": ("Debug view", "Worst captions"),
    "/rate": ("Rate captions", "Caption 1 of"),
}

# Every element's loading attributes, in the page and in each frame the page can reach.
_LOADS = """
const attrs = arguments[0], out = [];
const scan = (doc, where) => {
  for (const el of doc.querySelectorAll('*')) {
    for (const a of attrs) { const v = el.getAttribute(a); if (v) out.push([where, el.tagName, a, v.slice(0, 200)]); }
  }
};
scan(document, 'page');
document.querySelectorAll('iframe').forEach((f, i) => { try { scan(f.contentDocument, 'frame ' + i); } catch (e) {} });
return out;
"""
_PWNED = """
const seen = [typeof window.__pwned];
document.querySelectorAll('iframe').forEach(f => { try { seen.push(typeof f.contentWindow.__pwned); } catch (e) {} });
return seen;
"""


@needs_chromium
def test_dashboard_shows_target_text_as_text_in_chromium(hostile, tmp_path):
    t = hostile.tracker
    with dashboard(hostile.root, tmp_path) as (base, browser):
        for path, marks in PAGES.items():
            browser.open(base + path)
            if path == "/":  # the versions, shown as they were said
                marks += (one_line(hostile.baseline.version), one_line(hostile.canary.version))
            if path == "/debug":  # markup in a caption, shown as the characters it is
                marks += (
                    next(
                        w["caption"]
                        for w in hostile.rec["worst_captions"]
                        if "<" in w["caption"] and w["caption"].isprintable() and len(w["caption"]) < 500
                    ),
                )
            browser.wait_for(*marks)
            if path == "/drift":
                _check_drift_frame(browser)
            time.sleep(0.25)  # time for anything a payload would load
            assert set(browser.run(_PWNED)) == {"undefined"}, path
            loads = [x for x in browser.run(_LOADS, list(LOADING_ATTRS)) if t.url in x[3] or "javascript:" in x[3]]
            assert not loads, (path, loads)
        # drift.html opened on its own, as a person opening the file would
        browser.open((hostile.run / "drift.html").as_uri())
        browser.wait_for("Drift:")
        time.sleep(0.5)
        assert browser.run("return typeof window.__pwned") == "undefined"
    assert t.hits == []


def _check_drift_frame(browser) -> None:
    """drift.html is embedded from a data: URL: an opaque origin that cannot reach the app."""
    end = time.monotonic() + 30
    while (frame := browser.find("iframe[title='Drift report of this run']")) is None and time.monotonic() < end:
        time.sleep(0.2)
    assert frame is not None, browser.text()[-1000:]
    src = browser.run("return arguments[0].getAttribute('src') || ''", frame)
    assert src.startswith("data:text/html") and not browser.run("return arguments[0].hasAttribute('srcdoc')", frame)
    browser.enter_frame(frame)
    try:
        end = time.monotonic() + 30
        while "Drift:" not in browser.text() and time.monotonic() < end:
            time.sleep(0.2)
        origin, reach, pwned = browser.run(
            "let r; try { r = String(window.parent.document.title); } catch (e) { r = 'blocked'; }"
            "return [window.origin, r, typeof window.__pwned];"
        )
        assert "Drift:" in browser.text()
    finally:
        browser.leave_frame()
    assert (origin, reach, pwned) == ("null", "blocked", "undefined")
