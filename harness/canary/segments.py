"""Paired tests by segment. A regression that hits one kind of image (low light, one domain, one
camera) hides in a corpus test: a canary that is better on most images and wrong on a tenth of
them moves the corpus sign test by little. Where the data set names each image's segment, the
judge runs a paired metric's own test within each segment that has enough pairs as well
(``harness.canary.judge``), and corrects the p-values for the number of segments tested with
Holm's step-down method, so the segments of one metric together keep its false-failure rate at
alpha. This module holds what that needs besides the tests: the split by segment and Holm."""

from __future__ import annotations

from typing import Mapping, Sequence

from harness.canary.sample import MetricSample

__all__ = ["holm", "split_by_segment"]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given: the i-th smallest of m is multiplied
    by m - i + 1 (i from 1), kept at least the previous adjusted value and at most 1. Rejecting
    where an adjusted p-value is under alpha is Holm's procedure at family-wise error alpha."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    out = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def _part(values, ids: set[str]):
    """The values of the images ``ids`` (a Series indexed by image id); None stays None."""
    if values is None or not hasattr(values, "index"):
        return values
    return values[values.index.astype(str).isin(ids)]


def split_by_segment(sample: MetricSample, segments: Mapping[str, str]) -> dict[str, MetricSample]:
    """The sample of each segment (``segments``: image id as text -> segment), in segment order: both
    targets' values of the segment's images. Images without a segment are in no part."""
    by: dict[str, set[str]] = {}
    for image_id, name in segments.items():
        by.setdefault(name, set()).add(str(image_id))
    return {
        name: MetricSample(_part(sample.baseline, ids), _part(sample.canary, ids)) for name, ids in sorted(by.items())
    }
