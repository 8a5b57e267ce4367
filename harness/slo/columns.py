"""What an SLI kind reads from the request records' columns: statuses, outcomes, when each answer
came, which requests were captioned. A leaf: the kinds (``harness.slo.kinds``) and the SLI
(``harness.slo.sli``) both use it."""

from __future__ import annotations

__all__ = ["statuses", "outcomes", "event_time", "captioned"]


def statuses(df):
    """The records' HTTP statuses as integers (0: no response)."""
    import pandas as pd

    return pd.to_numeric(df["status"], errors="coerce").fillna(0).astype(int)


def outcomes(df):
    return df["outcome"].astype("string").fillna("")


def event_time(df):
    """When each answer came: ``t_start + latency_s`` (``harness.records.answer_times``)."""
    from harness.records import answer_times

    return answer_times(df)


def captioned(df):
    """Requests answered ``ok`` with a non-empty caption."""
    caption = df["caption"]
    has_caption = caption.notna() & (caption.astype("string").str.len().fillna(0) > 0)
    return (df["outcome"] == "ok") & has_caption
