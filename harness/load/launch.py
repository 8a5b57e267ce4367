"""Running a scenario from the harness's own process: Locust runs in child processes
(``python -m harness.load.run``), one alone or a master with N workers, so gevent's
monkey-patching never reaches the caller. Progress is read from the records file as it grows.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness import resources
from harness.errors import DataError, InputMissingError, UsageError, require_extra
from harness.load.summary import SUMMARY_JSON
from harness.records import RECORDS_JSONL

__all__ = [
    "LoadRun",
    "LoadOutcome",
    "run_load",
    "locust_argv",
    "resolve_scenario",
    "check_scenario_file",
    "available_scenarios",
    "MANAGED_SCENARIOS",
]

MANAGED_SCENARIOS = ("restart", "cold_start")
_STARTUP_ALLOWANCE_S = 120.0


@dataclass(frozen=True)
class LoadRun:
    """One load run to start: which scenario against which target, how much load, and where to
    write. ``options`` are the harness's Locust options (``dataset``, ``seed``, ``admin_token``...)."""

    scenario: str
    out: Path
    target: str | None = None
    duration_s: float | None = None
    users: int | None = None
    rate: float | None = None
    workers: int = 0
    expect_workers: int | None = None
    master_bind: str = "127.0.0.1"
    master_port: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    loglevel: str = "WARNING"


@dataclass(frozen=True)
class LoadOutcome:
    """What a run left: its folder, the summary (None if the run died before writing it), the
    exit code of the Locust process, and its log."""

    out: Path
    summary: dict[str, Any] | None
    returncode: int
    log_path: Path

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


def available_scenarios(folder: Path | None = None) -> dict[str, str]:
    """Scenario name -> first line of its docstring (read without importing Locust); the shipped
    scenarios unless ``folder`` is given."""
    out = {}
    for p in sorted((folder or resources.scenarios_dir()).glob("*.py")):
        if p.name.startswith("_"):
            continue
        try:
            doc = ast.get_docstring(ast.parse(p.read_text())) or ""
        except SyntaxError:
            doc = ""
        para = " ".join(doc.strip().split("\n\n")[0].split())
        if para.startswith(p.stem + ":"):
            para = para.split(":", 1)[1].strip()
        out[p.stem] = para.split("; ")[0].split(". ")[0].rstrip(".")
    return out


def resolve_scenario(name: str, folder: Path | None = None) -> Path:
    """A scenario by name (a shipped one, or ``NAME.py`` in ``folder``) or by the path of a Locust
    file; a file that is not Python is refused here (``check_scenario_file``), before Locust starts."""
    if folder is None or Path(name).suffix == ".py":
        path = resources.scenario_path(name)
    else:
        path = folder / f"{name}.py"
        if not path.is_file():
            known = ", ".join(available_scenarios(folder)) or "(none found)"
            raise UsageError(f"unknown scenario {name!r}; available: {known}")
    check_scenario_file(path)
    return path


def check_scenario_file(path: Path) -> None:
    """Refuse (65, one line naming the file and the line) a scenario file Python cannot compile: a
    text file, a binary, Python with a syntax error. Compiled, not run: what it does when imported
    is Locust's to find out, in the run's own process."""
    try:
        compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f" at line {exc.lineno}" if exc.lineno else ""
        raise DataError(f"{path}: not a Python scenario file: {exc.msg}{where}") from None
    except ValueError as exc:  # NUL bytes, on Pythons that do not call them a syntax error
        raise DataError(f"{path}: not a Python scenario file: {exc}") from None
    except OSError as exc:
        raise InputMissingError(f"{path}: scenario file not readable ({exc.strerror or type(exc).__name__})") from None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


# Options that hold a credential reach the Locust processes in their environment (the settings'
# HARNESS_* variables), never on a command line that `ps` shows to every user of the machine.
SECRET_OPTIONS = ("api_key", "admin_token")


def secret_env(run: LoadRun) -> dict[str, str]:
    """The environment variables that carry ``run``'s credentials to its Locust processes."""
    return {"HARNESS_" + k.upper(): str(run.options[k]) for k in SECRET_OPTIONS if run.options.get(k)}


