"""``harness slo`` and ``harness rules`` from the command line: files written, one-line errors, exit codes."""

import http.server
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import EXIT_DATA, EXIT_MISSING, EXIT_UNAVAILABLE, EXIT_USAGE
from harness.records import RecordWriter, RequestRecord

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "slo.yaml"


@pytest.fixture
def run_dir(tmp_path):
    """20 requests: 18 ok (two with a blocklisted word), one 500, one timeout; quality for 10 images."""
    folder = tmp_path / "run"
    with RecordWriter(folder) as w:
        for i in range(20):
            status, outcome = (500, "http_error") if i == 7 else (0, "timeout") if i == 13 else (200, "ok")
            caption = "a red gun" if i in (3, 4) else "a red circle"
            w.write(
                RequestRecord(
                    "r",
                    "baseline",
                    "steady",
                    f"q{i}",
                    str(i),
                    1000.0 + i,
                    0.2 if status else 30.0,
                    status,
                    outcome,
                    caption=caption if outcome == "ok" else None,
                    safety_flagged=False if outcome == "ok" else None,
                )
            )
    (tmp_path / "quality.csv").write_text("image_id,quality\n" + "".join(f"{i},{i / 10}\n" for i in range(10)))
    return folder


def test_records_path_writes_json_and_markdown(run_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "slo",
            "--spec",
            str(EXAMPLE),
            "--records",
            str(run_dir),
            "--quality",
            str(tmp_path / "quality.csv"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    data = json.loads((out / "slo.json").read_text())
    slos = {s["name"]: s for s in data["slos"]}
    assert (slos["availability"]["sli"]["good"], slos["availability"]["sli"]["total"]) == (18, 20)
    assert (slos["coverage"]["sli"]["good"], slos["coverage"]["sli"]["total"]) == (18, 20)
    assert (slos["latency-500ms"]["sli"]["good"], slos["latency-500ms"]["sli"]["total"]) == (19, 20)
    assert (slos["safety"]["sli"]["good"], slos["safety"]["sli"]["total"]) == (16, 18)
    # images 0..9 scored 0.0 .. 0.9; image 7 failed: 9 scored captions, 4 at or above 0.5 (5, 6, 8, 9)
    assert (slos["quality"]["sli"]["good"], slos["quality"]["sli"]["total"]) == (4, 9)
    assert data["traffic_rps"] == 20 and len(slos["availability"]["projection"]) == 4
    assert data["figures"]["cost_per_1000"] is not None
    md = (out / "slo.md").read_text()
    assert md.startswith("# SLOs of captioner") and "| latency-500ms |" in md
    assert "not met" in capsys.readouterr().out


def test_traffic_and_price_flags_override_the_spec(run_dir, tmp_path):
    out = tmp_path / "out"
    assert (
        main(
            [
                "slo",
                "--spec",
                str(EXAMPLE),
                "--records",
                str(run_dir),
                "--traffic-rps",
                "5",
                "--price-per-hour",
                "0",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = json.loads((out / "slo.json").read_text())
    assert data["traffic_rps"] == 5 and data["slos"][0]["projection"][0]["traffic_rps"] == 5
    assert data["figures"]["cost_per_1000"] == 0.0


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_prometheus_absent_is_one_line_and_exit_69(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    code = main(["slo", "--spec", str(EXAMPLE), "--prometheus", url, "--start", "now-15m", "--out", str(tmp_path)])
    assert code == EXIT_UNAVAILABLE == 69
    err = one_line_error(capsys)
    assert f"Prometheus at {url} is unavailable (cannot connect)" in err and "--records" in err
    assert not (tmp_path / "slo.json").exists()


def test_a_server_that_is_not_prometheus(tmp_path, capsys):
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = main(["slo", "--spec", str(EXAMPLE), "--prometheus", url, "--start", "now-15m", "--out", str(tmp_path)])
    finally:
        server.shutdown()
        server.server_close()
    assert code == EXIT_UNAVAILABLE
    assert "HTTP Status Code 404" in one_line_error(capsys)


def test_a_prometheus_that_does_not_answer(tmp_path, capsys):
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        code = main(
            [
                "slo",
                "--spec",
                str(EXAMPLE),
                "--prometheus",
                url,
                "--start",
                "now-15m",
                "--timeout",
                "0.3",
                "--out",
                str(tmp_path),
            ]
        )
    assert code == EXIT_UNAVAILABLE
    assert "no answer within 0.3 s" in one_line_error(capsys)


def test_the_installed_command_exits_69_without_prometheus(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "slo",
            "--spec",
            str(EXAMPLE),
            "--prometheus",
            url,
            "--start",
            "now-1h",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 69
    assert done.stderr.startswith("harness slo: error: Prometheus at") and done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["--records", "RUN", "--since", "now-1h", "--until", "now-2h"], EXIT_USAGE, "--start must come before --end"),
        (["--prometheus", "http://127.0.0.1:9"], EXIT_USAGE, "--prometheus needs --start"),
        (["--prometheus", "http://127.0.0.1:9", "--start", "yesterday"], EXIT_USAGE, "bad time 'yesterday'"),
        (["--prometheus", "127.0.0.1:9090", "--start", "now-1h"], EXIT_USAGE, "give a URL such as"),
        (["--records", "RUN", "--traffic-rps", "0"], EXIT_USAGE, "--traffic-rps must be above 0"),
        (["--records", "NOPE"], EXIT_MISSING, "records not found"),
    ],
)
def test_usage_errors(argv, code, message, run_dir, tmp_path, capsys):
    argv = [str(run_dir) if a == "RUN" else str(tmp_path / "nope") if a == "NOPE" else a for a in argv]
    assert main(["slo", "--spec", str(EXAMPLE), *argv, "--out", str(tmp_path / "o")]) == code
    assert message in one_line_error(capsys)


def test_bad_spec_exits_65_with_the_path(run_dir, tmp_path, capsys):
    spec = tmp_path / "slo.yaml"
    spec.write_text(
        "service: s\nslos:\n  - {name: a, sli: availability, objective: 0.9}\n"
        "  - {name: b, sli: availability, objective: 99.9}\n"
    )
    assert main(["slo", "--spec", str(spec), "--records", str(run_dir), "--out", str(tmp_path / "o")]) == EXIT_DATA
    assert "slos[1].objective: must be between 0 and 1" in one_line_error(capsys)
    assert main(["rules", "--spec", str(spec), "--out", str(tmp_path / "r.yml")]) == EXIT_DATA


def test_rules_to_stdout(capsys):
    assert main(["rules", "--spec", str(ROOT / "tests" / "promtool" / "spec.yaml"), "--out", "-"]) == 0
    assert capsys.readouterr().out == (ROOT / "tests" / "promtool" / "rules.yml").read_text()


def test_times_on_the_command_line():
    from harness.errors import UsageError
    from harness.slo.prometheus import parse_time

    clock = lambda: 1_700_000_000.0  # noqa: E731
    assert parse_time("now", clock) == 1_700_000_000.0
    assert parse_time("now-15m", clock) == 1_700_000_000.0 - 900
    assert parse_time("1700000123.5", clock) == 1_700_000_123.5
    assert parse_time("2023-11-14T22:13:20Z", clock) == 1_700_000_000.0
    assert parse_time("2023-11-14T22:13:20", clock) == 1_700_000_000.0  # no zone: UTC
    assert parse_time("2023-11-14T23:13:20+01:00", clock) == 1_700_000_000.0
    with pytest.raises(UsageError, match="after now- comes a duration"):
        parse_time("now-soon", clock)
