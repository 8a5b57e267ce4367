"""Load shapes: how many users run at each moment of a scenario, and what else happens on the
way (faults set and cleared, a managed target killed and restarted). A subclass defines
``load_at(t)``; ``HarnessShape.tick`` adds the run's length, the fault schedule and the plan log
that ``summary.json`` reports.

Importing this module imports Locust (and gevent's monkey-patching).
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import subprocess
import sys
import time
from typing import Any

from locust import LoadTestShape

from harness.load.capture import LoadRecorder
from harness.load.faults import FaultController, FaultEndpointError
from harness.load.managed import ManagedServer

__all__ = [
    "HarnessShape",
    "SteadyShape",
    "StepShape",
    "SpikeShape",
    "SweepShape",
    "RestartShape",
    "ColdStartShape",
    "sweep_levels",
]

log = logging.getLogger("harness.load")


def sweep_levels(max_users: int) -> list[int]:
    """1, 2, 4, ... up to ``max_users`` (which ends the list even when not a power of two)."""
    levels, u = [], 1
    while u < max_users:
        levels.append(u)
        u *= 2
    levels.append(max(1, max_users))
    return levels


class HarnessShape(LoadTestShape):
    """A scenario's plan. Class attributes give its defaults; ``faults`` is a schedule of
    ``(fraction of the run, fault fields or None to clear)``."""

    abstract = True
    default_users: int = 10
    default_duration_s: float = 60.0
    default_request_timeout_s: float = 30.0
    default_rate: float | None = None
    faults: tuple[tuple[float, dict[str, Any] | None], ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.plan_log: list[dict[str, Any]] = []
        self.target_url: str | None = None
        self.started_wall: float | None = None
        self._begun = False
        self._ended = False
        self._last_users: int | None = None
        self._next_fault = 0
        self._faults_set = False
        self._controller: FaultController | None = None
        self._proxy: subprocess.Popen | None = None

    # -- what a subclass reads and defines ----------------------------------------------------

    @property
    def recorder(self) -> LoadRecorder:
        return LoadRecorder.of(self.runner.environment)

    @property
    def users(self) -> int:
        return int(self.recorder.settings.users or self.default_users)

    @property
    def duration(self) -> float:
        return float(self.recorder.settings.duration_s or self.default_duration_s)

    def load_at(self, t: float) -> tuple[int, float]:
        """``(users, spawn rate)`` at ``t`` seconds into the run."""
        raise NotImplementedError

    def begin(self) -> None:
        """Called once, before the first users start (the run's clock starts after it)."""
        if self.faults:
            self._connect_faults()

    def note(self, kind: str, **fields: Any) -> None:
        self.plan_log.append({"kind": kind, "t": round(time.time(), 3), **fields})

    # -- Locust's hook --------------------------------------------------------------------------

    def tick(self) -> tuple[int, float] | None:
        if not self._begun:
            self._begun = True
            self.target_url = self.runner.environment.host
            self.begin()
            self.reset_time()
            self.started_wall = time.time()
            self.note("start")
        t = self.get_run_time()
        if t >= self.duration:
            self._end()
            return None
        self._apply_faults(t / self.duration)
        users, spawn_rate = self.load_at(t)
        if users != self._last_users:
            self.note("users", users=int(users))
            self._last_users = users
        return int(users), float(spawn_rate)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        self.note("end")
        if self._faults_set and self._controller is not None:
            self._set_faults(None)

    def close(self) -> None:
        """Clear faults left set and stop what the scenario started (proxy, server)."""
        self._end()
        if self._controller is not None:
            self._controller.close()
        if self._proxy is not None and self._proxy.poll() is None:
            self._proxy.terminate()
            try:
                self._proxy.wait(5)
            except subprocess.TimeoutExpired:
                self._proxy.kill()

    # -- faults -----------------------------------------------------------------------------------

    def _connect_faults(self) -> None:
        s = self.recorder.settings
        env = self.runner.environment
        host = env.host
        if not host:
            self.note("faults_unavailable", error="no target host")
            return
        if s.fault_via in ("auto", "target") and s.admin_token:
            ctl = FaultController(host, s.admin_token)
            if ctl.available():
                self._controller = ctl
                self.note("fault_endpoint", via="target", url=host)
                return
            ctl.close()
            if s.fault_via == "target":
                self.note("faults_unavailable", error=f"{host}/admin/faults refused the admin token")
                return
        token = secrets.token_hex(8)
        cmd = [
            sys.executable,
            "-m",
            "harness.load.proxy",
            "--upstream",
            host,
            "--port",
            "0",
            "--admin-token",
            token,
            "--seed",
            str(s.seed),
            "--exit-with-parent",
        ]
        self._proxy = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True
        )
        line = self._proxy.stdout.readline() if self._proxy.stdout else ""
        try:
            url = json.loads(line)["url"]
        except (ValueError, KeyError, TypeError):
            self.note("faults_unavailable", error=f"fault proxy did not start: {line.strip()[:200]}")
            return
        env.host = url
        self._controller = FaultController(url, token)
        self.note("fault_endpoint", via="proxy", url=url, upstream=host)

    def _set_faults(self, fields: dict[str, Any] | None) -> None:
        if self._controller is None:
            return
        t = time.time()
        try:
            if fields is None:
                self._controller.clear()
                self._faults_set = False
            else:
                self._controller.set(fields)
                self._faults_set = True
            # t: the request that set them was sent; t_done: the endpoint confirmed them
            self.plan_log.append(
                {"kind": "faults", "t": round(t, 3), "t_done": round(time.time(), 3), "faults": dict(fields or {})}
            )
        except FaultEndpointError as exc:
            self.note("faults_error", error=str(exc)[:300])
            log.warning("could not set faults: %s", exc)

    def _apply_faults(self, fraction: float) -> None:
        while self._next_fault < len(self.faults) and self.faults[self._next_fault][0] <= fraction:
            self._set_faults(self.faults[self._next_fault][1])
            self._next_fault += 1


