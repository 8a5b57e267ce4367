"""The hybrid quality score (M4): sampled human ratings and normalised CIDEr-D on one 0-100 scale.

    human  = 100 * mean over rated images of (mean rating of the image - 1) / 4
    metric = 100 * mean over scored images of min(CIDEr-D of the image / cider_cap, 1)
             (normalisation "corpus": 100 * min(corpus CIDEr-D / cider_cap, 1))
    score  = (human_weight * human + metric_weight * metric) / (human_weight + metric_weight)

Ratings are averaged per image first, so an image rated by three people counts once. With no
ratings (or none for the scored images) the score is the metric part alone, marked metric-only.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Hashable, Literal, Mapping, Sequence

from harness.errors import DataError, InputMissingError, UsageError
from harness.text import from_csv_cell

__all__ = [
    "HybridConfig",
    "Rating",
    "HybridScore",
    "load_ratings",
    "load_rated_captions",
    "hybrid_score",
    "RATING_MIN",
    "RATING_MAX",
]

RATING_MIN, RATING_MAX = 1.0, 5.0


@dataclass(frozen=True)
class HybridConfig:
    """Weights of the two parts and the CIDEr-D that counts as full marks.

    CIDEr-D has no upper bound in practice below 10; ``cider_cap`` is the value treated as
    "as good as the references", so a caption at or above it scores 100.
    """

    human_weight: float = 0.5
    metric_weight: float = 0.5
    cider_cap: float = 1.0
    normalisation: Literal["per_image", "corpus"] = "per_image"

    def __post_init__(self) -> None:
        for name in ("human_weight", "metric_weight"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise UsageError(f"hybrid {name} must be a number >= 0 (got {v!r})")
        if self.human_weight + self.metric_weight <= 0:
            raise UsageError("hybrid weights must not both be 0")
        if not (math.isfinite(self.cider_cap) and self.cider_cap > 0):
            raise UsageError(f"hybrid cider_cap must be > 0 (got {self.cider_cap!r})")
        if self.normalisation not in ("per_image", "corpus"):
            raise UsageError(f"hybrid normalisation must be per_image or corpus (got {self.normalisation!r})")


@dataclass(frozen=True)
class Rating:
    image_id: str
    rater: str
    rating: float


@dataclass(frozen=True)
class HybridScore:
    score: float
    mode: Literal["hybrid", "metric-only", "human-only"]
    human: float | None
    metric: float | None
    n_images: int
    n_rated_images: int
    n_ratings: int
    n_raters: int
    ratings_ignored: int
    config: HybridConfig

    def to_dict(self) -> dict:
        d = asdict(self)
        d["config"] = asdict(self.config)
        return d


def load_ratings(path: str | Path) -> tuple[Rating, ...]:
    """Read a CSV with columns ``image_id, rater, rating`` (ratings 1 to 5); cells neutralised
    against spreadsheet formulas (``harness.text.csv_cell``) are read back as they were."""
    return tuple(r for r, _ in load_rated_captions(path))


def load_rated_captions(path: str | Path) -> tuple[tuple[Rating, str | None], ...]:
    """``load_ratings`` with the caption each rating is of, from the file's ``caption`` column (the
    rating page writes it); None where the file has no such column or the cell is empty."""
    path = Path(path)
    if not path.exists():
        raise InputMissingError(f"{path}: ratings file not found")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = {"image_id", "rater", "rating"} - set(reader.fieldnames or ())
            if missing:
                raise DataError(
                    f"{path}: ratings CSV needs columns image_id, rater, rating (missing {', '.join(sorted(missing))})"
                )
            out = []
            for row in reader:
                line = reader.line_num
                image_id, rater, raw = (from_csv_cell(row.get(c)) for c in ("image_id", "rater", "rating"))
                if not image_id or not image_id.strip():
                    raise DataError(f"{path}: line {line}: empty image_id")
                try:
                    value = float(raw)
                except (TypeError, ValueError):
                    raise DataError(f"{path}: line {line}: rating {raw!r} is not a number") from None
                if not RATING_MIN <= value <= RATING_MAX:
                    raise DataError(f"{path}: line {line}: rating {value:g} is outside 1 to 5")
                caption = from_csv_cell(row.get("caption"))
                out.append((Rating(image_id.strip(), (rater or "").strip(), value), caption or None))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    return tuple(out)


def hybrid_score(
    cider_per_image: Mapping[Hashable, float] | None,
    ratings: Sequence[Rating] | None,
    config: HybridConfig = HybridConfig(),
    cider_corpus: float | None = None,
) -> HybridScore:
    """Combine per-image CIDEr-D (image id -> score) with ratings; image ids match as strings."""
    scored = {str(k): float(v) for k, v in (cider_per_image or {}).items()}
    by_image: dict[str, list[float]] = {}
    raters, used, ignored = set(), 0, 0
    for r in ratings or ():
        if scored and r.image_id not in scored:
            ignored += 1
            continue
        by_image.setdefault(r.image_id, []).append(r.rating)
        raters.add(r.rater)
        used += 1
    human = None
    if by_image:
        per_image = [(sum(v) / len(v) - RATING_MIN) / (RATING_MAX - RATING_MIN) for v in by_image.values()]
        human = 100.0 * sum(per_image) / len(per_image)
    metric = None
    if scored:
        cap = config.cider_cap
        if config.normalisation == "corpus":
            corpus = cider_corpus if cider_corpus is not None else sum(scored.values()) / len(scored)
            metric = 100.0 * min(max(corpus, 0.0) / cap, 1.0)
        else:
            metric = 100.0 * sum(min(max(c, 0.0) / cap, 1.0) for c in scored.values()) / len(scored)
    if human is None and metric is None:
        raise DataError("hybrid score needs CIDEr-D scores or ratings; got neither")
    if human is None:
        mode, score = "metric-only", metric
    elif metric is None:
        mode, score = "human-only", human
    else:
        wh, wm = config.human_weight, config.metric_weight
        mode, score = "hybrid", (wh * human + wm * metric) / (wh + wm)
    return HybridScore(
        float(score), mode, human, metric, len(scored), len(by_image), used, len(raters), ignored, config
    )
