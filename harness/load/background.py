"""An asyncio server run from a thread of its own, for servers the harness starts in-process
(the fault proxy, the fixed-answer calibration endpoint)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from typing import Callable

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """Subclasses implement ``serve()`` (run until cancelled; set ``self._ready`` once listening)
    and the ``host``/``port`` attributes; ``start`` returns the base URL, ``stop`` cancels."""

    name = "background server"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def serve(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def start(self) -> str:
        """Serve from a background thread; returns the base URL."""

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._task = self._loop.create_task(self.serve())
            try:
                self._loop.run_until_complete(self._task)
            except (asyncio.CancelledError, RuntimeError):
                pass
            finally:
                self._loop.close()

        self._thread = threading.Thread(target=run, name=self.name.replace(" ", "-"), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.name} did not start")
        return self.url

    def run_foreground(self, announce: Callable[[], None], exit_with_parent: bool = False) -> BaseException | None:
        """Serve in this thread until SIGTERM or SIGINT (or, with ``exit_with_parent``, until the
        process that started this one ends); ``announce()`` once listening. Returns None after a
        clean stop, or the error that kept the server from listening."""

        async def run() -> BaseException | None:
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(self.serve())
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
            if exit_with_parent:
                parent = os.getppid()

                async def watch() -> None:
                    while os.getppid() == parent:
                        await asyncio.sleep(0.5)
                    task.cancel()

                asyncio.create_task(watch())
            while not self._ready.is_set() and not task.done():
                await asyncio.sleep(0.01)
            if not self._ready.is_set():
                return (task.exception() if not task.cancelled() else None) or RuntimeError("not listening")
            announce()
            try:
                await task
            except asyncio.CancelledError:
                pass
            return None

        return asyncio.run(run())

    def stop(self) -> None:
        if self._loop is not None and self._task is not None and not self._loop.is_closed():
            try:
                self._loop.call_soon_threadsafe(self._task.cancel)
            except RuntimeError:  # the loop closed in between
                pass
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
