"""One target's data as a judgement reads it, whatever its source (a run folder, records, a
Prometheus scope): the type the sources produce and the judgement consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["Side"]


@dataclass(frozen=True)
class Side:
    """One target's data as read from its source."""

    evaluation: Any  # records of the evaluation phase (gate runs), or None
    load: Any  # traffic records, or None
    per_image: dict[str, float]
    quality: Mapping[str, Any] = field(default_factory=dict)  # the target's part of quality.json
    pipeline: Mapping[str, Any] | None = None
    captions: bool = True  # False: the records carry no captions (a Prometheus scope)
    timeouts: bool = True  # False: the source cannot see client timeouts (a Prometheus scope)
