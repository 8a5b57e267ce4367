"""The decision record as a typed model: one pydantic model per part of ``decision.json``.

``harness.report.decision`` builds, writes and loads records through these models (imported
lazily there, so ``import harness`` stays light); the JSON Schema and the ``decision.json``
section of ``reports/README.md`` are generated from them (``python -m harness.report.schema``).

Schema 2 records are validated strictly: every field documented, no unknown field. Schema 1
records (written before the power statement, the findings and the typed model) are read
leniently: unknown fields are dropped, and parts they may lack are filled by ``from_v1``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from harness.verdicts import Classification, VerdictName

__all__ = [
    "SCHEMA_VERSION",
    "READABLE_VERSIONS",
    "DecisionRecord",
    "MetricRecord",
    "SegmentRecord",
    "GroupRecord",
    "Thresholds",
    "PowerRecord",
    "SloAlert",
    "SloRecord",
    "TargetInfo",
    "LoadShape",
    "Inputs",
    "Interval",
    "TargetFigures",
    "WorstCaption",
    "ContractCheck",
    "ContractReport",
    "FindingExample",
    "Finding",
    "DriftDetector",
    "Drift",
    "Artifacts",
    "derive_power",
    "from_v1",
]

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

Target = Literal["baseline", "canary"]
LENIENT = "lenient"  # validation context key: read a schema 1 record


class Part(BaseModel):
    """Base of every part: frozen, no unknown fields, no NaN or infinity (JSON has none)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown(cls, data: Any, info: ValidationInfo) -> Any:
        """In a schema 1 record, fields this schema does not know are dropped, not refused."""
        if (
            isinstance(data, dict)
            and info.context
            and info.context.get(LENIENT)
            and cls.model_config.get("extra") == "forbid"
        ):
            known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
            return {k: v for k, v in data.items() if k in known}
        return data


def _f(description: str, **kw: Any) -> Any:
    return Field(description=description, **kw)


def _as_text(v: Any) -> Any:
    """What a target reported where text belongs, as text (a target may answer a number or an object)."""
    if v is None or isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list)) else str(v)


ReportedText = Annotated[str | None, BeforeValidator(_as_text)]


# ---------------------------------------------------------------------------- the judge


class SegmentRecord(Part):
    """A paired metric's test within one segment of the data set (``harness.canary.SegmentResult``)."""

    segment: str = _f("the segment's name, as the data set or the records give it (data set text)")
    classification: Classification = _f("Pass, High or Low (failed in that direction), or NoData (too few pairs)")
    failed: bool = _f("true when classified High or Low: the metric fails too, its reason naming the segment")
    pairs: int = _f("images of the segment both targets have a value for")
    baseline: float | None = _f("baseline's figure over the segment's images, as the metric's baseline")
    canary: float | None = _f("canary's figure over the segment's images")
    p_value: float | None = _f(
        "p-value Holm-adjusted over the segments tested for this metric (what is compared with alpha)"
    )
    p_unadjusted: float | None = _f("the test's own p-value within the segment")
    effect: float | None = _f("effect, canary minus baseline, in the metric's effect unit")
    effect_low: float | None = _f("lower bound of the effect's interval (at alpha over the segments tested)")
    effect_high: float | None = _f("upper bound of the effect's interval")
    tolerance: float | None = _f("largest effect that still passes")
    reason: str = _f("why the segment was classified so, in one sentence")
    mde: float | None = _f(
        "smallest harmful effect the segment's pairs detect with 80% power at alpha over the segments tested",
        default=None,
    )
    adequate: bool | None = _f(
        "whether mde meets the metric's must_detect (stated only: a segment's power never holds the run)",
        default=None,
    )
    detectable: str | None = _f("what the segment's pairs could detect, in words", default=None)
    details: dict[str, Any] = _f("the test's own figures (counts, pairs ...)", default_factory=dict)


