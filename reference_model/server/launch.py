"""Starting the reference server as a child process on an ephemeral loopback port, for tests,
benchmarks and demos: ``with start_server() as srv: httpx.get(srv.url + "/readyz")``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping, Sequence

__all__ = ["ServerHandle", "ServerStartError", "start_server", "wait_ready", "SERVER_COMMAND"]

SERVER_COMMAND: tuple[str, ...] = (sys.executable, "-m", "reference_model.server")


class ServerStartError(RuntimeError):
    """The server exited or did not become ready in time; the message ends with its output."""


@dataclass(frozen=True)
class ServerHandle:
    """A running server: its base URL, process and the credentials it was started with."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path
    admin_token: str | None = None
    api_key: str | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        """Everything the server wrote to stdout and stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (the server drains), then SIGKILL after ``timeout``; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.returncode


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def wait_ready(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url``/readyz until it answers 200; ``TimeoutError`` after ``timeout`` seconds."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise ServerStartError(f"server exited with code {process.returncode} before it was ready")
            try:
                if client.get(url + "/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"{url}/readyz not ready after {timeout:g} s")


@contextmanager
def start_server(
    model: str = "tiny",
    port: int = 0,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    admin_token: str | None = None,
    api_key: str | None = None,
    wait: bool = True,
    timeout: float = 120.0,
    command: Sequence[str] = SERVER_COMMAND,
    cwd: str | Path | None = None,
) -> Iterator[ServerHandle]:
    """Start ``command`` (the reference server by default) and yield its handle once the port is
    known and, with ``wait``, ``/readyz`` answers 200; on exit it is stopped with SIGTERM."""
    workdir = Path(tempfile.mkdtemp(prefix="caption-server-"))
    port_file = workdir / "port"
    log_path = workdir / "server.log"
    argv = [*command, "--model", model, "--host", host, "--port", str(port), "--port-file", str(port_file)]
    if admin_token is not None:
        argv += ["--admin-token", admin_token]
    if api_key is not None:
        argv += ["--api-key", api_key]
    argv += list(extra_args)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env, cwd=cwd
        )
    handle: ServerHandle | None = None
    try:
        deadline = time.monotonic() + timeout
        while not port_file.exists():
            if process.poll() is not None:
                raise ServerStartError(f"server exited with code {process.returncode}:\n{_tail(log_path.read_text())}")
            if time.monotonic() > deadline:
                raise ServerStartError(f"server did not bind a port in {timeout:g} s:\n{_tail(log_path.read_text())}")
            time.sleep(0.02)
        real_port = int(port_file.read_text().strip())
        shown = f"[{host}]" if ":" in host else host
        handle = ServerHandle(f"http://{shown}:{real_port}", real_port, process, log_path, admin_token, api_key)
        if wait:
            try:
                wait_ready(handle.url, max(1.0, deadline - time.monotonic()), process)
            except (TimeoutError, ServerStartError) as exc:
                raise ServerStartError(f"{exc}:\n{_tail(handle.output())}") from None
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for p in (port_file, log_path):
            p.unlink(missing_ok=True)
        try:
            workdir.rmdir()
        except OSError:
            pass
