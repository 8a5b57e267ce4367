"""Caption quality: COCO metrics with per-image scores, bootstrap intervals, the hybrid human
score, a label-free estimate from confidence, and the harness's own output checks (personal data,
blocklist, blank and degenerate captions)."""

from harness.quality.bootstrap import Interval, PairedDifference, bootstrap_intervals, paired_bootstrap
from harness.quality.captions import load_candidates, load_references, write_candidates
from harness.quality.checks import (
    CHECKS,
    CaptionChecker,
    CaptionFinding,
    CheckTable,
    DegenerateLimits,
    check_caption,
    check_captions,
)
from harness.quality.estimate import QualityEstimate, QualityModel, fit_quality_model
from harness.quality.hybrid import HybridConfig, HybridScore, Rating, hybrid_score, load_ratings
from harness.quality.report import (
    DEFAULT_FAMILIES,
    FAMILIES,
    QUALITY_JSON,
    QualityReport,
    compare_captions,
    make_scorers,
    paired_table,
    parse_families,
    score_captions,
    write_quality,
)
from harness.quality.scorer import MetricScore, Scorer

__all__ = [
    "MetricScore",
    "Scorer",
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
    "Interval",
    "PairedDifference",
    "bootstrap_intervals",
    "paired_bootstrap",
    "HybridConfig",
    "HybridScore",
    "Rating",
    "hybrid_score",
    "load_ratings",
    "QualityModel",
    "QualityEstimate",
    "fit_quality_model",
    "load_candidates",
    "load_references",
    "write_candidates",
    "CHECKS",
    "CaptionFinding",
    "CaptionChecker",
    "CheckTable",
    "DegenerateLimits",
    "check_caption",
    "check_captions",
]
