"""The canary judge: Kayenta's method (a test per metric, effect-size tolerance, weighted group
scores, critical metrics) with paired tests on the evaluation set, tail-aware latency, and a
statement of what the run could have detected.

Each test (``TEST_FUNCTIONS``) compares the two targets and reports a ``TestOutcome``; one path
(``harness.canary.outcome.classify_outcome``) classifies every outcome. A test classifies by itself
only when there is nothing to compare (NoData), and for a limit or an informational share, which
have no tolerance. Scoring is ``harness.canary.scoring``, the verdict rules ``harness.canary.rules``.

Where the data set names each image's segment, a paired metric's test also runs within each
segment (``_with_segments``), Holm-adjusted over the segments (``harness.canary.segments``), each
segment's outcome classified by the same one path."""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Mapping, Sequence

import numpy as np

from harness.canary.metric import JudgeConfig, MetricSpec
from harness.canary.outcome import TestOutcome, classify_outcome, detectable, format_p, metric_result, tolerance
from harness.canary.outcome import direction_class as _direction_class  # noqa: F401 (benchmarks/sequential.py)
from harness.canary.rules import HALF_NO_DATA, decide
from harness.canary.sample import MetricSample, Missing
from harness.canary.scoring import score_groups
from harness.canary.verdict import MetricResult, SegmentResult, Verdict
from harness.verdicts import Classification

__all__ = ["MetricSample", "judge", "decide", "classify", "score_groups", "TEST_FUNCTIONS", "HALF_NO_DATA"]

TestFunction = Callable[[MetricSpec, MetricSample, JudgeConfig], "TestOutcome | MetricResult"]


def _arr(x) -> np.ndarray:
    if x is None:
        return np.array([], dtype=float)
    if hasattr(x, "to_numpy"):
        x = x.to_numpy()
    a = np.atleast_1d(np.asarray(x, dtype=float))
    return a[np.isfinite(a)]


