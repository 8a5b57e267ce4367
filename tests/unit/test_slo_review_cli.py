"""``harness slo review`` from records: the figures the maths gives, markers from decision records and
drift reports, and each fault as a one-line error with its documented exit code."""

from __future__ import annotations

import json

import pytest

from dashboard_fixture import T0, build_reports
from harness.cli import main
from harness.errors import EXIT_DATA, EXIT_MISSING, EXIT_UNAVAILABLE, EXIT_USAGE
from harness.records import RecordWriter, RequestRecord
from prom_fixture import free_port

MINUTE, DAY = 60, 86400
START = T0 // MINUTE * MINUTE - 2 * DAY  # a record a minute from here for three days (T0: 2023-11-14 22:13:20Z)
N = 3 * 1440
ERRORS = range(2000, 2030)  # thirty 500s in a row, on the second day
SPEC = """\
version: 1
service: captioner
slos:
  - name: availability
    sli: availability
    objective: 0.99
    period: 7d
  - name: latency-1s
    sli: latency
    threshold: 1.0
    objective: 0.9
    period: 7d
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("review") / "records"
    with RecordWriter(folder) as w:
        for i in range(N):
            bad = i in ERRORS
            w.write(
                RequestRecord(
                    "prod",
                    "baseline",
                    "traffic",
                    f"r{i}",
                    str(i % 50),
                    START + i * MINUTE + 10.0,
                    2.0 if i % 10 == 0 else 0.5,  # every tenth answer is slow
                    500 if bad else 200,
                    "http_error" if bad else "ok",
                    caption=None if bad else "a red circle",
                )
            )
    return folder


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "slo.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def _review(args, capsys):
    code = main(["slo", "review", *args])
    return code, capsys.readouterr()


def test_records_give_the_counts_the_maths_gives(records, spec, tmp_path, capsys):
    out = tmp_path / "out"
    end = START + N * MINUTE  # the last record answers before it
    code, said = _review(
        ["--spec", str(spec), "--records", str(records), "--window", "2d", "--end", str(end), "--out", str(out)],
        capsys,
    )
    assert code == 0, said.err
    doc = json.loads((out / "review.json").read_text(encoding="utf-8"))
    assert (doc["start"], doc["end"], doc["window"], doc["step_s"]) == (end - 2 * DAY, end, "2d", 60.0)
    avail, latency = doc["slos"]
    # the window holds the last 2,880 records, the thirty 500s among them
    assert (avail["sli"]["good"], avail["sli"]["total"]) == (2850, 2880)
    assert avail["budget"]["remaining"] == pytest.approx(1 - 30 / 28.8)
    # latency counts every answer, the 500s too: every tenth is slow
    assert (latency["sli"]["good"], latency["sli"]["total"]) == (2880 - 288, 2880)
    # thirty minutes of errors at 1 a minute: the 1h window burns 50x, the 5m 100x: the page fires
    page = avail["alerts"][0]
    assert (page["severity"], page["peak_long_burn"]) == ("page", pytest.approx(50.0))
    assert len(page["episodes"]) == 1
    assert "wrote" in said.out and "2 SLOs over 2d" in said.out
    assert (out / "review.md").is_file() and (out / "review.html").is_file()


def test_the_window_defaults_to_the_last_answer_and_the_longest_period(records, spec, tmp_path, capsys):
    out = tmp_path / "out"
    code, said = _review(["--spec", str(spec), "--records", str(records), "--out", str(out)], capsys)
    assert code == 0, said.err
    doc = json.loads((out / "review.json").read_text(encoding="utf-8"))
    last_answer = START + (N - 1) * MINUTE + 10.0 + 0.5
    assert doc["end"] == last_answer // 60 * 60 and doc["window"] == "7d"
    # the last record answers after the window's end, rounded down to a whole minute: left out
    assert doc["slos"][0]["sli"]["total"] == N - 1


def test_markers_from_decision_records_and_drift_reports(records, spec, tmp_path, capsys):
    reports = build_reports(tmp_path / "reports")  # decisions at T0 (PROMOTE) and T0 + 1h (ROLLBACK)
    drift = tmp_path / "drift" / "week-1" / "drift.json"
    drift.parent.mkdir(parents=True)
    hostile = "<img src=x onerror=alert(1)> *x* | y"
    drift.write_text(json.dumps({"drift": True, "drifted": [hostile], "created_unix": T0 + 7200}), encoding="utf-8")
    (tmp_path / "drift" / "bad").mkdir()
    (tmp_path / "drift" / "bad" / "drift.json").write_text("{not json", encoding="utf-8")
    out = tmp_path / "out"
    code, said = _review(
        [
            "--spec",
            str(spec),
            "--records",
            str(records),
            "--window",
            "3d",
            "--end",
            str(START + N * MINUTE),
            "--decisions",
            str(reports.root),
            "--drift",
            str(tmp_path / "drift"),
            "--out",
            str(out),
        ],
        capsys,
    )
    assert code == 0, said.err
    doc = json.loads((out / "review.json").read_text(encoding="utf-8"))
    assert [(m["t"], m["kind"], m["label"].split()[0]) for m in doc["markers"]] == [
        (T0, "deploy", "PROMOTE"),
        (T0 + 3600, "deploy", "ROLLBACK"),
        (T0 + 7200, "drift", "drift"),
    ]
    assert doc["markers"][2]["detail"] == hostile
    assert len(doc["warnings"]) == 1 and "bad/drift.json: not a drift report" in doc["warnings"][0]
    assert "not a drift report" in said.err
    html = (out / "review.html").read_text(encoding="utf-8")
    assert hostile not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img" not in (out / "review.md").read_text(encoding="utf-8")


def test_no_slo_with_data_writes_the_report_and_exits_65(records, spec, tmp_path, capsys):
    out = tmp_path / "out"
    before = str(START - 30 * DAY)
    code, said = _review(
        ["--spec", str(spec), "--records", str(records), "--window", "1d", "--end", before, "--out", str(out)],
        capsys,
    )
    assert code == EXIT_DATA
    assert said.err.count("\n") == 2 and "availability: no data" in said.err and "latency-1s: no data" in said.err
    doc = json.loads((out / "review.json").read_text(encoding="utf-8"))
    assert doc["without_data"] == ["availability", "latency-1s"]
    assert [d["kind"] for d in doc["decisions"]] == ["no_data", "no_data"]


def test_prometheus_down_exits_69_and_writes_nothing(spec, tmp_path, capsys):
    out = tmp_path / "out"
    url = f"http://127.0.0.1:{free_port()}"
    code, said = _review(["--spec", str(spec), "--prometheus", url, "--out", str(out)], capsys)
    assert code == EXIT_UNAVAILABLE
    assert said.err.strip() == (
        f"harness slo review: error: Prometheus at {url} is unavailable (cannot connect); start it, or use --records"
    )
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["--window", "soon"], EXIT_USAGE, "--window: must be a duration such as 5m, 1h or 30d (got 'soon')"),
        (["--step=-1m"], EXIT_USAGE, "--step: must be a duration"),
        (["--end", "yesterday"], EXIT_USAGE, "--end: bad time"),
        (["--decisions", "/nonexistent/decisions"], EXIT_DATA, "/nonexistent/decisions: not found"),
    ],
)
def test_bad_options_are_one_line(records, spec, tmp_path, capsys, args, code, says):
    got, said = _review(["--spec", str(spec), "--records", str(records), "--out", str(tmp_path / "o"), *args], capsys)
    assert got == code, said.err
    assert said.err.count("\n") == 1 and says in said.err


def test_a_missing_spec_is_66(records, tmp_path, capsys):
    code, said = _review(
        ["--spec", str(tmp_path / "none.yaml"), "--records", str(records), "--out", str(tmp_path / "o")], capsys
    )
    assert code == EXIT_MISSING and said.err.count("\n") == 1
