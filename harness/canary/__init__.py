"""The canary judge: compare baseline and candidate, classify each metric, score, decide."""

from harness.canary.config import load_judge_config, parse_judge_config
from harness.canary.judge import MetricSample, classify, decide, judge, score_groups
from harness.canary.metric import (
    DEFAULT_GROUP_WEIGHTS,
    DEFAULT_METRICS,
    JudgeConfig,
    MetricSpec,
    burn_metric,
    drift_metric,
)
from harness.canary.verdict import HOLD, PROMOTE, ROLLBACK, GroupResult, MetricResult, SegmentResult, Verdict

__all__ = [
    "MetricSample",
    "MetricSpec",
    "JudgeConfig",
    "DEFAULT_METRICS",
    "DEFAULT_GROUP_WEIGHTS",
    "judge",
    "decide",
    "score_groups",
    "burn_metric",
    "drift_metric",
    "load_judge_config",
    "parse_judge_config",
    "classify",
    "Verdict",
    "MetricResult",
    "SegmentResult",
    "GroupResult",
    "PROMOTE",
    "HOLD",
    "ROLLBACK",
]
