"""Open-loop arrivals: request start times drawn ahead of time, whatever the target's pace.

Inter-arrival gaps are gamma distributed with shape ``burstiness`` and mean ``1/rate`` (the
model of vLLM's serving benchmark): 1 gives a Poisson process, below 1 bursts, above 1 a more
regular stream. Users take the next start time from a shared clock, so the schedule holds
until every user is busy; after that requests start late, as they would queue at a client.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

__all__ = ["ArrivalClock", "gamma_gaps"]


def gamma_gaps(n: int, rate: float, burstiness: float, seed: int) -> np.ndarray:
    """``n`` inter-arrival gaps in seconds (mean ``1/rate``, gamma shape ``burstiness``)."""
    if rate <= 0 or burstiness <= 0:
        raise ValueError("rate and burstiness must be positive")
    rng = np.random.default_rng(seed)
    return rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)


class ArrivalClock:
    """Hands out scheduled start times; ``next_delay()`` is how long the caller waits for its slot."""

    def __init__(
        self,
        rate: float,
        burstiness: float = 1.0,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        block: int = 4096,
    ):
        if rate <= 0:
            raise ValueError(f"arrival rate must be positive (got {rate})")
        if burstiness <= 0:
            raise ValueError(f"burstiness must be positive (got {burstiness})")
        self.rate, self.burstiness = rate, burstiness
        self._rng = np.random.default_rng(seed)
        self._clock = clock
        self._block = block
        self._gaps: list[float] = []
        self._next: float | None = None
        self.issued = 0
        self.late = 0

    def _gap(self) -> float:
        if not self._gaps:
            draw = self._rng.gamma(self.burstiness, 1.0 / (self.rate * self.burstiness), size=self._block)
            self._gaps = draw.tolist()[::-1]
        return self._gaps.pop()

    def next_delay(self) -> float:
        """Seconds until the next scheduled arrival (0 when it is already due)."""
        now = self._clock()
        if self._next is None:
            self._next = now
        else:
            self._next += self._gap()
        self.issued += 1
        delay = self._next - now
        if delay < 0:
            self.late += 1
            return 0.0
        return delay
