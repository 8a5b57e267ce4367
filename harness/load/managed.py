"""The reference server as a scenario's own target, for the scenarios that must start, kill and
restart it themselves (``restart``, ``cold_start``)."""

from __future__ import annotations

import contextlib
import shlex
import socket
import threading
import time
from typing import Sequence

__all__ = ["ManagedServer", "free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for a server that must come back on the same one)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ManagedServer:
    """Starts the reference server (``python -m reference_model.server``) on a fixed loopback port,
    SIGKILLs it and starts it again on the same port, and stops it at the end."""

    def __init__(
        self,
        model: str = "tiny",
        extra_args: Sequence[str] | str = (),
        host: str = "127.0.0.1",
        port: int | None = None,
        start_timeout_s: float = 120.0,
    ):
        self.model = model
        self.extra_args = shlex.split(extra_args) if isinstance(extra_args, str) else list(extra_args)
        if "--model" in self.extra_args:
            i = self.extra_args.index("--model")
            self.model = self.extra_args[i + 1]
            del self.extra_args[i : i + 2]
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout_s = start_timeout_s
        self._stacks: list[contextlib.ExitStack] = []
        self.handle = None
        self.starts = 0
        self.error: str | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, wait_ready: bool = True) -> str:
        """Start a server process on ``port``; with ``wait_ready``, return once ``/readyz`` is 200."""
        from reference_model.server.launch import start_server

        stack = contextlib.ExitStack()
        self._stacks.append(stack)
        self.handle = stack.enter_context(
            start_server(
                self.model,
                port=self.port,
                extra_args=self.extra_args,
                host=self.host,
                wait=wait_ready,
                timeout=self.start_timeout_s,
            )
        )
        self.starts += 1
        return self.url

    def start_in_background(self) -> threading.Thread:
        """Start without blocking the caller (the load keeps running while the server boots)."""

        def run() -> None:
            try:
                self.start(wait_ready=False)
            except Exception as exc:  # reported in the run's plan; the records show the outage
                self.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"

        t = threading.Thread(target=run, name="managed-server-start", daemon=True)
        t.start()
        return t

    def kill(self) -> None:
        """SIGKILL the running server: no draining, connections in flight break."""
        if self.handle is not None and self.handle.process.poll() is None:
            self.handle.process.kill()
            self.handle.process.wait(10)

    def wait_ready(self, timeout: float = 120.0) -> float | None:
        """Poll ``/readyz`` until 200; the unix time it was first seen ready, or None on timeout."""
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(self.url + "/readyz").status_code == 200:
                        return time.time()
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        return None

    def stop(self) -> None:
        while self._stacks:
            self._stacks.pop().close()
        self.handle = None
