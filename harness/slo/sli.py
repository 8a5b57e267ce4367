"""SLIs from request records: which records are events of an SLI, and which of them are good.

Event definitions (the same for every source that can see them):

- availability: every request sent; bad when the status is 5xx, 429 (turned away: the service
  shed work it was asked to do), 0 (no response: timeout or connection error), or when a 200
  carried an unusable body (outcome ``invalid_response``). Other 4xx are the client's fault: good.
- latency: every request that got a response or timed out; good when a response came within
  ``threshold`` seconds.
- coverage: every request sent; good when it came back ``ok`` with a non-empty caption.
- safety: every caption returned; bad when the service flagged it or when it carries a word of
  the SLO's blocklist all the same (an unsafe caption the service's filter let through).
- quality: every caption returned whose image has a per-image quality score; good when the score
  is at or above ``threshold``. Scores (the SLO's ``metric``, CIDEr-D by default, or a column
  named ``quality``) come from the records or from a table joined by ``image_id`` (and ``target``
  when both carry it), such as the ``per_image`` rows of ``quality.json``; else: no data.

An event's time is when its answer came (``t_start + latency_s``), as a server-side counter sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import DataError, InputMissingError
from harness.slo.spec import SLO

__all__ = ["SLIValue", "sli_events", "sli_from_events", "records_sli", "load_quality"]


@dataclass(frozen=True)
class SLIValue:
    """Good and total events of one SLO's SLI; ``note`` says why there is no data, if so."""

    slo: str
    kind: str
    good: float
    total: float
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.good / self.total if self.total > 0 else None

    @property
    def error_ratio(self) -> float | None:
        return (self.total - self.good) / self.total if self.total > 0 else None

    @property
    def bad(self) -> float:
        return self.total - self.good

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "kind": self.kind,
            "good": self.good,
            "total": self.total,
            "bad": self.bad,
            "ratio": self.ratio,
            "error_ratio": self.error_ratio,
            "note": self.note,
        }


def _status(df):
    import pandas as pd

    return pd.to_numeric(df["status"], errors="coerce").fillna(0).astype(int)


def _event_time(df):
    import pandas as pd

    t = pd.to_numeric(df["t_start"], errors="coerce")
    lat = pd.to_numeric(df["latency_s"], errors="coerce").fillna(0.0)
    return t + lat


def _captioned(df):
    caption = df["caption"]
    has_caption = caption.notna() & (caption.astype("string").str.len().fillna(0) > 0)
    return (df["outcome"] == "ok") & has_caption


def _blocklisted(captions, words: tuple[str, ...]):
    import re

    import pandas as pd

    if not words:
        return pd.Series(False, index=captions.index)
    pattern = r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b"
    return captions.astype("string").str.contains(pattern, case=False, regex=True).fillna(False).astype(bool)


def _score_column(columns, slo: SLO) -> str | None:
    for name in (slo.metric, "quality"):
        if name and name in columns:
            return name
    return None


def _quality_scores(df, quality, slo: SLO):
    """Per-record quality score (NaN where unknown) from a column or a joined table; None: no scores."""
    import pandas as pd

    if quality is None:
        column = _score_column(df.columns, slo)
        return None if column is None else pd.to_numeric(df[column], errors="coerce")
    column = _score_column(quality.columns, slo)
    if column is None:
        return None
    keys = ["image_id"] + (["target"] if "target" in quality.columns and "target" in df.columns else [])
    left = df[keys].copy()
    right = quality[keys + [column]].rename(columns={column: "_score"})
    for k in keys:
        left[k] = left[k].astype("string")
        right[k] = right[k].astype("string")
    right = right.drop_duplicates(subset=keys, keep="last")
    merged = left.reset_index(drop=True).merge(right, on=keys, how="left")
    scores = pd.to_numeric(merged["_score"], errors="coerce")
    scores.index = df.index
    return scores


def sli_events(records, slo: SLO, quality=None):
    """The SLI's events as a DataFrame with columns ``t`` (seconds) and ``good`` (bool), and a note.

    Returns ``(events, note)``; ``note`` is non-empty when the records cannot give this SLI.
    """
    import pandas as pd

    df = records
    status = _status(df)
    outcome = df["outcome"].astype("string").fillna("")
    t = _event_time(df)
    note = ""
    if slo.sli == "availability":
        mask = pd.Series(True, index=df.index)
        good = ~((status >= 500) | (status == 429) | (status == 0) | (outcome == "invalid_response"))
    elif slo.sli == "latency":
        responded = status != 0
        mask = responded | (outcome == "timeout")
        latency = pd.to_numeric(df["latency_s"], errors="coerce")
        good = responded & (latency <= float(slo.threshold))
    elif slo.sli == "coverage":
        mask = pd.Series(True, index=df.index)
        good = _captioned(df)
    elif slo.sli == "safety":
        mask = _captioned(df)
        try:
            flagged = df["safety_flagged"].astype("boolean").fillna(False).astype(bool)
        except (TypeError, ValueError):
            raise DataError("records: safety_flagged must be true, false or empty") from None
        good = ~(flagged | _blocklisted(df["caption"], slo.blocklist))
    elif slo.sli == "quality":
        scores = _quality_scores(df, quality, slo)
        if scores is None:
            mask = pd.Series(False, index=df.index)
            good = mask
            where = "in the quality table" if quality is not None else "(pass --quality FILE)"
            note = f"no data: no per-image {slo.metric or 'quality'} scores {where}"
        else:
            mask = _captioned(df) & scores.notna()
            good = scores >= float(slo.threshold)
            if not mask.any():
                note = "no data: no scored image among the captions returned"
    else:  # pragma: no cover - the spec admits only the kinds above
        raise ValueError(slo.sli)
    events = pd.DataFrame({"t": t[mask].astype(float), "good": good[mask].astype(bool)})
    if not note and events.empty:
        note = "no data: no events"
    return events.sort_values("t", kind="stable").reset_index(drop=True), note


def sli_from_events(events, slo: SLO, note: str = "") -> SLIValue:
    """Count good and total events."""
    return SLIValue(slo.name, slo.sli, int(events["good"].sum()), int(len(events)), note)


def records_sli(records, slo: SLO, quality=None) -> SLIValue:
    """The SLI of ``slo`` over all the records."""
    events, note = sli_events(records, slo, quality)
    return sli_from_events(events, slo, note)


def load_quality(path: str | Path):
    """Per-image scores keyed by ``image_id`` (optional ``target``): csv, jsonl, parquet, or a JSON
    list of rows or object with ``per_image`` rows (``quality.json`` of the quality stage)."""
    import json

    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputMissingError(f"{p}: quality table not found")
    try:
        if p.suffix == ".parquet":
            df = pd.read_parquet(p)
        elif p.suffix == ".csv":
            df = pd.read_csv(p)
        elif p.suffix == ".jsonl":
            df = pd.read_json(p, lines=True)
        elif p.suffix == ".json":
            doc = json.loads(p.read_text(encoding="utf-8"))
            rows = doc.get("per_image") if isinstance(doc, dict) else doc
            if not isinstance(rows, list):
                raise DataError(f"{p}: no per_image rows in this JSON file")
            df = pd.DataFrame(rows)
        else:
            raise DataError(f"{p}: quality table must be .csv, .jsonl, .json or .parquet")
    except DataError:
        raise
    except Exception as exc:  # pandas and json raise many types for a malformed file
        raise DataError(f"{p}: unreadable quality table ({type(exc).__name__})") from None
    if "image_id" not in df.columns:
        raise DataError(f"{p}: quality table lacks an image_id column")
    return df
