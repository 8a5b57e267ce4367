"""Request records: the append-only store, its loader, compaction, and what survives SIGKILL."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.errors import DataError, InputMissingError
from harness.records import COLUMNS, RECORDS_JSONL, RecordWriter, RequestRecord, compact, load_records, read_jsonl


def _rec(i: int, **kw) -> RequestRecord:
    base = dict(
        run_id="r1",
        target="baseline",
        scenario="steady",
        request_id=f"q{i}",
        image_id=str(i),
        t_start=1000.0 + i,
        latency_s=0.01 * (i + 1),
        status=200,
        outcome="ok",
        caption=f"caption {i}",
        confidence=0.5,
        model_version="m1",
        image_bytes=100 + i,
        image_w=128,
        image_h=128,
        safety_flagged=False,
    )
    base.update(kw)
    return RequestRecord(**base)


def test_write_load_jsonl_and_parquet_round_trip(tmp_path: Path) -> None:
    with RecordWriter(tmp_path) as w:
        w.write(_rec(0, embedding=[0.25, -1.5]))
        w.write_many(
            [
                _rec(1),
                _rec(
                    2,
                    status=0,
                    outcome="connection_error",
                    error="refused",
                    caption=None,
                    confidence=None,
                    safety_flagged=None,
                ),
            ]
        )
        assert w.count == 3
    df = load_records(tmp_path / RECORDS_JSONL)
    assert list(df.columns) == list(COLUMNS)
    assert df["request_id"].tolist() == ["q0", "q1", "q2"]
    assert df["outcome"].tolist() == ["ok", "ok", "connection_error"]
    assert df.loc[0, "embedding"] == [0.25, -1.5]
    out = compact(tmp_path)
    assert out.name == "records.parquet"
    pq = load_records(tmp_path)  # a folder prefers the parquet file
    assert pq["request_id"].tolist() == ["q0", "q1", "q2"]
    assert list(pq.loc[0, "embedding"]) == [0.25, -1.5]
    assert pq.loc[2, "status"] == 0 and pq.loc[2, "error"] == "refused"
    assert pq["latency_s"].tolist() == pytest.approx([0.01, 0.02, 0.03])


def test_a_line_cut_by_a_kill_is_dropped_a_damaged_one_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / RECORDS_JSONL
    good = json.dumps(_rec(0).to_dict())
    p.write_text(good + "\n" + good[: len(good) // 2])  # no newline: the write was cut off
    assert len(read_jsonl(p)) == 1
    p.write_text(good + "\n" + good[:20] + "\n" + good + "\n")
    with pytest.raises(DataError, match="line 2"):
        load_records(p)


def test_non_finite_numbers_are_stored_as_null(tmp_path: Path) -> None:
    with RecordWriter(tmp_path) as w:
        w.write(_rec(0, latency_s=math.nan, embedding=[1.0, math.inf]))
    row = json.loads((tmp_path / RECORDS_JSONL).read_text())
    assert row["latency_s"] is None and row["embedding"] == [1.0, None]


@pytest.mark.parametrize("fast", [True, False])
def test_record_lines_are_the_same_json_with_or_without_orjson(monkeypatch, fast: bool) -> None:
    import harness.records.write as records

    if not fast:
        monkeypatch.setattr(records, "_orjson", None)
    row = _rec(1, error='quote " and \\ and é', embedding=[0.5, math.nan], safety_flagged=None).to_dict()
    line = records.record_line(row)
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == {**row, "embedding": [0.5, None]}
    assert list(json.loads(line)) == list(COLUMNS)
    other = records.record_line({"request_id": "x", "latency_s": math.inf})
    assert json.loads(other) == {"request_id": "x", "latency_s": None}


def test_a_seeded_sample_is_the_same_records_from_jsonl_and_from_parquet(tmp_path: Path) -> None:
    """One query selects records whatever holds them: the same seed picks the same records, in the
    same order, from a run's records.jsonl and from its records.parquet, with or without filters."""
    order = list(range(400))
    random.Random(5).shuffle(order)  # written out of time order
    with RecordWriter(tmp_path) as w:
        for i in order:
            w.write(_rec(i, target="canary" if i % 3 == 0 else "baseline", outcome="timeout" if i % 7 == 0 else "ok"))
    jsonl, parquet = tmp_path / RECORDS_JSONL, compact(tmp_path)
    filters = [{}, {"outcome": "ok"}, {"since": 1100.0, "until": 1350.0}, {"where": {"target": "canary"}}]
    for kw in filters:
        samples = []
        for seed in (0, 3):
            for columns in (None, ["request_id", "t_start"]):
                a = load_records(jsonl, columns, sample=40, seed=seed, **kw)
                b = load_records(parquet, columns, sample=40, seed=seed, **kw)
                assert len(a) == len(b) == 40 and a.attrs["records_in_window"] == b.attrs["records_in_window"] > 40
                assert a["request_id"].tolist() == b["request_id"].tolist()
                assert a["t_start"].tolist() == b["t_start"].tolist() == sorted(a["t_start"])
            samples.append(set(a["request_id"]))
        assert samples[0] != samples[1]  # another seed, another sample


def test_missing_records_are_input_missing(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError):
        load_records(tmp_path / "nope.jsonl")
    with pytest.raises(InputMissingError):
        load_records(tmp_path)


def test_mixed_id_types_are_stored_as_text_in_parquet(tmp_path: Path) -> None:
    with RecordWriter(tmp_path) as w:
        w.write(_rec(0).to_dict() | {"image_id": 7})
        w.write(_rec(1, image_id="malformed:empty"))
    compact(tmp_path)
    assert load_records(tmp_path / "records.parquet")["image_id"].tolist() == ["7", "malformed:empty"]


def test_concurrent_writers_never_interleave_lines(tmp_path: Path) -> None:
    w = RecordWriter(tmp_path)
    big = [0.125] * 2000  # lines far over any pipe or buffer size

    def write(k: int) -> None:
        for i in range(50):
            w.write(_rec(k * 100 + i, embedding=big))

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.close()
    rows = read_jsonl(tmp_path / RECORDS_JSONL)
    assert len(rows) == 200 and {r["request_id"] for r in rows} == {
        f"q{k * 100 + i}" for k in range(4) for i in range(50)
    }


_WRITER = """
import sys, time
from harness.records import RecordWriter, RequestRecord
w = RecordWriter(sys.argv[1])
i = 0
while True:
    w.write(RequestRecord(run_id="r", target="t", scenario="s", request_id=str(i), image_id=None,
                          t_start=time.time(), latency_s=0.001, status=200, outcome="ok", embedding=[0.5] * 64))
    i += 1
    if i % 50 == 0:
        print(i, time.time(), flush=True)
    time.sleep(0.0005)
"""


def test_sigkill_keeps_every_record_written_before_the_kill(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    reported: list[tuple[int, float]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        n, t = proc.stdout.readline().split()
        reported.append((int(n), float(t)))
        if len(reported) >= 10 and reported[-1][1] - reported[0][1] > 1.2:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    kill_time = time.time()
    rows = read_jsonl(tmp_path / RECORDS_JSONL)
    ids = [int(r["request_id"]) for r in rows]
    assert ids == list(range(len(ids)))  # whole records, in order, none lost in between
    assert len(ids) >= reported[-1][0]  # everything the writer had finished when it last spoke
    older = [n for n, t in reported if t <= kill_time - 1.0]
    assert older and len(ids) >= max(older)
