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
from harness.records import COLUMNS, load_records
from harness.records.contract import check_records
from harness.records.importer import import_log, load_mapping

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


def test_token_counts_of_a_chat_service_import_as_whole_numbers(tmp_path):
    (tmp_path / "chat.csv").write_text(
        "when,ms,http,rid,text,in,out\n1795046401,120,200,a,a dog,85,7\n1795046402,130,200,b,a cat,85,7.5\n"
    )
    (tmp_path / "m.yaml").write_text(
        "columns: {when: t_start, ms: latency_s, http: status, rid: request_id, text: caption, "
        "in: prompt_tokens, out: completion_tokens}\n"
        "units: {latency_s: ms}\nconstants: {target: chat, run_id: logs, scenario: chat}\n"
    )
    res = import_log(tmp_path / "chat.csv", load_mapping(tmp_path / "m.yaml"), tmp_path / "out.parquet", max_rejected=1)
    assert [(r.number, r.reason) for r in res.rejected] == [(3, "completion_tokens: '7.5' is not a whole number")]
    df = load_records(tmp_path / "out.parquet")
    assert df[["request_id", "prompt_tokens", "completion_tokens"]].values.tolist() == [["a", 85, 7]]


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
        ("colums: {a: t_start}\n", "colums: unknown field"),
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


# -- the source read in chunks -----------------------------------------------------------------------


def _frame(out: Path) -> pd.DataFrame:
    return load_records(out).sort_values(["t_start", "request_id"]).reset_index(drop=True)


