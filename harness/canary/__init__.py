"""The canary judge: compare baseline and candidate, classify each metric, score, decide."""

from harness.canary.config import load_judge_config, parse_judge_config
from harness.canary.judge import MetricSample, classify, judge
from harness.canary.metric import DEFAULT_GROUP_WEIGHTS, DEFAULT_METRICS, JudgeConfig, MetricSpec
from harness.canary.verdict import HOLD, PROMOTE, ROLLBACK, GroupResult, MetricResult, Verdict

__all__ = [
    "MetricSample",
    "MetricSpec",
    "JudgeConfig",
    "DEFAULT_METRICS",
    "DEFAULT_GROUP_WEIGHTS",
    "judge",
    "load_judge_config",
    "parse_judge_config",
    "classify",
    "Verdict",
    "MetricResult",
    "GroupResult",
    "PROMOTE",
    "HOLD",
    "ROLLBACK",
]
