"""Inputs that would give misleading results: records stamped far ahead of the reader's clock,
negative latencies and times outside 1970..9999, and times on the command line that are not
finite. Each is left out and said (future records), or refused with one line (bad data: 65; a bad
option: 64, before any work starts)."""

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.cli import main
from harness.errors import EXIT_DATA, EXIT_HOLD, EXIT_USAGE, DataError, UsageError
from harness.records import (
    BOUNDS,
    CLOCK_SKEW_S,
    LATEST_TIME,
    RecordWriter,
    RequestRecord,
    check_types,
    format_time,
    load_records,
)
from harness.slo import evaluate_records, parse_spec

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "slo.yaml"
YEAR = 365 * 86400.0
T = 1_700_000_000.0  # 2023-11-14T22:13:20Z: the clock of the unit tests


def _record(i: int, t: float, latency: float = 0.2, bad: bool = False) -> RequestRecord:
    return RequestRecord(
        "r",
        "baseline",
        "steady",
        f"q{i}",
        str(i),
        t,
        latency,
        500 if bad else 200,
        "http_error" if bad else "ok",
        caption=None if bad else "a red circle",
        safety_flagged=None if bad else False,
    )


def _half_failing(end: float, n: int = 200) -> list[RequestRecord]:
    """``n`` requests 10 s apart, the last sent at ``end``; every other one a 500."""
    return [_record(i, end - 10.0 * (n - 1 - i), bad=i % 2 == 0) for i in range(n)]


def _write(folder: Path, records, parquet: bool = False) -> Path:
    with RecordWriter(folder) as w:
        w.write_many(records)
    if parquet:
        df = load_records(folder / "records.jsonl")
        (folder / "records.jsonl").unlink()
        df.to_parquet(folder / "records.parquet", index=False)
        return folder / "records.parquet"
    return folder / "records.jsonl"


