"""The summary of a load run, computed from its request records alone (so it can be recomputed
from saved records): throughput, latency percentiles, error rate by kind, goodput, a timeline,
and for a concurrency sweep the throughput-latency curve and its saturation point."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from harness.records import OUTCOMES

__all__ = [
    "LoadSummary",
    "summarize",
    "write_summary",
    "read_summary",
    "sweep_curve",
    "saturation_point",
    "SUMMARY_JSON",
    "PERCENTILES",
    "ABORTED_ERROR",
]

SUMMARY_JSON = "summary.json"
ABORTED_ERROR = "aborted: the run stopped before an answer came"
PERCENTILES = (50, 90, 95, 99)
SATURATION_FRACTION = 0.9


@dataclass(frozen=True)
class LoadSummary:
    """What a load run did; ``to_dict`` is the content of ``summary.json``."""

    run_id: str | None
    scenario: str | None
    target: str | None
    host: str | None
    started_at: float | None
    ended_at: float | None
    duration_s: float
    requests: int
    outcomes: dict[str, int]
    status_counts: dict[str, int]
    error_rate: float | None
    error_rate_by_kind: dict[str, float]
    throughput_rps: float | None
    ok_rps: float | None
    latency_s: dict[str, float | None]
    latency_all_s: dict[str, float | None]
    goodput: dict[str, float | None]
    locust: dict[str, Any] | None
    timeline: list[dict[str, Any]]
    plan: list[dict[str, Any]] = field(default_factory=list)
    sweep: dict[str, Any] | None = None
    by_image_size: dict[str, dict[str, Any]] | None = None
    workers: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _r(x: float | None, nd: int = 6) -> float | None:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return round(float(x), nd)


def _latency(values: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {f"p{q}": None for q in PERCENTILES}
    out.update(mean=None, max=None)
    if values.size:
        for q, v in zip(PERCENTILES, np.percentile(values, PERCENTILES)):
            out[f"p{q}"] = _r(v)
        out["mean"], out["max"] = _r(values.mean()), _r(values.max())
    return out


def _timeline(t: np.ndarray, lat: np.ndarray, outcome: np.ndarray, t0: float, t1: float) -> list[dict[str, Any]]:
    span = max(t1 - t0, 1e-9)
    width = 1.0 if span <= 60 else float(math.ceil(span / 60))
    n = max(1, int(math.ceil(span / width)))
    idx = np.clip(((t - t0) // width).astype(int), 0, n - 1) if t.size else np.array([], dtype=int)
    rows = []
    for b in range(n):
        sel = idx == b
        oc = outcome[sel]
        ok = oc == "ok"
        lat_ok = lat[sel][ok]
        row = {"t": _r(b * width, 3), "width_s": width, "requests": int(sel.sum()), "ok": int(ok.sum())}
        for kind in OUTCOMES[1:]:
            c = int((oc == kind).sum())
            if c:
                row[kind] = c
        row["p50_s"] = _r(np.percentile(lat_ok, 50)) if lat_ok.size else None
        row["p95_s"] = _r(np.percentile(lat_ok, 95)) if lat_ok.size else None
        rows.append(row)
    return rows


def sweep_curve(df, stages: Sequence[dict[str, Any]], ended_at: float) -> list[dict[str, Any]]:
    """Throughput and latency at each concurrency level of ``stages`` (``{"t", "users"}``, wall
    clock); each level's first quarter (at most 1 s) is left out as ramp-up."""
    t = df["t_start"].to_numpy(dtype=float)
    lat = df["latency_s"].to_numpy(dtype=float)
    ok = (df["outcome"] == "ok").to_numpy()
    rows = []
    for i, st in enumerate(stages):
        start = float(st["t"])
        end = float(stages[i + 1]["t"]) if i + 1 < len(stages) else ended_at
        settle = min(1.0, 0.25 * (end - start))
        lo = start + settle
        if end - lo <= 0:
            continue
        sel = (t >= lo) & (t < end)
        n = int(sel.sum())
        lat_ok = lat[sel & ok]
        rows.append(
            {
                "users": int(st["users"]),
                "window_s": _r(end - lo, 3),
                "requests": n,
                "throughput_rps": _r(int((sel & ok).sum()) / (end - lo), 3),
                "error_rate": _r(1 - (sel & ok).sum() / n) if n else None,
                "p50_s": _r(np.percentile(lat_ok, 50)) if lat_ok.size else None,
                "p95_s": _r(np.percentile(lat_ok, 95)) if lat_ok.size else None,
                "p99_s": _r(np.percentile(lat_ok, 99)) if lat_ok.size else None,
            }
        )
    return rows


def saturation_point(curve: Sequence[dict[str, Any]], fraction: float = SATURATION_FRACTION) -> dict[str, Any] | None:
    """The lowest concurrency whose throughput reaches ``fraction`` of the best level's: past it,
    more users mostly buy latency, not throughput."""
    levels = [c for c in curve if c.get("throughput_rps") is not None]
    if not levels:
        return None
    best = max(c["throughput_rps"] for c in levels)
    if best <= 0:
        return None
    for c in sorted(levels, key=lambda c: c["users"]):
        if c["throughput_rps"] >= fraction * best:
            return {
                "users": c["users"],
                "throughput_rps": c["throughput_rps"],
                "p95_s": c["p95_s"],
                "max_throughput_rps": best,
                "fraction": fraction,
            }
    return None


