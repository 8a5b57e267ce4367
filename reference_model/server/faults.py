"""Fault injection for chaos rehearsals: added latency, errors, hangs, unsafe captions, a
slow start, and for asynchronous jobs a stalled worker and dropped jobs. Every random draw comes from a seeded stream, so a run is reproducible."""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Callable, Mapping, Sequence

from pydantic import Field

from harness.faults import FaultFields, Rate, Seconds

__all__ = ["FaultSpec", "FaultInjector"]


class FaultSpec(FaultFields):
    """What is injected (``harness.faults``' fields and rules; ``ValueError`` names a bad field).
    Rates are probabilities per request; latency is added to each inference batch (``latency_ms``
    plus a uniform draw in ``[0, jitter_ms]``), so it costs capacity the way a slow model does;
    ``slow_start_s`` keeps the server unready that long. Asynchronous jobs: ``stall_s`` stops the
    job worker that long (jobs are still accepted), ``drop_rate`` is the probability that an
    accepted job is silently lost (it stays pending until it expires)."""

    stall_s: Seconds = Field(0.0, description="the asynchronous job worker stops this long from now")
    drop_rate: Rate = Field(0.0, description="share of accepted asynchronous jobs silently lost")


class FaultInjector:
    """Holds the active ``FaultSpec`` and draws from one seeded stream per fault kind; setting a
    spec restarts the streams, so the same spec and request order give the same faults."""

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.monotonic):
        self.default_seed = seed
        self.clock = clock
        self._lock = threading.Lock()
        self.spec = FaultSpec()
        self.not_ready_until = 0.0
        self.stalled_until = 0.0
        self._reseed()

    def _reseed(self) -> None:
        seed = self.default_seed if self.spec.seed is None else self.spec.seed
        self._latency = random.Random(f"{seed}:latency")
        self._error = random.Random(f"{seed}:error")
        self._hang = random.Random(f"{seed}:hang")
        self._unsafe = random.Random(f"{seed}:unsafe")
        self._drop = random.Random(f"{seed}:drop")

    def update(self, data: Mapping[str, Any]) -> FaultSpec:
        """Change the fields given (others stay); a ``slow_start_s`` makes the server unready for
        that long from now."""
        with self._lock:
            self.spec = self.spec.with_updates(data)
            self._reseed()
            if "slow_start_s" in data:
                self.not_ready_until = self.clock() + self.spec.slow_start_s
            if "stall_s" in data:
                self.stalled_until = self.clock() + self.spec.stall_s
            return self.spec

    def clear(self) -> FaultSpec:
        """Remove every fault."""
        with self._lock:
            self.spec = FaultSpec()
            self.not_ready_until = 0.0
            self.stalled_until = 0.0
            self._reseed()
            return self.spec

    @property
    def active(self) -> bool:
        return self.spec != FaultSpec(seed=self.spec.seed)

    def slow_start_remaining(self) -> float:
        return max(0.0, self.not_ready_until - self.clock())

    def stall_remaining(self) -> float:
        """Seconds the job worker stays stalled from now."""
        return max(0.0, self.stalled_until - self.clock())

    def draw_drop(self) -> bool:
        """Whether the asynchronous job accepted now is silently lost."""
        with self._lock:
            return bool(self.spec.drop_rate) and self._drop.random() < self.spec.drop_rate

    def batch_delay_s(self) -> float:
        """Seconds to add to the inference batch now running."""
        with self._lock:
            s = self.spec
            if not (s.latency_ms or s.jitter_ms):
                return 0.0
            jitter = self._latency.uniform(0.0, s.jitter_ms) if s.jitter_ms else 0.0
            return (s.latency_ms + jitter) / 1000.0

    def draw_request(self) -> str | None:
        """``"hang"``, ``"error"`` or None for the request arriving now."""
        with self._lock:
            s = self.spec
            if s.hang_rate and self._hang.random() < s.hang_rate:
                return "hang"
            if s.error_rate and self._error.random() < s.error_rate:
                return "error"
            return None

    def draw_unsafe(self, words: Sequence[str]) -> str | None:
        """A blocklisted word to slip into this caption, or None."""
        with self._lock:
            if not (self.spec.unsafe_rate and words) or self._unsafe.random() >= self.spec.unsafe_rate:
                return None
            return self._unsafe.choice(list(words))
