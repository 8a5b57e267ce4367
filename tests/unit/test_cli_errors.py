"""A crash is not a verdict: every command ends with a code of the shared table and one line on
stderr; a bug exits 70 with its traceback in a file; bad numbers, an --out that is a file and a
missing optional extra are refused before any work. Hypothesis fuzzes the commands that fail fast."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli_run import run_cli
from harness.drift.features import DRIFT_COLUMNS
from harness.errors import EXIT_CODES, EXIT_SOFTWARE, EXIT_UNAVAILABLE, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "examples" / "slo.yaml"
CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens there


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_bug_exits_70_with_one_line_naming_the_traceback_file(crash_dir, monkeypatch, tmp_path) -> None:
    def broken(args):
        return {}["no such key"]

    monkeypatch.setattr("harness.cli.rules.run", broken)
    code, _, err = run_cli(["rules", "--spec", str(SPEC), "--out", str(tmp_path / "r.yml")])
    line = one_line(err)
    assert code == EXIT_SOFTWARE == 70
    assert line.startswith("harness rules: internal error") and "KeyError: 'no such key'" in line
    path = Path(line.rsplit("traceback in ", 1)[1])
    assert path.parent == crash_dir and path.name.startswith("harness-crash-")
    text = path.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text and "'rules'" in text


def test_a_missing_module_that_is_no_extra_is_a_bug_too(crash_dir, monkeypatch, tmp_path) -> None:
    def broken(args):
        import harness_no_such_module  # noqa: F401

    monkeypatch.setattr("harness.cli.rules.run", broken)
    code, _, err = run_cli(["rules", "--spec", str(SPEC), "--out", str(tmp_path / "r.yml")])
    assert code == 70 and "ModuleNotFoundError" in one_line(err)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gate", "--duration", "nan"], "--duration: must be a positive duration (got 'nan')"),
        (["gate", "--duration", "inf"], "--duration: must be a positive duration (got 'inf')"),
        (["gate", "--duration", "1" + "0" * 400 + "s"], "must be at most 10 years"),
        (["gate", "--timeout", "-1"], "--timeout must be a positive number (got -1)"),
        (["gate", "--timeout", "nan"], "--timeout must be a finite number (got nan)"),
        (["gate", "--rate", "nan"], "--rate must be a finite number (got nan)"),
        (["gate", "--rate", "inf"], "--rate must be a finite number (got inf)"),
        (["gate", "--rate", "0"], "--rate must be a positive number"),
        (["gate", "--traffic-rps=-inf"], "--traffic-rps must be a finite number"),
        (["gate", "--latency-threshold", "0"], "--latency-threshold must be a positive number"),
        (["gate", "--concurrency", "0"], "--concurrency must be at least 1"),
        (["gate", "--users", "0"], "--users must be at least 1"),
        (["gate", "--seed", "-1"], "--seed must be at least 0"),
        (["gate", "--scenario", "nope"], "unknown scenario 'nope'"),
        (["gate", "--out", "FILE"], "is a file; give a folder"),
        (["gate", "--out", "FILE/run"], "is a file, not a folder"),
        (
            ["load", "--scenario", "steady", "--target", CLOSED, "--duration", "nan"],
            "must be a positive duration (got 'nan')",
        ),
        (["load", "--scenario", "steady", "--target", CLOSED, "--rate", "inf"], "--rate must be a finite number"),
        (
            ["load", "--scenario", "steady", "--target", CLOSED, "--timeout", "-1"],
            "--timeout must be a positive number",
        ),
        (["load", "--scenario", "steady", "--target", CLOSED, "--master-bind", "h:x"], "needs a port"),
        (["load", "--scenario", "steady", "--target", CLOSED, "--loglevel", "LOUD"], "--loglevel must be"),
        (["load", "--scenario", "steady", "--target", CLOSED, "--out", "FILE"], "is a file; give a folder"),
        (["slo", "--spec", str(SPEC), "--records", "DIR", "--traffic-rps", "nan"], "--traffic-rps must be a finite"),
        (["slo", "--spec", str(SPEC), "--records", "DIR", "--timeout", "-1"], "--timeout must be a positive"),
        (["slo", "--spec", str(SPEC), "--records", "DIR", "--out", "FILE"], "is a file; give a folder"),
        (["drift", "--reference", "DIR", "--current", "DIR", "--alpha", "nan"], "--alpha must be a finite"),
        (["drift", "--reference", "DIR", "--current", "DIR", "--out", "FILE"], "is a file; give a folder"),
        (["drift", "--reference", "DIR", "--current", "DIR", "--trend-step", "soon"], "--trend-step: "),
        (["drift", "--reference", "DIR", "--current", "DIR", "--label-free-sample", "-1"], "--label-free-sample must"),
        (
            ["score", "--candidates", "FILE", "--references", "FILE", "--cider-cap", "inf"],
            "--cider-cap must be a finite",
        ),
        (["score", "--candidates", "FILE", "--references", "FILE", "--out", "FILE"], "is a file; give a folder"),
        (["dataset", "export", "--out", "FILE"], "is a file; give a folder"),
        (["dataset", "export", "--n", "3", "--seed", "-2", "--out", "DIR"], "--seed must be at least 0"),
        (["rules", "--spec", str(SPEC), "--out", "DIR"], "is a folder; give a file name"),
        (["evaluate", "--target", CLOSED, "--dataset", "shapes:2", "--timeout", "inf"], "--timeout must be a finite"),
        (["evaluate", "--target", CLOSED, "--dataset", "shapes:2", "--out", "FILE"], "is a file; give a folder"),
        (["demo", "--duration", "nan"], "--duration must be a finite number"),
        (["demo", "--images", "0"], "--images must be at least 1"),
        (["gate", "--timeout", "soon"], "argument --timeout: invalid float value: 'soon' (see harness gate --help)"),
        (["caption", "MISSING", "--batch=--"], "argument --batch: expected one value (see harness caption --help)"),
    ],
)
def test_bad_values_are_refused_in_one_line_before_any_work(tmp_path, argv, message) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("not a folder")
    (tmp_path / "dir").mkdir()
    argv = [
        str(afile)
        if a == "FILE"
        else str(afile / "run")
        if a == "FILE/run"
        else str(tmp_path / "dir")
        if a == "DIR"
        else a
        for a in argv
    ]
    if argv[0] == "gate":
        argv[1:1] = ["--baseline", CLOSED, "--canary", CLOSED]
    if "--out" not in argv and argv[0] in ("gate", "load", "slo", "drift", "evaluate", "demo"):
        argv += ["--out", str(tmp_path / "out")]
    code, _, err = run_cli(argv)
    assert code == EXIT_USAGE, err
    assert message in one_line(err)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_the_installed_command_gives_parser_errors_in_one_line(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "gate", "--baseline", CLOSED, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 64
    assert one_line(done.stderr) == (
        "harness gate: error: the following arguments are required: --canary (see harness gate --help)"
    )


def test_version() -> None:
    from harness import __version__

    done = subprocess.run([sys.executable, "-m", "harness", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"harness {__version__}"


@pytest.mark.parametrize(
    "module, extra, argv",
    [
        ("streamlit", "dashboard", ["dashboard"]),
        ("locust", "load", ["load", "--scenario", "steady", "--target", CLOSED, "--out", "OUT"]),
        (
            "prometheus_api_client",
            "slo",
            ["slo", "--spec", str(SPEC), "--prometheus", CLOSED, "--start", "now-1h", "--out", "OUT"],
        ),
        ("torch", "model", ["serve", "--port", "0"]),
        ("torch", "model", ["caption", "IMAGE"]),
        ("great_expectations", "quality", None),
    ],
)
def test_a_missing_extra_is_one_line_naming_it_and_exit_69(tmp_path, monkeypatch, module, extra, argv) -> None:
    from PIL import Image

    Image.new("RGB", (32, 32)).save(tmp_path / "img.png")
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import and find_spec fail
    if argv is None:  # an extra imported deep inside a command reaches the CLI as an ImportError

        def needs_it(args):
            import great_expectations  # noqa: F401

        monkeypatch.setattr("harness.cli.rules.run", needs_it)
        argv = ["rules", "--spec", str(SPEC), "--out", str(tmp_path / "r.yml")]
    argv = [str(tmp_path / "out") if a == "OUT" else str(tmp_path / "img.png") if a == "IMAGE" else a for a in argv]
    code, _, err = run_cli(argv)
    line = one_line(err)
    assert code == EXIT_UNAVAILABLE == 69, line
    assert f"needs the '{extra}' extra" in line and line.endswith(f": pip install 'caption-slo-harness[{extra}]'")


def _records(tmp_path: Path, **change) -> Path:
    good = {
        "run_id": "r",
        "target": "canary",
        "scenario": "s",
        "request_id": "q1",
        "image_id": 1,
        "t_start": 1.7e9,
        "latency_s": 0.1,
        "status": 200,
        "outcome": "ok",
        "caption": "a red circle",
        "confidence": 0.9,
        "model_version": "m",
        "image_bytes": 100,
        "image_w": 64,
        "image_h": 64,
        "safety_flagged": False,
    }
    path = tmp_path / "records.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "request_id": "q2", **change}) + "\n")
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"status": "200"}, "records whose status is not a whole number 0..999, e.g. '200'"),
        ({"latency_s": None}, "1 of 2 records lack latency_s"),
        ({"image_bytes": 1e308}, "records whose image_bytes is not a whole number"),
        ({"target": ["canary"]}, "records whose target is not text"),
    ],
)
def test_records_of_the_wrong_kind_are_bad_data(tmp_path, change, message) -> None:
    from harness.slo import load_spec
    from harness.slo.report import record_columns

    path = _records(tmp_path, **change)
    code, _, err = run_cli(["slo", "--spec", str(SPEC), "--records", str(path), "--out", str(tmp_path / "o")])
    if set(change) & set(record_columns(load_spec(SPEC))[0]):  # an SLO evaluation reads (and checks) only its fields
        assert code == 65 and message in one_line(err)
    else:
        assert code == 0, err
    if set(change) <= set(DRIFT_COLUMNS) and "lack" not in message:  # drift reads (and checks) only its fields
        code, _, err = run_cli(
            ["drift", "--reference", str(path), "--current", str(path), "--out", str(tmp_path / "d")]
        )
        assert code == 65 and message in one_line(err)


# -- fuzz ------------------------------------------------------------------------------------------

NASTY = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "-1",
    "0",
    "-0",
    "1",
    "2",
    "0.5",
    "1e-300",
    "1.5",
    "3s",
    "2m",
    "1h30m",
    "",
    " ",
    "abc",
    "0x10",
    "99999999999999999999",
    "-5.5",
    "é",
    "--",
    "-h",
    "shapes:2",
    "shapes:x",
    "coco:",
    "low_light:2",
    "http://x",
    "ftp://x",
    "h:0",
    "a:b:c",
]
VALUE = st.one_of(
    st.sampled_from(NASTY),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=6),
)
# Commands whose every run is refused or ends fast: --out is a file, or the input named is missing.
FUZZED = {
    "gate": (
        ["gate", "--baseline", CLOSED, "--canary", CLOSED, "--out", "FILE"],
        [
            "--duration",
            "--users",
            "--rate",
            "--timeout",
            "--latency-threshold",
            "--quality-floor",
            "--traffic-rps",
            "--pass-threshold",
            "--marginal-threshold",
            "--concurrency",
            "--seed",
            "--dataset-seed",
            "--dataset",
            "--scenario",
            "--baseline",
        ],
    ),
    "load": (
        ["load", "--scenario", "steady", "--target", CLOSED, "--out", "FILE"],
        [
            "--duration",
            "--users",
            "--rate",
            "--timeout",
            "--latency-threshold",
            "--workers",
            "--expect-workers",
            "--pool-size",
            "--seed",
            "--burstiness",
            "--embedding-sample",
            "--master-bind",
            "--loglevel",
            "--dataset",
            "--scenario",
            "--target",
        ],
    ),
    "slo": (
        ["slo", "--spec", str(SPEC), "--records", "MISSING", "--out", "OUT"],
        ["--traffic-rps", "--price-per-hour", "--timeout", "--start", "--end"],
    ),
    "drift": (
        ["drift", "--reference", "MISSING", "--current", "MISSING", "--out", "OUT"],
        ["--alpha", "--max-n", "--time-budget", "--seed", "--label-free-sample", "--trend-step", "--clip"],
    ),
    "score": (
        ["score", "--candidates", "MISSING", "--references", "MISSING"],
        ["--bootstrap", "--seed", "--human-weight", "--metric-weight", "--cider-cap", "--metrics"],
    ),
    "dataset": (["dataset", "export", "--out", "FILE"], ["--n", "--seed", "--size", "--shift", "--name"]),
    "evaluate": (
        ["evaluate", "--target", CLOSED, "--dataset", "shapes:2", "--out", "FILE"],
        [
            "--timeout",
            "--max-retries",
            "--concurrency",
            "--coverage",
            "--dataset",
            "--bootstrap",
            "--human-weight",
            "--dataset-seed",
            "--target",
        ],
    ),
    "demo": (["demo", "--out", "FILE"], ["--duration", "--images", "--seed", "--canary"]),
    "caption": (["caption", "MISSING"], ["--batch", "--model"]),
    "rules": (["rules", "--spec", "MISSING", "--out", "OUT"], []),
}


@st.composite
def command_lines(draw) -> list[str]:
    base, options = FUZZED[draw(st.sampled_from(sorted(FUZZED)))]
    chosen = draw(st.lists(st.sampled_from(options), max_size=4, unique=True)) if options else []
    return [*base, *(f"{o}={draw(VALUE)}" for o in chosen)]


@settings(
    max_examples=400,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=command_lines())
def test_fuzzed_command_lines_end_with_a_documented_code_and_no_traceback(tmp_path, crash_dir, argv) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("not a folder")
    names = {"FILE": str(afile), "MISSING": str(tmp_path / "missing"), "OUT": str(tmp_path / "out")}
    code, _, err = run_cli([names.get(a, a) for a in argv])
    assert code in EXIT_CODES and code not in (1, EXIT_SOFTWARE), (argv, code, err)
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 1, (argv, err)
    assert not list(crash_dir.iterdir())
