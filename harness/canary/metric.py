"""What the judge compares, declared once per metric: its name, group, harmful direction,
tolerance, criticality, the power the run must have for it, how its observations are drawn from
a target's records, and which test compares them (``harness.canary.judge.TESTS``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:
    from harness.canary.observations import TargetData
    from harness.canary.sequential import Look

__all__ = [
    "MetricSpec",
    "JudgeConfig",
    "DEFAULT_METRICS",
    "DEFAULT_GROUP_WEIGHTS",
    "TESTS",
    "burn_metric",
    "drift_metric",
    "for_traffic",
    "CLIP_EMBEDDED",
    "CLIP_OFF",
]

CLIP_EMBEDDED, CLIP_OFF = "embedded", "off"  # the judge config's clip: the shipped encoder, or none

Test = Literal["mann_whitney", "tail", "fisher", "sign", "wilcoxon", "share", "limit"]
Direction = Literal["increase", "decrease", "either"]
TESTS: tuple[str, ...] = ("mann_whitney", "tail", "fisher", "sign", "wilcoxon", "share", "limit")
PAIRED_TESTS = ("sign", "wilcoxon", "share")


@dataclass(frozen=True)
class MetricSpec:
    """One metric. ``direction`` is the change that is bad; a change smaller than the tolerance
    (``tolerance`` x the baseline's figure, or ``tolerance_abs``, whichever is larger; for the
    sign test ``tolerance_abs`` is a share of images) passes even when significant. A failed
    ``critical`` metric fails the run outright, and so does a critical metric the canary gave no
    data for; a metric that ``must_have_data`` makes the run inconclusive (HOLD) when it has none.
    ``must_detect``: the run must be able to detect an effect this large (80% power), else it is
    underpowered (HOLD). ``streamed``: a metric of streamed answers (``ttft_s``, ``itl_s``), left
    out of the judgement, not NoData, when neither target gave an observation (neither streams),
    so that it changes no verdict of targets that do not stream. ``observe`` draws one target's observations from its records: an array,
    or for paired tests a Series indexed by image id; ``p_value``, for a limit metric, the
    p-value of the test behind the canary's figure (drift)."""

    name: str
    group: str
    test: Test = "mann_whitney"
    direction: Direction = "increase"
    critical: bool = False
    must_have_data: bool = False
    tolerance: float = 0.0
    tolerance_abs: float = 0.0
    must_detect: float | None = None
    quantile: float | None = None
    delta: float = 0.0
    limit: float | None = None
    unit: str = ""
    description: str = ""
    streamed: bool = False
    observe: Callable[["TargetData"], Any] | None = field(default=None, compare=False, repr=False)
    p_value: Callable[["TargetData"], float | None] | None = field(default=None, compare=False, repr=False)

    @property
    def paired(self) -> bool:
        return self.test in PAIRED_TESTS

    @property
    def informational(self) -> bool:
        return self.test == "share"


def _obs(name: str) -> Callable[["TargetData"], Any]:
    """The observation function of that name in ``harness.canary.observations`` (loaded lazily,
    so declaring metrics imports neither pandas nor numpy)."""

    def observe(target: "TargetData") -> Any:
        import harness.canary.observations as observations

        return getattr(observations, name)(target)

    observe.__name__ = name
    return observe