def _paired(sample: MetricSample, numeric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Align the two sides by image id (Series) or by position (sequences)."""
    a, b = sample.baseline, sample.canary
    if a is None or b is None:
        return np.array([]), np.array([])
    if hasattr(a, "align") and hasattr(b, "align"):  # Series: by image id (a list has .index too)
        a = a[~a.index.duplicated(keep="last")]
        b = b[~b.index.duplicated(keep="last")]
        a, b = a.align(b, join="inner")
        a, b = a.to_numpy(), b.to_numpy()
    else:
        a, b = np.asarray(list(a), dtype=object), np.asarray(list(b), dtype=object)
        if len(a) != len(b):
            raise ValueError("paired samples must have the same length")
    if not numeric:
        keep = np.array([x is not None and y is not None for x, y in zip(a, b)], dtype=bool)
        return a[keep], b[keep]
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    return a[keep], b[keep]


def _z(confidence: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - (1 - confidence) / 2))


def _size(x) -> int:
    return 0 if x is None else len(x) if hasattr(x, "__len__") and not isinstance(x, str) else 1


def _need(
    spec: MetricSpec, a: np.ndarray, b: np.ndarray, need: int, sample: MetricSample | None = None
) -> MetricResult | None:
    """A NoData result when either side has fewer than ``need`` observations (for paired tests:
    pairs; the side named is the one that gave nothing, else the canary)."""
    if len(a) < need or len(b) < need:
        side = "baseline" if len(a) < need else "canary"
        if sample is not None:
            side = "baseline" if _size(sample.baseline) == 0 else "canary"
        na, nb = (len(a), len(b)) if sample is None else (_size(sample.baseline), _size(sample.canary))
        res = metric_result(
            spec,
            "NoData",
            "none",
            f"{side} has {min(len(a), len(b))} observations (needs {need})",
            n_baseline=na,
            n_canary=nb,
            details={"missing": side},
        )
        if spec.must_detect is not None:
            return MetricResult(**{**res.to_dict(), "adequate": False, "detectable": detectable(spec, float("inf"))})
        return res
    return None


def _limit(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    a, b = _arr(sample.baseline), _arr(sample.canary)
    if len(a) == 0 or len(b) == 0:
        side = "baseline" if len(a) == 0 else "canary"
        return metric_result(spec, "NoData", "limit", f"no value for {side}", details={"missing": side})
    av, bv = float(a[0]), float(b[0])
    lim = float(spec.limit if spec.limit is not None else np.inf)
    cls: Classification
    if bv > lim and av > lim:
        cls, why = "NoData", f"both targets exceed the limit {lim:g} (baseline {av:.4g}, canary {bv:.4g}): inconclusive"
    elif bv > lim:
        cls, why = "High", f"canary {bv:.4g} exceeds the limit {lim:g} (baseline {av:.4g})"
    else:
        cls, why = "Pass", f"canary {bv:.4g} within the limit {lim:g} (baseline {av:.4g})"
    return metric_result(
        spec,
        cls,
        "limit",
        why,
        baseline=av,
        canary=bv,
        n_baseline=1,
        n_canary=1,
        effect=bv - av,
        tolerance=lim,
        p_value=sample.p_value,
    )


def _fisher(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> TestOutcome | MetricResult:
    from harness.canary.proportion import rate_difference
    from harness.stats import rate_mde

    a, b = _arr(sample.baseline), _arr(sample.canary)
    if (short := _need(spec, a, b, 1)) is not None:
        return short
    r = rate_difference(int(a.sum()), len(a), int(b.sum()), len(b), cfg.confidence)
    return TestOutcome(
        "fisher_exact",
        baseline=r.baseline_rate,
        canary=r.canary_rate,
        n_baseline=len(a),
        n_canary=len(b),
        p_value=r.p_value,
        effect=r.estimate,
        effect_low=r.low,
        effect_high=r.high,
        relative_to=r.baseline_rate,
        mde=rate_mde(r.baseline_rate, len(a), len(b), cfg.test_confidence, increase=spec.direction != "decrease"),
        what=f"rate ({r.baseline_rate:.2%} -> {r.canary_rate:.2%})",
        details={"count_baseline": int(a.sum()), "count_canary": int(b.sum())},
    )


def _mann_whitney(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> TestOutcome | MetricResult:
    from harness.canary.mann_whitney import mann_whitney_shift
    from harness.stats import normal_mde

    a, b = _arr(sample.baseline), _arr(sample.canary)
    if (short := _need(spec, a, b, cfg.min_samples)) is not None:
        return short
    s = mann_whitney_shift(a, b, cfg.confidence, seed=cfg.seed)
    name = spec.name.replace("_p50", "").replace("_", " ")
    if s.measure == "mean_difference":  # the tolerance is relative to the figure the effect is taken on
        med_a, med_b = float(np.mean(a)), float(np.mean(b))
        what = f"mean {name} (zero-inflated data)"
    else:
        med_a, med_b = float(np.median(a)), float(np.median(b))
        what = f"median {name}"
    return TestOutcome(
        "mann_whitney_u",
        baseline=med_a,
        canary=med_b,
        n_baseline=len(a),
        n_canary=len(b),
        p_value=s.p_value,
        effect=s.estimate,
        effect_low=s.low,
        effect_high=s.high,
        relative_to=med_a,
        mde=normal_mde((s.high - s.low) / (2 * _z(cfg.confidence)), cfg.test_confidence),
        what=what,
        details={"effect_measure": s.measure, "exact_interval": s.exact, "subsampled": s.subsampled},
    )


def _tail(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> TestOutcome | MetricResult:
    from harness.canary.tail import tail_difference
    from harness.stats import normal_mde

    a, b = _arr(sample.baseline), _arr(sample.canary)
    if (short := _need(spec, a, b, cfg.min_samples)) is not None:
        return short
    q = spec.quantile or 0.95
    t = tail_difference(a, b, q, cfg.confidence, seed=cfg.seed)
    pct = f"p{round(q * 100)}"
    return TestOutcome(
        "tail_fisher_exact",
        baseline=t.baseline_q,
        canary=t.canary_q,
        n_baseline=len(a),
        n_canary=len(b),
        p_value=t.p_value,
        effect=t.estimate,
        effect_low=t.low,
        effect_high=t.high,
        relative_to=t.baseline_q,
        mde=normal_mde(t.sd, cfg.test_confidence),
        what=f"{pct} latency",
        note=f"{t.slower_canary} of {t.n_canary} canary requests were slower than the baseline's {pct} "
        f"(baseline: {t.slower_baseline} of {t.n_baseline})",
        details={"quantile": q, "slower_baseline": t.slower_baseline, "slower_canary": t.slower_canary},
    )


def _sign(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> TestOutcome | MetricResult:
    from harness.canary.paired import sign_test
    from harness.stats import sign_mde

    a, b = _paired(sample)
    if (short := _need(spec, a, b, 1, sample)) is not None:
        return short
    s = sign_test(a, b, spec.delta, cfg.confidence, seed=cfg.seed)
    # sign_test counts images lower on the canary as worse; for a metric whose harmful change is
    # an increase (hallucination), the images higher on the canary are the worse ones.
    worse, better = (s.better, s.worse) if spec.direction == "increase" else (s.worse, s.better)
    beyond = f", by more than {spec.delta:g}" if spec.delta else ""
    return TestOutcome(
        "sign_test_paired",
        baseline=float(np.mean(a)),
        canary=float(np.mean(b)),
        n_baseline=s.n,
        n_canary=s.n,
        p_value=s.p_value,
        effect=s.estimate,
        effect_low=s.low,
        effect_high=s.high,
        relative_to=None,  # the effect is a share of images: the absolute tolerance alone
        # the churn both ways is the noise
        mde=sign_mde(s.n, min(s.better, s.worse), cfg.test_confidence, tolerance(spec, None)),
        what=f"per-image {spec.name} ({worse} of {s.n} images worse, {better} better{beyond})",
        details={
            "worse": worse,
            "better": better,
            "pairs": s.n,
            "delta": spec.delta,
            "mean_difference": float(np.mean(b - a)),
        },
    )


def _wilcoxon(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> TestOutcome | MetricResult:
    from harness.canary.paired import paired_shift
    from harness.stats import normal_mde

    a, b = _paired(sample)
    if (short := _need(spec, a, b, cfg.min_samples, sample)) is not None:
        return short
    s = paired_shift(a, b, cfg.confidence, seed=cfg.seed)
    base = float(np.mean(a))
    return TestOutcome(
        "wilcoxon_signed_rank",
        baseline=base,
        canary=float(np.mean(b)),
        n_baseline=s.n,
        n_canary=s.n,
        p_value=s.p_value,
        effect=s.estimate,
        effect_low=s.low,
        effect_high=s.high,
        relative_to=base,
        mde=normal_mde((s.high - s.low) / (2 * _z(cfg.confidence)), cfg.test_confidence),
        what=f"mean per-image {spec.name.replace('_', ' ')} ({s.changed} of {s.n} images changed)",
        details={"pairs": s.n, "changed": s.changed},
    )


def _share(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    a, b = _paired(sample, numeric=False)
    if len(a) == 0:
        return metric_result(
            spec, "NoData", "share", "no image was answered by both targets", details={"missing": "pairs"}
        )
    changed = int(sum(x != y for x, y in zip(a, b)))
    share = changed / len(a)
    why = f"{changed} of {len(a)} images got a different caption ({share:.1%}); informational"
    return metric_result(
        spec,
        "Info",
        "share_changed",
        why,
        baseline=0.0,
        canary=share,
        n_baseline=len(a),
        n_canary=len(a),
        effect=share,
        details={"changed": changed, "pairs": len(a)},
    )


# A test returns its outcome, or a MetricResult when it classifies by itself (no data; a limit or
# an informational share, which have no tolerance).
TEST_FUNCTIONS: dict[str, TestFunction] = {
    "limit": _limit,
    "fisher": _fisher,
    "mann_whitney": _mann_whitney,
    "tail": _tail,
    "sign": _sign,
    "wilcoxon": _wilcoxon,
    "share": _share,
}


def _missing(spec: MetricSpec, sample: MetricSample) -> MetricResult | None:
    """NoData with the reason an observation gave (``Missing``: the data set holds nothing to
    observe, such as no reference captions), or None when both sides gave observations."""
    gone = [
        (side, v) for side, v in (("baseline", sample.baseline), ("canary", sample.canary)) if isinstance(v, Missing)
    ]
    if not gone:
        return None
    reason = gone[0][1].reason
    res = metric_result(
        spec,
        "NoData",
        "none",
        reason,
        n_baseline=0 if isinstance(sample.baseline, Missing) else _size(sample.baseline),
        n_canary=0 if isinstance(sample.canary, Missing) else _size(sample.canary),
        details={"missing": gone[0][0] if len(gone) == 1 else "both"},
    )
    if spec.must_detect is not None:
        return MetricResult(
            **{**res.to_dict(), "adequate": False, "detectable": f"no {spec.name} regression: {reason}"}
        )
    return res


def _segment_results(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> tuple[SegmentResult, ...]:
    """The metric's own test within each segment that has at least ``cfg.min_samples`` pairs, its
    p-values Holm-adjusted over those segments and each outcome classified by the one path
    (``classify_outcome``) at the judge's alpha; each test's interval and power at the family's
    strictest level (alpha over the segments tested), the level Holm's first step tests at.
    Segments with fewer pairs are NoData, outside the family. None with fewer than two segments."""
    from harness.canary.segments import holm, split_by_segment

    parts = split_by_segment(sample, sample.segments or {})
    pairs = {name: len(_paired(part)[0]) for name, part in parts.items()}
    if sum(1 for n in pairs.values() if n) < 2:
        return ()
    tested = [name for name in parts if pairs[name] >= cfg.min_samples]
    strict = replace(cfg, confidence=1.0 - cfg.alpha / max(len(tested), 1), look=None)
    outcomes = {name: TEST_FUNCTIONS[spec.test](spec, parts[name], strict) for name in tested}
    outcomes = {name: o for name, o in outcomes.items() if isinstance(o, TestOutcome)}
    adjusted = dict(zip(outcomes, holm([o.p_value for o in outcomes.values()])))
    out = []
    for name in parts:
        o = outcomes.get(name)
        if o is None:
            if pairs[name]:
                why = f"{pairs[name]} pairs (needs {cfg.min_samples}): not tested"
                out.append(SegmentResult(name, "NoData", False, pairs[name], *[None] * 8, reason=why))
            continue
        r = classify_outcome(spec, replace(o, p_value=adjusted[name], note=""), cfg)
        family = f"Holm-adjusted over {len(outcomes)} segments; unadjusted {format_p(o.p_value)}"
        out.append(
            SegmentResult(
                name,
                r.classification,
                r.failed,
                pairs[name],
                r.baseline,
                r.canary,
                adjusted[name],
                o.p_value,
                r.effect,
                r.effect_low,
                r.effect_high,
                r.tolerance,
                f"{r.reason} ({family})",
                mde=r.mde,
                adequate=r.adequate,
                detectable=r.detectable,
                details=r.details,
            )
        )
    return tuple(out)


def _with_segments(spec: MetricSpec, result: MetricResult, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    """A paired metric's result with its tests by segment (where the data set names segments): a
    failed segment fails the metric, the reason naming it; the figures stay the corpus's."""
    if not sample.segments or not spec.paired or spec.informational or result.classification == "NoData":
        return result
    if not (hasattr(sample.baseline, "align") and hasattr(sample.canary, "align")):
        return result  # values paired by position, not by image: no image to place in a segment
    segments = _segment_results(spec, sample, cfg)
    if not segments:
        return result
    failed = sorted((s for s in segments if s.failed), key=lambda s: s.p_value or 0.0)
    if not failed:
        return replace(result, segments=segments)
    named = "; ".join(f"in segment {s.segment!r}: {s.reason}" for s in failed)
    if result.failed:
        return replace(result, segments=segments, reason=f"{result.reason}; {named}")
    return replace(result, classification=failed[0].classification, failed=True, reason=named, segments=segments)


def classify(spec: MetricSpec, sample: MetricSample, cfg: JudgeConfig) -> MetricResult:
    """Compare one metric's baseline and canary observations with its test and classify; a paired
    metric whose images have segments is tested within each segment too (``_with_segments``)."""
    if (gone := _missing(spec, sample)) is not None:
        return gone
    out = TEST_FUNCTIONS[spec.test](spec, sample, cfg)
    result = out if isinstance(out, MetricResult) else classify_outcome(spec, out, cfg)
    return _with_segments(spec, result, sample, cfg)


def judge(
    samples: Mapping[str, MetricSample], cfg: JudgeConfig = JudgeConfig(), reasons: Sequence[str] = ()
) -> Verdict:
    """Classify every configured metric, score the groups and decide.

    ``reasons`` are conditions found before judging that make the data untrustworthy (a target
    down, the harness's own records corrupt): any of them makes the verdict HOLD.
    Then, in order: a failed critical metric (or a critical metric the canary gave no data for)
    is ROLLBACK; a score under the marginal threshold is ROLLBACK; no data on a required metric,
    at least half of the metrics without data, a run too small to detect what it must
    (underpowered), or a metric that failed decisively (p under ``decisive_p``: a change a person
    must see) is HOLD; a marginal score is HOLD; else PROMOTE. At a look of an interval analysis
    before the last, what is not ROLLBACK is HOLD: the analysis goes on."""
    results = [
        classify(m, samples.get(m.name, MetricSample(None, None)), cfg)
        for m in cfg.metrics
        if not (m.streamed and _nothing(samples.get(m.name)))
    ]
    return decide(results, cfg, reasons)


def _nothing(sample: MetricSample | None) -> bool:
    """Neither target gave an observation (a streamed metric of targets that do not stream)."""
    return sample is None or (_size(sample.baseline) == 0 and _size(sample.canary) == 0)
