"""Histories for the SLO review: each SLO's good and total events per step of a ``Grid``, from
request records (streamed in chunks: only the counts per step are kept, so a 10M-record window
never sits in memory), and the markers of what changed (decision records, drift reports).
Prometheus gives the same histories through ``PrometheusSource.history``."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from harness.errors import DataError
from harness.slo.kinds import RecordsKind, SLIInputs
from harness.slo.kinds import get as get_kind
from harness.slo.review import Grid, Marker, Review, SLOHistory, build_review, review_grid
from harness.slo.spec import SLOSpec

__all__ = [
    "records_history",
    "checked_records",
    "last_answer",
    "records_review",
    "prometheus_review",
    "load_markers",
    "LATENCY_MARGIN_S",
    "REQUIRED_FIELDS",
]

LATENCY_MARGIN_S = 3600.0  # records started up to this long before the grid may answer inside it
REQUIRED_FIELDS = ("t_start", "latency_s", "status", "outcome")  # what every SLI over records reads


def checked_records(chunks: Iterable[Any], source: str) -> Iterator[Any]:
    """The chunks of records, each refused (one line) when a field does not hold its kind of value
    or a required field is missing; the counts are of the records read so far."""
    from harness.records import check_types

    read = 0
    for chunk in chunks:
        read += len(chunk)
        for name in REQUIRED_FIELDS:
            missing = len(chunk) - int(chunk[name].notna().sum())
            if missing:
                raise DataError(f"{source}: {missing} of {read} records lack {name}")
        check_types(chunk, source)
        yield chunk


def last_answer(path: Path) -> float | None:
    """The latest answer time in the records at ``path`` (one pass over two columns)."""
    from harness.records import answer_times, iter_records

    last = None
    for chunk in iter_records(path, ["t_start", "latency_s"]):
        if len(chunk):
            t = answer_times(chunk).max()
            if t == t:  # not NaN
                last = float(t) if last is None else max(last, float(t))
    return last


def records_review(
    spec: SLOSpec,
    path: Path,
    window_s: float,
    end: float | None = None,
    step_s: float | None = None,
    quality=None,
    markers: Iterable[Marker] = (),
    warnings: Iterable[str] = (),
) -> Review:
    """The review of ``spec`` over the records at ``path``: ``window_s`` ending at ``end`` (default:
    the last answer), the records streamed and checked chunk by chunk."""
    from harness.records import iter_records
    from harness.slo.report import record_columns

    path = Path(path)
    if end is None:
        end = last_answer(path)
        if end is None:
            raise DataError(f"{path}: no records to review")
    grid = review_grid(end, window_s, spec.slos, step_s)
    columns, optional = record_columns(spec)
    chunks = iter_records(path, columns, optional=optional, since=grid.start - LATENCY_MARGIN_S, until=grid.end)
    folder = path if path.is_dir() else path.parent
    histories = records_history(spec, checked_records(chunks, str(path)), grid, quality, folder)
    return build_review(spec, histories, grid, {"kind": "records", "path": str(path)}, markers, warnings)


def prometheus_review(
    spec: SLOSpec,
    source: Any,
    window_s: float,
    end: float,
    step_s: float | None = None,
    markers: Iterable[Marker] = (),
    warnings: Iterable[str] = (),
) -> Review:
    """The review of ``spec`` from a ``PrometheusSource``: ``window_s`` ending at ``end``."""
    grid = review_grid(end, window_s, spec.slos, step_s)
    histories = source.history(spec, grid)
    return build_review(spec, histories, grid, {"kind": "prometheus", "url": source.url}, markers, warnings)


def _bin_counts(grid: Grid, t: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = grid.bins(t)
    keep = i >= 0
    total = np.bincount(i[keep], minlength=grid.n).astype(float)
    ok = np.bincount(i[keep], weights=good[keep].astype(float), minlength=grid.n)
    return ok, total


def records_history(
    spec: SLOSpec, chunks: Iterable[Any], grid: Grid, quality=None, folder: str | Path | None = None
) -> list[SLOHistory]:
    """Each SLO's events binned on ``grid`` (an event's time is its answer's, as ``harness.slo.sli``
    says), from ``chunks`` of records as ``harness.records.iter_records`` yields them."""
    from harness.slo.columns import in_segment
    from harness.slo.sli import sli_events

    by_records = [s for s in spec.slos if isinstance(get_kind(s.sli), RecordsKind)]
    good = {s.name: np.zeros(grid.n) for s in spec.slos}
    total = {s.name: np.zeros(grid.n) for s in spec.slos}
    notes: dict[str, list[str]] = {s.name: [] for s in by_records}
    for chunk in chunks:
        inputs = SLIInputs(chunk, quality, None if folder is None else Path(folder))
        for slo in by_records:
            part = in_segment(chunk, slo.segment)  # an SLO with ``segment:`` counts that segment's records
            events, note = get_kind(slo.sli).events(inputs if part is chunk else replace(inputs, records=part), slo)
            notes[slo.name].append(note)
            if len(events):
                g, n = _bin_counts(grid, events["t"].to_numpy(dtype=float), events["good"].to_numpy(dtype=bool))
                good[slo.name] += g
                total[slo.name] += n
    out = []
    for slo in spec.slos:
        if slo.name in notes:
            said = [n for n in notes[slo.name] if n]
            note = said[0] if said and len(said) == len(notes[slo.name]) else ""
        else:  # a kind with an input of its own (the feedback log)
            events, note = sli_events(None, slo, quality, folder)
            if len(events):
                g, n = _bin_counts(grid, events["t"].to_numpy(dtype=float), events["good"].to_numpy(dtype=bool))
                good[slo.name] += g
                total[slo.name] += n
        out.append(SLOHistory(slo, good[slo.name], total[slo.name], note))
    return out


def _files(path: Path, name: str) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(f"{path}: not found (give a {name} file or a folder holding some)")
    return sorted(path.rglob(name))


def load_markers(decisions: Path | None = None, drift: Path | None = None) -> tuple[list[Marker], list[str]]:
    """Deploy markers from decision records (``decision.json``, found under a folder) and drift
    markers from drift reports (``drift.json``); ``(markers, warnings)``: a file that cannot be
    read is named in a warning and left out, never fatal."""
    markers: list[Marker] = []
    warnings: list[str] = []
    if decisions is not None:
        from harness.report.decision import load_decision

        for p in _files(decisions, "decision.json"):
            try:
                rec = load_decision(p)
            except Exception as exc:  # noqa: BLE001 - one bad record is named, the rest still shown
                warnings.append(f"{p}: not a decision record ({type(exc).__name__}); left out")
                continue
            canary = rec.inputs.targets.get("canary")
            version = (canary.model_version or canary.model) if canary is not None else None
            label = f"{rec.verdict}" + (f" {version}" if version else "")
            detail = "; ".join(rec.reasons[:2])
            markers.append(Marker(float(rec.created_unix), "deploy", label, detail, str(p)))
    if drift is not None:
        for p in _files(drift, "drift.json"):
            try:
                doc = json.loads(p.read_text(encoding="utf-8"))
                t = doc.get("created_unix") or (doc.get("current") or {}).get("until")
                t = float(t) if t is not None else p.stat().st_mtime
                if not math.isfinite(t):
                    raise ValueError("time")
                found = bool(doc["drift"])
                drifted = [str(d) for d in doc.get("drifted") or []]
            except Exception as exc:  # noqa: BLE001 - one bad report is named, the rest still shown
                warnings.append(f"{p}: not a drift report ({type(exc).__name__}); left out")
                continue
            label = "drift found" if found else "no drift"
            markers.append(Marker(t, "drift", label, ", ".join(drifted), str(p)))
    return markers, warnings