def locust_argv(run: LoadRun, scenario_path: Path, role: str = "local", master_port: int | None = None) -> list[str]:
    """The command-line arguments of ``python -m harness.load.run`` for one process of ``run``
    (credentials travel in ``secret_env``)."""
    argv = ["-f", str(scenario_path), "--loglevel", run.loglevel]
    for k, v in run.options.items():
        if v is None or v is False or k in SECRET_OPTIONS:
            continue
        argv.append(_opt(k) if v is True else f"{_opt(k)}={v}")  # "=": a value may start with "-"
    if role == "worker":
        host = "127.0.0.1" if run.master_bind in ("*", "0.0.0.0", "") else run.master_bind
        return argv + ["--worker", "--master-host", host, "--master-port", str(master_port)]
    if run.target:
        argv += ["--host", run.target]
    if run.users is not None:
        argv += ["-u", str(run.users)]
    if run.duration_s is not None:
        argv += ["--duration", f"{run.duration_s:g}"]
    if run.rate is not None:
        argv += ["--rate", f"{run.rate:g}"]
    argv += ["--out", str(run.out), "--csv", str(run.out / "locust")]
    if role == "master":
        argv += [
            "--master",
            "--expect-workers",
            str(run.expect_workers or run.workers),
            "--master-bind-host",
            run.master_bind,
            "--master-bind-port",
            str(master_port),
        ]
    return argv


class _RecordCounter:
    """Counts records (and ok ones) as the file grows, reading only the new bytes."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.count = 0
        self.ok = 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except FileNotFoundError:
            return self.count
        end = chunk.rfind(b"\n") + 1
        whole = chunk[:end]
        self.offset += end
        self.count += whole.count(b"\n")
        self.ok += whole.count(b'"outcome":"ok"')
        return self.count


def _spawn(argv: list[str], log_path: Path, python: str, secrets: Mapping[str, str]) -> subprocess.Popen:
    env = {**os.environ, **secrets, "HARNESS_WATCH_PARENT": "1", "PYTHONUNBUFFERED": "1"}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [python, "-m", "harness.load.run", *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, wait_s: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run_load(run: LoadRun, progress=None, python: str = sys.executable, timeout_s: float | None = None) -> LoadOutcome:
    """Run ``run`` to the end and return what it left. ``progress(count, extra)`` is called while
    it runs (e.g. a ``harness.progress.Progress``)."""
    scenario_path = resolve_scenario(run.scenario)
    require_extra("locust", "a load run")
    out = Path(run.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "locust.log"
    procs: list[subprocess.Popen] = []
    if run.workers > 0 or (run.expect_workers or 0) > 0:
        port = run.master_port or _free_port("127.0.0.1" if run.master_bind in ("*", "0.0.0.0") else run.master_bind)
        main = _spawn(locust_argv(run, scenario_path, "master", port), log_path, python, secret_env(run))
        procs.append(main)
        for i in range(run.workers):
            procs.append(
                _spawn(
                    locust_argv(run, scenario_path, "worker", port),
                    out / f"worker-{i + 1}.log",
                    python,
                    secret_env(run),
                )
            )
    else:
        main = _spawn(locust_argv(run, scenario_path, "local"), log_path, python, secret_env(run))
        procs.append(main)
    limit = timeout_s or ((run.duration_s or 3600.0) + _STARTUP_ALLOWANCE_S)
    deadline = time.monotonic() + limit
    counter = _RecordCounter(out / RECORDS_JSONL)
    first: float | None = None  # when the first records appeared: the rate shown is since then
    try:
        while main.poll() is None:
            if time.monotonic() > deadline:
                _stop(main, signal.SIGTERM, 30.0)
                break
            if progress is not None:
                n = counter.poll()
                if n and first is None:
                    first = time.monotonic()
                rate = f"{n / max(time.monotonic() - first, 0.25):.1f}/s " if first is not None else ""
                progress(n, rate + (f"{100.0 * counter.ok / n:.1f}% ok" if n else "starting"))
            time.sleep(0.25)
    except KeyboardInterrupt:
        for p in procs:
            _stop(p, signal.SIGTERM, 30.0)
        raise
    finally:
        for p in procs[1:]:  # workers quit with the master; any left over are stopped
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                _stop(p)
    if progress is not None:
        progress(counter.poll(), "")
    summary = None
    spath = out / SUMMARY_JSON
    if spath.exists():
        summary = json.loads(spath.read_text())
    return LoadOutcome(out, summary, main.returncode if main.returncode is not None else -1, log_path)
