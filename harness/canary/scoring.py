"""Kayenta's scoring: the group scores from classified metrics, and the run's score."""

from __future__ import annotations

from typing import Mapping, Sequence

from harness.canary.verdict import GroupResult, MetricResult

__all__ = ["score_groups"]


def score_groups(
    results: Sequence[MetricResult], weights: Mapping[str, float]
) -> tuple[list[GroupResult], float | None]:
    """A group's score is Pass / (Pass + High + Low) x 100 over its metrics with data (NoData and
    informational metrics left out); the run's score is the mean of the group scores weighted by
    ``weights``, over the groups that have data (rounded to 2 decimals; None when none has)."""
    groups = []
    for g, w in weights.items():
        rs = [r for r in results if r.group == g and r.classification != "Info"]
        scored = [r for r in rs if r.classification != "NoData"]
        passed = sum(r.classification == "Pass" for r in scored)
        gs = 100.0 * passed / len(scored) if scored else None
        groups.append(GroupResult(g, w, gs, passed, len(scored) - passed, len(rs) - len(scored)))
    weighted = [(g.weight, g.score) for g in groups if g.score is not None and g.weight > 0]
    score = round(sum(w * s for w, s in weighted) / sum(w for w, _ in weighted), 2) if weighted else None
    return groups, score