def _notes(
    n: int,
    outcomes: dict[str, int],
    status: dict[str, int],
    host: str | None,
    timeout_s: float | None,
    locust: dict[str, Any] | None,
    aborted: int,
) -> list[str]:
    notes = []
    where = f" at {host}" if host else ""
    if n == 0:
        notes.append("no requests were sent")
        return notes
    ce = outcomes.get("connection_error", 0)
    if ce == n:
        notes.append(f"target unreachable{where}: all {n} requests failed to connect (connection_error)")
    elif ce:
        notes.append(f"{ce} of {n} requests failed to connect (connection_error)")
    inv = outcomes.get("invalid_response", 0)
    if inv:
        notes.append(
            f"{inv} of {n} answers were not valid captioning responses (invalid_response): "
            f"does the target speak the protocol asked for, or does it need --protocol or --adapter?"
        )
    to = outcomes.get("timeout", 0) - aborted
    if aborted:
        notes.append(f"{aborted} request(s) were cut off when the run stopped (timeout, '{ABORTED_ERROR}')")
    if to:
        notes.append(f"{to} of {n} requests timed out" + (f" (client timeout {timeout_s:g} s)" if timeout_s else ""))
    if status.get("429"):
        notes.append(f"{status['429']} requests were refused with 429 (queue full)")
    if status.get("503"):
        notes.append(f"{status['503']} requests were answered 503 (not ready or overloaded)")
    if locust is not None and locust.get("requests") is not None and locust["requests"] != n:
        notes.append(f"records ({n}) and Locust's request count ({locust['requests']}) differ")
    return notes


def summarize(
    df,
    *,
    run_id: str | None = None,
    scenario: str | None = None,
    target: str | None = None,
    host: str | None = None,
    started_at: float | None = None,
    ended_at: float | None = None,
    latency_threshold_s: float = 0.5,
    request_timeout_s: float | None = None,
    locust: dict[str, Any] | None = None,
    plan: Sequence[dict[str, Any]] = (),
    workers: int = 0,
) -> LoadSummary:
    """Summarise records (a DataFrame with the ``RequestRecord`` columns). The run lasted from
    ``started_at`` to ``ended_at`` (unix s); without them, from the first start to the last answer."""
    n = int(len(df))
    t = df["t_start"].to_numpy(dtype=float) if n else np.array([])
    lat = df["latency_s"].to_numpy(dtype=float) if n else np.array([])
    outcome = df["outcome"].astype(str).to_numpy() if n else np.array([], dtype=str)
    status = df["status"].fillna(0).astype(int).to_numpy() if n else np.array([], dtype=int)
    if started_at is None:
        started_at = float(t.min()) if n else None
    if ended_at is None:
        ended_at = float((t + lat).max()) if n else None
    duration = max(0.0, (ended_at - started_at)) if started_at is not None and ended_at is not None else 0.0
    outcomes = {k: int((outcome == k).sum()) for k in OUTCOMES}
    status_counts = {str(k): int(v) for k, v in zip(*np.unique(status, return_counts=True))} if n else {}
    ok = outcome == "ok"
    lat_ok = lat[ok]
    good = int((ok & (lat <= latency_threshold_s)).sum())
    rate = (lambda c: _r(c / duration, 3)) if duration > 0 else (lambda c: None)
    by_size = None
    if n and "image_w" in df and "image_h" in df:
        dims = df["image_w"].astype("string").fillna("?") + "x" + df["image_h"].astype("string").fillna("?")
        dims = dims.str.replace(r"\.0\b", "", regex=True).to_numpy()
        kinds = [d for d in np.unique(dims) if d != "?x?"]
        if len(kinds) > 1:
            by_size = {}
            for d in kinds:
                sel = dims == d
                by_size[str(d)] = {
                    "requests": int(sel.sum()),
                    "ok": int((sel & ok).sum()),
                    "latency_s": _latency(lat[sel & ok]),
                }
    stages = [p for p in plan if p.get("kind") == "users"]
    sweep = None
    if scenario == "sweep" and stages and n and ended_at is not None:
        curve = sweep_curve(df, stages, ended_at)
        sweep = {"curve": curve, "saturation": saturation_point(curve)}
    return LoadSummary(
        run_id=run_id,
        scenario=scenario,
        target=target,
        host=host,
        started_at=_r(started_at, 3),
        ended_at=_r(ended_at, 3),
        duration_s=_r(duration, 3) or 0.0,
        requests=n,
        outcomes=outcomes,
        status_counts=status_counts,
        error_rate=_r(1 - ok.sum() / n) if n else None,
        error_rate_by_kind={k: _r(v / n) for k, v in outcomes.items() if k != "ok"} if n else {},
        throughput_rps=rate(n),
        ok_rps=rate(int(ok.sum())),
        latency_s=_latency(lat_ok),
        latency_all_s=_latency(lat),
        goodput={"threshold_s": latency_threshold_s, "rps": rate(good), "fraction": _r(good / n) if n else None},
        locust=locust,
        timeline=_timeline(t, lat, outcome, started_at, ended_at) if n and started_at is not None else [],
        plan=list(plan),
        sweep=sweep,
        by_image_size=by_size,
        workers=workers,
        notes=_notes(
            n,
            outcomes,
            status_counts,
            host,
            request_timeout_s,
            locust,
            int((df["error"] == ABORTED_ERROR).sum()) if n else 0,
        ),
    )


def write_summary(summary: LoadSummary | dict, path: str | Path) -> Path:
    """Write ``summary.json`` atomically (a reader never sees half of it)."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_JSON
    doc = summary.to_dict() if isinstance(summary, LoadSummary) else summary
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, p)
    return p


def read_summary(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_JSON
    return json.loads(p.read_text(encoding="utf-8"))
