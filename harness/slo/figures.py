"""Run figures beside the SLOs: throughput, latency percentiles, coverage and cost per 1,000 captions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figures", "record_figures", "figure_part", "figures_from_parts", "FIGURE_COLUMNS", "cost_per_1000"]


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
    return figures_from_parts([figure_part(records)], price_per_hour)


FIGURE_COLUMNS = ("t_start", "latency_s", "status", "outcome", "caption")
"""The record columns ``record_figures`` reads."""


def figure_part(records) -> dict[str, Any]:
    """What ``record_figures`` needs of some of the records (a chunk of a window): counts, the
    first request and last answer, the latencies of the ``ok`` answers; ``figures_from_parts`` adds
    them up."""
    import pandas as pd

    n = int(len(records))
    if n == 0:
        return {"n": 0, "captions": 0, "start": None, "end": None, "ok_lat": None, "outcomes": {}, "statuses": {}}
    t = pd.to_numeric(records["t_start"], errors="coerce")
    lat = pd.to_numeric(records["latency_s"], errors="coerce")
    end = (t + lat.fillna(0.0)).max()
    caption = records["caption"]
    has_caption = caption.notna() & (caption.astype("string").str.len().fillna(0) > 0)
    ok = records["outcome"] == "ok"
    status = pd.to_numeric(records["status"], errors="coerce").fillna(0).astype(int)
    return {
        "n": n,
        "captions": int((ok & has_caption).sum()),
        "start": float(t.min()),
        "end": float(end),
        "ok_lat": lat[ok].dropna().to_numpy(dtype=float),
        "outcomes": {str(k): int(v) for k, v in records["outcome"].value_counts().items()},
        "statuses": {str(k): int(v) for k, v in status.value_counts().items()},
    }


def figures_from_parts(parts, price_per_hour: float | None = None) -> Figures:
    """``record_figures`` of the records whose ``figure_part`` each part is."""
    import numpy as np

    parts = [p for p in parts if p["n"]]
    n = sum(p["n"] for p in parts)
    if n == 0:
        return Figures(0, 0, 0.0, None, None, None, None, None, None, price_per_hour, None)
    duration = float(max(p["end"] for p in parts) - min(p["start"] for p in parts))
    captions = sum(p["captions"] for p in parts)
    ok_lat = np.concatenate([p["ok_lat"] for p in parts])
    p50, p95, p99 = (float(np.percentile(ok_lat, q)) for q in (50, 95, 99)) if len(ok_lat) else (None, None, None)
    outcomes: dict[str, int] = {}
    statuses: dict[int, int] = {}
    for p in parts:
        for k, v in p["outcomes"].items():
            outcomes[k] = outcomes.get(k, 0) + v
        for k, v in p["statuses"].items():
            statuses[int(k)] = statuses.get(int(k), 0) + v
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
        outcomes=dict(sorted(outcomes.items())),
        statuses={str(k): v for k, v in sorted(statuses.items())},
    )