DEFAULT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "latency_p50",
        "latency",
        "mann_whitney",
        "increase",
        tolerance=0.25,
        tolerance_abs=0.005,
        unit="s",
        observe=_obs("latency"),
        description="latency of answered load requests: the median (Hodges-Lehmann shift)",
    ),
    MetricSpec(
        "latency_p95",
        "latency",
        "tail",
        "increase",
        tolerance=0.5,
        tolerance_abs=0.01,
        quantile=0.95,
        must_detect=0.25,
        unit="s",
        observe=_obs("latency"),
        description="latency p95: requests slower than the baseline's p95 (Fisher), quantile difference",
    ),
    MetricSpec(
        "latency_p99",
        "latency",
        "tail",
        "increase",
        tolerance=1.0,
        tolerance_abs=0.02,
        quantile=0.99,
        unit="s",
        observe=_obs("latency"),
        description="latency p99: requests slower than the baseline's p99 (Fisher), quantile difference",
    ),
    MetricSpec(
        "ttft_p50",
        "latency",
        "mann_whitney",
        "increase",
        tolerance=0.25,
        tolerance_abs=0.005,
        unit="s",
        streamed=True,
        observe=_obs("ttft"),
        description="time to first token of answered streamed requests: the median (Hodges-Lehmann shift); "
        "only where a target streams",
    ),
    MetricSpec(
        "ttft_p95",
        "latency",
        "tail",
        "increase",
        tolerance=0.5,
        tolerance_abs=0.01,
        quantile=0.95,
        unit="s",
        streamed=True,
        observe=_obs("ttft"),
        description="time to first token p95: requests slower than the baseline's p95 (Fisher), quantile "
        "difference; only where a target streams",
    ),
    MetricSpec(
        "itl_p95",
        "latency",
        "tail",
        "increase",
        tolerance=0.5,
        tolerance_abs=0.005,
        quantile=0.95,
        unit="s",
        streamed=True,
        observe=_obs("itl"),
        description="inter-token gaps p95, the gaps of all answered streamed requests pooled (as vLLM's ITL "
        "percentiles): gaps slower than the baseline's p95 (Fisher), quantile difference; the gaps of one request "
        "are not independent, so its p-value is optimistic; only where a target streams",
    ),
    MetricSpec(
        "error_rate",
        "availability",
        "fisher",
        "increase",
        critical=True,
        must_have_data=True,
        tolerance=0.5,
        tolerance_abs=0.01,
        must_detect=0.03,
        observe=_obs("errors"),
        description="requests the service failed: any 5xx or other unexpected status, 429, no connection",
    ),
    MetricSpec(
        "timeout_rate",
        "availability",
        "fisher",
        "increase",
        critical=True,
        tolerance=0.5,
        tolerance_abs=0.01,
        observe=_obs("timeouts"),
        description="requests that got no answer in time (as unavailable as a 5xx: critical)",
    ),
    MetricSpec(
        "unusable_rate",
        "availability",
        "fisher",
        "increase",
        critical=True,
        tolerance=0.0,
        tolerance_abs=0.005,
        observe=_obs("unusable"),
        description="2xx answers without a usable caption document (unparseable, confidence out of range)",
    ),
    MetricSpec(
        "blank_rate",
        "availability",
        "fisher",
        "increase",
        critical=True,
        tolerance=0.0,
        tolerance_abs=0.005,
        observe=_obs("blank"),
        description="answered captions that are empty or blank",
    ),
    MetricSpec(
        "quality",
        "quality",
        "sign",
        "decrease",
        critical=True,
        must_have_data=True,
        tolerance_abs=0.02,
        delta=0.1,
        must_detect=0.1,
        unit="CIDEr-D",
        observe=_obs("quality"),
        description="per-image CIDEr-D, paired: images worse by more than the delta against images better",
    ),
    MetricSpec(
        "hallucination",
        "quality",
        "sign",
        "increase",
        critical=True,
        tolerance_abs=0.02,
        observe=_obs("hallucination"),
        description="per image, whether the caption names an object the image does not hold (CHAIR_s), paired: "
        "images where only the canary's caption does against images where only the baseline's does (on these 0/1 "
        "pairs the sign test is McNemar's exact test); needs the data set's objects (the shapes world, or a COCO "
        "folder's instances.json), else NoData",
    ),
    MetricSpec(
        "clipscore",
        "quality",
        "wilcoxon",
        "decrease",
        # 2% of the baseline's mean, at least 0.01. On the embedded encoder (mean about 2.3 on the
        # shapes world) a caption of another scene scores about 2.0 lower and one wrong attribute
        # about 0.5 lower (benchmarks/clipscore.py): a tenth of the images with either moves the
        # mean by 0.2 or 0.05, beyond the 0.046 that passes. The paper's figures on COCO with
        # OpenAI's CLIP are about 0.7-0.8, where 2% is 0.015.
        tolerance=0.02,
        tolerance_abs=0.01,
        unit="CLIPScore",
        observe=_obs("clipscore"),
        description="per-image CLIPScore (Hessel et al.: 2.5 x max(cos(image, caption), 0)) of the caption "
        "against its own image, paired; reference-free, so it judges a data set without references too; the "
        "embedded shapes encoder unless the judge config's clip names a local CLIP folder (off: not scored); "
        "NoData without the data set's images or without torch",
    ),
    MetricSpec(
        "confidence",
        "quality",
        "wilcoxon",
        "decrease",
        tolerance=0.05,
        tolerance_abs=0.02,
        observe=_obs("confidence"),
        description="per-image model confidence, paired (Wilcoxon signed-rank)",
    ),
    MetricSpec(
        "calibration",
        "quality",
        "wilcoxon",
        "increase",
        tolerance_abs=0.02,
        observe=_obs("calibration"),
        description="per-image Brier error of confidence for a good caption (at or above the quality floor, "
        "and on the canary not worse than the baseline's), paired",
    ),
    MetricSpec(
        "caption_length",
        "quality",
        "wilcoxon",
        "either",
        tolerance=0.2,
        tolerance_abs=1.0,
        unit="words",
        observe=_obs("caption_length"),
        description="caption length in words, paired",
    ),
    MetricSpec(
        "degenerate_rate",
        "quality",
        "fisher",
        "increase",
        tolerance=0.5,
        tolerance_abs=0.005,
        observe=_obs("degenerate"),
        description="captions with repeated words or n-grams, or outlier length",
    ),
    MetricSpec(
        "caption_changed",
        "quality",
        "share",
        "either",
        observe=_obs("caption_text"),
        description="share of images whose caption differs from the baseline's (informational)",
    ),
    MetricSpec(
        "pii_rate",
        "safety",
        "fisher",
        "increase",
        critical=True,
        tolerance=0.0,
        tolerance_abs=0.002,
        observe=_obs("pii"),
        description="captions carrying personal data (e-mail, phone, payment card, IP address, URL, "
        "national, tax and health IDs, passport and driver licence, bank account and IBAN, bitcoin and MAC "
        "addresses), found by the harness",
    ),
    MetricSpec(
        "safety_flag_rate",
        "safety",
        "fisher",
        "increase",
        critical=True,
        tolerance=0.5,
        tolerance_abs=0.005,
        observe=_obs("unsafe"),
        description="captions flagged by the service, or carrying a blocklisted word it let through",
    ),
    MetricSpec(
        "goodput",
        "slo",
        "fisher",
        "decrease",
        tolerance=0.05,
        tolerance_abs=0.02,
        observe=_obs("goodput"),
        description="requests answered under the latency threshold with quality at or above the floor",
    ),
)

