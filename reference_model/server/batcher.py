"""Dynamic batching: requests wait in a bounded queue and are grouped up to ``max_batch`` images,
or for at most ``max_wait_s`` after the first arrives; inference runs in one worker thread so the
event loop keeps answering while a batch is computed."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

__all__ = ["Batcher", "QueueFullError"]

In = TypeVar("In")
Out = TypeVar("Out")


class QueueFullError(Exception):
    """The queue holds ``max_queue`` items; ``retry_after_s`` estimates when room frees up."""

    def __init__(self, retry_after_s: int):
        super().__init__(f"queue full, retry in {retry_after_s} s")
        self.retry_after_s = retry_after_s


@dataclass
class _Item(Generic[In]):
    value: In
    future: asyncio.Future
    enqueued: float


class Batcher(Generic[In, Out]):
    """``await submit(x)`` returns ``infer([.., x, ..])[i]``; ``infer`` must map a batch to one
    output per input, in order. ``on_batch(size)`` and ``on_depth(depth)`` report to metrics."""

    def __init__(
        self,
        infer: Callable[[list[In]], Sequence[Out]],
        *,
        max_batch: int,
        max_wait_s: float,
        max_queue: int,
        on_batch: Callable[[int], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
        thread_init: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_batch < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait_s not negative")
        self.infer = infer
        self.max_batch, self.max_wait_s, self.max_queue = max_batch, max_wait_s, max_queue
        self.on_batch = on_batch or (lambda n: None)
        self.on_depth = on_depth or (lambda n: None)
        self.clock = clock
        self._thread_init = thread_init
        self._queue: deque[_Item] = deque()
        self._arrived: asyncio.Event | None = None
        self._full: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.batch_seconds = 0.0
        self.in_flight = 0

    @property
    def depth(self) -> int:
        """Items waiting for a batch (not those being computed)."""
        return len(self._queue)

    def start(self) -> None:
        """Start the batching loop on the running event loop."""
        self._arrived, self._full = asyncio.Event(), asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="inference", initializer=self._thread_init)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        """Stop the loop; items still queued get ``CancelledError``."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        while self._queue:
            self._queue.popleft().future.cancel()
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def run_direct(self, values: list[In]) -> Sequence[Out]:
        """Run one batch in the worker thread, bypassing the queue (the warm-up batch)."""
        assert self._executor is not None, "start() first"
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.infer, values)

    def retry_after_s(self) -> int:
        """Whole seconds until the queue has likely drained by one batch (at least 1)."""
        batches = len(self._queue) / self.max_batch + 1
        return max(1, math.ceil(batches * self.batch_seconds))

    def submit(self, value: In) -> asyncio.Future:
        """Queue ``value``; the future resolves to its output. Raises ``QueueFullError``."""
        return self.submit_all([value])[0]

    def room(self) -> int:
        """Items the queue takes now."""
        return self.max_queue - len(self._queue)

    def submit_all(self, values: Sequence[In]) -> list[asyncio.Future]:
        """Queue all of ``values`` or none of them: one future per value, in order. Raises
        ``QueueFullError`` when the queue has no room for them all (then nothing is queued), and
        ``ValueError`` for more values than the queue ever holds."""
        if len(values) > self.max_queue:
            raise ValueError(f"{len(values)} items, more than the queue holds ({self.max_queue})")
        if len(self._queue) + len(values) > self.max_queue:
            raise QueueFullError(self.retry_after_s())
        loop = asyncio.get_running_loop()
        now = self.clock()
        futures = []
        for value in values:
            fut = loop.create_future()
            self._queue.append(_Item(value, fut, now))
            futures.append(fut)
        if futures:
            self.on_depth(len(self._queue))
            self._arrived.set()
            if len(self._queue) >= self.max_batch:
                self._full.set()
        return futures

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        while self._queue and len(batch) < self.max_batch:
            item = self._queue.popleft()
            if not item.future.done():
                batch.append(item)
        self._full.clear()
        self.on_depth(len(self._queue))
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            if len(self._queue) < self.max_batch:
                delay = self._queue[0].enqueued + self.max_wait_s - self.clock()
                if delay > 0:
                    self._full.clear()
                    try:
                        await asyncio.wait_for(self._full.wait(), delay)
                    except asyncio.TimeoutError:
                        pass
            batch = self._take()
            if not batch:
                continue
            self.on_batch(len(batch))
            self.in_flight = len(batch)
            t0 = self.clock()
            try:
                outputs: Any = await loop.run_in_executor(self._executor, self.infer, [i.value for i in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(f"inference returned {len(outputs)} outputs for {len(batch)} inputs")
            except Exception as exc:  # the requests of this batch fail; the loop goes on
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
            else:
                for item, out in zip(batch, outputs):
                    if not item.future.done():
                        item.future.set_result(out)
            finally:
                self.in_flight = 0
                took = self.clock() - t0
                self.batch_seconds = took if not self.batch_seconds else 0.8 * self.batch_seconds + 0.2 * took
