"""Running the app under uvicorn on a socket bound here (so port 0 gives a real, printed port),
with draining on SIGTERM: unready at once, new captions refused, in-flight ones finished."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import TextIO

from reference_model.caption import Captioner
from reference_model.server.settings import ServerSettings

__all__ = ["run_server", "bind_socket", "auto_threads", "allow_open_files", "write_port_file"]


def auto_threads() -> int:
    """Torch threads when none are asked for: half the cores, at most 4, at least 1."""
    return max(1, min(4, (os.cpu_count() or 2) // 2))


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: the system picks one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def allow_open_files(needed: int) -> int:
    """Raise the soft limit of open files towards ``needed`` (up to the hard limit); the limit now."""
    try:
        import resource
    except ImportError:  # not POSIX
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return needed
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        return soft
    return want


def write_port_file(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n")
    os.replace(tmp, path)


def run_server(
    settings: ServerSettings,
    captioner: Captioner,
    *,
    port_file: Path | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Serve until SIGTERM/SIGINT, then drain; returns the exit code (0 after a clean drain)."""
    import uvicorn
    from prometheus_client import CollectorRegistry, disable_created_metrics

    from reference_model.server.app import create_app
    from reference_model.server.guards import MAX_HEADER_BYTES, guarded_protocol
    from reference_model.server.intake import map_large_blocks
    from reference_model.server.logs import configure_logging

    log = configure_logging(settings.log_level)
    map_large_blocks()
    disable_created_metrics()
    registry = CollectorRegistry()
    app = create_app(captioner, settings, registry)
    state = app.state.service.state

    class DrainingServer(uvicorn.Server):
        exit_at: float | None = None
        loop: asyncio.AbstractEventLoop | None = None

        async def serve(self, sockets=None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame) -> None:
            if self.exit_at is not None:
                self.should_exit = self.force_exit = True
                return
            self.exit_at = time.monotonic() + settings.drain_s
            state.draining = True
            if self.loop is not None:
                self.loop.call_soon_threadsafe(state.begin_drain)

        async def on_tick(self, counter: int) -> bool:
            if self.exit_at is not None and time.monotonic() >= self.exit_at:
                self.should_exit = True
            return await super().on_tick(counter)

    files = allow_open_files(settings.max_connections + 64)
    if files < settings.max_connections + 64:
        log.warning(f"{files} open files allowed, fewer than --max-connections {settings.max_connections} needs")
    sock = bind_socket(settings.host, settings.port)
    port = sock.getsockname()[1]
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    config = uvicorn.Config(
        app,
        http=guarded_protocol(settings.header_timeout_s, settings.max_connections),
        # uvicorn's own log (its warnings; DEBUG: all of it) goes through the server's JSON handler.
        log_config=None,
        log_level=settings.log_level if settings.log_level in ("debug", "error") else "warning",
        access_log=settings.access_log,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,  # the h11 parser's bound, where httptools is absent
        lifespan="on",
        timeout_graceful_shutdown=int(settings.request_timeout_s + 5),
        timeout_keep_alive=settings.keep_alive_s,  # type: ignore[arg-type]  # a float works
    )
    if settings.access_log and settings.log_level != "debug":  # uvicorn's access lines are INFO
        logging.getLogger("uvicorn.access").setLevel(logging.INFO)
    server = DrainingServer(config)
    print(
        f"serving {captioner.version} on {captioner.device} ({settings.threads} torch threads, "
        f"max batch {settings.max_batch}, max wait {settings.max_wait_ms:g} ms, max queue {settings.max_queue})",
        file=out,
    )
    print(f"listening on http://{shown_host}:{port}", file=out, flush=True)
    if port_file is not None:
        write_port_file(Path(port_file), port)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print("stopped", file=out, flush=True)
    return 0
