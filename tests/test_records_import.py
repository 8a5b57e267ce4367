"""``harness records import``: a service's own log (JSONL, CSV, parquet) and a column mapping become
records that pass the data contract; each bad row is reported with its line or row number, the
rest imported; too many rejections refuse the import."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.errors import DataError
from harness.expectations import check_records
from harness.log_import import import_log, load_mapping
from harness.records import COLUMNS, load_records

pytest.importorskip("great_expectations")

T = 1_795_046_400  # 2026-11-19T00:00:00Z

MAPPING = """\
columns: {ts: t_start, took_ms: latency_s, code: status, id: request_id, img: image_id, text: caption, score: confidence}
time_format: iso8601
units: {latency_s: ms}
constants: {target: production, run_id: import-1, scenario: traffic}
"""


def _line(i: int, **change) -> str:
    row = {
        "ts": f"2026-11-19T00:00:{i:02d}Z",
        "took_ms": 100 + i,
        "code": 200,
        "id": f"r{i}",
        "img": f"i{i}",
        "text": f"a red circle {i}",
        "score": 0.5 + i / 100,
    }
    row.update(change)
    return json.dumps(row)


@pytest.fixture
def log(tmp_path: Path) -> dict[str, Path]:
    lines = [
        _line(1),
        _line(2),
        '{"ts": "2026-11-19T00:00:03Z", "took_ms": 1',
        _line(4),
        _line(5, took_ms="slow"),
        _line(6),
        _line(7, score=1.5),
        _line(8),
    ]
    (tmp_path / "service.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "mapping.yaml").write_text(MAPPING)
    return {"log": tmp_path / "service.jsonl", "mapping": tmp_path / "mapping.yaml"}


def test_a_log_with_bad_rows_imports_the_rest_and_reports_each_with_its_line(log, tmp_path, capsys):
    out = tmp_path / "records"
    code = main(
        [
            "records",
            "import",
            str(log["log"]),
            "--mapping",
            str(log["mapping"]),
            "--out",
            str(out),
            "--max-rejected",
            "3",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out.strip() == f"imported 5 of 8 rows into {out}; 3 rejected, listed in {out / 'rejected.jsonl'}"
    assert captured.err.splitlines() == [
        f"rejected {log['log']}: line 3: not valid JSON",
        f"rejected {log['log']}: line 5: latency_s: 'slow' is not a number",
        f"rejected {log['log']}: line 7: breaks the record contract: confidence in [0, 1]",
    ]
    rejected = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rejected] == [
        (3, "not valid JSON"),
        (5, "latency_s: 'slow' is not a number"),
        (7, "breaks the record contract: confidence in [0, 1]"),
    ]
    assert json.loads(rejected[1]["raw"])["took_ms"] == "slow"
    df = load_records(out)
    assert sorted(df["request_id"]) == ["r1", "r2", "r4", "r6", "r8"]
    assert check_records(df).success  # the imported rows pass the whole contract
    r4 = df[df["request_id"] == "r4"].iloc[0]
    assert (r4["t_start"], r4["latency_s"], r4["status"], r4["outcome"], r4["target"], r4["image_id"]) == (
        T + 4,
        pytest.approx(0.104),
        200,
        "ok",
        "production",
        "i4",
    )
    assert [p.name for p in out.rglob("*.parquet")] == ["import-service-0.parquet"]
    assert (out / "date=2026-11-19" / "target=production").is_dir()


def test_more_rejections_than_allowed_refuse_the_import(log, tmp_path, capsys):
    out = tmp_path / "records"
    code = main(["records", "import", str(log["log"]), "--mapping", str(log["mapping"]), "--out", str(out)])
    err = capsys.readouterr().err.splitlines()
    assert code == 65
    assert err[-1] == (
        f"harness records: error: 3 of 8 rows rejected, more than --max-rejected 1% allows; "
        f"nothing imported (reasons in {out / 'rejected.jsonl'})"
    )
    assert not list(out.rglob("*.parquet")) and len((out / "rejected.jsonl").read_text().splitlines()) == 3


def test_csv_with_a_strptime_time_unit_and_value_mapping(tmp_path):
    (tmp_path / "access.csv").write_text(
        "when,micros,http,rid,caption,result\n"
        "19/Nov/2026:00:00:01 +0000,250000,200,a,a dog,good\n"
        "19/Nov/2026:00:00:02 +0000,300000,503,b,,bad\n"
        "19/Nov/2026:00:00:03 +0000,1000,200,c\n"
        "yesterday,1000,200,d,a cat,good\n"
    )
    (tmp_path / "m.yaml").write_text(
        "columns: {when: t_start, micros: latency_s, http: status, rid: request_id, caption: caption, result: outcome}\n"
        "time_format: '%d/%b/%Y:%H:%M:%S %z'\nunits: {latency_s: us}\n"
        "values: {outcome: {good: ok, bad: http_error}}\n"
        "constants: {target: web, run_id: logs, scenario: access}\n"
    )
    res = import_log(
        tmp_path / "access.csv", load_mapping(tmp_path / "m.yaml"), tmp_path / "out.parquet", max_rejected=2
    )
    assert (res.imported, res.rows, res.refused) == (2, 4, False)
    assert [(r.where, r.number, r.reason) for r in res.rejected] == [
        ("line", 4, "4 fields where the header has 6"),
        ("line", 5, "t_start: 'yesterday' is not a time in %d/%b/%Y:%H:%M:%S %z"),
    ]
    df = load_records(tmp_path / "out.parquet")
    assert list(df.columns) == list(COLUMNS)
    assert df[["request_id", "t_start", "latency_s", "status", "outcome"]].values.tolist() == [
        ["a", T + 1, 0.25, 200, "ok"],
        ["b", T + 2, 0.3, 503, "http_error"],
    ]
    assert (tmp_path / "rejected.jsonl").exists()


def test_parquet_rows_are_numbered_and_outcome_follows_status(tmp_path):
    pd.DataFrame(
        {
            "t": [T + 1.5, T + 2.0, None],
            "lat": [0.1, 0.2, 0.3],
            "code": [200, 0, 200],
            "id": ["x", "y", "z"],
            "cap": ["a cat", None, "a dog"],
        }
    ).to_parquet(tmp_path / "log.parquet")
    (tmp_path / "m.yaml").write_text(
        "columns: {t: t_start, lat: latency_s, code: status, id: request_id, cap: caption}\n"
        "constants: {target: t, run_id: r}\n"
    )
    res = import_log(
        tmp_path / "log.parquet", load_mapping(tmp_path / "m.yaml"), tmp_path / "out.jsonl", max_rejected=1
    )
    assert [(r.where, r.number, r.reason) for r in res.rejected] == [("row", 3, "no t_start")]
    df = load_records(tmp_path / "out.jsonl")
    assert df[["request_id", "status", "outcome"]].values.tolist() == [["x", 200, "ok"], ["y", 0, "connection_error"]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("columns: {a: t_stamp}\n", "'t_stamp' is not a record field"),
        ("columns: {a: t_start}\nunits: {latency_s: hours}\n", "only latency_s takes a unit"),
        (
            "columns: {a: t_start, b: request_id}\nconstants: {target: x}\n",
            "no column or constant gives run_id, latency_s",
        ),
        ("colums: {a: t_start}\n", "unknown key 'colums'"),
        ("- just a list\n", "a mapping file is a YAML mapping"),
    ],
)
def test_bad_mapping_files_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "m.yaml").write_text(text)
    with pytest.raises(DataError, match=message):
        load_mapping(tmp_path / "m.yaml")


def test_command_line_errors(tmp_path, capsys):
    (tmp_path / "m.yaml").write_text(MAPPING)
    (tmp_path / "log.txt").write_text("{}\n")
    assert (
        main(
            [
                "records",
                "import",
                str(tmp_path / "nope.jsonl"),
                "--mapping",
                str(tmp_path / "m.yaml"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 66
    )
    assert "log not found" in capsys.readouterr().err
    assert (
        main(
            [
                "records",
                "import",
                str(tmp_path / "log.txt"),
                "--mapping",
                str(tmp_path / "m.yaml"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 64
    )
    assert "give --format" in capsys.readouterr().err
    assert (
        main(
            [
                "records",
                "import",
                str(tmp_path / "log.txt"),
                "--mapping",
                str(tmp_path / "nope.yaml"),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 66
    )
    assert (
        main(
            [
                "records",
                "import",
                str(tmp_path / "log.txt"),
                "--format",
                "jsonl",
                "--mapping",
                str(tmp_path / "m.yaml"),
                "--out",
                str(tmp_path / "o"),
                "--max-rejected",
                "lots",
            ]
        )
        == 64
    )
    assert "--max-rejected takes a count (5) or a share of the rows (1%)" in capsys.readouterr().err
