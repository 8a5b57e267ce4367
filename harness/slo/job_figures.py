"""Pipeline figures of asynchronous captioning, from the records: one record per image offered.

A job's record starts when the image was submitted (``t_start``); ``latency_s`` is its pipeline
lag, from arrival to the caption being available (as the server's job document gives it, so the
client's polling interval does not add to it). A job that never gave a caption is *missing*:
refused at submission (429 or 5xx), failed, expired on the server, or still pending when the
client stopped waiting. Client errors at submission (400, 413, 415 ...) are not jobs.

The lag SLI (``harness.slo.kinds.lag``), ``summary.json`` of an asynchronous load run, the
dashboard's on-call view and the gate's figures all read these figures from here.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MISSING_EXPIRED",
    "MISSING_PENDING",
    "FAILED_PREFIX",
    "GATE_FIGURES",
    "job_events",
    "pipeline_figures",
    "pipeline_part",
    "pipeline_from_parts",
    "gate_figures",
]

# The ``error`` of a missing job's record: expired on the server, still pending when the client
# stopped waiting, or failed (``job failed: CODE: MESSAGE``). Any other missing one was refused.
MISSING_EXPIRED = "job expired"
MISSING_PENDING = "job still pending when the client stopped waiting"
FAILED_PREFIX = "job failed"


def job_events(df):
    """The records that are jobs offered: every record but a client error at submission (a 4xx
    other than 429)."""
    from harness.slo.columns import statuses

    status = statuses(df)
    return ~((status >= 400) & (status < 500) & (status != 429))


def pipeline_figures(df) -> dict[str, Any]:
    """``jobs`` offered, ``done``, ``missing`` (and of those ``rejected``, ``failed``, ``expired``,
    ``pending``), lag percentiles ``lag_p50_s``/``lag_p95_s``/``lag_p99_s`` and ``lag_max_s`` of
    the done jobs, ``drain_s``: from the first arrival to the last caption available (None
    without a caption), and ``drained``: every job offered got its caption."""
    return pipeline_from_parts([pipeline_part(df)])


_COUNTS = ("jobs", "done", "missing", "rejected", "failed", "expired", "pending")


def pipeline_part(df) -> dict[str, Any]:
    """What ``pipeline_figures`` needs of some of the records (a chunk of a window): counts, the
    done jobs' lags, the first arrival and the last caption; ``pipeline_from_parts`` adds them up."""
    import pandas as pd

    from harness.slo.columns import captioned

    jobs = df[job_events(df)] if len(df) else df
    n = int(len(jobs))
    done_mask = captioned(jobs) if n else pd.Series(dtype=bool)
    error = jobs["error"].astype("string").fillna("") if n else pd.Series(dtype="string")
    t = pd.to_numeric(jobs["t_start"], errors="coerce") if n else pd.Series(dtype=float)
    lag = pd.to_numeric(jobs["latency_s"], errors="coerce") if n else pd.Series(dtype=float)
    missing = ~done_mask
    expired = missing & (error == MISSING_EXPIRED)
    pending = missing & (error == MISSING_PENDING)
    outcome = jobs["outcome"].astype("string").fillna("") if n else pd.Series(dtype="string")
    # failed: the job failed, or came back without a usable caption
    failed = missing & (error.str.startswith(FAILED_PREFIX).fillna(False) | outcome.isin(["ok", "invalid_response"]))
    rejected = missing & ~expired & ~pending & ~failed  # refused at submission, or no answer to it
    ends = (t + lag)[done_mask].dropna()
    return {
        "jobs": n,
        "done": int(done_mask.sum()) if n else 0,
        "missing": int(missing.sum()),
        "rejected": int(rejected.sum()),
        "failed": int(failed.sum()),
        "expired": int(expired.sum()),
        "pending": int(pending.sum()),
        "lags": lag[done_mask].dropna().to_numpy(dtype=float),
        "first": float(t.min()) if n and t.notna().any() else None,
        "last_caption": float(ends.max()) if len(ends) else None,
    }


def pipeline_from_parts(parts) -> dict[str, Any]:
    """``pipeline_figures`` of the records whose ``pipeline_part`` each part is."""
    import numpy as np

    parts = list(parts)
    counts = {k: sum(int(p[k]) for p in parts) for k in _COUNTS}
    done_lag = np.concatenate([p["lags"] for p in parts]) if parts else np.empty(0)

    def pct(q: float) -> float | None:
        return round(float(np.percentile(done_lag, q)), 6) if len(done_lag) else None

    firsts = [p["first"] for p in parts if p["first"] is not None]
    lasts = [p["last_caption"] for p in parts if p["last_caption"] is not None]
    drain = round(float(max(lasts) - min(firsts)), 6) if len(done_lag) and lasts and firsts else None
    return {
        **counts,
        "lag_p50_s": pct(50),
        "lag_p95_s": pct(95),
        "lag_p99_s": pct(99),
        "lag_max_s": round(float(done_lag.max()), 6) if len(done_lag) else None,
        "drain_s": drain,
        "drained": bool(counts["jobs"]) and counts["missing"] == 0,
    }


# The pipeline figures a gate's decision record adds to a target's figures when its load run was
# asynchronous: summary key -> figure name.
GATE_FIGURES = {
    "lag_p50_s": "lag_p50_s",
    "lag_p95_s": "lag_p95_s",
    "lag_p99_s": "lag_p99_s",
    "drain_s": "drain_s",
    "missing": "missing_captions",
}


def gate_figures(pipeline: dict[str, Any] | None) -> dict[str, Any]:
    """The decision record's pipeline figures from a load summary's ``pipeline`` section (none
    for a synchronous run)."""
    if not pipeline:
        return {}
    return {name: pipeline.get(key) for key, name in GATE_FIGURES.items()}
