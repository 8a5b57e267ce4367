"""Records as a Hive-partitioned parquet dataset: the layout ``write_dataset`` makes, and ``load_records``
with projection, time range, outcome and the seeded sample pushed into the scan, the same from a JSONL
file; ``harness slo`` and ``harness drift`` over a dataset with time windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import DataError, InputMissingError
from harness.records import COLUMNS, RecordWriter, RequestRecord, load_records, write_dataset

DAY = 86400.0
T0 = 1_795_046_400.0  # 2026-11-19 00:00 UTC
ROOT = Path(__file__).resolve().parents[2]


def _records(n: int, days: int, seed: int = 0, shift: float = 0.0, start_day: int = 0) -> list[dict]:
    """``n`` records spread over ``days`` days: a timeout every 10th, an embedding on every 25th ok one."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = T0 + (start_day + days * i / n) * DAY
        ok = i % 10 != 3
        out.append(
            RequestRecord(
                run_id="prod",
                target="canary" if i % 4 == 0 else "baseline",
                scenario="traffic",
                request_id=f"s{seed}-d{start_day}-{i}",
                image_id=str(i),
                t_start=t,
                latency_s=0.05 + (i % 7) / 100,
                status=200 if ok else 0,
                outcome="ok" if ok else "timeout",
                caption=f"a {'red' if i % 3 else 'blue'} circle" if ok else None,
                confidence=float(np.clip(rng.normal(0.7 + shift, 0.1), 0, 1)) if ok else None,
                image_bytes=1000 + i % 50,
                image_w=128,
                image_h=128,
                safety_flagged=False if ok else None,
                embedding=[float(v) for v in rng.normal(shift, 1.0, 8)] if ok and i % 25 == 0 else None,
            ).to_dict()
        )
    return out


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The same 600 records over 3 days as a JSONL file and as a partitioned dataset."""
    d = tmp_path_factory.mktemp("store")
    rows = _records(600, 3)
    with RecordWriter(d / "run") as w:
        w.write_many(rows)
    written = write_dataset(pd.DataFrame(rows), d / "ds")
    return {"jsonl": d / "run" / "records.jsonl", "ds": d / "ds", "rows": rows, "written": written}


def test_layout_is_hive_partitioned_by_day_and_target(store):
    ds = store["ds"]
    names = sorted(str(p.relative_to(ds)) for p in store["written"])
    assert names == [
        f"date=2026-11-{d}/target={t}/part-0-0.parquet" for d in (19, 20, 21) for t in ("baseline", "canary")
    ]
    df = load_records(ds)
    assert list(df.columns) == [*COLUMNS, "date"]
    assert df.attrs["records_in_window"] == 600
    back = df.sort_values("request_id").reset_index(drop=True)
    want = pd.DataFrame(store["rows"]).sort_values("request_id").reset_index(drop=True)
    assert back["request_id"].tolist() == want["request_id"].tolist()
    assert back["t_start"].tolist() == want["t_start"].tolist()
    assert back["target"].tolist() == want["target"].tolist()
    assert back["confidence"].fillna(-1).tolist() == want["confidence"].fillna(-1).tolist()
    first = back["embedding"][back["embedding"].notna()].iloc[0]
    assert list(first) == pytest.approx(want["embedding"][want["embedding"].notna()].iloc[0])


@pytest.mark.parametrize("kind", ["jsonl", "ds"])
def test_time_range_outcome_and_columns(store, kind):
    since, until = T0 + 0.5 * DAY, T0 + 2 * DAY
    df = load_records(store[kind], ["request_id", "t_start", "latency_s"], since=since, until=until, outcome="ok")
    want = [r for r in store["rows"] if since <= r["t_start"] < until and r["outcome"] == "ok"]
    assert list(df.columns) == ["request_id", "t_start", "latency_s"]
    assert sorted(df["request_id"]) == sorted(r["request_id"] for r in want)
    assert len(df) == df.attrs["records_in_window"] == 270


def test_the_seeded_sample_is_the_same_from_jsonl_and_from_the_dataset(store):
    a = load_records(store["jsonl"], ["request_id", "t_start"], outcome="ok", sample=50, seed=3)
    b = load_records(store["ds"], ["request_id", "t_start"], outcome="ok", sample=50, seed=3)
    assert len(a) == len(b) == 50 and a.attrs["records_in_window"] == b.attrs["records_in_window"] == 540
    assert set(a["request_id"]) == set(b["request_id"])
    assert a["t_start"].is_monotonic_increasing and b["t_start"].is_monotonic_increasing
    again = load_records(store["ds"], ["request_id"], outcome="ok", sample=50, seed=3)
    other = load_records(store["ds"], ["request_id"], outcome="ok", sample=50, seed=4)
    assert set(again["request_id"]) == set(b["request_id"]) != set(other["request_id"])
    everything = load_records(store["ds"], ["request_id"], sample=10_000)
    assert len(everything) == 600


def test_embeddings_are_read_only_where_present_or_not_at_all(store):
    for kind in ("jsonl", "ds"):
        emb = load_records(store[kind], ["request_id", "embedding"], embeddings="only")
        assert len(emb) == sum(r["embedding"] is not None for r in store["rows"]) == 24
        assert all(len(v) == 8 for v in emb["embedding"])
        assert "embedding" not in load_records(store[kind], embeddings="skip").columns


def test_missing_and_damaged_datasets(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputMissingError, match="no records.parquet, records.jsonl or parquet dataset"):
        load_records(tmp_path / "empty")
    bad = tmp_path / "bad" / "date=2026-11-19" / "target=a"
    bad.mkdir(parents=True)
    (bad / "part-0.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="unreadable parquet records"):
        load_records(tmp_path / "bad", ["t_start"])
    with pytest.raises(DataError, match="dataset needs t_start"):
        write_dataset(pd.DataFrame({"target": ["a"], "request_id": ["x"]}), tmp_path / "x")


def test_slo_over_a_dataset_and_a_time_range(store, tmp_path):
    since, until = T0 + DAY, T0 + 2 * DAY
    out = tmp_path / "slo"
    assert (
        main(
            [
                "slo",
                "--spec",
                str(ROOT / "examples" / "slo.yaml"),
                "--records",
                str(store["ds"]),
                "--since",
                str(since),
                "--until",
                "2026-11-21T00:00:00Z",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    slos = {s["name"]: s for s in json.loads((out / "slo.json").read_text())["slos"]}
    window = [r for r in store["rows"] if since <= r["t_start"] < until]
    assert slos["availability"]["sli"]["total"] == len(window) == 200
    assert slos["availability"]["sli"]["good"] == sum(r["outcome"] == "ok" for r in window) == 180


def test_an_slo_evaluation_in_chunks_is_the_evaluation_of_the_whole(tmp_path):
    """Every kind that reads the records (a lag SLO too), evaluated over a dataset streamed 37 records
    at a time, gives the report of the same records evaluated at once: counts, burn rates, figures."""
    from harness.records import iter_records
    from harness.slo import evaluate_records, load_spec
    from harness.slo.report import record_columns

    rows = _records(600, 3)
    for i, r in enumerate(rows):
        if i % 13 == 5:
            r.update(status=500, outcome="http_error", caption=None, error="HTTP 500: boom")
        elif i % 17 == 6:
            r.update(caption="")
        elif i % 19 == 7:
            r.update(safety_flagged=True)
        elif i % 23 == 8:
            r.update(status=202, outcome="ok", caption=None, error="job expired")
    write_dataset(pd.DataFrame(rows), tmp_path / "ds")
    spec_path = tmp_path / "slo.yaml"
    spec_path.write_text(
        (ROOT / "examples" / "slo.yaml").read_text()
        + "  - {name: lag-1s, sli: lag, threshold: 0.1, objective: 0.9, period: 30d}\n"
    )
    spec = load_spec(spec_path)
    quality = pd.DataFrame({"image_id": [str(i) for i in range(0, 600, 2)], "CIDEr-D": np.linspace(0, 1, 300)})
    whole = evaluate_records(spec, load_records(tmp_path / "ds"), quality, at=T0 + 3 * DAY).to_dict()
    columns, optional = record_columns(spec)
    assert "request_id" not in columns and "embedding" not in columns  # what no SLO reads is not read
    chunks = list(iter_records(tmp_path / "ds", columns, optional=optional, batch_rows=37))
    assert len(chunks) > 10 and max(len(c) for c in chunks) <= 37 and sum(len(c) for c in chunks) == 600
    chunked = evaluate_records(spec, iter(chunks), quality, at=T0 + 3 * DAY).to_dict()
    assert chunked == whole
    by = {s["name"]: s["sli"] for s in whole["slos"]}
    bad = sum(r["status"] == 0 or r["status"] >= 500 or r["status"] == 429 for r in rows)
    assert by["availability"]["total"] == 600 and by["availability"]["good"] == 600 - bad
    assert by["quality"]["total"] > 0 and by["lag-1s"]["figures"]["expired"] == sum(
        r["error"] == "job expired" for r in rows
    )
    assert whole["figures"]["requests"] == 600


def _drift(tmp_path: Path, *extra: str) -> tuple[int, dict]:
    out = tmp_path / "drift"
    code = main(["drift", "--no-sentence-embeddings", "--out", str(out), *extra])
    return code, json.loads((out / "drift.json").read_text())


@pytest.fixture(scope="module")
def weeks(tmp_path_factory):
    """Week 1: reference traffic; week 2: the same traffic with confidence and embeddings moved."""
    d = tmp_path_factory.mktemp("weeks")
    write_dataset(pd.DataFrame(_records(1500, 7, seed=1)), d / "ds", part="w1")
    write_dataset(pd.DataFrame(_records(1500, 7, seed=2, start_day=7)), d / "ds", part="w2")
    write_dataset(pd.DataFrame(_records(1500, 7, seed=3, shift=0.15, start_day=14)), d / "ds", part="w3")
    return d / "ds"


def test_weekly_drift_over_one_dataset(weeks, tmp_path):
    ds, w2, w3 = str(weeks), str(T0 + 7 * DAY), str(T0 + 14 * DAY)
    code, same = _drift(
        tmp_path, "--reference", ds, "--reference-until", w2, "--current", ds, "--since", w2, "--until", w3
    )
    assert code == 0, same["drifted"]
    assert same["reference"]["n_records"] == same["current"]["n_records"] == 1350
    assert same["current"]["n_sampled"] is None
    emb = {r["detector"]: r for r in same["results"]}["embedding.mmd"]
    assert emb["n_reference"] == emb["n_current"] == 60
    code, moved = _drift(
        tmp_path,
        "--reference",
        ds,
        "--reference-until",
        w2,
        "--current",
        ds,
        "--since",
        w3,
        "--sample",
        "500",
        "--embedding-sample",
        "40",
    )
    assert code == 3 and "confidence.ks" in moved["drifted"]
    assert moved["current"]["n_records"] == 1350 and moved["current"]["n_sampled"] == 500
    res = {r["detector"]: r for r in moved["results"]}
    assert res["confidence.ks"]["n_current"] == 500
    assert res["embedding.mmd"]["n_current"] == 40
    assert "a seeded sample of 500 of 1350 records" in (tmp_path / "drift" / "drift.md").read_text()


def test_drift_time_flags_are_checked(weeks, tmp_path, capsys):
    code = main(
        [
            "drift",
            "--reference",
            str(weeks),
            "--current",
            str(weeks),
            "--since",
            "2026-11-30",
            "--until",
            "2026-11-29",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 64 and "--since must come before --until" in capsys.readouterr().err
    code = main(
        [
            "drift",
            "--reference",
            str(weeks),
            "--current",
            str(weeks),
            "--since",
            "2030-01-01",
            "--out",
            str(tmp_path),
            "--no-sentence-embeddings",
        ]
    )
    assert code == 65 and "no records in the time range" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        ({"status": 200.5}, "records whose status is not a whole number 0..999, e.g. 200.5"),
        ({"latency_s": float("inf")}, "records whose latency_s is not a finite number, e.g. inf"),
        ({"image_w": -4}, "records whose image_w is not a whole number 0..2147483648, e.g. -4"),
        ({"caption": 7}, "records whose caption is not text, e.g. 7"),
    ],
)
def test_typed_columns_are_checked_without_a_loop_over_rows(tmp_path, change, message):
    from harness.records import check_types

    rows = pd.DataFrame(_records(40, 1))
    for name, value in change.items():
        if name == "caption":  # a column of numbers where text belongs
            rows[name] = np.full(len(rows), value)
        else:
            rows[name] = rows[name].astype(float)
            rows.loc[5, name] = value
    write_dataset(rows, tmp_path / "ds")
    df = load_records(tmp_path / "ds", embeddings="skip")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(".", r"\.")):
        check_types(df, "ds")