class MetricRecord(Part):
    """One metric's comparison of canary with baseline (``harness.canary.MetricResult``)."""

    name: str = _f("metric name from the judge's catalogue (e.g. latency_p95, error_rate, quality, burn:SLO)")
    group: str = _f("group the metric scores in (latency, availability, quality, safety, slo)")
    classification: Classification = _f("Pass, High or Low (failed in that direction), NoData, or Info (not scored)")
    failed: bool = _f("true when classified High or Low")
    critical: bool = _f("a failed critical metric rolls the canary back whatever the score")
    test: str = _f("statistical test used (e.g. mann_whitney_u, tail_fisher_exact, sign_test_paired, limit)")
    baseline: float | None = _f("baseline's figure (median, quantile, rate or mean, in unit); null without data")
    canary: float | None = _f("canary's figure, same measure as baseline; null without data")
    n_baseline: int = _f("baseline observations compared (requests, images or pairs)")
    n_canary: int = _f("canary observations compared")
    p_value: float | None = _f("p-value of the test; null when no test ran")
    effect: float | None = _f("effect size, canary minus baseline, in unit")
    effect_low: float | None = _f("lower bound of the effect's confidence interval")
    effect_high: float | None = _f("upper bound of the effect's confidence interval")
    tolerance: float | None = _f("largest effect that still passes (for limit metrics: the limit)")
    direction: str = _f("the harmful direction: increase, decrease or either")
    unit: str = _f("unit of baseline and canary (s, words, CIDEr-D; empty for rates and scores)")
    reason: str = _f("why the metric was classified so, in one sentence")
    mde: float | None = _f("smallest harmful effect this run detects with 80% power, in effect's unit", default=None)
    must_detect: float | None = _f("effect the run must be able to detect (power requirement), if any", default=None)
    adequate: bool | None = _f("whether mde meets must_detect; null without a requirement", default=None)
    detectable: str | None = _f("what the run could detect, in words (e.g. 'p95 +40 ms')", default=None)
    details: dict[str, Any] = _f("the test's own figures (counts, pairs, quantile ...)", default_factory=dict)
    effect_unit: str = _f(
        "unit of effect, its interval, tolerance and mde ('share of images' for the paired sign test; else as unit)",
        default="",
    )
    segments: list[SegmentRecord] = _f(
        "a paired metric's test within each segment of the data set, Holm-adjusted over the segments tested "
        "(empty without segments); a failed segment fails the metric",
        default_factory=list,
    )


class GroupRecord(Part):
    """One metric group's score."""

    name: str = _f("group name")
    weight: float = _f("weight of the group in the run's score")
    score: float | None = _f("Pass / (Pass + High + Low) x 100 over the group's metrics; null without data")
    passed: int = _f("metrics of the group that passed")
    failed: int = _f("metrics of the group classified High or Low")
    no_data: int = _f("metrics of the group without data (not scored)")


class Thresholds(Part):
    """Where the score turns into a verdict."""

    pass_: float = _f("score at or above which the canary is promoted", alias="pass")
    marginal: float = _f("score from which (below pass) the canary is held; below it, rolled back")
    confidence: float = _f("confidence level of every test and interval (e.g. 0.98)")


class PowerRecord(Part):
    """What the run could detect for one metric (from the metric's own power figures)."""

    metric: str = _f("metric name")
    detectable: str | None = _f("what the run could detect, in words")
    mde: float | None = _f(
        "minimum detectable effect at 80% power, in the metric's unit; null with too few observations"
    )
    must_detect: float | None = _f("effect the run must be able to detect; null without a requirement")
    adequate: bool | None = _f("whether mde meets must_detect; null without a requirement")


# ---------------------------------------------------------------------------- SLOs


class SloAlert(Part):
    """One multiwindow burn-rate alert projected at production traffic."""

    severity: str | None = _f("page or ticket")
    factor: float | None = _f("burn-rate factor of the alert (e.g. 14.4)")
    long: str | None = _f("long window (e.g. 1h)")
    short: str | None = _f("short window (e.g. 5m)")
    burn_rate: float | None = _f("projected burn rate at the observed error ratio")
    burn_low: float | None = _f("lower bound of the projected burn rate")
    burn_high: float | None = _f("upper bound of the projected burn rate")
    budget_consumed: float | None = _f("share of the period's error budget spent over the long window")
    decision: str | None = _f("fires, silent or inconclusive")


class SloRecord(Part):
    """One SLO of the spec evaluated on one target's load records."""

    target: Target = _f("baseline or canary")
    name: str = _f("SLO name from the spec")
    kind: str | None = _f("SLI kind (latency, availability, quality, safety, coverage)", default=None)
    segment: str | None = _f("the segment the SLO counts the events of (its `segment:`); null: all", default=None)
    objective: float = _f("objective, a share of good events (e.g. 0.99)")
    sli: float | None = _f("measured SLI (good / total); null without events")
    good: int | float | None = _f("good events", default=None)
    total: int | float | None = _f("events counted", default=None)
    budget_remaining: float | None = _f("share of the error budget left (negative when overspent)", default=None)
    projected_burn_rate: float | None = _f("burn rate of the fastest page alert at production traffic", default=None)
    burn_low: float | None = _f(
        "lower bound of the slowest page alert's burn rate (judged by the burn:SLO metric)", default=None
    )
    page_factor: float | None = _f("burn-rate factor of the slowest page alert", default=None)
    would_page: bool = _f("whether a page alert would fire")
    would_ticket: bool = _f("whether a ticket alert would fire", default=False)
    alerts: list[SloAlert] = _f("every alert of the SLO, projected", default_factory=list)


