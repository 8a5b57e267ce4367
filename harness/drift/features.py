"""What drift reads from a window of request records: confidences, embeddings, captions, image
statistics (from an images folder, or the sizes the records carry)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.drift.image import IMAGE_STATS, folder_statistics
from harness.errors import DataError

__all__ = ["DriftFeatures", "features_from_records", "load_features", "RECORD_IMAGE_STATS", "DRIFT_COLUMNS"]

RECORD_IMAGE_STATS: tuple[str, ...] = ("pixels", "bytes")


@dataclass(frozen=True)
class DriftFeatures:
    """One window's inputs to the detectors; a field is None when the records do not carry it."""

    source: str
    n_records: int
    confidence: np.ndarray | None = None
    embedding: np.ndarray | None = None
    captions: tuple[str, ...] | None = None
    image_stats: np.ndarray | None = None
    image_stat_names: tuple[str, ...] = ()
    n_sampled: int | None = None
    """When the records were sampled in the scan: how many of the ``n_records`` were read."""

    def available(self) -> dict[str, bool]:
        return {
            "confidence": self.confidence is not None,
            "embedding": self.embedding is not None,
            "caption": self.captions is not None,
            "image": self.image_stats is not None,
        }


def _confidence(df: Any, source: str) -> np.ndarray | None:
    import pandas as pd

    col = df["confidence"]
    if col.isna().all():
        return None
    values = pd.to_numeric(col.dropna(), errors="coerce")
    if values.isna().any():
        raise DataError(f"{source}: column 'confidence' holds values that are not numbers")
    out = values.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(out)):
        raise DataError(f"{source}: column 'confidence' holds non-finite values")
    return out


def _embedding(df: Any, source: str) -> np.ndarray | None:
    vecs = [v for v in df["embedding"] if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not vecs:
        return None
    sizes = sorted({len(v) for v in vecs})
    if len(sizes) > 1:
        raise DataError(f"{source}: embeddings of different sizes ({', '.join(map(str, sizes[:3]))})")
    if sizes[0] == 0:
        return None
    try:
        out = np.asarray([np.asarray(v, dtype=np.float32) for v in vecs], dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f"{source}: column 'embedding' holds values that are not lists of numbers") from None
    if not np.all(np.isfinite(out)):
        raise DataError(f"{source}: column 'embedding' holds non-finite values")
    return out


def _captions(df: Any, source: str) -> tuple[str, ...] | None:
    caps = [c for c in df["caption"] if c is not None and not (isinstance(c, float) and np.isnan(c))]
    if not caps:
        return None
    if not all(isinstance(c, str) for c in caps):
        raise DataError(f"{source}: column 'caption' holds values that are not strings")
    return tuple(caps)


def _record_sizes(df: Any) -> np.ndarray | None:
    import pandas as pd

    cols = df[["image_w", "image_h", "image_bytes"]].apply(pd.to_numeric, errors="coerce").dropna()
    if cols.empty:
        return None
    arr = cols.to_numpy(dtype=np.float64)
    return np.column_stack([arr[:, 0] * arr[:, 1], arr[:, 2]])


def features_from_records(
    df: Any,
    source: str,
    images: str | Path | None = None,
    max_images: int | None = 5000,
    seed: int = 0,
    embedding: np.ndarray | None = None,
) -> DriftFeatures:
    """The drift inputs of the successful records in ``df`` (a ``load_records`` frame); ``embedding``,
    when given, stands for the embeddings of ``df`` (read apart from the other columns)."""
    if len(df) == 0:
        raise DataError(f"{source}: no records")
    if "outcome" in df.columns and df["outcome"].notna().any():
        df = df[df["outcome"] == "ok"]
        if len(df) == 0:
            raise DataError(f"{source}: no successful records (outcome 'ok')")
    if images is not None:
        stats, names = folder_statistics(images, max_images=max_images, seed=seed), IMAGE_STATS
    else:
        stats, names = _record_sizes(df), RECORD_IMAGE_STATS
    feats = DriftFeatures(
        source=source,
        n_records=int(len(df)),
        confidence=_confidence(df, source),
        embedding=_embedding(df, source) if embedding is None else embedding,
        captions=_captions(df, source),
        image_stats=stats,
        image_stat_names=names if stats is not None else (),
    )
    if not any(feats.available().values()):
        raise DataError(f"{source}: records carry none of confidence, embedding, caption or image sizes")
    return feats


DRIFT_COLUMNS: tuple[str, ...] = ("outcome", "confidence", "caption", "image_w", "image_h", "image_bytes")
"""The record fields drift reads besides the embedding, which is read apart (only the records that carry one)."""


def load_features(
    path: str | Path,
    images: str | Path | None = None,
    max_images: int | None = 5000,
    seed: int = 0,
    *,
    since: float | None = None,
    until: float | None = None,
    sample: int | None = None,
    embedding_sample: int | None = None,
    embeddings: bool = True,
) -> DriftFeatures:
    """``features_from_records`` of a records file, folder or partitioned dataset, read with
    ``harness.records.load_records``: only the drift columns of the successful records in
    ``[since, until)``, at most ``sample`` of them (a seeded sample drawn in the scan); the embeddings
    of at most ``embedding_sample`` records that carry one, and none when ``embeddings`` is false."""
    from harness.records import check_types, load_records

    source = str(path)
    window = {"since": since, "until": until}
    df = load_records(path, DRIFT_COLUMNS, outcome="ok", embeddings="skip", sample=sample, seed=seed, **window)
    if len(df) == 0:
        if len(load_records(path, ("outcome",), **window)) == 0:
            raise DataError(f"{source}: no records" + (" in the time range" if since or until else ""))
        raise DataError(f"{source}: no successful records (outcome 'ok')")
    check_types(df, source, required=("outcome",))
    in_window = int(df.attrs.get("records_in_window", len(df)))
    if embeddings:
        emb = load_records(
            path, ("embedding",), outcome="ok", embeddings="only", sample=embedding_sample, seed=seed, **window
        )
        check_types(emb, source)
        vectors = _embedding(emb, source)
    else:
        vectors = None
    feats = features_from_records(df.assign(embedding=None), source, images, max_images, seed, vectors)
    return dataclasses.replace(feats, n_records=in_window, n_sampled=len(df) if len(df) < in_window else None)
