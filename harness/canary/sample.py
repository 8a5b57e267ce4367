"""What a metric's observation gives the judge: the samples of both targets. The observations
(``harness.canary.observations``) make them and the judge (``harness.canary.judge``) tests them;
neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["MetricSample", "Missing"]


@dataclass(frozen=True)
class Missing:
    """What an observation gives instead of values when the data set cannot give any, and why
    ("no reference captions"): the metric is NoData with that reason, never a guess."""

    reason: str


@dataclass(frozen=True)
class MetricSample:
    """Observations of one metric on both targets: values (continuous), 0/1 outcomes (rate), a
    single figure each (limit), or for paired tests values keyed by image id (pandas Series; plain
    sequences of equal length pair by position). ``None`` means the target produced no data;
    ``Missing`` that the data set holds nothing to observe (its reason says what).
    ``p_value``: for a limit metric, the p-value of the test behind the canary's figure, if any.
    ``segments``: for a paired metric, each image's segment (image id as text -> segment), where the
    data set names them: the judge tests the pairs of each segment too."""

    baseline: Any
    canary: Any
    p_value: float | None = None  # a test made elsewhere (the drift suite's), for limit metrics
    segments: Mapping[str, str] | None = None
