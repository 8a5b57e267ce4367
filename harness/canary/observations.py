"""From the records of both targets to what the judge compares: per-request and per-image
observations of every metric (no aggregation here: the judge tests distributions)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from harness.canary.judge import MetricSample

__all__ = ["error_flags", "timeout_flags", "unsafe_flags", "target_observations", "metric_samples"]


def _status(df) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(df["status"], errors="coerce").fillna(0).astype(int).to_numpy()


def error_flags(df) -> np.ndarray:
    """1 for a request the service failed: 5xx, 429 (turned away), no connection, unusable answer.
    Other 4xx are the client's fault (the bad-inputs scenario sends them on purpose)."""
    st = _status(df)
    out = df["outcome"].to_numpy()
    return ((st >= 500) | (st == 429) | np.isin(out, ["connection_error", "invalid_response"])).astype(float)


def timeout_flags(df) -> np.ndarray:
    return (df["outcome"].to_numpy() == "timeout").astype(float)


def unsafe_flags(df, blocklist: Sequence[str]) -> np.ndarray:
    """For answered requests: flagged by the service, or carrying a blocklisted word it let through."""
    ok = df[df["outcome"] == "ok"]
    flagged = ok["safety_flagged"].fillna(False).astype(bool).to_numpy()
    words = set(w.lower() for w in blocklist)
    caps = ok["caption"].fillna("").astype(str).str.lower().str.findall(r"[a-z]+")
    slipped = np.array([bool(words.intersection(c)) for c in caps], dtype=bool)
    return (flagged | slipped).astype(float)


def target_observations(
    evaluation, load, per_image_quality: Mapping[str, float], latency_threshold: float, quality_floor: float,
    blocklist: Sequence[str],
) -> dict[str, np.ndarray]:
    """One target's observations: ``evaluation`` and ``load`` are its record DataFrames (either may
    be empty), ``per_image_quality`` maps image id (as text) to its CIDEr-D."""
    import pandas as pd

    frames = [d for d in (evaluation, load) if d is not None and len(d)]
    both = pd.concat(frames, ignore_index=True) if frames else None
    obs: dict[str, np.ndarray] = {}
    if load is not None and len(load):
        ok = load[load["outcome"] == "ok"]
        obs["latency"] = pd.to_numeric(ok["latency_s"], errors="coerce").dropna().to_numpy(dtype=float)
        q = load["image_id"].astype(str).map(per_image_quality)
        lat = pd.to_numeric(load["latency_s"], errors="coerce")
        known = q.notna().to_numpy() | (load["outcome"] != "ok").to_numpy()
        good = (load["outcome"] == "ok") & (lat <= latency_threshold) & (q.fillna(-np.inf) >= quality_floor)
        obs["goodput"] = good.to_numpy(dtype=float)[known]
    if both is not None:
        obs["error_rate"] = error_flags(both)
        obs["timeout_rate"] = timeout_flags(both)
        obs["safety_flag_rate"] = unsafe_flags(both, blocklist)
    if evaluation is not None and len(evaluation):
        ok = evaluation[evaluation["outcome"] == "ok"]
        obs["confidence"] = pd.to_numeric(ok["confidence"], errors="coerce").dropna().to_numpy(dtype=float)
        obs["caption_length"] = ok["caption"].fillna("").astype(str).str.split().str.len().to_numpy(dtype=float)
    if per_image_quality:
        obs["quality"] = np.asarray(list(per_image_quality.values()), dtype=float)
    return obs


def metric_samples(baseline: Mapping[str, Any], canary: Mapping[str, Any], extra: Mapping[str, MetricSample] = ()) -> dict[str, MetricSample]:
    """Pair the two targets' observations by metric name."""
    names = set(baseline) | set(canary)
    out = {n: MetricSample(baseline.get(n), canary.get(n)) for n in sorted(names)}
    out.update(dict(extra))
    return out
