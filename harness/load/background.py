"""An asyncio server run from a thread of its own, for servers the harness starts in-process
(the fault proxy, the fixed-answer calibration endpoint)."""

from __future__ import annotations

import asyncio
import threading

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
