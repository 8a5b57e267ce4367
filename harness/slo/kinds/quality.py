"""Quality: every caption returned whose image has a per-image score of the SLO's ``metric``
(CIDEr-D by default, or a column named ``quality``); good when the score is at or above
``threshold``. Scores come from the records or from a table joined by ``image_id`` (and ``target``
when both carry it), such as the ``per_image`` rows of ``quality.json``; else: no data. No metric
of the server shows it: rules need the SLO's own ``promql``."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from harness.slo.kinds import RecordsKind
from harness.validation import Strict

DEFAULT_QUALITY_METRIC = "CIDEr-D"


class QualityFields(Strict):
    threshold: float
    metric: Annotated[str, StringConstraints(min_length=1)] = DEFAULT_QUALITY_METRIC


def _score_column(columns, slo) -> str | None:
    for name in (slo.metric, "quality"):
        if name and name in columns:
            return name
    return None


def quality_scores(df, quality, slo):
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


class Quality(RecordsKind):
    name = "quality"
    events_doc = (
        "every caption whose image has a per-image score of `metric` (CIDEr-D by default) from `--quality "
        "FILE`: `harness evaluate`'s `quality.json` (one target's), or a table of `image_id` and the metric"
    )
    good_doc = 'score at or above the floor (`threshold`); without scores: "no data"'
    fields = QualityFields

    def options(self, fields, path):
        return {"threshold": float(fields.threshold), "metric": fields.metric}

    def describe(self, slo):
        return {"metric": slo.metric}

    def columns(self, slo):
        scores = tuple(c for c in (slo.metric, "quality") if c)
        return super().columns(slo)[0] + ("caption", "image_id", "target"), scores

    def select(self, df, slo, inputs):
        import pandas as pd

        from harness.slo.columns import captioned

        scores = quality_scores(df, inputs.quality, slo)
        if scores is None:
            none = pd.Series(False, index=df.index)
            where = "in the quality table" if inputs.quality is not None else "(pass --quality FILE)"
            return none, none, f"no data: no per-image {slo.metric or 'quality'} scores {where}"
        mask = captioned(df) & scores.notna()
        note = "" if mask.any() else "no data: no scored image among the captions returned"
        return mask, scores >= float(slo.threshold), note


KIND = Quality()