# ---------------------------------------------------------------------------- what ran


class TargetInfo(Part):
    """One target as the harness reached it."""

    url: str = _f("base URL the harness called")
    protocol: str | None = _f(
        "protocol the harness spoke to it: v1, openai-chat, kserve-v2, torchserve, "
        "hf-inference or template (an adapter file); null in records written before "
        "protocols were recorded",
        default=None,
    )
    model_version: ReportedText = _f("model version the target reported (target text)", default=None)
    model: ReportedText = _f("model name the target reported (target text)", default=None)
    device: ReportedText = _f("device the target reported, e.g. cpu or cuda (target text)", default=None)
    batching: Any = _f("batching settings the target reported, as it reported them", default=None)


class LoadShape(Part):
    """The load sent to each target."""

    users: int | None = _f("concurrent users (closed loop)", default=None)
    rate: float | None = _f("requests per second (open loop)", default=None)
    duration_s: float | None = _f("seconds of load", default=None)
    seed: int | None = _f("seed of the load's image order", default=None)


class Inputs(Part):
    """What ran: targets, scenario, load, dataset, spec, faults and the thresholds derived from them."""

    targets: dict[Target, TargetInfo] = _f("the targets compared, by role")
    scenario: str | None = _f("load scenario (scenarios/)", default=None)
    load: LoadShape | str | None = _f("load shape (free text in some schema 1 records)", default=None)
    duration_s: float | None = _f("seconds of load per target", default=None)
    dataset: str | None = _f("dataset (shapes:N[:shift] or coco:DIR)", default=None)
    spec: str | None = _f("SLO spec file", default=None)
    faults: dict[str, Any] = _f("faults injected during the run, if any", default_factory=dict)
    latency_threshold_s: float | None = _f("latency threshold of goodput, in seconds", default=None)
    quality_floor: float | None = _f("per-image CIDEr-D floor of goodput and calibration", default=None)
    traffic_rps: float | None = _f("production traffic the burn rates are projected at", default=None)
    replay: dict[str, Any] | None = _f(
        "production images replayed to both targets and judged paired: the image store, the sample size asked "
        "for, and how many ids were replayed, skipped as unsafe (not a plain file name, or not a regular file "
        "inside the store) and not found",
        default=None,
    )
    clip: str | None = _f(
        "the image-text encoder that scored the clipscore metric: its name and the first 8 hex digits of the "
        "SHA-256 of its weights (embedded-... for the shapes encoder shipped with the reference model); null when "
        "no caption was scored",
        default=None,
    )


# ---------------------------------------------------------------------------- figures and outputs


class Interval(Part):
    """A confidence interval."""

    low: float | None = _f("lower bound")
    high: float | None = _f("upper bound")
    level: float | None = _f("confidence level", default=None)
    n_resamples: int | None = _f("bootstrap resamples", default=None)
    seed: int | None = _f("bootstrap seed", default=None)


