"""The verdict rules: PROMOTE, HOLD or ROLLBACK from classified metrics and the run's score."""

from __future__ import annotations

from typing import Sequence

from harness.canary.metric import JudgeConfig, MetricSpec
from harness.canary.outcome import detectable, format_p
from harness.canary.scoring import score_groups
from harness.canary.verdict import HOLD, PROMOTE, ROLLBACK, MetricResult, Verdict

__all__ = ["decide", "HALF_NO_DATA"]

HALF_NO_DATA = 0.5  # Kayenta: when at least half of the scored metrics have no data, no verdict


def _required(cfg: JudgeConfig) -> set[str]:
    return {m.name for m in cfg.metrics if m.must_have_data}


def _spec(cfg: JudgeConfig, r: MetricResult) -> MetricSpec:
    try:
        return cfg.metric(r.name)
    except KeyError:
        return MetricSpec(r.name, r.group, r.test)  # type: ignore[arg-type]


def decide(results: Sequence[MetricResult], cfg: JudgeConfig = JudgeConfig(), reasons: Sequence[str] = ()) -> Verdict:
    """The verdict from classified metrics (the rules of ``judge``)."""
    groups, score = score_groups(results, cfg.group_weights)
    out = list(reasons)
    judged = [r for r in results if r.classification != "Info"]
    critical = [r for r in judged if r.critical and r.failed]
    # Kayenta: a critical metric with no data fails the run. Here only when the canary gave none
    # while the baseline did; with no baseline data there is nothing to compare: HOLD.
    critical_nodata = [
        r
        for r in judged
        if r.critical and r.classification == "NoData" and r.details.get("missing") == "canary" and r.n_baseline > 0
    ]
    missing = [
        r for r in judged if r.classification == "NoData" and r.name in _required(cfg) and r not in critical_nodata
    ]
    no_data = [r for r in judged if r.classification == "NoData"]
    underpowered = [r for r in judged if r.adequate is False and r.classification != "NoData"]
    decisive = [r for r in judged if r.failed and r.p_value is not None and r.p_value < cfg.decisive_p]
    thresholds = {"pass": cfg.pass_threshold, "marginal": cfg.marginal_threshold, "confidence": cfg.confidence}
    if reasons:
        out += [f"critical metric {r.name} failed on data that cannot be trusted: {r.reason}" for r in critical]
        verdict = HOLD
    elif critical or critical_nodata:
        out += [f"critical metric {r.name} failed: {r.reason}" for r in critical]
        out += [f"critical metric {r.name} has no data from the canary: {r.reason}" for r in critical_nodata]
        verdict = ROLLBACK
    elif score is not None and score < cfg.marginal_threshold:
        out.append(f"score {score:g} < marginal threshold {cfg.marginal_threshold:g}")
        verdict = ROLLBACK
    elif missing:
        out += [f"no data for required metric {r.name}: {r.reason}" for r in missing]
        verdict = HOLD
    elif score is None:
        out.append("no metric had data on both targets")
        verdict = HOLD
    elif judged and len(no_data) >= HALF_NO_DATA * len(judged):
        out.append(f"{len(no_data)} of {len(judged)} metrics have no data: inconclusive")
        verdict = HOLD
    elif underpowered:
        out += [
            f"underpowered: {r.name} could only detect {r.detectable}, but must detect "
            f"{detectable(_spec(cfg, r), r.must_detect)}"
            for r in underpowered
        ]
        verdict = HOLD
    elif decisive:
        out += [
            f"decisive change in {r.name} ({format_p(r.p_value)} < {cfg.decisive_p:g}): never promoted without a person; "
            f"{r.reason}"
            for r in decisive
        ]
        verdict = HOLD
    elif score >= cfg.pass_threshold:
        out.append(f"score {score:g} >= pass threshold {cfg.pass_threshold:g}")
        verdict = PROMOTE
    else:
        out.append(f"score {score:g} is marginal ({cfg.marginal_threshold:g} <= score < {cfg.pass_threshold:g})")
        verdict = HOLD
    if cfg.look is not None and not cfg.look.final and verdict != ROLLBACK:
        lk = cfg.look
        out.insert(
            0,
            f"look {lk.look} of {lk.looks}: no decisive failure at level {lk.level:.3g}; the analysis goes on "
            f"(PROMOTE only at the last look)",
        )
        verdict = HOLD
    if verdict != PROMOTE:
        out += [f"{r.name}: {r.reason}" for r in results if r.failed and not r.critical]
    return Verdict(verdict, score, tuple(out), tuple(results), tuple(groups), thresholds)
