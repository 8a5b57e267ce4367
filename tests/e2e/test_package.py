"""The harness as a package: the scenarios, example specs and dashboard are found through
``harness.resources`` (package data in a wheel, the top-level folders in a checkout), the wheel
carries them, and installed in a new virtual environment it runs from any folder."""

import importlib.util
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from harness import resources
from harness.cli import main
from harness.errors import InputMissingError, UsageError

ROOT = Path(__file__).resolve().parents[2]


def test_the_checkout_folders_are_the_resources() -> None:
    assert resources.scenarios_dir() == ROOT / "scenarios"
    assert resources.example_path("slo.yaml") == ROOT / "examples" / "slo.yaml"
    assert resources.dashboard_app_path() == ROOT / "dashboards" / "app.py"
    assert {"steady", "restart", "bad_inputs"} <= set(resources.scenario_names())


def test_a_scenario_by_name_or_by_path(tmp_path: Path) -> None:
    assert resources.scenario_path("steady") == ROOT / "scenarios" / "steady.py"
    own = tmp_path / "mine.py"
    own.write_text('"""mine: a scenario of my own."""\n')
    assert resources.scenario_path(str(own)) == own
    with pytest.raises(
        UsageError, match="unknown scenario 'nope'; available: async_steady, backfill, bad_inputs, cold_start"
    ):
        resources.scenario_path("nope")
    with pytest.raises(UsageError, match="scenario file not found"):
        resources.scenario_path(str(tmp_path / "none.py"))
    with pytest.raises(
        InputMissingError, match="no example 'nope.yaml'; shipped: correction.yaml, judge.yaml, openslo.yaml, slo.yaml"
    ):
        resources.example_path("nope.yaml")
    with pytest.raises(InputMissingError):
        resources.example_path("../pyproject.toml")


def test_load_list_names_the_scenarios_and_their_folder(capsys) -> None:
    assert main(["load", "--list"]) == 0
    out, err = capsys.readouterr()
    assert any(line.startswith("steady ") for line in out.splitlines())
    assert f"files in {ROOT / 'scenarios'}" in err


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dashboard_answers(argv: list[str], port: int, cwd: Path | None = None) -> None:
    """Start ``argv`` (a ``harness dashboard`` command line) and wait until the app answers."""
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the dashboard did not answer within 60 s"
            time.sleep(0.3)
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert page.status_code == 200 and "streamlit" in page.text.lower()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.mark.slow
def test_harness_dashboard_serves_the_app(tmp_path: Path) -> None:
    pytest.importorskip("streamlit")
    port = _free_port()
    _dashboard_answers(
        [sys.executable, "-m", "harness", "dashboard", "--reports", str(tmp_path), "--port", str(port)], port
    )
    assert main(["dashboard", "--reports", str(tmp_path / "none")]) == 66


def _run(argv: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_the_wheel_installs_in_a_new_environment_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    # Build from a copy: the checkout gets no build/ folder, and builds running side by side never meet.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "reports", "__pycache__", ".pytest_cache", ".ruff_cache"
        ),
    )
    done = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = (tmp_path / "dist").glob("caption_slo_harness-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "harness/scenarios/steady.py",
        "harness/examples/slo.yaml",
        "harness/examples/judge.yaml",
        "harness/dashboards/app.py",
        "harness/dashboards/views/decision.py",
        "harness/dashboards/grafana/caption-slo.json",
        "harness/resources.py",
    ):
        assert shipped in names, shipped
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]

    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], tmp_path).returncode == 0
    python, harness = venv / "bin" / "python", venv / "bin" / "harness"
    done = _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # The dependencies come from this environment's site-packages, the harness only from the wheel.
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], tmp_path).stdout.strip())
    deps = _run([sys.executable, "-c", purelib], tmp_path).stdout.strip()
    (site / "harness-deps.pth").write_text(deps + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = _run(
        [
            str(python),
            "-c",
            "import harness, harness.resources as r; print(harness.__file__); "
            "print(r.scenarios_dir()); print(r.example_path('slo.yaml')); print(r.dashboard_app_path())",
        ],
        elsewhere,
    )
    assert done.returncode == 0, done.stderr
    assert [Path(p) for p in done.stdout.split()] == [
        site / "harness" / "__init__.py",
        site / "harness" / "scenarios",
        site / "harness" / "examples" / "slo.yaml",
        site / "harness" / "dashboards" / "app.py",
    ]

    done = _run([str(harness), "--version"], elsewhere)
    assert done.returncode == 0 and done.stdout.startswith("harness ")
    done = _run([str(harness), "load", "--list"], elsewhere)
    assert done.returncode == 0 and "\nsteady " in done.stdout and str(site / "harness" / "scenarios") in done.stderr
    done = _run([str(harness), "dashboard", "--help"], elsewhere)
    assert done.returncode == 0 and "--reports" in done.stdout
    done = _run(
        [str(harness), "rules", "--spec", str(site / "harness" / "examples" / "slo.yaml"), "--out", "r.yml"], elsewhere
    )
    assert done.returncode == 0 and (elsewhere / "r.yml").is_file(), done.stderr
    done = _run([str(harness), "load", "--scenario", "nope", "--target", "http://127.0.0.1:9", "--out", "o"], elsewhere)
    assert done.returncode == 64 and "available: async_steady, backfill, bad_inputs" in done.stderr
    if importlib.util.find_spec("streamlit") is not None:
        port = _free_port()
        _dashboard_answers(
            [str(harness), "dashboard", "--reports", str(elsewhere), "--port", str(port)], port, elsewhere
        )
