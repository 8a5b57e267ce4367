"""The Streamlit dashboard, page by page, with Streamlit's AppTest on report folders written by
the harness's own writers (tests/dashboard_fixture.py)."""

import base64
import calendar
import csv
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from dashboard_fixture import HOSTILE_CAPTION, N_IMAGES, build_reports, open_app  # noqa: E402
from harness.errors import InputMissingError  # noqa: E402
from harness.quality.hybrid import Rating, load_ratings  # noqa: E402
from harness.records import load_records  # noqa: E402
from harness.report.markdown import code_span  # noqa: E402
from harness.report.run import list_runs, load_run  # noqa: E402

DASH = Path(__file__).resolve().parents[2] / "dashboards"
sys.path.insert(0, str(DASH))
from ratings import RATING_COLUMNS, RatingRow, append_rating  # noqa: E402


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    return build_reports(tmp_path_factory.mktemp("reports"))


def _go(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(elements) -> list[str]:
    return [e.value for e in elements]


def _charts(at: AppTest) -> list:
    return list(at.get("vega_lite_chart"))


def _chart_rows(chart):
    return pa.ipc.open_stream(chart.proto.datasets[0].data.data).read_all().to_pandas()


def _metrics(at: AppTest) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


# -- the run folders ---------------------------------------------------------------------------
def test_runs_newest_first_with_artifacts(reports):
    runs = list_runs(reports.root)
    assert [r.name for r in runs] == ["run-b", "run-a"]  # "scratch" holds no decision.json
    assert [r.verdict for r in runs] == ["ROLLBACK", "PROMOTE"]
    new, old = runs
    assert new.artifact("records") == reports.new / "records.parquet"
    assert new.artifact("drift_html") == reports.new / "drift.html"
    assert new.artifact("dataset") == reports.new / "dataset"
    assert new.resolve("dataset/images/000003.png") == reports.new / "dataset/images/000003.png"
    assert new.resolve("dataset/images/gone.png") is None
    assert old.artifact("records") is None and old.artifact("summary_md") == reports.old / "summary.md"
    with pytest.raises(InputMissingError, match="report folder not found"):
        list_runs(reports.root / "nowhere")
    with pytest.raises(InputMissingError, match="no decision.json"):
        load_run(reports.root / "scratch")


# -- pages -------------------------------------------------------------------------------------
def test_decision_page_renders_the_record(reports, monkeypatch):
    at = open_app(reports.root, monkeypatch)
    rec = reports.new_decision
    assert at.selectbox(key="run").value == "run-b"  # the newest run by default
    assert _texts(at.sidebar.markdown) == [f"**Verdict: ROLLBACK** (score {rec['score']:g})"]
    assert _texts(at.error) == [f"Verdict: **ROLLBACK** (score {rec['score']:g})"]
    assert ("Score", f"{rec['score']:.4g}") in _metrics(at)
    assert ("Canary model", "tiny-slow") in _metrics(at)
    helps = {m.label: m.proto.help for m in at.metric}
    assert helps["Canary model"] == "at `http://127.0.0.1:9002`, protocol `openai-chat`, model `qwen2-vl`"
    assert helps["Baseline model"] == "at `http://127.0.0.1:9001`"
    assert _texts(at.text) == ["\n".join(f"• {r}" for r in rec["reasons"])]
    table = at.dataframe[0].value
    assert list(table["name"]) == [m["name"] for m in rec["metrics"]]
    assert list(table["classification"]) == [m["classification"] for m in rec["metrics"]]
    assert list(table.columns[:4]) == ["name", "group", "classification", "critical"]
    power = at.dataframe[1].value
    assert list(power["metric"]) == [p["metric"] for p in rec["power"]]
    assert list(power["adequate"]) == [p["adequate"] for p in rec["power"]]
    findings = at.dataframe[2].value
    assert list(findings["caption"]) == [HOSTILE_CAPTION + " mail me@evil.example"]
    # Target text reaches markdown only inside summary.md, in a code span.
    summary = (reports.new / "summary.md").read_text()
    assert code_span(HOSTILE_CAPTION + " mail me@evil.example", 200) in summary
    assert not [t for t in _texts(at.markdown) if HOSTILE_CAPTION in t and t != summary.strip()]
    groups = _chart_rows(_charts(at)[0])
    scored = [g for g in rec["groups"] if g["score"] is not None]
    assert list(groups["name"]) == [g["name"] for g in scored]
    assert list(groups["score"]) == [g["score"] for g in scored]
    assert (reports.new / "summary.md").read_text().strip() in _texts(at.markdown)


def test_executive_page(reports, monkeypatch):
    at = open_app(reports.root, monkeypatch, "executive")
    figs = reports.new_decision["figures"]
    tiles = _metrics(at)
    assert tiles[:4] == [
        ("Requests", f"{figs['baseline']['requests']}"),
        ("Throughput", f"{figs['baseline']['throughput_rps']:.2f}/s"),
        ("Cost per 1,000 captions", f"${figs['baseline']['cost_per_1000']:.4f}"),
        ("Safety flag rate", "0.00%"),
    ]
    assert ("Cost per 1,000 captions", f"${figs['canary']['cost_per_1000']:.4f}") in tiles
    charts = _charts(at)
    assert len(charts) == 7  # quality, hybrid, requests, throughput, cost, safety, verdicts
    quality = _chart_rows(charts[0]).sort_values(["created", "target"])
    old_q = reports.old_decision["figures"]["baseline"]["cider_d"]
    assert list(quality["cider_d"]) == [old_q, old_q, figs["baseline"]["cider_d"], figs["canary"]["cider_d"]]
    assert list(quality["cider_d_high"])[2] == figs["baseline"]["cider_d_ci"]["high"]
    history = at.dataframe[0].value
    assert list(history["run"]) == ["run-b", "run-a"] and list(history["verdict"]) == ["ROLLBACK", "PROMOTE"]


def test_oncall_page(reports, monkeypatch):
    at = open_app(reports.root, monkeypatch, "oncall")
    figs = reports.new_decision["figures"]
    tiles = _metrics(at)
    assert tiles[:2] == [
        ("P95 latency", f"{figs['baseline']['p95_s'] * 1000:.1f} ms"),
        ("P99 latency", f"{figs['baseline']['p99_s'] * 1000:.1f} ms"),
    ]
    assert ("Error rate", "2.50%") in tiles and ("Queue depth", "7") in tiles
    assert "Queue depth: not in this run" in _texts(at.caption)  # the baseline reports none
    assert _texts(at.error) == [
        "Last verdict (run run-b): **ROLLBACK** (score 52.94)",
        "Would page — canary · latency-p95: burn 16x, budget left -1500.00%",
    ]
    burn = _chart_rows(_charts(at)[0])
    assert sorted(zip(burn["target"], burn["name"], burn["projected_burn_rate"])) == sorted(
        (s["target"], s["name"], s["projected_burn_rate"]) for s in reports.new_decision["slos"]
    )
    timeline = _chart_rows(_charts(at)[2])
    assert len(timeline) == 2 * N_IMAGES * 10


def test_debug_page(reports, monkeypatch):
    at = open_app(reports.root, monkeypatch, "debug")
    records = load_records(reports.new)
    ok = records[records["outcome"] == "ok"]
    latency, confidence, outcomes, cider = _charts(at)
    rows = _chart_rows(latency)
    assert len(rows) == len(ok) and sorted(rows["latency_s"]) == sorted(ok["latency_s"])
    assert len(_chart_rows(confidence)) == len(ok)
    assert len(_chart_rows(outcomes)) == len(records)
    quality = json.loads((reports.new / "quality.json").read_text())
    assert sorted(_chart_rows(cider)["cider_d"]) == sorted(
        r["CIDEr-D"] for t in ("baseline", "canary") for r in quality[t]["per_image"]
    )
    assert len(at.image) == 2  # the third worst caption's image is gone
    assert _texts(at.info) == ["image: not in this run"]
    shown = _texts(at.text)
    for w in reports.new_decision["worst_captions"]:
        assert w["caption"] in shown
    assert HOSTILE_CAPTION in shown and not [t for t in _texts(at.markdown) if HOSTILE_CAPTION in t]


def test_drift_page(reports, monkeypatch):
    at = open_app(reports.root, monkeypatch, "drift")
    assert _texts(at.error) == ["Drift found by 1 of 2 detectors: confidence_ks"]
    table = at.dataframe[0].value
    assert list(table["detector"]) == ["confidence_ks", "caption_length_psi"]
    assert list(table["drift"]) == [True, False]
    (frame,) = at.get("iframe")
    # From a data: URL, never inline (srcdoc): the report gets an opaque origin, not the app's.
    assert not frame.proto.srcdoc
    head, _, body = frame.proto.src.partition(",")
    assert head == "data:text/html;charset=utf-8;base64"
    assert base64.b64decode(body) == (reports.new / "drift.html").read_bytes()


def _label_free(shift: float, t0: float) -> dict:
    """A drift report's label-free section from constructed per-record figures (no model): 40
    records a window over two days, the current window's CLIPScore lower by ``shift``."""
    from harness.drift.label_free import WindowScores, label_free_section

    t = t0 + np.arange(40) * 4320.0  # 2 days

    def window(start: float, clip: float, hallucinated: int) -> WindowScores:
        flags = np.zeros(40)
        flags[:hallucinated] = 1
        return WindowScores(
            40,
            None,
            40,
            0,
            t + start,
            np.full(40, clip) + np.arange(40) * 1e-3,
            t + start,
            flags,
            t + start,
            np.full(40, 0.9),
        )

    windows = {"reference": window(0.0, 2.3, 0), "current": window(2 * 86400.0, 2.3 - shift, 6)}
    return label_free_section(
        windows,
        store={"folder": "<i>store</i>", "kind": "dataset", "objects": "shapes"},
        clip={"version": "embedded-test"},
        clip_reason=None,
        hallucination_reason=None,
    )


def test_label_free_quality_on_the_decision_and_drift_pages_and_over_reports(tmp_path, monkeypatch):
    from harness.drift.report import write_report

    reports = build_reports(tmp_path / "reports")
    doc = json.loads((reports.new / "drift.json").read_text())
    write_report({**doc, "label_free": _label_free(0.4, 1_700_006_400.0)}, reports.new)
    for k, name in enumerate(("drift-week-1", "drift-week-2")):
        t0 = 1_700_006_400.0 + k * 4 * 86400.0
        write_report(
            {**doc, "created_unix": t0 + 4 * 86400.0, "label_free": _label_free(0.1 * k, t0)}, reports.root / name
        )
    rec = json.loads((reports.new / "decision.json").read_text())
    rec["inputs"]["clip"] = "embedded-fe2a04d0"
    for target, score in (("baseline", 2.31), ("canary", 2.12)):
        rec["figures"][target]["clip_score"] = score
    (reports.new / "decision.json").write_text(json.dumps(rec))
    at = open_app(reports.root, monkeypatch)
    assert "Reference-free quality" in [h.value for h in at.subheader]
    (shown,) = [d.value for d in at.dataframe if "clip_score" in d.value.columns]
    assert list(shown["clip_score"]) == [2.31, 2.12] and list(shown["target"]) == ["baseline", "canary"]
    at = _go(at, "drift")
    assert "Label-free quality" in [h.value for h in at.subheader]
    windows = at.dataframe[1].value
    assert list(windows["window"]) == ["reference", "current"] and list(windows["n_scored"]) == [40, 40]
    assert list(windows["hallucination_rate"]) == [0.0, 0.15]
    change = at.dataframe[2].value
    assert list(change["figure"]) == ["clip_score", "hallucination_rate"] and change["significant"].all()
    over = at.dataframe[3].value  # one row per scheduled report, oldest first
    assert list(over["report"]) == ["drift-week-1", "drift-week-2", "run-b"]  # run-b's: made now
    assert list(over["hallucination_rate"]) == [0.15] * 3
    assert "Label-free quality over time" in [h.value for h in at.subheader]
    charts = [c.proto.spec for c in _charts(at)]
    assert sum("Mean CLIPScore" in spec for spec in charts) == 2
    assert not [t for t in _texts(at.markdown) if "<i>store" in t]  # a path from the report stays text
    # A report folder of scheduled drift reports alone, no gate run: their trend is still shown.
    only = tmp_path / "only"
    write_report({**doc, "created_unix": 1_700_400_000.0, "label_free": _label_free(0.0, 1_700_006_400.0)}, only / "d1")
    at = open_app(only, monkeypatch, "drift")
    assert "No run to show: the report folder holds no run folder with a decision.json." in _texts(at.info)
    assert [h.value for h in at.subheader] == ["Label-free quality over time"]


def test_older_run_shows_what_it_lacks(reports, monkeypatch):
    at = open_app(reports.root, monkeypatch)
    at.selectbox(key="run").select("run-a").run()
    assert _texts(at.success) == ["Verdict: **PROMOTE** (score 100)"]
    assert "## Canary decision: ✅ PROMOTE (score 100)" in "\n".join(_texts(at.markdown))
    _go(at, "debug")
    assert _texts(at.info) == [
        "request records (records.parquet): not in this run",
        "quality.json: not in this run",
        "worst captions: not in this run",
    ]
    _go(at, "drift")
    assert _texts(at.info) == [
        "drift.json: not in this run",
        "drift verdicts: not in this run",
        "drift.html: not in this run",
    ]
    _go(at, "oncall")
    assert _texts(at.error) == ["Last verdict (run run-b): **ROLLBACK** (score 52.94)"]
    assert "Showing run `run-a`; its verdict is PROMOTE." in _texts(at.caption)
    assert "request records: not in this run" in _texts(at.info)
    _go(at, "rate")
    assert _texts(at.info) == ["captions with images to rate: not in this run"]


def test_empty_missing_and_broken_report_folders(tmp_path, monkeypatch):
    at = open_app(tmp_path, monkeypatch)
    assert _texts(at.sidebar.info) == [f"No runs in {tmp_path} yet: a run folder holds a decision.json."]
    assert _texts(at.info)[0].startswith(f"No run to show: {tmp_path} holds no run folder")
    at = open_app(tmp_path / "absent", monkeypatch, "executive")
    assert _texts(at.sidebar.error) == [f"{tmp_path / 'absent'}: report folder not found"]
    bad = tmp_path / "bad-run"
    bad.mkdir()
    (bad / "decision.json").write_text("{")
    at = open_app(tmp_path, monkeypatch)
    assert _texts(at.sidebar.error) == ["Decision record unreadable"]
    assert _texts(at.main.error) == [
        f"bad-run: {bad / 'decision.json'}: malformed JSON at line 1: Expecting property name enclosed in double quotes"
    ]


# A record of the first schema, as the harness wrote it before the typed model: old metric names,
# no power figures, the load as free text, fields the current schema does not know.
V1_RECORD = {
    "schema_version": 1,
    "run_id": "run-old",
    "created_unix": 1_600_000_000.0,
    "verdict": "HOLD",
    "score": 80.0,
    "reasons": ["score 80 is marginal (75 <= score < 90)"],
    "metrics": [
        {
            "name": "latency",
            "group": "latency",
            "classification": "High",
            "failed": True,
            "critical": False,
            "test": "mann_whitney_u",
            "baseline": 0.08,
            "canary": 0.12,
            "n_baseline": 200,
            "n_canary": 200,
            "p_value": 1e-9,
            "effect": 0.04,
            "effect_low": 0.03,
            "effect_high": 0.05,
            "tolerance": 0.02,
            "direction": "increase",
            "unit": "s",
            "reason": "canary median latency is higher by 40 ms",
        }
    ],
    "groups": [{"name": "latency", "weight": 30.0, "score": 0.0, "passed": 0, "failed": 1, "no_data": 0}],
    "thresholds": {"pass": 90.0, "marginal": 75.0, "confidence": 0.98},
    "slos": [
        {
            "target": "canary",
            "name": "availability",
            "kind": "availability",
            "objective": 0.99,
            "sli": 1.0,
            "budget_remaining": 1.0,
            "projected_burn_rate": 0.0,
            "would_page": False,
            "would_ticket": False,
        }
    ],
    "inputs": {
        "targets": {
            "baseline": {"url": "http://a", "model_version": "v1"},
            "canary": {"url": "http://b", "model_version": "v2"},
        },
        "scenario": "steady",
        "load": "constant 4 users",
        "dataset": "shapes:50",
    },
    "figures": {
        "baseline": {"requests": 200, "p95_s": 0.1, "p99_s": 0.12, "error_rate": 0.0},
        "canary": {"requests": 200, "p95_s": 0.15, "p99_s": 0.2, "error_rate": 0.0},
    },
    "worst_captions": [
        {
            "target": "canary",
            "image_id": 3,
            "image_path": None,
            "caption": "a *circle*",
            "references": ["a circle"],
            "cider_d": 0.2,
            "confidence": 0.5,
        }
    ],
    "legacy_note": "fields the current schema does not know are dropped",
}


def test_schema_1_run_shows_on_every_page(tmp_path, monkeypatch):
    folder = tmp_path / "run-old"
    folder.mkdir()
    (folder / "decision.json").write_text(json.dumps(V1_RECORD))
    at = open_app(tmp_path, monkeypatch)
    assert _texts(at.warning) == ["Verdict: **HOLD** (score 80)"]
    assert list(at.dataframe[0].value["name"]) == ["latency"]
    assert "power figures: not in this run" in _texts(at.info)
    assert ("Canary model", "v2") in _metrics(at)
    for page in ("executive", "oncall", "debug", "drift", "rate"):
        _go(at, page)
    _go(at, "debug")
    assert "a *circle*" in _texts(at.text)


# -- rating ------------------------------------------------------------------------------------
def _shown_item(at: AppTest) -> tuple[str, str]:
    texts = _texts(at.markdown)
    (head,) = [t for t in texts if t.startswith("Caption **")]
    image_id = re.search(r"image `([^`]+)`", head).group(1)
    (caption,) = _texts(at.text)
    return image_id, caption


def test_rating_lands_in_ratings_csv(tmp_path, monkeypatch):
    reports = build_reports(tmp_path / "reports")
    at = open_app(reports.root, monkeypatch, "rate")
    path = reports.new / "ratings.csv"
    assert "ratings.csv: not in this run" in _texts(at.info)
    first = _shown_item(at)
    at.feedback(key="rate_stars").set_value(3)
    at.form_submit_button[0].click().run()
    assert _texts(at.error) == ["Enter your name before saving a rating."] and not path.exists()

    t0 = time.time()
    at.text_input(key="rater").input("ana").run()
    assert _shown_item(at) == first
    at.feedback(key="rate_stars").set_value(3)  # the fourth star: 4 of 5
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert _texts(at.success) == [f"Saved 4/5 for image {first[0]}."]
    second = _shown_item(at)
    assert second != first
    at.feedback(key="rate_stars").set_value(0)
    at.form_submit_button[0].click().run()
    t1 = time.time()

    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == list(RATING_COLUMNS) and len(rows) == 3
    records = load_records(reports.new)
    for row, (image_id, caption), stars in zip(rows[1:], (first, second), ("4", "1")):
        assert row[:3] == [image_id, "ana", stars] and row[4] == caption
        match = records[(records["image_id"] == image_id) & (records["caption"] == caption)]
        assert set(match["target"]) == {row[3]}
        stamp = calendar.timegm(time.strptime(row[5], "%Y-%m-%dT%H:%M:%SZ"))
        assert int(t0) - 1 <= stamp <= t1 + 1
    assert load_ratings(path) == (Rating(first[0], "ana", 4.0), Rating(second[0], "ana", 1.0))
    assert _texts(at.caption)[-1] == f"2 ratings by 1 raters in `{path}`"


def test_append_rating_quotes_and_validates(tmp_path):
    row = RatingRow("7", " bo ", 5, "canary", 'a "red", round circle')
    append_rating(tmp_path, row, clock=lambda: 0.0)
    append_rating(tmp_path, RatingRow("8", "cy", 2, "baseline", "a square"), clock=lambda: 86400.5)
    assert (tmp_path / "ratings.csv").read_text() == (
        "image_id,rater,rating,target,caption,time\n"
        '7,bo,5,canary,"a ""red"", round circle",1970-01-01T00:00:00Z\n'
        "8,cy,2,baseline,a square,1970-01-02T00:00:00Z\n"
    )
    with pytest.raises(ValueError, match="outside 1 to 5"):
        append_rating(tmp_path, RatingRow("7", "bo", 6, "canary", "x"))
    with pytest.raises(ValueError, match="rater's name"):
        append_rating(tmp_path, RatingRow("7", "  ", 3, "canary", "x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.csv"]


def test_oncall_page_shows_pipeline_lag_of_an_asynchronous_run(reports, tmp_path, monkeypatch):
    import shutil

    root = tmp_path / "reports"
    shutil.copytree(reports.root, root)
    path = root / reports.new.name / "decision.json"
    rec = json.loads(path.read_text())
    rec["figures"]["canary"].update(
        {"lag_p50_s": 0.25, "lag_p95_s": 1.5, "lag_p99_s": 2.0, "drain_s": 12.5, "missing_captions": 3}
    )
    path.write_text(json.dumps(rec))
    tiles = _metrics(open_app(root, monkeypatch, "oncall"))
    assert [t for t in tiles if "lag" in t[0] or t[0] in ("Drain time", "Missing captions")] == [
        ("P50 pipeline lag", "250.0 ms"),
        ("P95 pipeline lag", "1500.0 ms"),
        ("P99 pipeline lag", "2000.0 ms"),
        ("Drain time", "12.5 s"),
        ("Missing captions", "3"),
    ]


def test_a_rewritten_run_file_is_read_again():
    """The board's readers are cached by the file's stamp: a decision.json rewritten is read anew."""
    import sys
    import tempfile
    import time
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "dashboards"))
    import board

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "decision.json"
        path.write_text('{"verdict": "PROMOTE"}')
        assert board.read_json(path)[0] == {"verdict": "PROMOTE"}
        time.sleep(0.01)
        path.write_text('{"verdict": "ROLLBACK"}')
        assert board.read_json(path)[0] == {"verdict": "ROLLBACK"}
