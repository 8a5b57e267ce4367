"""SLIs: which events of a source are events of an SLO's SLI, and which of them are good.

Each SLI kind defines its events in its own module of ``harness.slo.kinds`` (availability,
latency, coverage, safety, quality, correction, promql); this module holds what they share. An
event's time is when its answer came (``t_start + latency_s``), as a server-side counter sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from harness.errors import DataError, InputMissingError

if TYPE_CHECKING:
    from harness.slo.spec import SLO

__all__ = [
    "SLIValue",
    "sli_events",
    "sli_figures",
    "sli_from_events",
    "records_sli",
    "load_quality",
]


@dataclass(frozen=True)
class SLIValue:
    """Good and total events of one SLO's SLI; ``note`` says why there is no data, if so; ``figures``:
    what its kind adds (e.g. the correction rate's counts per action)."""

    slo: str
    kind: str
    good: float
    total: float
    note: str = ""
    figures: Mapping[str, Any] = field(default_factory=dict, hash=False)

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
            **({"figures": dict(self.figures)} if self.figures else {}),
        }


def sli_events(records, slo: SLO, quality=None, folder: str | Path | None = None):
    """The SLI's events as a DataFrame with columns ``t`` (seconds) and ``good`` (bool), and a note.

    Returns ``(events, note)``; ``note`` is non-empty when the source cannot give this SLI.
    ``folder``: the run's folder, where a kind's own input (the feedback log) is looked for.
    """
    from harness.slo.columns import in_segment
    from harness.slo.kinds import SLIInputs, get

    inputs = SLIInputs(in_segment(records, slo.segment), quality, Path(folder) if folder is not None else None)
    events, note = get(slo.sli).events(inputs, slo)
    if not note and events.empty:
        note = "no data: no events"
    return events.sort_values("t", kind="stable").reset_index(drop=True), note


def sli_figures(records, slo: SLO, events, quality=None, folder: str | Path | None = None) -> dict[str, Any]:
    """The figures the SLO's kind adds beside its SLI."""
    from harness.slo.columns import in_segment
    from harness.slo.kinds import SLIInputs, get

    inputs = SLIInputs(in_segment(records, slo.segment), quality, Path(folder) if folder is not None else None)
    return get(slo.sli).figures(inputs, slo, events)


def sli_from_events(events, slo: SLO, note: str = "", figures: Mapping[str, Any] | None = None) -> SLIValue:
    """Count good and total events."""
    return SLIValue(slo.name, slo.sli, int(events["good"].sum()), int(len(events)), note, dict(figures or {}))


def records_sli(records, slo: SLO, quality=None, folder: str | Path | None = None) -> SLIValue:
    """The SLI of ``slo`` over all the records."""
    events, note = sli_events(records, slo, quality, folder)
    return sli_from_events(events, slo, note, sli_figures(records, slo, events, quality, folder))


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
