"""A real Prometheus for tests: started on a free loopback port with a temporary config.

``with start_prometheus(targets=[url, ...], rule_files=[path, ...]) as prom:`` starts one (scrape
and rule evaluation every second) and gives a ``PrometheusHandle``; it is stopped on leaving.
``targets`` may map each URL to labels attached to its series (``{url: {"track": "canary"}}``).
Tests are skipped when the ``prometheus`` binary is absent (``.ci/run`` installs Debian's package).
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

__all__ = ["PrometheusHandle", "start_prometheus", "free_port"]


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


def _config(targets: Sequence[str] | Mapping[str, Mapping[str, str]], rule_files: Sequence[Path]) -> str:
    import yaml

    if isinstance(targets, Mapping):
        static = [{"targets": [urlparse(t).netloc], "labels": dict(labels)} for t, labels in targets.items()]
    else:
        static = [{"targets": [urlparse(t).netloc for t in targets]}]
    cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [{"job_name": "captioner", "static_configs": static}],
    }
    if rule_files:
        cfg["rule_files"] = [str(p) for p in rule_files]
    return yaml.safe_dump(cfg)


@contextlib.contextmanager
def start_prometheus(
    targets: Sequence[str] | Mapping[str, Mapping[str, str]] = (),
    rule_files: Sequence[Path] = (),
    timeout: float = 30.0,
) -> Iterator[PrometheusHandle]:
    """Run ``prometheus`` scraping ``targets`` (base URLs serving /metrics, or a mapping of them to
    labels for their series) every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus; .ci/run does)")
    workdir = Path(tempfile.mkdtemp(prefix="prometheus-test-"))
    config = workdir / "prometheus.yml"
    config.write_text(_config(targets, rule_files))
    port = free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with open(workdir / "prometheus.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=workdir)
    handle = PrometheusHandle(f"http://127.0.0.1:{port}", process, workdir)
    try:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {process.returncode}:\n{handle.log()[-2000:]}")
            try:
                if httpx.get(f"{handle.url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"prometheus not ready after {timeout:g} s:\n{handle.log()[-2000:]}")
            time.sleep(0.1)
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)
