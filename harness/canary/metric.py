"""What the judge compares: metric declarations and the judge's configuration (Kayenta's defaults)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

__all__ = ["MetricSpec", "JudgeConfig", "DEFAULT_METRICS", "DEFAULT_GROUP_WEIGHTS"]

Kind = Literal["continuous", "rate", "limit"]
Direction = Literal["increase", "decrease", "either"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``direction`` is the change that is bad; a change smaller than the tolerance
    (``tolerance`` x the baseline's median or rate, or ``tolerance_abs``, whichever is larger)
    passes even when significant. A failed ``critical`` metric fails the run outright; a metric that
    ``must_have_data`` makes the run inconclusive (HOLD) when it has none."""

    name: str
    group: str
    kind: Kind = "continuous"
    direction: Direction = "increase"
    critical: bool = False
    must_have_data: bool = False
    tolerance: float = 0.0
    tolerance_abs: float = 0.0
    limit: float | None = None
    unit: str = ""
    description: str = ""


DEFAULT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("latency", "latency", "continuous", "increase", tolerance=0.25, tolerance_abs=0.005, unit="s",
               description="per-request latency of answered requests"),
    MetricSpec("error_rate", "availability", "rate", "increase", critical=True, must_have_data=True,
               tolerance=0.5, tolerance_abs=0.01, description="requests that failed (HTTP 5xx, connection errors, invalid responses)"),
    MetricSpec("timeout_rate", "availability", "rate", "increase", tolerance=0.5, tolerance_abs=0.01,
               description="requests that got no answer in time"),
    MetricSpec("quality", "quality", "continuous", "decrease", critical=True, must_have_data=True,
               tolerance=0.05, tolerance_abs=0.05, unit="CIDEr-D", description="per-image CIDEr-D against the references"),
    MetricSpec("confidence", "quality", "continuous", "decrease", tolerance=0.05, tolerance_abs=0.02,
               description="per-request model confidence"),
    MetricSpec("caption_length", "quality", "continuous", "either", tolerance=0.2, tolerance_abs=1.0, unit="words",
               description="caption length in words"),
    MetricSpec("safety_flag_rate", "safety", "rate", "increase", critical=True, tolerance=0.5, tolerance_abs=0.005,
               description="captions flagged by the safety filter, or unsafe text that slipped past it"),
    MetricSpec("goodput", "slo", "rate", "decrease", tolerance=0.05, tolerance_abs=0.02,
               description="requests answered under the latency threshold with quality at or above the floor"),
)

DEFAULT_GROUP_WEIGHTS: dict[str, float] = {
    "latency": 30.0,
    "availability": 20.0,
    "quality": 25.0,
    "safety": 10.0,
    "slo": 15.0,
}


@dataclass(frozen=True)
class JudgeConfig:
    """Score = weighted mean of group scores, a group's score = Pass / (Pass + High + Low) x 100.
    PROMOTE at ``pass_threshold`` or above, HOLD from ``marginal_threshold``, ROLLBACK below."""

    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    group_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GROUP_WEIGHTS))
    pass_threshold: float = 90.0
    marginal_threshold: float = 75.0
    confidence: float = 0.98
    min_samples: int = 20
    seed: int = 0

    def with_metrics(self, *extra: MetricSpec) -> "JudgeConfig":
        names = {m.name for m in extra}
        return replace(self, metrics=tuple(m for m in self.metrics if m.name not in names) + tuple(extra))

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)