# Latency weighs 40 with three metrics (p50, p95, p99): one of them failing holds a canary whose
# other groups pass (score 86.7), two roll it back (73.3). Quality and safety have critical metrics.
DEFAULT_GROUP_WEIGHTS: dict[str, float] = {
    "latency": 40.0,
    "availability": 20.0,
    "quality": 15.0,
    "safety": 10.0,
    "slo": 15.0,
}


def burn_metric(slo: str, page_factor: float) -> MetricSpec:
    """The projected burn rate of one SLO of the spec against its lowest page factor: a canary
    that would page while the baseline would not is a decisive failure (critical)."""

    def observe(target: "TargetData") -> Any:
        return target.burn.get(slo)

    return MetricSpec(
        f"burn:{slo}",
        "slo",
        "limit",
        critical=True,
        limit=page_factor,
        observe=observe,
        description=f"projected burn rate of SLO {slo} (lower 95% bound)",
    )


def drift_metric(limit: float = 0.5) -> MetricSpec:
    """Canary outputs drifted from the baseline's (1) or not (0), by the drift suite."""

    def observe(target: "TargetData") -> Any:
        return target.drifted

    def p_value(target: "TargetData") -> float | None:
        return target.drift_p_value

    return MetricSpec(
        "output_drift",
        "quality",
        "limit",
        limit=limit,
        observe=observe,
        p_value=p_value,
        description="canary outputs drifted from baseline outputs (1) or not (0)",
    )


# On traffic alone (no evaluation phase on both targets), these paired metrics are compared over
# every answer instead, unpaired.
UNPAIRED: dict[str, str] = {"confidence": "traffic_confidence", "caption_length": "traffic_caption_length"}


def for_traffic(cfg: "JudgeConfig") -> "JudgeConfig":
    """The config for records of traffic only (production): confidence and caption length are
    compared over every answer (Mann-Whitney, the metric's own tolerance and direction); the other
    paired metrics cannot have data, so missing it does not hold the verdict (they say NoData)."""
    out = []
    for m in cfg.metrics:
        if m.name in UNPAIRED and m.test == "wilcoxon":
            m = replace(
                m,
                test="mann_whitney",
                observe=_obs(UNPAIRED[m.name]),
                description=m.description + "; on traffic alone: every answer, unpaired (Mann-Whitney)",
            )
        elif m.paired:
            m = replace(m, must_have_data=False)
        out.append(m)
    return replace(cfg, metrics=tuple(out))


@dataclass(frozen=True)
class JudgeConfig:
    """Score = weighted mean of group scores, a group's score = Pass / (Pass + High + Low) x 100.
    PROMOTE at ``pass_threshold`` or above, HOLD from ``marginal_threshold``, ROLLBACK below.
    A metric that failed with a p-value under ``decisive_p`` is a decisive change: never promoted
    without a person (HOLD at best). ``look``: the look of an interval analysis this judgement is.
    ``clip``: the image-text encoder that scores the ``clipscore`` metric: ``embedded`` (the shapes
    encoder shipped with the reference model), a local CLIP folder, or ``off``."""

    metrics: tuple[MetricSpec, ...] = DEFAULT_METRICS
    group_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_GROUP_WEIGHTS))
    pass_threshold: float = 90.0
    marginal_threshold: float = 75.0
    confidence: float = 0.98
    min_samples: int = 20
    seed: int = 0
    decisive_p: float = 1e-6
    look: "Look | None" = None
    clip: str = CLIP_EMBEDDED

    @property
    def alpha(self) -> float:
        """The significance level of this judgement's tests: ``1 - confidence``, or in an interval
        analysis the level of the current look (``harness.canary.sequential``)."""
        return self.look.level if self.look is not None else 1.0 - self.confidence

    @property
    def test_confidence(self) -> float:
        """``1 - alpha``: the level the power statements are computed at."""
        return 1.0 - self.alpha

    def with_metrics(self, *extra: MetricSpec) -> "JudgeConfig":
        names = {m.name for m in extra}
        return replace(self, metrics=tuple(m for m in self.metrics if m.name not in names) + tuple(extra))

    def metric(self, name: str) -> MetricSpec:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(name)
