"""The judge's result: per-metric comparisons, group scores, the score and the verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from harness.verdicts import HOLD, PROMOTE, ROLLBACK, VERDICT_EXIT, Classification, VerdictName

__all__ = ["MetricResult", "SegmentResult", "GroupResult", "Verdict", "PROMOTE", "HOLD", "ROLLBACK"]


@dataclass(frozen=True)
class SegmentResult:
    """A paired metric's test within one segment of the data set. ``p_value`` is Holm-adjusted over
    the segments tested for the metric (compared with the judge's alpha), ``p_unadjusted`` the test's
    own; the figures, the classification, the reason and the power statement are as a metric's
    (``MetricResult``), the power at the family's strictest level (alpha over the segments tested).
    A segment with too few pairs is NoData and not in the family."""

    segment: str
    classification: Classification
    failed: bool
    pairs: int
    baseline: float | None
    canary: float | None
    p_value: float | None
    p_unadjusted: float | None
    effect: float | None
    effect_low: float | None
    effect_high: float | None
    tolerance: float | None
    reason: str
    mde: float | None = None
    adequate: bool | None = None
    detectable: str | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MetricResult:
    """One metric's comparison. ``mde`` is the smallest harmful effect (in ``effect``'s units) this
    run detects with 80% power; ``adequate`` says whether that meets ``must_detect``;
    ``detectable`` says it in words. ``details`` holds the test's own figures. ``unit`` is the
    unit of ``baseline`` and ``canary``; ``effect_unit`` that of the effect, its interval, the
    tolerance and ``mde`` (they differ for the sign test: mean CIDEr-D vs a share of images).
    ``segments``: a paired metric's tests within each segment of the data set (``SegmentResult``);
    a failed segment fails the metric, its reason naming the segment."""

    name: str
    group: str
    classification: Classification
    failed: bool
    critical: bool
    test: str
    baseline: float | None
    canary: float | None
    n_baseline: int
    n_canary: int
    p_value: float | None
    effect: float | None
    effect_low: float | None
    effect_high: float | None
    tolerance: float | None
    direction: str
    unit: str
    reason: str
    mde: float | None = None
    must_detect: float | None = None
    adequate: bool | None = None
    detectable: str | None = None
    details: dict = field(default_factory=dict)
    effect_unit: str = ""
    segments: tuple[SegmentResult, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GroupResult:
    name: str
    weight: float
    score: float | None
    passed: int
    failed: int
    no_data: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    verdict: VerdictName
    score: float | None
    reasons: tuple[str, ...]
    metrics: tuple[MetricResult, ...]
    groups: tuple[GroupResult, ...]
    thresholds: dict

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "score": self.score,
            "reasons": list(self.reasons),
            "metrics": [m.to_dict() for m in self.metrics],
            "groups": [g.to_dict() for g in self.groups],
            "thresholds": dict(self.thresholds),
        }

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict]
