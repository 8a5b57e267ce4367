"""Correction rate: what people did with the captions they saw. Every row of the feedback log is an
event; it is good when the person accepted the caption, bad when they corrected or rejected it (a
caption people have to fix is a caption of low quality).

The log (``feedback.csv`` or ``feedback.jsonl`` in the run's folder, or the SLO's ``feedback``
path, relative to that folder) has a row per person's action: ``image_id`` and/or ``request_id``,
``time`` (ISO 8601, UTC when no zone is given, or unix seconds), ``action`` (``accepted``,
``corrected`` or ``rejected``) and, optionally, ``corrected_caption``; other columns (the
dashboard writes ``rater`` and ``target``) are kept out of the SLI. The dashboard's rating page appends to it. A malformed row is refused with its line
number. No metric of the server shows it: rules need the SLO's own ``promql``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import StringConstraints

from harness.errors import DataError, InputMissingError
from harness.slo.kinds import SLIKind
from harness.text import from_csv_cell, utf8_text
from harness.validation import Strict

__all__ = ["ACTIONS", "FEEDBACK_COLUMNS", "FEEDBACK_NAMES", "FeedbackEntry", "read_feedback", "KIND"]

ACTIONS = ("accepted", "corrected", "rejected")
# What the dashboard writes: the columns the SLI reads, then who acted and on which target's caption.
FEEDBACK_COLUMNS = ("image_id", "request_id", "time", "action", "corrected_caption", "rater", "target")
FEEDBACK_NAMES = ("feedback.csv", "feedback.jsonl")


class CorrectionFields(Strict):
    feedback: Annotated[str, StringConstraints(min_length=1)] | None = None


class FeedbackEntry(Strict):
    """One row of the log, as read."""

    image_id: str | None = None
    request_id: str | None = None
    time: float
    action: str
    corrected_caption: str | None = None


def _time(value: Any) -> float:
    from harness.times import parse_instant

    return parse_instant(value)


def _entry(row: dict[str, Any], where: str) -> FeedbackEntry:
    ids = {k: (str(row[k]).strip() if row.get(k) not in (None, "") else None) for k in ("image_id", "request_id")}
    if not any(ids.values()):
        raise DataError(f"{where}: needs an image_id or a request_id")
    raw_time = row.get("time")
    if raw_time in (None, ""):
        raise DataError(f"{where}: time is missing")
    try:
        t = _time(raw_time)
    except (TypeError, ValueError, OverflowError):
        raise DataError(f"{where}: time must be ISO 8601 or unix seconds (got {raw_time!r})") from None
    action = row.get("action")
    if action not in ACTIONS:
        raise DataError(f"{where}: action must be one of {', '.join(ACTIONS)} (got {action!r})")
    fixed = row.get("corrected_caption")
    return FeedbackEntry(**ids, time=t, action=action, corrected_caption=None if fixed in (None, "") else str(fixed))


def read_feedback(path: str | Path) -> list[FeedbackEntry]:
    """Every row of a feedback log (``.csv`` or ``.jsonl``); ``DataError`` names the line of a bad row."""
    p = Path(path)
    if not p.is_file():
        raise InputMissingError(f"{p}: feedback log not found")
    text = utf8_text(p.read_bytes(), str(p), DataError)
    out: list[FeedbackEntry] = []
    if p.suffix == ".jsonl":
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                raise DataError(f"{p}: line {n}: not a JSON object") from None
            if not isinstance(row, dict):
                raise DataError(f"{p}: line {n}: not a JSON object")
            out.append(_entry(row, f"{p}: line {n}"))
        return out
    if p.suffix != ".csv":
        raise DataError(f"{p}: a feedback log is .csv or .jsonl")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [c for c in ("time", "action") if c not in (reader.fieldnames or ())]
    if missing:
        raise DataError(f"{p}: line 1: the header lacks {', '.join(missing)} (columns: {', '.join(FEEDBACK_COLUMNS)})")
    try:
        for row in reader:
            where = f"{p}: line {reader.line_num}"
            if None in row:
                raise DataError(f"{where}: more fields than the header has")
            if any(v is None for v in row.values()):
                raise DataError(f"{where}: fewer fields than the header has")
            out.append(_entry({k: from_csv_cell(v) for k, v in row.items()}, where))
    except csv.Error as exc:
        raise DataError(f"{p}: line {reader.line_num}: {exc}") from None
    return out


class Correction(SLIKind):
    name = "correction"
    events_doc = (
        "every row of the feedback log (`feedback.csv` or `.jsonl` in the run folder, or the SLO's `feedback` "
        "path relative to it; written by the dashboard's rating page): `image_id` and/or `request_id`, `time` "
        "(ISO 8601 or unix seconds), `action`, `corrected_caption`"
    )
    good_doc = (
        "`accepted` (corrected and rejected are bad); the report adds the counts per action; a malformed row "
        "is one line naming its line, exit 65"
    )
    fields = CorrectionFields
    own_clock = True

    def options(self, fields, path):
        return {"options": {"feedback": fields.feedback}} if fields.feedback else {}

    def describe(self, slo):
        return {"feedback": slo.options["feedback"]} if slo.options.get("feedback") else {}

    def _log(self, inputs, slo) -> Path | None:
        given = slo.options.get("feedback")
        if given:
            p = Path(given)
            return p if p.is_absolute() or inputs.folder is None else inputs.folder / p
        if inputs.folder is None:
            return None
        return next((inputs.folder / n for n in FEEDBACK_NAMES if (inputs.folder / n).is_file()), None)

    def events(self, inputs, slo):
        import pandas as pd

        path = self._log(inputs, slo)
        if path is None:
            empty = pd.DataFrame({"t": pd.Series(dtype=float), "good": pd.Series(dtype=bool)})
            return empty, f"no data: no feedback log ({' or '.join(FEEDBACK_NAMES)} in the run's folder)"
        rows = read_feedback(path)
        events = pd.DataFrame(
            {
                "t": pd.Series([r.time for r in rows], dtype=float),
                "good": pd.Series([r.action == "accepted" for r in rows], dtype=bool),
            }
        )
        return events, "" if rows else f"no data: {path} has no rows"

    def figures(self, inputs, slo, events):
        path = self._log(inputs, slo)
        if path is None:
            return {}
        rows = read_feedback(path)
        return {action: sum(r.action == action for r in rows) for action in ACTIONS}


KIND = Correction()