def _contents(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture
def repeats(log) -> Path:
    """The fixture's log, a blank line and five more: repeats of request ids, read in chunks of five
    lines (1-5, 6-11, 12-14) from an earlier chunk or the same one."""
    more = [
        _line(9, id="r1"),  # line 10 repeats line 1 of the first chunk
        _line(10, id="r7"),  # line 11 repeats line 7, itself rejected for its confidence
        _line(11, id="r2", score=2.0),  # line 12 breaks a rule and repeats line 2
        _line(12, id="r12"),
        _line(13, id="r12"),  # line 14 repeats line 13 of the same chunk
    ]
    with open(log["log"], "a") as fh:
        fh.write("\n" + "\n".join(more) + "\n")  # a blank line 9: lines 10-14
    return log["log"]


def test_a_log_read_in_chunks_imports_the_same_records_and_rejections(log, repeats, tmp_path):
    results, outs = [], []
    for sub, rows in (("whole", 1_000_000), ("chunks", 5)):
        out = tmp_path / sub / "records"
        results.append(import_log(repeats, load_mapping(log["mapping"]), out, max_rejected=9, chunk_rows=rows))
        outs.append(out)
    whole, chunked = results
    assert (chunked.rows, chunked.imported, chunked.rejected_count, chunked.refused) == (13, 6, 7, False)
    assert [(r.number, r.reason) for r in chunked.rejected] == [
        (3, "not valid JSON"),
        (5, "latency_s: 'slow' is not a number"),
        (7, "breaks the record contract: confidence in [0, 1]"),
        (10, "breaks the record contract: request_id unique per target"),
        (11, "breaks the record contract: request_id unique per target"),
        (12, "breaks the record contract: confidence in [0, 1]; request_id unique per target"),
        (14, "breaks the record contract: request_id unique per target"),
    ]
    assert chunked.rejected == whole.rejected
    assert (chunked.rows, chunked.imported) == (whole.rows, whole.imported)
    assert chunked.rejected_path.read_text() == whole.rejected_path.read_text()
    pd.testing.assert_frame_equal(_frame(outs[1]), _frame(outs[0]))
    assert sorted(_frame(outs[1])["request_id"]) == ["r1", "r12", "r2", "r4", "r6", "r8"]
    assert len(chunked.written) == 3 and all(p.name.startswith("import-service-c0000") for p in chunked.written)
    assert not [p for p in _contents(tmp_path) if "/." in p or p.startswith(".")]  # no temporary left


@pytest.mark.parametrize("limit", ["1", "10%"])
def test_a_refused_chunked_import_writes_nothing_but_the_rejections(log, tmp_path, limit):
    res = import_log(log["log"], load_mapping(log["mapping"]), tmp_path / "records", max_rejected=limit, chunk_rows=4)
    assert res.refused and (res.imported, res.rejected_count, res.written) == (0, 3, ())
    assert _contents(tmp_path) == ["mapping.yaml", "records", "records/rejected.jsonl", "service.jsonl"]
    assert len((tmp_path / "records" / "rejected.jsonl").read_text().splitlines()) == 3


def test_importing_a_log_again_replaces_its_files(log, tmp_path):
    out, mapping = tmp_path / "records", load_mapping(log["mapping"])
    (tmp_path / "other.jsonl").write_text("\n".join(_line(i, id=f"o{i}") for i in range(1, 5)) + "\n")
    import_log(tmp_path / "other.jsonl", mapping, out)
    import_log(log["log"], mapping, out, max_rejected=3)  # one chunk: import-service-0.parquet
    once = _contents(out)
    assert "date=2026-11-19/target=production/import-service-0.parquet" in once
    lists, counts = [], []
    for _ in range(2):
        res = import_log(log["log"], mapping, out, max_rejected=3, chunk_rows=4)
        lists.append(_contents(out))
        counts.append(len(load_records(out)))
        assert sorted(str(p.relative_to(out)) for p in res.written) == [p for p in lists[-1] if "-c0" in p]
    assert lists[0] == lists[1] and counts == [9, 9]  # 5 of this log, 4 of the other
    assert "date=2026-11-19/target=production/import-other-0.parquet" in lists[0]
    assert "date=2026-11-19/target=production/import-service-0.parquet" not in lists[0]
    assert sorted(load_records(out)["request_id"]) == ["o1", "o2", "o3", "o4", "r1", "r2", "r4", "r6", "r8"]


def test_parquet_rows_are_numbered_across_batches(tmp_path):
    ids = ["a", "b", "c", "d", "e", "f", "a"]
    pd.DataFrame(
        {
            "t": [T + 1, T + 2, None, T + 4, T + 5, None, T + 7],
            "lat": [0.1] * 7,
            "code": [200] * 7,
            "id": ids,
            "cap": ["a cat"] * 7,
        }
    ).to_parquet(tmp_path / "log.parquet", row_group_size=3)
    (tmp_path / "m.yaml").write_text(
        "columns: {t: t_start, lat: latency_s, code: status, id: request_id, cap: caption}\n"
        "constants: {target: t, run_id: r}\n"
    )
    mapping = load_mapping(tmp_path / "m.yaml")
    whole = import_log(tmp_path / "log.parquet", mapping, tmp_path / "whole.parquet", max_rejected=3)
    res = import_log(tmp_path / "log.parquet", mapping, tmp_path / "chunks.parquet", max_rejected=3, chunk_rows=3)
    assert [(r.where, r.number, r.reason) for r in res.rejected] == [
        ("row", 3, "no t_start"),
        ("row", 6, "no t_start"),
        ("row", 7, "breaks the record contract: request_id unique per target"),
    ]
    assert res.rejected == whole.rejected and (res.rows, res.imported) == (7, 4)
    pd.testing.assert_frame_equal(_frame(tmp_path / "chunks.parquet"), _frame(tmp_path / "whole.parquet"))
    assert list(_frame(tmp_path / "chunks.parquet")["request_id"]) == ["a", "b", "d", "e"]


def test_csv_lines_keep_their_numbers_across_chunks(tmp_path):
    (tmp_path / "access.tsv").write_text(
        "t\tlat\tid\tcap\n"
        '1795046401\t0.1\ta\t"a dog\non two lines"\n'
        "\n"
        "1795046402\t0.1\tb\n"
        '1795046403\t0.1\tc\t"a cat\n\nand a hat"\n'
        "1795046404\tfast\td\ta cow\n"
        "1795046405\t0.1\te\ta hen\n"
    )
    (tmp_path / "m.yaml").write_text(
        "columns: {t: t_start, lat: latency_s, id: request_id, cap: caption}\n"
        "constants: {target: t, run_id: r, status: 200}\n"
    )
    mapping = load_mapping(tmp_path / "m.yaml")
    whole = import_log(tmp_path / "access.tsv", mapping, tmp_path / "whole.jsonl", max_rejected=2)
    res = import_log(tmp_path / "access.tsv", mapping, tmp_path / "chunks.jsonl", max_rejected=2, chunk_rows=1)
    assert [(r.number, r.reason) for r in res.rejected] == [
        (5, "3 fields where the header has 4"),
        (9, "latency_s: 'fast' is not a number"),
    ]
    assert res.rejected == whole.rejected and (res.rows, res.imported) == (5, 3)
    assert (tmp_path / "chunks.jsonl").read_text() == (tmp_path / "whole.jsonl").read_text()
    assert list(_frame(tmp_path / "chunks.jsonl")["caption"]) == ["a dog\non two lines", "a cat\n\nand a hat", "a hen"]


def test_a_garbage_log_keeps_only_the_first_rejections_in_memory(tmp_path, capsys):
    (tmp_path / "junk.jsonl").write_text("not json\n" * 1005)
    (tmp_path / "m.yaml").write_text(MAPPING)
    out = tmp_path / "records"
    code = main(
        ["records", "import", str(tmp_path / "junk.jsonl"), "--mapping", str(tmp_path / "m.yaml"), "--out", str(out)]
    )
    err = capsys.readouterr().err.splitlines()
    assert code == 65
    assert err[20] == f"... and 985 more in {out / 'rejected.jsonl'}"
    assert err[-1].startswith("harness records: error: 1005 of 1005 rows rejected")
    res = import_log(tmp_path / "junk.jsonl", load_mapping(tmp_path / "m.yaml"), out, chunk_rows=100)
    assert (len(res.rejected), res.rejected_count, res.rejected[-1].number) == (1000, 1005, 1000)
    assert len((out / "rejected.jsonl").read_text().splitlines()) == 1005
