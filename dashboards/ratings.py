"""What people say about a run's captions, appended one row at a time: ratings
(``<run>/ratings.csv``, read by the hybrid quality score, ``harness.quality.hybrid.load_ratings``)
and feedback (``<run>/feedback.csv``: accepted, corrected or rejected, read by the correction-rate
SLI, ``harness.slo.kinds.correction``)."""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from harness.slo.kinds.correction import ACTIONS, FEEDBACK_COLUMNS
from harness.text import csv_cell

__all__ = [
    "RATINGS_NAME",
    "RATING_COLUMNS",
    "RatingRow",
    "append_rating",
    "FEEDBACK_NAME",
    "FeedbackRow",
    "append_feedback",
]

RATINGS_NAME = "ratings.csv"
RATING_COLUMNS = ("image_id", "rater", "rating", "target", "caption", "time")
FEEDBACK_NAME = "feedback.csv"


@dataclass(frozen=True)
class RatingRow:
    """One person's 1 to 5 rating of one caption of one image."""

    image_id: str
    rater: str
    rating: int
    target: str
    caption: str


def _line(values) -> bytes:
    """One CSV row; text that a spreadsheet would run as a formula is neutralised (``csv_cell``)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([csv_cell(v) for v in values])
    return buf.getvalue().encode("utf-8")


def _stamp(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _append(path: Path, header: tuple[str, ...], values) -> Path:
    """Append one CSV row to ``path`` (made with ``header`` when new). Each row is one ``write`` to a
    file opened for appending, so people saving at once never interleave; a link at ``path`` is
    never written through (``OSError``)."""
    if not path.exists():  # the header appears with the file, atomically (a hard link never replaces)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(_line(header))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.write(fd, _line(values))
    finally:
        os.close(fd)
    return path


def append_rating(folder: str | Path, row: RatingRow, clock: Callable[[], float] = time.time) -> Path:
    """Append ``row`` to the folder's ratings file (made with its header when new), stamped with
    the UTC time in ISO 8601."""
    if not 1 <= int(row.rating) <= 5:
        raise ValueError(f"rating {row.rating} is outside 1 to 5")
    if not row.rater.strip():
        raise ValueError("a rating needs the rater's name")
    values = (row.image_id, row.rater.strip(), int(row.rating), row.target, row.caption, _stamp(clock))
    return _append(Path(folder) / RATINGS_NAME, RATING_COLUMNS, values)


@dataclass(frozen=True)
class FeedbackRow:
    """One person's action on one caption: accepted, corrected (with the caption they wrote) or rejected."""

    image_id: str
    request_id: str
    action: str
    corrected_caption: str
    rater: str
    target: str


def append_feedback(folder: str | Path, row: FeedbackRow, clock: Callable[[], float] = time.time) -> Path:
    """Append ``row`` to the folder's feedback log (made with its header when new), stamped with the
    UTC time in ISO 8601."""
    if row.action not in ACTIONS:
        raise ValueError(f"action {row.action!r} is not one of {', '.join(ACTIONS)}")
    if not row.rater.strip():
        raise ValueError("feedback needs the person's name")
    fixed = row.corrected_caption.strip()
    if row.action == "corrected" and not fixed:
        raise ValueError("a correction needs the corrected caption")
    if not (row.image_id or row.request_id):
        raise ValueError("feedback needs an image id or a request id")
    values = {
        "image_id": row.image_id,
        "request_id": row.request_id,
        "time": _stamp(clock),
        "action": row.action,
        "corrected_caption": fixed if row.action == "corrected" else "",
        "rater": row.rater.strip(),
        "target": row.target,
    }
    return _append(Path(folder) / FEEDBACK_NAME, FEEDBACK_COLUMNS, [values[c] for c in FEEDBACK_COLUMNS])
