"""End to end: the dashboard served by ``streamlit run`` and opened in a real headless Chromium
(Debian's ``chromium``, driven through ``chromedriver`` over the W3C WebDriver protocol)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from dashboard_fixture import build_reports

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
DEADLINE_S = 60.0

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver not installed (.ci/run installs Debian's chromium and chromium-driver)",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, ready, proc: subprocess.Popen, log: Path) -> None:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{what} not ready after {DEADLINE_S:g} s: {log.read_text()[-2000:]}")


def _start(cmd: list[str], log: Path, env=None) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class WebDriver:
    """The few W3C WebDriver commands the test needs."""

    def __init__(self, url: str, profile: Path):
        self.http = httpx.Client(base_url=url, timeout=30.0)
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1280,1000"]}}
        r = self.http.post("/session", json={"capabilities": {"alwaysMatch": caps}})
        r.raise_for_status()
        self.session = f"/session/{r.json()['value']['sessionId']}"

    def open(self, url: str) -> None:
        self.http.post(f"{self.session}/url", json={"url": url}).raise_for_status()

    def text(self) -> str:
        r = self.http.post(f"{self.session}/execute/sync",
                           json={"script": "return document.body ? document.body.innerText : ''", "args": []})
        r.raise_for_status()
        return r.json()["value"]

    def wait_for(self, *needles: str) -> str:
        end, text = time.monotonic() + DEADLINE_S, ""
        while time.monotonic() < end:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.25)
        pytest.fail(f"page never showed {needles!r}; it showed: {text[-1500:]!r}")

    def close(self) -> None:
        try:
            self.http.delete(self.session)
        finally:
            self.http.close()


def test_browser_shows_the_verdict(tmp_path):
    reports = build_reports(tmp_path / "reports")
    rec = reports.new_decision
    port, driver_port = _free_port(), _free_port()
    env = dict(os.environ, HARNESS_REPORTS=str(reports.root))
    app_log, driver_log = tmp_path / "streamlit.log", tmp_path / "chromedriver.log"
    app = _start([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboards" / "app.py"),
                  "--server.port", str(port), "--server.headless", "true", "--server.address", "127.0.0.1",
                  "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"], app_log, env)
    driver_proc = None
    browser = None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait("streamlit", lambda: httpx.get(f"{base}/_stcore/health", timeout=2).text == "ok", app, app_log)
        driver_proc = _start([CHROMEDRIVER, f"--port={driver_port}", "--allowed-ips=127.0.0.1"], driver_log)
        driver_url = f"http://127.0.0.1:{driver_port}"
        _wait("chromedriver", lambda: httpx.get(f"{driver_url}/status", timeout=2).json()["value"]["ready"],
              driver_proc, driver_log)
        browser = WebDriver(driver_url, tmp_path / "profile")
        browser.open(base + "/")
        browser.wait_for(f"Verdict: ROLLBACK (score {rec['score']:g})", rec["reasons"][-1], "tiny-slow",
                         "Canary decision")
        browser.open(base + "/oncall")
        browser.wait_for(f"Last verdict (run run-b): ROLLBACK (score {rec['score']:g})", "P95 latency")
    finally:
        if browser is not None:
            browser.close()
        if driver_proc is not None:
            _stop(driver_proc)
        _stop(app)