class TargetFigures(Part):
    """One target's figures; other figures may be added (open)."""

    model_config = ConfigDict(extra="allow")

    requests: int | float | None = _f("load requests sent", default=None)
    throughput_rps: float | None = _f("requests per second over the load", default=None)
    p50_s: float | None = _f("median latency of answered requests, seconds", default=None)
    p95_s: float | None = _f("p95 latency, seconds", default=None)
    p99_s: float | None = _f("p99 latency, seconds", default=None)
    coverage: float | None = _f("share of requests answered with a caption", default=None)
    cost_per_1000: float | None = _f("cost of 1,000 captions at the spec's price per hour", default=None)
    error_rate: float | None = _f("share of requests the service failed", default=None)
    timeout_rate: float | None = _f("share of requests without an answer in time", default=None)
    safety_flag_rate: float | None = _f(
        "share of answers flagged unsafe (by the service or the blocklist)", default=None
    )
    pii_rate: float | None = _f("share of answers carrying personal data", default=None)
    blank_rate: float | None = _f("share of answers with a blank caption", default=None)
    mean_confidence: float | None = _f("mean confidence over the evaluation set", default=None)
    auroc: float | None = _f("how well confidence separates captions above the quality floor (AUROC)", default=None)
    cider_d: float | None = _f("corpus CIDEr-D over the evaluation set", default=None)
    cider_d_ci: Interval | None = _f("bootstrap interval of cider_d", default=None)
    hybrid_score: float | None = _f("hybrid quality score (0-100) with human ratings", default=None)
    goodput_rps: float | None = _f("requests per second answered in time with quality at the floor", default=None)
    latency_threshold_s: float | None = _f("latency threshold of goodput, seconds", default=None)
    chair_i: float | None = _f(
        "CHAIR_i over the evaluation set: mentioned objects the image does not hold / mentioned objects "
        "(null: the data set does not say what its images hold, or no caption mentions an object)",
        default=None,
    )
    chair_s: float | None = _f(
        "CHAIR_s over the evaluation set: captions naming an object the image does not hold / captions "
        "(null: the data set does not say what its images hold)",
        default=None,
    )
    clip_score: float | None = _f(
        "mean CLIPScore (Hessel et al.: 2.5 x max(cos(image, caption), 0)) of the evaluation set's captions "
        "against their images, with the encoder inputs.clip names; reference-free (null: not scored)",
        default=None,
    )


class WorstCaption(Part):
    """One of the lowest-scoring captions of a target."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    target: Target = _f("baseline or canary")
    image_id: str = _f("image id in the dataset")
    image_path: str | None = _f("image file (absolute, or relative to the run folder)", default=None)
    caption: str | None = _f("the target's caption (target text)", default=None)
    references: list[str] = _f("reference captions of the image", default_factory=list)
    cider_d: float | None = _f("per-image CIDEr-D", default=None)
    confidence: float | None = _f("the target's confidence", default=None)


class ContractCheck(Part):
    """One expectation of the data contract on the harness's records."""

    rule: str = _f("rule name")
    expectation: str = _f("Great Expectations expectation")
    success: bool = _f("whether the rule held")
    unexpected: int | None = _f("rows that broke it", default=None)
    checked: int | None = _f("rows checked", default=None)
    observed: Any = _f("observed value, when the rule is about one", default=None)
    error: str | None = _f("why it could not be checked", default=None)


class ContractReport(Part):
    """The data contract's result on one set of records."""

    success: bool = _f("whether every expectation held")
    n_records: int = _f("records validated")
    results: list[ContractCheck] = _f("each expectation's result", default_factory=list)


class FindingExample(Part):
    """One answer an output check flagged."""

    model_config = ConfigDict(coerce_numbers_to_str=True)

    request_id: str = _f("request id")
    image_id: str | None = _f("image id", default=None)
    caption: str | None = _f("the caption, clipped (target text)", default=None)
    match: str | None = _f("what the check matched, clipped (target text)", default=None)


class Finding(Part):
    """What one output check found in one target's answers."""

    target: Target = _f("baseline or canary")
    check: str = _f("output check (pii, blocklist, blank, degenerate)")
    count: int = _f("answers flagged")
    answers: int = _f("answers checked")
    examples: list[FindingExample] = _f("a few flagged answers", default_factory=list)


class DriftDetector(Part):
    """One drift detector's verdict on canary outputs against baseline outputs."""

    name: str | None = _f("detector name")
    method: str | None = _f("test or distance (ks, psi, mmd ...)")
    statistic: float | None = _f("test statistic")
    p_value: float | None = _f("p-value, when the method gives one")
    threshold: float | None = _f("threshold, for methods judged by one")
    drift: bool | None = _f("whether this detector found drift")


class Drift(Part):
    """Output drift of the canary against the baseline."""

    drifted: bool = _f("whether the drift suite found drift")
    p_value: float | None = _f(
        "the suite's p-value: its smallest detector's, Bonferroni-adjusted over the detectors", default=None
    )
    detectors: list[DriftDetector] = _f("each detector's verdict", default_factory=list)


