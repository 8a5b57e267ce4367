"""The data contract on request records: a clean set passes, each rule catches its bad set."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from harness.errors import DataError
from harness.records import RecordWriter, RequestRecord, load_records
from harness.records.contract import RecordContract, check_records, coverage_table, validate_records


def clean_records(n=40):
    return [
        RequestRecord(
            "run-1",
            "baseline",
            "evaluate",
            f"req-{i}",
            str(i),
            1000.0 + i,
            0.05 + i / 1000,
            200,
            "ok",
            caption="a small red circle",
            confidence=0.5 + i / 100,
            model_version="tiny-1",
            image_bytes=900,
            image_w=128,
            image_h=128,
            safety_flagged=False,
            embedding=[0.1, 0.2],
        )
        for i in range(n)
    ]


@pytest.fixture()
def clean(tmp_path):
    """Records as the harness reads them back: written to JSONL, loaded into pandas."""
    with RecordWriter(tmp_path) as w:
        w.write_many(clean_records())
    return load_records(tmp_path)


def test_clean_set_passes(clean, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    report = check_records(clean)
    assert report.success and report.n_records == 40 and not report.failures
    assert report.message().startswith(f"data contract passed: {len(report.results)} expectations on 40 records")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # the ephemeral context wrote no files


def test_clean_parquet_set_passes(clean, tmp_path):
    clean.to_parquet(tmp_path / "records.parquet")
    assert validate_records(pd.read_parquet(tmp_path / "records.parquet")).success


def test_failures_in_a_row_of_ok_records_and_errors_pass(clean):
    df = clean.copy()
    df.loc[3, ["outcome", "status", "caption", "confidence", "error"]] = ["http_error", 503, None, np.nan, "HTTP 503"]
    df.loc[4, ["outcome", "status", "caption", "confidence"]] = ["timeout", 0, None, np.nan]
    assert validate_records(df, RecordContract(coverage_objective=0.95)).success


def _set(df, row, col, value):
    df[col] = df[col].astype(object)
    df.at[row, col] = value
    return df


BAD = {
    "record columns present": lambda df: df.drop(columns=["model_version"]),
    "request_id not null": lambda df: _set(df, 2, "request_id", None),
    "latency_s is a number": lambda df: _set(df, 5, "latency_s", "fast"),
    "caption is text": lambda df: _set(df, 5, "caption", 42),
    "safety_flagged is a boolean": lambda df: _set(df, 1, "safety_flagged", "no"),
    "outcome known": lambda df: _set(df, 7, "outcome", "maybe"),
    "confidence in [0, 1]": lambda df: _set(df, 9, "confidence", 1.5),
    "caption present when ok": lambda df: _set(df, 11, "caption", None),
    "caption non-empty when ok": lambda df: _set(df, 12, "caption", "   "),
    "latency not negative": lambda df: _set(df, 13, "latency_s", -0.01),
    "status code known": lambda df: _set(df, 14, "status", 418),
    "request_id unique per target": lambda df: _set(df, 15, "request_id", "req-16"),
}


@pytest.mark.parametrize("rule", list(BAD))
def test_each_rule_catches_its_bad_set(clean, rule):
    with pytest.raises(DataError) as exc:
        check_records(BAD[rule](clean.copy()), RecordContract(coverage_objective=0.0))
    msg = str(exc.value)
    assert msg.startswith("data contract failed: ") and "\n" not in msg
    assert f"; {rule}: " in msg or f"records: {rule}: " in msg


def test_missing_column_is_named(clean):
    report = validate_records(clean.drop(columns=["model_version", "status"]))
    assert report.failures[0].describe() == "record columns present: observed missing model_version, status"


def test_failure_message_names_rules_and_counts(clean):
    df = _set(_set(clean.copy(), 15, "request_id", "req-16"), 9, "confidence", 1.5)
    with pytest.raises(DataError) as exc:
        check_records(df)
    msg = str(exc.value)
    assert msg.startswith("data contract failed: 2 of ")
    assert "confidence in [0, 1]: 1 of 40 rows, e.g. 1.5" in msg
    assert "request_id unique per target: 2 of 40 rows, e.g. {'target': 'baseline', 'request_id': 'req-16'}" in msg


def test_the_gate_contract_checks_the_harness_not_the_service(clean):
    """Odd statuses and blank captions are observations against a target (the judge counts them);
    only malformed records make a run untrustworthy."""
    gate = RecordContract(coverage_objective=0.0, service=False)
    odd = _set(_set(clean.copy(), 14, "status", 502), 12, "caption", "   ")
    assert validate_records(odd, gate).success
    assert not validate_records(odd, RecordContract(coverage_objective=0.0)).success
    for bad in (
        _set(clean.copy(), 15, "request_id", "req-16"),
        _set(clean.copy(), 5, "latency_s", "fast"),
        _set(clean.copy(), 14, "status", 1000),
        clean.drop(columns=["model_version"]),
    ):
        assert not validate_records(bad, gate).success


def test_coverage_below_objective_fails(clean):
    df = clean.copy()
    for i in range(3):  # 3 of 40 images without a caption: coverage 0.925
        df.loc[i, ["outcome", "status", "caption"]] = ["http_error", 500, None]
    assert validate_records(df, RecordContract(coverage_objective=0.9)).success
    report = validate_records(df, RecordContract(coverage_objective=0.95))
    assert [r.rule for r in report.failures] == ["coverage >= 0.95"]
    assert report.failures[0].observed == pytest.approx(0.925)
    assert "coverage >= 0.95: observed 0.925" in report.message()


def test_coverage_counts_images_not_attempts(clean):
    retry = clean.iloc[[0]].copy()
    retry.loc[:, ["request_id", "outcome", "status", "caption"]] = ["req-0-retry", "http_error", 503, None]
    df = pd.concat([retry, clean], ignore_index=True)  # image 0 failed once, then was captioned
    table = coverage_table(df)
    assert len(table) == 40 and table["captioned"].sum() == 40
    assert validate_records(df, RecordContract(coverage_objective=1.0)).success


def test_no_records_fails_coverage(clean):
    report = validate_records(clean.iloc[0:0])
    assert not report.success and report.failures[-1].observed == "no images sent"


def test_import_harness_does_not_import_great_expectations():
    code = "import sys, harness, harness.records.contract, harness.quality; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