def _slo(capsys, *args) -> tuple[int, list[str], list[str]]:
    code = main(["slo", "--spec", str(EXAMPLE), *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


# ---------------------------------------------------------------------------- records from the future


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
def test_a_record_a_year_ahead_is_left_out_and_said_so_the_windows_still_burn(tmp_path, capsys, parquet):
    now = time.time()
    ahead = now + YEAR
    path = _write(tmp_path / "run", [*_half_failing(now - 10.0), _record(999, ahead)], parquet)
    code, out, err = _slo(capsys, "--records", path, "--out", tmp_path / "out")
    assert code == 0 and out[0].endswith("not met: availability, coverage")
    pattern = (
        r"harness slo: warning: 1 of 201 records is more than 5m ahead of this machine's clock "
        r"\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; the first answered at "
        + re.escape(format_time(ahead + 0.2))
        + r"\): left out of the SLIs, burn windows and figures"
    )
    assert len(err) == 1 and re.fullmatch(pattern, err[0]), err
    data = json.loads((tmp_path / "out" / "slo.json").read_text())
    assert data["warnings"] == [err[0].removeprefix("harness slo: warning: ")]
    assert data["figures"]["requests"] == 200 and data["end"] == pytest.approx(now - 10.0 + 0.2)
    availability = next(s for s in data["slos"] if s["name"] == "availability")
    assert (availability["sli"]["good"], availability["sli"]["total"]) == (100, 200)
    page = availability["windows"][0]
    # half the requests failed against a 0.1% budget: 500x in both windows of the page, which fires
    assert (page["long"], page["short"], page["long_burn"], page["short_burn"], page["fires"]) == (
        "1h",
        "5m",
        500.0,
        500.0,
        True,
    )
    assert "**Warning:** 1 of 201 records is more than 5m ahead" in (tmp_path / "out" / "slo.md").read_text()


def test_records_within_the_tolerance_are_kept_without_a_warning(tmp_path, capsys):
    now = time.time()
    path = _write(tmp_path / "run", [*_half_failing(now - 10.0), _record(999, now + 60.0)])
    code, _, err = _slo(capsys, "--records", path, "--out", tmp_path / "out")
    data = json.loads((tmp_path / "out" / "slo.json").read_text())
    assert code == 0 and err == [] and data["warnings"] == [] and data["figures"]["requests"] == 201


def _frame(records) -> pd.DataFrame:
    return pd.DataFrame([r.to_dict() for r in records])


def test_the_tolerance_is_five_minutes_after_the_clock_by_the_answer_time():
    assert CLOCK_SKEW_S == 300.0
    on_time = _half_failing(T - 10.0, n=100)
    edge = _record(500, T + CLOCK_SKEW_S - 0.5, latency=0.5)  # answered exactly 5m after the clock: kept
    late = _record(501, T + CLOCK_SKEW_S, latency=0.5)  # sent within 5m, answered after: left out
    report = evaluate_records(parse_spec(EXAMPLE.read_text()), _frame([*on_time, edge, late]), clock=T)
    assert report.warnings == (
        "1 of 102 records is more than 5m ahead of this machine's clock (2023-11-14T22:13:20Z; the first "
        "answered at 2023-11-14T22:18:20Z): left out of the SLIs, burn windows and figures",
    )
    assert report.figures.requests == 101 and report.end == T + CLOCK_SKEW_S


def test_chunks_are_left_out_alike_and_counted_over_the_whole_window():
    spec = parse_spec(EXAMPLE.read_text())
    records = [*_half_failing(T - 10.0, n=100), _record(900, T + YEAR), _record(901, T + 2 * YEAR)]
    whole = evaluate_records(spec, _frame(records), clock=T).to_dict()
    chunked = evaluate_records(spec, iter([_frame(records[:60]), _frame(records[60:])]), clock=T).to_dict()
    assert whole == chunked
    assert whole["warnings"][0].startswith("2 of 102 records are more than 5m ahead of this machine's clock")
    assert "the first answered at 2024-11-13T22:13:20Z" in whole["warnings"][0]


def test_feedback_stamped_a_year_ahead_does_not_empty_the_correction_windows(tmp_path):
    log = ["image_id,request_id,time,action"]
    log += [f"img{i},q{i},{T - 3600 + 36 * i},{'rejected' if i % 2 else 'accepted'}" for i in range(100)]
    log.append(f"img100,q100,{T + YEAR},accepted")
    (tmp_path / "feedback.csv").write_text("\n".join(log) + "\n")
    spec = parse_spec("service: s\nslos:\n  - {name: accepted, sli: correction, objective: 0.95}\n")
    report = evaluate_records(spec, _frame([_record(0, T - 10.0)]), folder=tmp_path, clock=T)
    assert report.warnings == (
        "accepted: 1 of 101 events is more than 5m ahead of this machine's clock (2023-11-14T22:13:20Z; the first "
        "stamped at 2024-11-13T22:13:20Z): left out of its SLI and burn windows",
    )
    (r,) = report.results
    assert (r.sli.good, r.sli.total) == (50, 100)
    page = r.windows[1]  # 50% bad over a 5% budget: 10x, over the 6x page's 6h and 30m
    assert (page.long_events, page.short_events, page.long_burn, page.short_burn, page.fires) == (
        100,
        50,
        10.0,
        10.0,
        True,
    )


def _judge(capsys, tmp_path, df: pd.DataFrame) -> tuple[int, dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    df.to_parquet(tmp_path / "production.parquet", index=False)
    code = main(
        [
            "judge",
            "--baseline",
            str(tmp_path / "production.parquet"),
            "--baseline-where",
            "target=stable",
            "--canary",
            str(tmp_path / "production.parquet"),
            "--canary-where",
            "target=canary",
            "--out",
            str(tmp_path / "judged"),
            "--json",
        ]
    )
    return code, json.loads(capsys.readouterr().out)


def _production(now: float) -> pd.DataFrame:
    from harness.canary.simulation import simulate_traffic

    return pd.concat(
        [
            simulate_traffic(400, target=t, seed=s, t0=now - 3600.0, duration_s=3000.0)
            for t, s in (("stable", 1), ("canary", 2))
        ],
        ignore_index=True,
    )


def test_the_judge_holds_on_records_stamped_ahead_of_its_clock_and_leaves_them_out(tmp_path, capsys):
    now = time.time()
    df = _production(now)
    code, rec = _judge(capsys, tmp_path / "clean", df)
    assert not any("clock" in r for r in rec["reasons"]), rec["reasons"]
    row = df.index[df["target"] == "canary"][3]
    df.loc[row, ["t_start", "latency_s"]] = [now + YEAR, 0.25]
    code, rec = _judge(capsys, tmp_path / "ahead", df)
    assert code == EXIT_HOLD and rec["verdict"] == "HOLD"
    where = f"{tmp_path / 'ahead' / 'production.parquet'} target=canary"
    pattern = (
        r"canary: 1 of 400 records is more than 5m ahead of the judge's clock \(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ; "
        rf"the first answered at {re.escape(format_time(now + YEAR + 0.25))}\) in {re.escape(where)}: "
        r"left out; the clocks disagree"
    )
    assert [r for r in rec["reasons"] if "clock" in r] == [rec["reasons"][-1]]
    assert re.fullmatch(pattern, rec["reasons"][-1]), rec["reasons"]
    assert rec["figures"]["canary"]["requests"] == 399


# ---------------------------------------------------------------------------- negative latencies, bad times


@pytest.mark.parametrize("parquet", [False, True], ids=["jsonl", "parquet"])
def test_a_negative_latency_is_bad_data(tmp_path, capsys, parquet):
    records = _half_failing(time.time() - 10.0)
    records[7] = _record(7, records[7].t_start, latency=-5.0)
    path = _write(tmp_path / "run", records, parquet)
    code, out, err = _slo(capsys, "--records", path, "--out", tmp_path / "out")
    assert (code, out, err) == (
        EXIT_DATA,
        [],
        [f"harness slo: error: {path}: records whose latency_s is negative, e.g. -5.0"],
    )
    assert not (tmp_path / "out").exists()


def test_a_latency_that_is_not_a_number_is_missing(tmp_path, capsys):
    records = _half_failing(time.time() - 10.0)
    records[7] = _record(7, records[7].t_start, latency=float("nan"))  # parquet keeps the NaN
    path = _write(tmp_path / "run", records, parquet=True)
    code, out, err = _slo(capsys, "--records", path, "--out", tmp_path / "out")
    assert (code, out, err) == (EXIT_DATA, [], [f"harness slo: error: {path}: 1 of 200 records lack latency_s"])


def test_the_judge_refuses_a_negative_latency(tmp_path, capsys):
    df = _production(time.time())
    df.loc[df.index[df["target"] == "canary"][0], "latency_s"] = -0.5
    df.to_parquet(tmp_path / "p.parquet", index=False)
    args = ["--baseline-where", "target=stable", "--canary-where", "target=canary", "--out", tmp_path / "j"]
    code = main(
        ["judge", "--baseline", str(tmp_path / "p.parquet"), "--canary", str(tmp_path / "p.parquet"), *map(str, args)]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert (code, err) == (
        EXIT_DATA,
        ["harness judge: error: canary records: records whose latency_s is negative, e.g. -0.5"],
    )


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("latency_s", -0.001, "records whose latency_s is negative, e.g. -0.001"),
        ("t_start", -1.0, "records whose t_start is not a time from 1970 to 9999, e.g. -1.0"),
        ("t_start", LATEST_TIME, "records whose t_start is not a time from 1970 to 9999, e.g. 253402300800.0"),
        ("t_start", float("inf"), "records whose t_start is not a finite number, e.g. inf"),
    ],
)
@pytest.mark.parametrize("typed", [True, False], ids=["numbers", "objects"])
def test_check_types_names_the_source_and_the_field(field, value, message, typed):
    df = _frame(_half_failing(T, n=20))
    df[field] = df[field].astype(float if typed else object)
    df.loc[5, field] = value
    with pytest.raises(DataError) as exc:
        check_types(df, "records.parquet")
    assert str(exc.value) == f"records.parquet: {message}"


def test_times_at_the_bounds_are_good():
    df = _frame(_half_failing(T, n=3))
    df["t_start"] = [0.0, 1.0, LATEST_TIME - 1.0]
    df["latency_s"] = [0.0, 0.1, 30.0]
    check_types(df, "records")


def test_the_data_contract_holds_records_to_the_same_bounds():
    """One table of bounds: check_types and the Great Expectations contract refuse the same values."""
    from harness.records.contract import RecordContract, validate_records

    clean = _frame(_half_failing(T, n=20)).assign(image_id=lambda d: d["image_id"].astype(str))
    contract = RecordContract(coverage_objective=0.0, service=False)
    assert validate_records(clean, contract).success
    for field, (low, _high, _broken, rule) in BOUNDS.items():
        bad = clean.copy()
        bad.loc[3, field] = low - 1.0
        with pytest.raises(DataError):
            check_types(bad, "records")
        assert [r.rule for r in validate_records(bad, contract).failures] == [rule]


# ---------------------------------------------------------------------------- times on the command line


def _usage(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


FORMS = "unix seconds, ISO 8601, now or now-15m"
NOT_TIMES = ["nan", "inf", "-inf", "1e400", "-5", "1960-01-01", "253402300800", "NaN"]


@pytest.fixture
def sources(tmp_path):
    path = _write(tmp_path / "run", _half_failing(T, n=20))
    parquet = _write(tmp_path / "pq", _half_failing(T, n=20), parquet=True)
    return {"jsonl": path, "parquet": parquet}


COMMANDS = {
    "slo-jsonl": lambda s, o: ["slo", "--spec", EXAMPLE, "--records", s["jsonl"], "--out", o],
    "slo-parquet": lambda s, o: ["slo", "--spec", EXAMPLE, "--records", s["parquet"], "--out", o],
    "slo-prometheus": lambda s, o: ["slo", "--spec", EXAMPLE, "--prometheus", "http://127.0.0.1:9", "--out", o],
    "judge": lambda s, o: ["judge", "--baseline", s["parquet"], "--canary", s["parquet"], "--out", o],
    "drift": lambda s, o: ["drift", "--reference", s["jsonl"], "--current", s["parquet"], "--out", o],
}


@pytest.mark.parametrize("value", NOT_TIMES)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_since_must_be_a_finite_time_for_every_command(command, value, sources, tmp_path, capsys):
    code, err = _usage([*COMMANDS[command](sources, tmp_path / "out"), f"--since={value}"], capsys)
    assert (code, err) == (
        EXIT_USAGE,
        [
            f"harness {command.split('-')[0]}: error: --since must be a finite time from 1970 to 9999 ({FORMS}; got {value!r})"
        ],
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "command, flag",
    [
        ("slo-jsonl", "--until"),
        ("slo-parquet", "--end"),
        ("slo-prometheus", "--start"),
        ("judge", "--until"),
        ("drift", "--until"),
        ("drift", "--reference-since"),
        ("drift", "--reference-until"),
    ],
)
def test_every_time_flag_is_checked_and_named_as_typed(command, flag, sources, tmp_path, capsys):
    code, err = _usage([*COMMANDS[command](sources, tmp_path / "out"), flag, "1e400"], capsys)
    name = command.split("-")[0]
    assert (code, err) == (
        EXIT_USAGE,
        [f"harness {name}: error: {flag} must be a finite time from 1970 to 9999 ({FORMS}; got '1e400')"],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["slo", "--spec", "missing.yaml", "--records", "missing.jsonl", "--out", "o"],
        ["judge", "--baseline", "missing-a", "--canary", "missing-b", "--out", "o"],
        [
            "drift",
            "--reference",
            "missing-a",
            "--current",
            "missing-b",
            "--quality-model",
            "missing.json",
            "--out",
            "o",
        ],
    ],
    ids=["slo", "judge", "drift"],
)
def test_times_are_checked_before_any_input_is_read(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, err = _usage([*argv, "--since", "nan"], capsys)
    assert code == EXIT_USAGE and len(err) == 1 and "--since must be a finite time" in err[0]


def test_the_time_parser_takes_the_whole_range_and_refuses_what_lies_outside():
    from harness.slo import parse_time

    assert parse_time("1970-01-01T00:00:00Z") == 0.0 and parse_time("0") == 0.0
    assert parse_time("9999-12-31T23:59:59Z") == LATEST_TIME - 1.0
    assert parse_time("now-15m", now=lambda: T) == T - 900.0
    with pytest.raises(UsageError, match=r"^a time must be a finite time from 1970 to 9999 .*got 'now-2d'\)$"):
        parse_time("now-2d", now=lambda: 86400.0)
    with pytest.raises(UsageError, match=r"^--since: bad time 'now-9{56}\.\.\.': after now- comes a duration"):
        parse_time("now-" + "9" * 400 + "d", option="--since")  # a duration too large for a float


def test_the_record_scan_refuses_a_time_that_is_not_finite(sources):
    for path in sources.values():
        for bound in ({"since": float("nan")}, {"until": float("inf")}):
            with pytest.raises(ValueError, match="since and until must be finite unix seconds"):
                load_records(path, **bound)
    assert np.isfinite(load_records(sources["parquet"], since=T - 60.0)["t_start"]).all()
