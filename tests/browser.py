"""A real headless Chromium for the tests (Debian's ``chromium`` driven through ``chromedriver``
over the W3C WebDriver protocol), and the processes around it: ``streamlit run`` on a free
loopback port, started and stopped by the test."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
DEADLINE_S = 60.0
# The W3C name of an element reference in WebDriver answers.
ELEMENT = "element-6066-11e4-a52f-4a6f4b3e4b2e"

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver not installed (.ci/run installs Debian's chromium and chromium-driver)",
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, ready, proc: subprocess.Popen, log: Path) -> None:
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


def start(cmd: list[str], log: Path, env=None) -> subprocess.Popen:
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class WebDriver:
    """The few W3C WebDriver commands the tests need."""

    def __init__(self, url: str, profile: Path):
        self.http = httpx.Client(base_url=url, timeout=30.0)
        caps = {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    f"--user-data-dir={profile}",
                    "--window-size=1280,1000",
                ],
            },
        }
        r = self.http.post("/session", json={"capabilities": {"alwaysMatch": caps}})
        r.raise_for_status()
        self.session = f"/session/{r.json()['value']['sessionId']}"

    def open(self, url: str) -> None:
        self.http.post(f"{self.session}/url", json={"url": url}).raise_for_status()

    def run(self, script: str, *args: Any) -> Any:
        """Run ``script`` (a function body; ``arguments`` holds ``args``) in the current frame."""
        r = self.http.post(f"{self.session}/execute/sync", json={"script": script, "args": list(args)})
        r.raise_for_status()
        return r.json()["value"]

    def text(self) -> str:
        return self.run("return document.body ? document.body.innerText : ''")

    def wait_for(self, *needles: str) -> str:
        end, text = time.monotonic() + DEADLINE_S, ""
        while time.monotonic() < end:
            text = self.text()
            if all(n in text for n in needles):
                return text
            time.sleep(0.25)
        pytest.fail(f"page never showed {needles!r}; it showed: {text[-1500:]!r}")

    def find(self, css: str) -> dict | None:
        """A reference to the first element matching ``css``, or None."""
        r = self.http.post(f"{self.session}/element", json={"using": "css selector", "value": css})
        return r.json()["value"] if r.status_code == 200 else None

    def enter_frame(self, element: dict) -> None:
        self.http.post(f"{self.session}/frame", json={"id": element}).raise_for_status()

    def leave_frame(self) -> None:
        self.http.post(f"{self.session}/frame/parent", json={}).raise_for_status()

    def close(self) -> None:
        try:
            self.http.delete(self.session)
        finally:
            self.http.close()


@contextmanager
def dashboard(reports: Path, tmp: Path) -> Iterator[tuple[str, WebDriver]]:
    """``streamlit run dashboards/app.py`` over ``reports`` and a Chromium to look at it:
    (the app's base URL, the browser)."""
    port, driver_port = free_port(), free_port()
    env = dict(os.environ, HARNESS_REPORTS=str(reports))
    app_log, driver_log = tmp / "streamlit.log", tmp / "chromedriver.log"
    app = start(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "dashboards" / "app.py"),
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        app_log,
        env,
    )
    driver_proc = None
    browser = None
    try:
        base = f"http://127.0.0.1:{port}"
        driver_proc = start([CHROMEDRIVER, f"--port={driver_port}", "--allowed-ips=127.0.0.1"], driver_log)
        driver_url = f"http://127.0.0.1:{driver_port}"
        wait_until(
            "chromedriver",
            lambda: httpx.get(f"{driver_url}/status", timeout=2).json()["value"]["ready"],
            driver_proc,
            driver_log,
        )
        browser = WebDriver(driver_url, tmp / "profile")
        wait_until("streamlit", lambda: httpx.get(f"{base}/_stcore/health", timeout=2).text == "ok", app, app_log)
        yield base, browser
    finally:
        if browser is not None:
            browser.close()
        if driver_proc is not None:
            stop(driver_proc)
        stop(app)
