"""The human ratings of a run (``<run>/ratings.csv``): appended one row at a time, read by the
hybrid quality score (``harness.quality.hybrid.load_ratings``)."""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

__all__ = ["RATINGS_NAME", "RATING_COLUMNS", "RatingRow", "append_rating"]

RATINGS_NAME = "ratings.csv"
RATING_COLUMNS = ("image_id", "rater", "rating", "target", "caption", "time")


@dataclass(frozen=True)
class RatingRow:
    """One person's 1 to 5 rating of one caption of one image."""

    image_id: str
    rater: str
    rating: int
    target: str
    caption: str


def _line(values) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue().encode("utf-8")


def append_rating(folder: str | Path, row: RatingRow, clock: Callable[[], float] = time.time) -> Path:
    """Append ``row`` to the folder's ratings file (made with its header when new), stamped with
    the UTC time in ISO 8601. Each row is one ``write`` to a file opened for appending, so
    raters saving at once never interleave."""
    if not 1 <= int(row.rating) <= 5:
        raise ValueError(f"rating {row.rating} is outside 1 to 5")
    if not row.rater.strip():
        raise ValueError("a rating needs the rater's name")
    path = Path(folder) / RATINGS_NAME
    if not path.exists():  # the header appears with the file, atomically (a hard link never replaces)
        tmp = path.with_name(f".{RATINGS_NAME}.{os.getpid()}.tmp")
        tmp.write_bytes(_line(RATING_COLUMNS))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    stamp = datetime.fromtimestamp(clock(), tz=timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    data = _line((row.image_id, row.rater.strip(), int(row.rating), row.target, row.caption, stamp))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return path
