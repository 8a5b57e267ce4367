"""A real Prometheus for tests: started on a free loopback port with a temporary config.

``with start_prometheus(targets=[url, ...], rule_files=[path, ...]) as prom:`` starts one (scrape
and rule evaluation every second) and gives a ``PrometheusHandle``; it is stopped on leaving.
``targets`` may map each URL to labels attached to its series (``{url: {"track": "canary"}}``);
``honor_labels=True`` keeps the job and instance labels a scraped target gives (a Pushgateway's).
``with start_pushgateway() as url:`` runs a Prometheus Pushgateway the same way.

History instead of scrapes: ``backfill(openmetrics_file, tsdb_dir)`` turns OpenMetrics text with
timestamps into TSDB blocks (``promtool tsdb create-blocks-from openmetrics``), and
``start_prometheus(tsdb=tsdb_dir)`` serves them (retention 100 years, or the blocks older than the
default 15 days before the newest would be deleted at start); ``start_backfilled_prometheus(file)``
does both in a temporary folder. A month of five series at one sample a minute (25 MB of text)
takes about 0.3 s to backfill and 0.1 s to start.
Tests are skipped when the binary is absent (``.ci/run`` installs Debian's packages).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence
from urllib.parse import urlparse

import pytest

__all__ = [
    "PrometheusHandle",
    "backfill",
    "start_backfilled_prometheus",
    "start_prometheus",
    "start_pushgateway",
    "free_port",
]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PrometheusHandle:
    url: str
    process: subprocess.Popen
    workdir: Path

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    def wait_for(self, expr: str, timeout: float = 20.0) -> list:
        """Poll the instant query ``expr`` until it returns a series; the result."""
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
            result = r.json()["data"]["result"]
            if result:
                return result
            time.sleep(0.2)
        raise TimeoutError(f"no result for {expr!r} after {timeout:g} s:\n{self.log()[-2000:]}")


def _config(
    targets: Sequence[str] | Mapping[str, Mapping[str, str]], rule_files: Sequence[Path], honor_labels: bool = False
) -> str:
    import yaml

    if isinstance(targets, Mapping):
        static = [{"targets": [urlparse(t).netloc], "labels": dict(labels)} for t, labels in targets.items()]
    else:
        static = [{"targets": [urlparse(t).netloc for t in targets]}]
    job = {"job_name": "captioner", "static_configs": static} | ({"honor_labels": True} if honor_labels else {})
    cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [job],
    }
    if rule_files:
        cfg["rule_files"] = [str(p) for p in rule_files]
    return yaml.safe_dump(cfg)


@contextlib.contextmanager
def start_prometheus(
    targets: Sequence[str] | Mapping[str, Mapping[str, str]] = (),
    rule_files: Sequence[Path] = (),
    timeout: float = 30.0,
    honor_labels: bool = False,
    tsdb: Path | None = None,
    retention: str | None = None,
) -> Iterator[PrometheusHandle]:
    """Run ``prometheus`` scraping ``targets`` (base URLs serving /metrics, or a mapping of them to
    labels for their series) every second.

    ``tsdb``: a TSDB folder to serve (blocks from ``backfill``) instead of an empty one in the
    temporary work folder; it is the caller's and is kept. ``retention``: the time retention
    (``--storage.tsdb.retention.time``; default 100y with ``tsdb``, else Prometheus's own).
    """
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
    config = workdir / "prometheus.yml"
    config.write_text(_config(targets, rule_files, honor_labels))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb if tsdb is not None else workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    if retention is None and tsdb is not None:
        retention = "100y"
    if retention is not None:
        argv.append(f"--storage.tsdb.retention.time={retention}")
    with _serve(argv, workdir, "prometheus", port, timeout) as process:
        yield PrometheusHandle(f"http://127.0.0.1:{port}", process, workdir)


def backfill(openmetrics: Path, tsdb_dir: Path, max_block_duration: str = "1458h", timeout: float = 120.0) -> float:
    """Write TSDB blocks of the OpenMetrics file ``openmetrics`` (samples with timestamps, ``# EOF``
    at the end) into ``tsdb_dir`` with ``promtool tsdb create-blocks-from openmetrics``; the seconds
    it took. ``max_block_duration``: the longest block (promtool rounds it down to 2h x 3^n; 1458h,
    about 60 days, keeps a month in one or two blocks, where the default 2h would make hundreds
    and read the file once for each)."""
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    Path(tsdb_dir).mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    done = subprocess.run(
        [
            tool,
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--quiet",
            f"--max-block-duration={max_block_duration}",
            str(openmetrics),
            str(tsdb_dir),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"promtool could not backfill {openmetrics}:\n{(done.stdout + done.stderr)[-2000:]}")
    return time.monotonic() - started


@contextlib.contextmanager
def start_backfilled_prometheus(
    openmetrics: Path, rule_files: Sequence[Path] = (), timeout: float = 30.0
) -> Iterator[PrometheusHandle]:
    """``backfill`` the OpenMetrics file into a temporary TSDB and ``start_prometheus`` on it (no
    scrape targets; ``rule_files`` loaded, though rules evaluate at the wall clock's now, not in the
    history). The TSDB is removed on leaving."""
    tsdb = Path(tempfile.mkdtemp(prefix="prometheus-tsdb-"))
    try:
        backfill(openmetrics, tsdb)
        with start_prometheus(rule_files=rule_files, timeout=timeout, tsdb=tsdb) as prom:
            yield prom
    finally:
        shutil.rmtree(tsdb, ignore_errors=True)


@contextlib.contextmanager
def start_pushgateway(timeout: float = 30.0) -> Iterator[str]:
    """Run Debian's ``prometheus-pushgateway``, keeping what is pushed in memory only; its base URL."""
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.skip("prometheus-pushgateway is not installed (apt-get install prometheus-pushgateway; .ci/run does)")
    workdir = Path(tempfile.mkdtemp(prefix="pushgateway-test-"))
    port = free_port()
    # Debian's build persists to /var/lib/prometheus by default: in memory only here.
    argv = [binary, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"]
    with _serve(argv, workdir, "pushgateway", port, timeout):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def _serve(argv: list[str], workdir: Path, name: str, port: int, timeout: float) -> Iterator[subprocess.Popen]:
    """Start ``argv`` in ``workdir`` (its output in ``NAME.log`` there), wait until it answers
    ``/-/ready`` on ``port``, and stop it and remove ``workdir`` on leaving."""
    import httpx

    log_path = workdir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{tail}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} not ready after {timeout:g} s:\n{log_path.read_text(errors='replace')[-2000:]}"
                )
            time.sleep(0.1)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