class Analysis(Part):
    """Which look of a live analysis this record is, and the error rate the whole analysis keeps."""

    look: int = _f("this look, from 1")
    looks: int = _f("looks in the analysis (lifetime / interval)")
    final: bool = _f("whether this is the last look (only the last may PROMOTE)")
    alpha: float = _f("each metric's false-failure rate over all looks together (at most)")
    spending: str = _f("the alpha-spending function: pocock or obrien_fleming")
    level: float = _f("the significance level of this look's tests")
    alpha_spent: float = _f("the part of alpha spent up to and with this look")
    interval_s: float = _f("seconds between looks")
    lifetime_s: float = _f("seconds the analysis lasts")
    started_unix: float = _f("when the analysis started, unix seconds")
    window_start_unix: float = _f("start of the data judged at this look (cumulative), unix seconds")
    window_end_unix: float = _f("end of the data judged at this look, unix seconds")


class Artifacts(Part):
    """Files of the run, relative to the run folder unless absolute; null when not written."""

    records: str | None = _f("request records of both targets", default=None)
    quality: str | None = _f("caption quality per target", default=None)
    slo: str | None = _f("SLO evaluation per target", default=None)
    drift: str | None = _f("drift report (JSON)", default=None)
    drift_html: str | None = _f("drift report (HTML)", default=None)
    summary_md: str | None = _f("this record as markdown", default=None)
    dataset: str | None = _f("the dataset folder (COCO format) the targets captioned", default=None)


# ---------------------------------------------------------------------------- the record


class DecisionRecord(Part):
    """The decision record (``reports/<run>/decision.json``): the verdict and why, every metric and
    SLO of both targets, what the run could detect, and what ran."""

    schema_version: Literal[1, 2] = _f("2; 1 for records of the first schema, read leniently")
    run_id: str = _f("the run's id")
    created_unix: float = _f("when the record was written, unix seconds")
    verdict: VerdictName = _f("PROMOTE, HOLD (marginal or inconclusive) or ROLLBACK")
    score: float | None = _f("weighted mean of the group scores (0-100); null when no metric had data")
    reasons: list[str] = _f("why, one sentence each (may quote target text)")
    metrics: list[MetricRecord] = _f("every metric's comparison")
    groups: list[GroupRecord] = _f("every group's score")
    thresholds: Thresholds | None = _f("the judge's thresholds; null only in a schema 1 record without them")
    power: list[PowerRecord] = _f("what the run could detect, per metric with power figures (derived from metrics)")
    slos: list[SloRecord] = _f("every SLO on every target")
    inputs: Inputs = _f("what ran")
    figures: dict[Target, TargetFigures] = _f("figures per target", default_factory=dict)
    worst_captions: list[WorstCaption] = _f("lowest-scoring captions per target", default_factory=list)
    contracts: dict[str, ContractReport] = _f("data contract results on the harness's records", default_factory=dict)
    findings: list[Finding] = _f("what the output checks found, per check and target", default_factory=list)
    drift: Drift | None = _f("output drift; null when not measured", default=None)
    analysis: Analysis | None = _f("the look of a live analysis; null for a single judgement", default=None)
    artifacts: Artifacts = _f("files of the run", default_factory=Artifacts)

    @model_validator(mode="after")
    def _power_follows_metrics(self) -> DecisionRecord:
        if self.power != derive_power(self.metrics):
            raise ValueError("power does not match the metrics' mde, must_detect, adequate and detectable")
        return self


def derive_power(metrics: list[MetricRecord]) -> list[PowerRecord]:
    """The power statement: one entry per metric whose test gave power figures."""
    return [
        PowerRecord(metric=m.name, detectable=m.detectable, mde=m.mde, must_detect=m.must_detect, adequate=m.adequate)
        for m in metrics
        if m.mde is not None or m.detectable is not None
    ]


def from_v1(raw: dict[str, Any], run_id: str, created_unix: float) -> dict[str, Any]:
    """A schema 1 record in schema 2's shape (validate it with the ``lenient`` context): the run id
    and time default to ``run_id`` and ``created_unix`` (the folder's name and the file's time),
    groups to none, missing thresholds to null, and power is derived from the metrics."""
    rec = dict(raw)
    rec["schema_version"] = 1
    rec.setdefault("run_id", run_id)
    rec.setdefault("created_unix", created_unix)
    rec.setdefault("groups", [])
    if not rec.get("thresholds"):
        rec["thresholds"] = None
    if "power" not in rec:
        try:
            metrics = [MetricRecord.model_validate(m, context={LENIENT: True}) for m in rec.get("metrics") or []]
        except (ValidationError, TypeError):
            metrics = []  # the record's own validation names the bad metric
        rec["power"] = [p.model_dump() for p in derive_power(metrics)]
    if isinstance(rec.get("inputs"), dict):
        rec["inputs"] = {"targets": {}, **rec["inputs"]}
    return rec
