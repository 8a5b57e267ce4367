"""Quality by segment. Where a data set says which part of it each image belongs to (a shift on a
fraction of the shapes world, a COCO image entry's ``segment``, a record's ``segment`` column), a
regression that hits one kind of image hides in the corpus mean; so every quality figure is also
given per segment, beside the corpus's: the COCO metrics with their intervals (``QualityReport.subset``:
each segment's figures from its images' own statistics, CIDEr-D's document frequencies those of the
whole set), object hallucination (CHAIR) and CLIPScore. Images without a segment count in the corpus
figures only."""

from __future__ import annotations

from typing import Any, Hashable, Iterable, Mapping

__all__ = ["segment_ids", "segment_quality", "segment_table"]


def segment_ids(segments: Mapping[str, str], ids: Iterable[Hashable]) -> dict[str, list[Hashable]]:
    """The ids of each segment (``segments`` maps an image id, as text, to its segment), segments in
    name order; ids without a segment are left out."""
    out: dict[str, list[Hashable]] = {}
    for k in ids:
        name = segments.get(str(k))
        if name is not None:
            out.setdefault(name, []).append(k)
    return dict(sorted(out.items()))


def _clip_figures(clip: Any, keep: set[str]) -> dict[str, Any] | None:
    from harness.quality.clipscore import ClipScoreReport

    captions = [c for c in clip.captions if str(c.image_id) in keep]
    if not captions:
        return None
    sub = ClipScoreReport(clip.model, captions)
    doc = sub.to_dict()
    return {k: doc[k] for k in ("n_captions", "clip_score", "ref_clip_score", "mean_cosine")}


def segment_quality(
    segments: Mapping[str, str], report: Any = None, chair: Any = None, clip: Any = None
) -> dict[str, dict[str, Any]]:
    """Each segment's quality figures: ``report`` (a ``QualityReport``) over its images, ``chair``
    (a ``ChairReport``) and ``clip`` (a ``ClipScoreReport``) over its captions; a part not given,
    or that holds none of the segment's images, is left out. Empty when no image has a segment."""
    from harness.quality.chair import ChairReport

    ids: list[Hashable] = []
    if report is not None:
        ids += list(report.image_ids)
    if chair is not None:
        ids += [c.image_id for c in chair.captions]
    if clip is not None:
        ids += [c.image_id for c in clip.captions]
    groups = segment_ids(segments, dict.fromkeys(str(k) for k in ids))
    out: dict[str, dict[str, Any]] = {}
    for name, members in groups.items():
        keep = set(members)
        doc: dict[str, Any] = {"n_images": len(members)}
        if report is not None:
            scored = [k for k in report.image_ids if str(k) in keep]
            if scored:
                sub = report.subset(scored).to_dict(per_image=False)
                doc.update(n_scored=sub["n_images"], n_references=sub["n_references"], metrics=sub["metrics"])
        if chair is not None:
            caps = tuple(c for c in chair.captions if str(c.image_id) in keep)
            if caps:
                doc["chair"] = ChairReport(chair.vocabulary, caps, chair.attributes).to_dict(per_image=False)
        if clip is not None:
            figures = _clip_figures(clip, keep)
            if figures is not None:
                doc["clipscore"] = figures
        out[name] = doc
    return out


def _cell(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def segment_table(corpus: Mapping[str, Any], segments: Mapping[str, Mapping[str, Any]]) -> str:
    """The corpus's figures and each segment's as a markdown table, a row per figure (``corpus``:
    ``quality.json``'s own top level, which holds the same parts)."""
    names = list(segments)
    columns = [corpus, *(segments[n] for n in names)]
    rows: list[tuple[str, list[Any]]] = [("images", [c.get("n_scored", c.get("n_images")) for c in columns])]
    metrics = list((corpus.get("metrics") or {}).keys())
    for m in metrics:
        rows.append((m, [((c.get("metrics") or {}).get(m) or {}).get("corpus") for c in columns]))
    for key, label in (("chair_i", "CHAIR_i"), ("chair_s", "CHAIR_s")):
        if any(c.get("chair") for c in columns):
            rows.append((label, [(c.get("chair") or {}).get(key) for c in columns]))
    for key, label in (("clip_score", "CLIPScore"), ("ref_clip_score", "RefCLIPScore")):
        if any(c.get("clipscore") for c in columns):
            rows.append((label, [(c.get("clipscore") or {}).get(key) for c in columns]))
    from harness.report.markdown import inline_text  # segment names come from the data set: escaped

    head = "| figure | corpus | " + " | ".join(f"segment {inline_text(n, 60)}" for n in names) + " |"
    lines = [head, "| --- " * (len(names) + 2) + "|"]
    lines += ["| " + label + " | " + " | ".join(_cell(v) for v in values) + " |" for label, values in rows]
    return "\n".join(lines)