def _fast(users: int) -> float:
    return float(max(10, users * 10))


class SteadyShape(HarnessShape):
    """The same number of users for the whole run."""

    abstract = True

    def load_at(self, t: float) -> tuple[int, float]:
        return self.users, _fast(self.users)


class StepShape(HarnessShape):
    """A ramp in ``steps`` equal stairs up to the user count."""

    abstract = True
    steps = 4

    def load_at(self, t: float) -> tuple[int, float]:
        i = min(self.steps - 1, int(t / (self.duration / self.steps)))
        users = max(1, math.ceil(self.users * (i + 1) / self.steps))
        return users, _fast(self.users)


class SpikeShape(HarnessShape):
    """A base load (a fifth of the users) with a spike to all of them in the middle of the run;
    the spike lasts at least ``min_spike_s`` (Locust changes the load once a second)."""

    abstract = True
    spike = (0.4, 0.6)
    min_spike_s = 2.0

    def load_at(self, t: float) -> tuple[int, float]:
        start = self.spike[0] * self.duration
        end = max(self.spike[1] * self.duration, start + self.min_spike_s)
        users = self.users if start <= t < end else max(1, self.users // 5)
        return users, _fast(self.users)


class SweepShape(HarnessShape):
    """Concurrency doubling from 1 to the user count, equal time at each level."""

    abstract = True

    def load_at(self, t: float) -> tuple[int, float]:
        levels = sweep_levels(self.users)
        i = min(len(levels) - 1, int(t / (self.duration / len(levels))))
        return levels[i], _fast(self.users)


class _ManagedShape(SteadyShape):
    abstract = True

    def __init__(self) -> None:
        super().__init__()
        self.server: ManagedServer | None = None

    def _new_server(self) -> ManagedServer:
        s = self.recorder.settings
        if s.host:
            self.note("host_ignored", host=s.host, why="this scenario starts its own reference server")
        self.server = ManagedServer(extra_args=s.server_args)
        return self.server

    def _watch_ready(self) -> None:
        import gevent

        def watch() -> None:
            t = self.server.wait_ready() if self.server is not None else None
            if t is not None:
                self.plan_log.append({"kind": "ready", "t": round(t, 3)})
            elif self.server is not None and self.server.error:
                self.note("server_error", error=self.server.error)

        gevent.spawn(watch)

    def close(self) -> None:
        super().close()
        if self.server is not None:
            self.server.stop()


class RestartShape(_ManagedShape):
    """Steady load on a reference server the scenario starts; at ``kill_at`` of the run it is
    SIGKILLed and started again on the same port."""

    abstract = True
    kill_at = 0.35

    def __init__(self) -> None:
        super().__init__()
        self._killed = False

    def begin(self) -> None:
        server = self._new_server()
        server.start(wait_ready=True)
        self.runner.environment.host = self.target_url = server.url
        self.note("server_started", url=server.url)

    def tick(self) -> tuple[int, float] | None:
        if self._begun and not self._killed and self.get_run_time() >= self.kill_at * self.duration:
            self._killed = True
            self.note("kill")  # noted first: requests that end after this meet a dead server
            self.server.kill()
            self.server.start_in_background()
            self.note("restarting")
            self._watch_ready()
        return super().tick()


class ColdStartShape(_ManagedShape):
    """Load that starts with the server process: connection errors while it loads, 503 while it
    warms up, then answers. The first ok answer marks the end of the cold start."""

    abstract = True

    def begin(self) -> None:
        server = self._new_server()
        self.runner.environment.host = self.target_url = server.url
        server.start_in_background()
        self.note("server_starting", url=server.url)
        self._watch_ready()
