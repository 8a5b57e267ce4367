"""Scoring a set of captions against references: corpus figures, intervals, per-image scores."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from harness.errors import DataError, UsageError
from harness.quality.bleu import BleuScorer
from harness.quality.bootstrap import Interval, PairedDifference, bootstrap_intervals, paired_bootstrap
from harness.quality.cider import CiderDScorer
from harness.quality.hybrid import HybridConfig, HybridScore, Rating, hybrid_score
from harness.quality.meteor import MeteorScorer, java_available
from harness.quality.rouge import RougeScorer
from harness.quality.scorer import MetricScore, Scorer
from harness.quality.spice import SpiceScorer, spice_missing
from harness.quality.tokenizer import tokenize

__all__ = [
    "FAMILIES",
    "DEFAULT_FAMILIES",
    "QUALITY_JSON",
    "QualityReport",
    "parse_families",
    "make_scorers",
    "score_captions",
    "compare_captions",
    "paired_table",
    "write_quality",
]

FAMILIES: dict[str, type[Scorer]] = {
    "bleu": BleuScorer,
    "meteor": MeteorScorer,
    "rouge": RougeScorer,
    "cider": CiderDScorer,
    "spice": SpiceScorer,
}
DEFAULT_FAMILIES: tuple[str, ...] = tuple(FAMILIES)
QUALITY_JSON = "quality.json"
_ALIASES = {"rouge-l": "rouge", "rouge_l": "rouge", "cider-d": "cider", "cider_d": "cider"}


def parse_families(text: str | None) -> tuple[str, ...]:
    """``"bleu,cider"`` or ``"all"`` -> metric families, in the canonical order."""
    if not text or text.strip().lower() == "all":
        return DEFAULT_FAMILIES
    wanted = []
    for part in text.split(","):
        name = _ALIASES.get(part.strip().lower(), part.strip().lower())
        if name not in FAMILIES:
            raise UsageError(f"unknown metric {part.strip()!r}; known: {', '.join(FAMILIES)} (or all)")
        wanted.append(name)
    return tuple(f for f in FAMILIES if f in wanted)


def _skipped(families: Sequence[str]) -> dict[str, str]:
    notes = {}
    for fam in families:
        if fam == "meteor" and not java_available():
            notes[fam] = "METEOR skipped: java not found (METEOR 1.5 runs on a Java runtime)"
        elif fam == "spice" and (why := spice_missing()):
            notes[fam] = f"SPICE skipped: {why}"
    return notes


def make_scorers(families: Sequence[str] = DEFAULT_FAMILIES) -> tuple[dict[str, Scorer], tuple[str, ...]]:
    """Scorers that can run here, and a one-line note for each family that cannot."""
    skipped = _skipped(families)
    return {f: FAMILIES[f]() for f in families if f not in skipped}, tuple(skipped.values())


def _clean_float(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


@dataclass(frozen=True, eq=False)
class QualityReport:
    """Scores of candidate captions against references, image by image and over the corpus."""

    image_ids: tuple
    captions: tuple[str, ...]
    scores: tuple[MetricScore, ...]
    intervals: Mapping[str, Interval]
    notes: tuple[str, ...]
    tokenizer: str
    n_references: int
    unscored: tuple = ()
    hybrid: HybridScore | None = None
    bootstrap: Mapping[str, Any] = field(default_factory=dict)
    reference_counts: tuple[int, ...] = ()  # references of each scored image, in order

    def metric(self, name: str) -> MetricScore:
        for s in self.scores:
            if s.name == name:
                return s
        raise KeyError(name)

    def corpus(self) -> dict[str, float]:
        return {s.name: s.corpus for s in self.scores}

    def subset(self, image_ids: Sequence[Hashable]) -> QualityReport:
        """The report over some of its images (a segment): each corpus figure recomputed from their
        per-image statistics, as a bootstrap resample is (BLEU and METEOR aggregated exactly,
        CIDEr-D's document frequencies those of the whole set, so a segment's figures and the
        corpus's are on one scale), and its intervals resampled over these images alone (as many
        resamples, the same level and seed). The hybrid score is not recomputed (None)."""
        keep = set(image_ids)
        idx = np.array([i for i, k in enumerate(self.image_ids) if k in keep], dtype=int)
        if not len(idx):
            raise ValueError("none of these images was scored")
        weights = np.zeros(len(self.image_ids))
        weights[idx] = 1.0
        scores = tuple(
            MetricScore(s.name, float(s.corpus_from(weights)[0]), s.per_image[idx], s.stats[idx], s.aggregate)
            for s in self.scores
        )
        b = self.bootstrap
        n_resamples, level, seed = b.get("n_resamples", 0), b.get("level", 0.95), b.get("seed", 0)
        intervals = bootstrap_intervals(scores, n_resamples, level, seed) if scores and n_resamples > 0 else {}
        counts = tuple(self.reference_counts[i] for i in idx) if self.reference_counts else ()
        return QualityReport(
            tuple(self.image_ids[i] for i in idx),
            tuple(self.captions[i] for i in idx),
            scores,
            intervals,
            self.notes,
            self.tokenizer,
            sum(counts),
            (),
            None,
            dict(self.bootstrap),
            counts,
        )

    def per_image(self) -> list[dict]:
        rows = []
        for i, (image_id, caption) in enumerate(zip(self.image_ids, self.captions)):
            row = {"image_id": image_id, "caption": caption}
            row.update({s.name: _clean_float(s.per_image[i]) for s in self.scores})
            rows.append(row)
        return rows

    def to_dict(self, per_image: bool = True) -> dict:
        doc: dict[str, Any] = {
            "n_images": len(self.image_ids),
            "n_references": self.n_references,
            "unscored_images": len(self.unscored),
            "tokenizer": self.tokenizer,
            "metrics": {
                s.name: {
                    "corpus": _clean_float(s.corpus),
                    "ci": self.intervals[s.name].to_dict() if s.name in self.intervals else None,
                }
                for s in self.scores
            },
            "bootstrap": dict(self.bootstrap),
            "hybrid": self.hybrid.to_dict() if self.hybrid else None,
            "notes": list(self.notes),
        }
        if per_image:
            doc["per_image"] = self.per_image()
        return doc

    def table(self) -> str:
        """The corpus figures as a plain-text table, with the notes below."""
        level = next(iter(self.intervals.values())).level if self.intervals else 0.95
        head = f"{'metric':<10} {'corpus':>8}   {f'{level:.0%} CI':<19}"
        lines = [head, "-" * len(head)]
        for s in self.scores:
            ci = self.intervals.get(s.name)
            span = f"[{ci.low:.4f}, {ci.high:.4f}]" if ci else ""
            lines.append(f"{s.name:<10} {s.corpus:>8.4f}   {span}")
        if self.hybrid:
            lines.append(f"{'hybrid':<10} {self.hybrid.score:>8.2f}   ({self.hybrid.mode}, 0-100)")
        lines.append(
            f"{len(self.image_ids)} images scored, {self.n_references} references; tokenizer: {self.tokenizer}"
        )
        if self.unscored:
            lines.append(f"{len(self.unscored)} reference images had no candidate caption and were not scored")
        lines.extend(self.notes)
        return "\n".join(lines)


def _align(candidates: Mapping[Hashable, str], references: Mapping[Hashable, Sequence[str]]) -> list:
    unknown = [k for k in candidates if k not in references or not references[k]]
    if unknown:
        sample = ", ".join(repr(k) for k in unknown[:3])
        raise DataError(f"{len(unknown)} candidate image ids have no reference captions (e.g. {sample})")
    if not candidates:
        raise DataError("no candidate captions to score")
    return list(candidates)


def _tokenized(ids: list, references, *candidate_sets) -> tuple[dict, list[dict], str]:
    """References and any number of candidate sets, tokenized in one tokenizer call."""
    doc = {("r", k): list(references[k]) for k in ids}
    for j, cands in enumerate(candidate_sets):
        doc.update({(j, k): [cands[k]] for k in ids})
    tok, name = tokenize(doc)
    refs = {k: tok[("r", k)] for k in ids}
    return refs, [{k: tok[(j, k)][0] for k in ids} for j in range(len(candidate_sets))], name


def _run(scorers: Mapping[str, Scorer], refs: dict, cands: dict) -> tuple[MetricScore, ...]:
    out: list[MetricScore] = []
    for fam in FAMILIES:
        if fam in scorers:
            out.extend(scorers[fam].score(refs, cands))
    return tuple(out)


def score_captions(
    candidates: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    families: Sequence[str] = DEFAULT_FAMILIES,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    ratings: Sequence[Rating] | None = None,
    hybrid: HybridConfig | None = HybridConfig(),
    scorers: Mapping[str, Scorer] | None = None,
) -> QualityReport:
    """Score ``candidates`` (image id -> caption) against ``references`` (image id -> captions).

    Pass ``scorers`` (from ``make_scorers``) to reuse them, and their Java processes, across
    calls; otherwise they are made here and closed at the end.
    """
    ids = _align(candidates, references)
    own = scorers is None
    if own:
        scorers, notes = make_scorers(families)
    else:
        skipped = _skipped(families)
        scorers = {f: s for f, s in scorers.items() if f in families and f not in skipped}
        notes = tuple(skipped.values())
    try:
        refs, (cands,), tok_name = _tokenized(ids, references, candidates)
        scores = _run(scorers, refs, cands)
    finally:
        if own:
            for s in scorers.values():
                s.close()
    intervals = bootstrap_intervals(scores, n_resamples, level, seed) if scores and n_resamples > 0 else {}
    hyb = None
    cider = next((s for s in scores if s.name == "CIDEr-D"), None)
    if hybrid is not None and (cider is not None or ratings):
        per_image = dict(zip(ids, cider.per_image)) if cider is not None else None
        hyb = hybrid_score(per_image, ratings, hybrid, cider.corpus if cider is not None else None)
    unscored = tuple(k for k in references if k not in candidates)
    return QualityReport(
        tuple(ids),
        tuple(candidates[k] for k in ids),
        scores,
        intervals,
        notes,
        tok_name,
        sum(len(references[k]) for k in ids),
        unscored,
        hyb,
        {"n_resamples": n_resamples, "level": level, "seed": seed, "method": "percentile, images resampled"},
        tuple(len(references[k]) for k in ids),
    )


def compare_captions(
    a: Mapping[Hashable, str],
    b: Mapping[Hashable, str],
    references: Mapping[Hashable, Sequence[str]],
    families: Sequence[str] = ("cider",),
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    scorers: Mapping[str, Scorer] | None = None,
) -> tuple[PairedDifference, ...]:
    """Paired comparison of two targets' captions on the images both captioned (``a - b``)."""
    ids = [k for k in a if k in b]
    if not ids:
        raise DataError("the two caption sets share no image ids")
    _align({k: a[k] for k in ids}, references)
    own = scorers is None
    if own:
        scorers, _ = make_scorers(families)
    else:
        scorers = {f: s for f, s in scorers.items() if f in families}
    try:
        refs, (ca, cb), _ = _tokenized(ids, references, a, b)
        sa, sb = _run(scorers, refs, ca), _run(scorers, refs, cb)
    finally:
        if own:
            for s in scorers.values():
                s.close()
    return tuple(paired_bootstrap(x, y, n_resamples, level, seed) for x, y in zip(sa, sb))


def paired_table(diffs: Sequence[PairedDifference], a: str = "candidates", b: str = "compare") -> str:
    """The paired differences ``a - b`` as a plain-text table."""
    if not diffs:
        return ""
    level = diffs[0].interval.level
    head = f"{'metric':<10} {a:>10} {b:>10} {'difference':>11}   {f'{level:.0%} CI':<21} {'p':>6}"
    lines = [head, "-" * len(head)]
    for d in diffs:
        lines.append(
            f"{d.metric:<10} {d.a:>10.4f} {d.b:>10.4f} {d.difference:>+11.4f}   "
            f"[{d.interval.low:+.4f}, {d.interval.high:+.4f}] {d.p_value:>6.3f}"
        )
    lines.append(f"paired on {diffs[0].n_images} images both captioned")
    return "\n".join(lines)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


def write_quality(doc: QualityReport | Mapping[str, Any], out_dir: str | Path, name: str = QUALITY_JSON) -> Path:
    """Write the report (or a document built on it) as ``quality.json`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = doc.to_dict() if isinstance(doc, QualityReport) else doc
    path = out / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_json_safe(data), indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)
    return path
