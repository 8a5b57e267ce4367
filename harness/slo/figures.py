"""Run figures beside the SLOs: throughput, latency percentiles, coverage and cost per 1,000 captions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figures", "record_figures", "cost_per_1000"]


@dataclass(frozen=True)
class Figures:
    """Figures over a run or a time range.

    Latency percentiles are over requests answered ``ok``; throughput counts requests per second
    over the span from the first request sent to the last answer; cost assumes the service is paid
    ``price_per_hour`` for that span.
    """

    requests: float
    captions: float
    duration_s: float
    throughput_rps: float | None
    captions_per_s: float | None
    p50_s: float | None
    p95_s: float | None
    p99_s: float | None
    coverage: float | None
    price_per_hour: float | None
    cost_per_1000: float | None
    outcomes: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def cost_per_1000(price_per_hour: float | None, duration_s: float, captions: float) -> float | None:
    """What 1,000 captions cost at ``price_per_hour`` when ``captions`` took ``duration_s``."""
    if price_per_hour is None or captions <= 0 or duration_s <= 0:
        return None
    return price_per_hour * (duration_s / 3600.0) / captions * 1000.0


def record_figures(records, price_per_hour: float | None = None) -> Figures:
    """Figures from the request records."""
    import numpy as np
    import pandas as pd

    n = int(len(records))
    if n == 0:
        return Figures(0, 0, 0.0, None, None, None, None, None, None, price_per_hour, None)
    t = pd.to_numeric(records["t_start"], errors="coerce")
    lat = pd.to_numeric(records["latency_s"], errors="coerce")
    end = (t + lat.fillna(0.0)).max()
    duration = float(end - t.min())
    caption = records["caption"]
    has_caption = caption.notna() & (caption.astype("string").str.len().fillna(0) > 0)
    ok = records["outcome"] == "ok"
    captions = int((ok & has_caption).sum())
    ok_lat = lat[ok].dropna().to_numpy(dtype=float)
    p50, p95, p99 = (float(np.percentile(ok_lat, q)) for q in (50, 95, 99)) if len(ok_lat) else (None, None, None)
    outcomes = {str(k): int(v) for k, v in records["outcome"].value_counts().sort_index().items()}
    status = pd.to_numeric(records["status"], errors="coerce").fillna(0).astype(int)
    statuses = {str(k): int(v) for k, v in status.value_counts().sort_index().items()}
    return Figures(
        requests=n,
        captions=captions,
        duration_s=duration,
        throughput_rps=n / duration if duration > 0 else None,
        captions_per_s=captions / duration if duration > 0 else None,
        p50_s=p50,
        p95_s=p95,
        p99_s=p99,
        coverage=captions / n,
        price_per_hour=price_per_hour,
        cost_per_1000=cost_per_1000(price_per_hour, duration, captions),
        outcomes=outcomes,
        statuses=statuses,
    )
