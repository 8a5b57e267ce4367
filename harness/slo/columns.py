"""What an SLI kind reads from the request records' columns: statuses, outcomes, when each answer
came, which requests were captioned. A leaf: the kinds (``harness.slo.kinds``) and the SLI
(``harness.slo.sli``) both use it."""

from __future__ import annotations

__all__ = ["statuses", "outcomes", "event_time", "captioned", "SEGMENT", "in_segment"]

# The record column (and the Prometheus label, ``harness.slo.promql.SEGMENT_LABEL``) an SLO's
# ``segment:`` selects on.
SEGMENT = "segment"


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


def in_segment(df, segment: str | None):
    """The records an SLO with ``segment:`` counts: those whose ``segment`` column holds it (all of
    them when ``segment`` is None; none when the records carry no segment)."""
    if segment is None or df is None:
        return df
    if SEGMENT not in df.columns:
        return df.iloc[0:0]
    return df[(df[SEGMENT].astype("string") == segment).fillna(False).to_numpy(dtype=bool)]
