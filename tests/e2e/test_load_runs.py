"""Whole load runs on loopback (Locust in child processes): what a SIGKILL leaves, master and
workers, and targets that are down or answer garbage."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.cli import main as cli_main
from harness.load.calibration import FixedResponseServer
from harness.records import OUTCOMES, load_records, read_jsonl

pytestmark = pytest.mark.slow  # real Locust runs in processes of their own
ROOT = Path(__file__).resolve().parents[2]


def _locust_total(out: Path) -> int:
    with open(out / "locust_stats.csv", newline="") as fh:
        return int(next(r for r in csv.DictReader(fh) if r["Name"] == "Aggregated")["Request Count"])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigkilled_run_keeps_every_request_answered_a_second_before(tmp_path: Path) -> None:
    answered: list[tuple[str | None, float]] = []
    lock = threading.Lock()

    def note(rid: str | None, t: float) -> None:
        with lock:
            answered.append((rid, t))

    with FixedResponseServer(on_answer=note) as srv:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness.load.run",
                "-f",
                str(ROOT / "scenarios/steady.py"),
                "--host",
                srv.url,
                "-u",
                "2",
                "--duration",
                "60",
                "--out",
                str(tmp_path),
                "--loglevel",
                "ERROR",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with lock:
                first = answered[0][1] if answered else None
            if first is not None and time.time() - first > 2.0:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        kill_time = time.time()
        proc.wait(10)
    rows = read_jsonl(tmp_path / "records.jsonl")
    df = load_records(tmp_path / "records.jsonl")
    assert len(df) == len(rows) > 0
    recorded = {r["request_id"] for r in rows}
    with lock:
        before = {rid for rid, t in answered if t <= kill_time - 1.0}
    assert before and before <= recorded
    assert not (tmp_path / "summary.json").exists()  # killed: no summary, but the records are whole


def test_harness_load_with_two_workers(tmp_path: Path, capsys) -> None:
    with FixedResponseServer() as srv:
        code = cli_main(
            [
                "load",
                "--target",
                srv.url,
                "--scenario",
                "steady",
                "--duration",
                "4s",  # a loaded machine may take a second or two to start the workers' users
                "--users",
                "4",
                "--workers",
                "2",
                "--out",
                str(tmp_path / "run"),
                "--run-id",
                "dist-1",
            ]
        )
    out = tmp_path / "run"
    assert code == 0, capsys.readouterr()
    s = json.loads((out / "summary.json").read_text())
    df = load_records(out)
    assert s["workers"] == 2 and s["run_id"] == "dist-1"
    assert len(df) == s["requests"] == s["locust"]["requests"] == _locust_total(out) > 0
    assert set(df["run_id"]) == {"dist-1"} and set(df["outcome"]) <= set(OUTCOMES)
    assert df["request_id"].is_unique
    assert df["request_id"].str.split("-").str[0].nunique() == 2  # both workers' requests are in it
    assert (out / "records.parquet").exists() and (out / "locust_stats_history.csv").exists()
    assert "steady:" in capsys.readouterr().out


def test_a_target_that_is_down_gives_connection_errors_and_a_summary(tmp_path: Path, capsys) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    code = cli_main(
        ["load", "--target", url, "--scenario", "steady", "--duration", "2s", "--users", "2", "--out", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 69 and "target unreachable" in err and "Traceback" not in err
    s = json.loads((tmp_path / "summary.json").read_text())
    df = load_records(tmp_path)
    assert len(df) == s["requests"] == s["locust"]["requests"] > 0
    assert set(df["outcome"]) == {"connection_error"} and set(df["status"]) == {0}
    assert s["notes"][0].startswith(f"target unreachable at {url}")


@pytest.mark.parametrize("server_kw", [{"garbage": True}, {"body": b'{"text": "not the contract"}'}])
def test_a_target_answering_garbage_gives_invalid_responses(tmp_path: Path, capsys, server_kw: dict) -> None:
    with FixedResponseServer(**server_kw) as srv:
        code = cli_main(
            [
                "load",
                "--target",
                srv.url,
                "--scenario",
                "steady",
                "--duration",
                "2s",
                "--users",
                "2",
                "--out",
                str(tmp_path),
            ]
        )
    assert code == 0
    s = json.loads((tmp_path / "summary.json").read_text())
    df = load_records(tmp_path)
    assert len(df) == s["requests"] == s["locust"]["requests"] == _locust_total(tmp_path) > 0
    assert s["outcomes"]["invalid_response"] > 0 and s["outcomes"]["ok"] == 0
    assert set(df["outcome"]) <= {"invalid_response", "connection_error"}
    assert any("invalid_response" in n for n in s["notes"])
    assert "note:" in capsys.readouterr().out
