"""Simulated production traffic of a baseline and a canary, as request records: for measuring the
judge's error rates and power over many canaries without servers (``benchmarks/sequential.py``)
and for testing a live analysis on exact, seeded data.

Requests arrive uniformly over the window; each asks for an image of the shapes world and is
answered with its canonical caption, a confidence and a latency drawn like the reference server's
(lognormal latency, a small share of server errors). A flaw of the zoo (``harness.load.flaws``) is
applied exactly as the fault proxy applies it, with the proxy's own draws; two more flaws are
simulated here: ``hang`` (no answer until the client gives up: a timeout) and
``halved_confidence`` (every answer's confidence halved)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.load.flaws import FLAWS, flaw_faults

__all__ = ["SIMULATED_FLAWS", "Traffic", "simulate_traffic"]

# name -> what it does; the zoo's flaws first
SIMULATED_FLAWS: dict[str, str] = {
    **{k: v[2] for k, v in FLAWS.items()},
    "hang": "no answer until the client's timeout",
    "halved_confidence": "every answer's confidence halved",
}


@dataclass(frozen=True)
class Traffic:
    """How the simulated service behaves when it is not flawed."""

    latency_median_s: float = 0.030
    latency_sigma: float = 0.35  # of log latency
    error_rate: float = 0.002  # 503s of a healthy service
    confidence_mean: float = 0.82
    confidence_sd: float = 0.08
    timeout_s: float = 10.0
    images: int = 500  # the pool of images production asks about
    world_seed: int = 7


def _captions(n: int, seed: int) -> list[str]:
    from harness.datasets.scene import sample_scene

    rng = np.random.default_rng(seed)
    return [sample_scene(rng).captions()[0] for _ in range(n)]


_CAPTIONS: dict[tuple[int, int], list[str]] = {}


def simulate_traffic(
    n: int,
    *,
    target: str,
    seed: int,
    flaw: str | None = None,
    fraction: float = 0.1,
    t0: float = 0.0,
    duration_s: float = 300.0,
    traffic: Traffic = Traffic(),
    run_id: str = "production",
    model_version: str | None = None,
):
    """``n`` records of ``target`` arriving over ``[t0, t0 + duration_s)``, seeded; with ``flaw`` on
    ``fraction`` of the requests. A pandas DataFrame with the columns of ``RequestRecord``."""
    import pandas as pd

    from harness.load.proxy import FaultProxy
    from harness.records import COLUMNS

    if flaw is not None and flaw not in SIMULATED_FLAWS:
        raise ValueError(f"unknown flaw {flaw!r} (known: {', '.join(SIMULATED_FLAWS)})")
    key = (traffic.images, traffic.world_seed)
    if key not in _CAPTIONS:
        _CAPTIONS[key] = _captions(*key)
    captions = _CAPTIONS[key]
    rng = np.random.default_rng([seed, 11])
    t = np.sort(rng.uniform(t0, t0 + duration_s, n))
    images = rng.integers(0, traffic.images, n)
    latency = traffic.latency_median_s * np.exp(rng.normal(0.0, traffic.latency_sigma, n))
    confidence = np.clip(rng.normal(traffic.confidence_mean, traffic.confidence_sd, n), 0.01, 0.999)
    errors = rng.random(n) < traffic.error_rate
    faults: dict[str, Any] = {}
    if flaw in FLAWS:
        faults = flaw_faults(flaw, fraction)
    elif flaw == "hang":
        faults = {"hang_rate": float(fraction)}
    version = model_version or f"tiny-{target}"
    ok = ~errors
    cols: dict[str, Any] = {c: [None] * n for c in COLUMNS}
    cols.update(
        run_id=[run_id] * n,
        target=[target] * n,
        scenario=["production"] * n,
        request_id=[f"{seed & 0xFFFFFFFF:08x}{target[:8].encode().hex():0<16}{i:08x}" for i in range(n)],
        image_id=[str(int(k)) for k in images],
        t_start=t.tolist(),
        image_bytes=[2048] * n,
        latency_s=latency.tolist(),
        status=np.where(ok, 200, 503).tolist(),
        outcome=np.where(ok, "ok", "http_error").tolist(),
        error=[None if k else "HTTP 503" for k in ok],
        caption=[captions[int(k)] if o else None for k, o in zip(images, ok)],
        confidence=np.where(ok, confidence * (0.5 if flaw == "halved_confidence" else 1.0), np.nan).tolist(),
        model_version=[version if o else None for o in ok],
        safety_flagged=[False if o else None for o in ok],
    )
    if faults:
        # The fault proxy's own draws, request by request, as it would make them in front of a service.
        proxy = FaultProxy("http://127.0.0.1:9", faults=faults, seed=seed)  # never started
        for i in range(n):
            d = proxy._draw(True)
            cols["latency_s"][i] += d.delay_s
            if d.fault == "hang":
                cols["latency_s"][i] = traffic.timeout_s
                cols["status"][i], cols["outcome"][i], cols["error"][i] = 0, "timeout", "timed out"
            elif not ok[i]:
                continue
            elif d.status is not None:
                cols["status"][i], cols["outcome"][i], cols["error"][i] = (
                    int(d.status),
                    "http_error",
                    f"HTTP {d.status}",
                )
            else:
                doc = {"caption": cols["caption"][i], "confidence": cols["confidence"][i]}
                if proxy._flaw_answer(doc) is None:
                    continue
                cols["caption"][i], cols["confidence"][i] = doc["caption"], float(doc["confidence"])
                continue
            cols["caption"][i] = cols["confidence"][i] = cols["model_version"][i] = cols["safety_flagged"][i] = None
    df = pd.DataFrame(cols, columns=list(COLUMNS))
    df["confidence"] = df["confidence"].astype(float)
    return df
