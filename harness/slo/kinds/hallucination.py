"""Hallucination: every caption returned for an image whose objects are known; good when it names no
object the image does not hold (CHAIR_s of that one caption, ``harness.quality.chair``). The
objects come from the SLO's ``objects`` folder, a data set with an ``instances.json`` (the shapes
world's scenes, or a COCO folder's instance categories joined by those its references mention, as
the CHAIR paper does), relative to the run's folder; records of images the folder does not hold
are no events. No reference caption is needed, so it holds live traffic to an objective wherever
the images it sees are annotated (a labelled sample of production). No metric of the server shows
it: rules need the SLO's own ``promql``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import StringConstraints

from harness.errors import DataError, InputMissingError
from harness.slo.kinds import RecordsKind
from harness.validation import Strict

__all__ = ["KIND"]


class HallucinationFields(Strict):
    objects: Annotated[str, StringConstraints(min_length=1)]


@lru_cache(maxsize=4)
def _objects(folder: Path):
    from harness.quality.chair import dataset_objects

    if not folder.is_dir():
        raise InputMissingError(f"{folder}: the hallucination SLO's objects folder was not found")
    found = dataset_objects(folder)
    if found is None:
        raise DataError(f"{folder}: no instances.json (the images' objects) in the hallucination SLO's objects folder")
    return found


class Hallucination(RecordsKind):
    name = "hallucination"
    events_doc = (
        "every caption returned for an image of the SLO's `objects` folder (a data set with `instances.json`: "
        "the shapes world's scenes or COCO instance categories)"
    )
    good_doc = "the caption names no object the image lacks (CHAIR_s of the caption is 0)"
    fields = HallucinationFields

    def options(self, fields, path):
        return {"options": {"objects": fields.objects}}

    def describe(self, slo):
        return {"objects": slo.options["objects"]}

    def columns(self, slo):
        return super().columns(slo)[0] + ("caption", "image_id"), ()

    def _folder(self, inputs, slo) -> Path:
        p = Path(slo.options["objects"])
        return p if p.is_absolute() or inputs.folder is None else Path(inputs.folder) / p

    def select(self, df, slo, inputs):
        import pandas as pd

        from harness.slo.columns import captioned

        objects = _objects(self._folder(inputs, slo).resolve())
        answered = captioned(df) & df["image_id"].notna()
        flags = pd.Series(None, index=df.index, dtype="boolean")
        if answered.any():
            rows = df[answered]
            flags[answered] = pd.array(objects.hallucinated(rows["image_id"], rows["caption"]), dtype="boolean")
        mask = answered & flags.notna()
        note = "" if mask.any() else "no data: no caption of an image the objects folder holds"
        return mask, ~flags.fillna(True).astype(bool), note


KIND = Hallucination()
