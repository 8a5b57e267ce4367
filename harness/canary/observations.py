"""From one target's records to what the judge compares: per-request and per-image observations
(no aggregation here: the judge tests distributions). Each metric of ``harness.canary.metric``
names one function of this module as its ``observe``.

Whatever a target answers is an observation about that target: an unexpected HTTP status is an
error, an empty caption is a blank answer, a body without a usable caption is unusable. Only the
harness's own records can make a run untrustworthy (``harness.records.contract``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from harness.canary.sample import MetricSample, Missing

if TYPE_CHECKING:
    from harness.report.model import Finding

__all__ = ["TargetData", "metric_samples", "error_flags", "timeout_flags", "FINDING_EXAMPLES", "NO_REFERENCES"]

FINDING_EXAMPLES = 5
NO_REFERENCES = "no reference captions"  # why a metric scored against references has no data


def _status(df) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(df["status"], errors="coerce").fillna(0).astype(int).to_numpy()


def error_flags(df) -> np.ndarray:
    """1 for a request the service failed: any 5xx or status outside 2xx/4xx, 429 (turned away),
    no connection. Other 4xx are the client's fault (the bad-inputs scenario sends them on purpose);
    timeouts and unusable 2xx answers have metrics of their own."""
    st = _status(df)
    out = df["outcome"].to_numpy()
    odd = (st != 0) & ((st < 200) | (st >= 500) | ((st >= 300) & (st < 400)))
    return (odd | (st == 429) | (out == "connection_error")).astype(float)


def timeout_flags(df) -> np.ndarray:
    return (df["outcome"].to_numpy() == "timeout").astype(float)


@dataclass(frozen=True)
class TargetData:
    """One target's records and what was measured on them. ``evaluation`` and ``load`` are record
    DataFrames (either may be None), ``per_image_quality`` maps image id (as text) to CIDEr-D.
    For the canary, ``baseline_quality`` is the baseline's per-image quality: an image the canary
    made worse (by more than ``quality_delta``) is a bad caption for calibration. ``objects``: what
    each image of the evaluation set holds (``harness.quality.chair.DatasetObjects``), None when
    the set does not say; ``references``: False when the set has no reference captions (the
    metrics scored against them have no data, for that reason); ``segments``: each image's segment
    (image id as text -> segment) where the data set names them: the paired metrics are tested
    within each segment too; ``clip_scores``: the CLIPScore of each evaluated caption against its
    image (image id as text -> score), or ``Missing`` with the reason it could not be scored."""

    evaluation: Any = None
    load: Any = None
    per_image_quality: Mapping[str, float] = field(default_factory=dict)
    latency_threshold: float = 0.5
    quality_floor: float = 0.5
    blocklist: Sequence[str] = ()
    drifted: float | None = None
    drift_p_value: float | None = None
    burn: Mapping[str, float | Missing | None] = field(default_factory=dict)
    baseline_quality: Mapping[str, float] | None = None
    quality_delta: float = 0.0
    # False when the records carry no captions or cannot see client timeouts (a Prometheus scope):
    # the metrics drawn from them have no data rather than passing on empty captions.
    has_captions: bool = True
    has_timeouts: bool = True
    objects: Any = None
    references: bool = True
    segments: Mapping[str, str] | None = None
    clip_scores: Mapping[str, float] | Missing | None = None

    @cached_property
    def records(self):
        """Both phases in one frame (None when neither has records)."""
        import pandas as pd

        frames = [d for d in (self.evaluation, self.load) if d is not None and len(d)]
        return pd.concat(frames, ignore_index=True) if frames else None

    @cached_property
    def answers(self):
        """The records with a caption document (outcome ok)."""
        r = self.records
        return None if r is None else r[r["outcome"] == "ok"]

    @cached_property
    def checks(self):
        """The harness's own output checks on every answered caption (``harness.quality.checks``)."""
        from harness.quality.checks import check_captions

        a = self.answers
        if a is None or not self.has_captions:
            return None
        return check_captions(list(a["caption"]), blocklist=self.blocklist)

    @cached_property
    def evaluated(self):
        """Evaluation answers, one per image (the last when repeated), indexed by image id."""
        ev = self.evaluation
        if ev is None or not len(ev):
            return None
        ok = ev[ev["outcome"] == "ok"].copy()
        ok.index = ok["image_id"].astype(str)
        return ok[~ok.index.duplicated(keep="last")]

    @cached_property
    def chair(self):
        """CHAIR of the evaluation's captions against what each image holds
        (``harness.quality.chair.ChairReport``); None without evaluation answers or objects."""
        ev = self.evaluated
        if ev is None or self.objects is None or not self.has_captions:
            return None
        return self.objects.chair(dict(zip(ev.index, ev["caption"].fillna("").astype(str))))


# ---------------------------------------------------------------------------- per request


def latency(t: TargetData):
    import pandas as pd

    ld = t.load
    if ld is None or not len(ld):
        return None
    ok = ld[ld["outcome"] == "ok"]
    return pd.to_numeric(ok["latency_s"], errors="coerce").dropna().to_numpy(dtype=float)


def _streamed_ok(t: TargetData, column: str):
    """The answered records of both phases holding ``column`` (a streamed answer's timing, which the
    httpx clients and the Locust user record alike, ``harness.client.StreamRead``); None without."""
    ld = t.records
    if ld is None or not len(ld) or column not in ld.columns:
        return None
    ok = ld[(ld["outcome"] == "ok") & ld[column].notna()]
    return ok if len(ok) else None


def ttft(t: TargetData):
    """Time to first token of each answered streamed request (None when the target does not stream)."""
    import pandas as pd

    ok = _streamed_ok(t, "ttft_s")
    return None if ok is None else pd.to_numeric(ok["ttft_s"], errors="coerce").dropna().to_numpy(dtype=float)


def itl(t: TargetData):
    """Every inter-token gap of the answered streamed requests, pooled (None without any)."""
    ok = _streamed_ok(t, "itl_s")
    if ok is None:
        return None
    values = [float(x) for v in ok["itl_s"].tolist() if hasattr(v, "__len__") for x in v]
    out = np.asarray(values, dtype=float)
    return out[np.isfinite(out)] if len(out) else None


def errors(t: TargetData):
    return None if t.records is None else error_flags(t.records)


def timeouts(t: TargetData):
    return None if t.records is None or not t.has_timeouts else timeout_flags(t.records)


def _answered(t: TargetData):
    """Records with a 2xx answer, usable or not."""
    r = t.records
    if r is None:
        return None
    st = _status(r)
    return r[(st >= 200) & (st < 300)]


def unusable(t: TargetData):
    a = _answered(t) if t.has_captions else None
    return None if a is None else (a["outcome"].to_numpy() == "invalid_response").astype(float)


def _flag(t: TargetData, check: str):
    c = t.checks
    return None if c is None else np.asarray(c.flags(check), dtype=float)


def blank(t: TargetData):
    return _flag(t, "blank")


def pii(t: TargetData):
    return _flag(t, "pii")


def degenerate(t: TargetData):
    return _flag(t, "degenerate")


def unsafe(t: TargetData):
    """Flagged by the service, or carrying a blocklisted word it let through (found by the harness)."""
    a, c = t.answers, t.checks
    if a is None or c is None:
        return None
    flagged = a["safety_flagged"].fillna(False).astype(bool).to_numpy()
    return (flagged | np.asarray(c.flags("blocklist"), dtype=bool)).astype(float)


def goodput(t: TargetData):
    import pandas as pd

    ld = t.load
    if ld is None or not len(ld):
        return None
    lat = pd.to_numeric(ld["latency_s"], errors="coerce")
    if not t.per_image_quality:  # no references (production traffic): answered in time is good
        return ((ld["outcome"] == "ok") & (lat <= t.latency_threshold)).to_numpy(dtype=float)
    q = ld["image_id"].astype(str).map(t.per_image_quality)
    known = q.notna().to_numpy() | (ld["outcome"] != "ok").to_numpy()
    good = (ld["outcome"] == "ok") & (lat <= t.latency_threshold) & (q.fillna(-np.inf) >= t.quality_floor)
    return good.to_numpy(dtype=float)[known]


def traffic_confidence(t: TargetData):
    """Confidence of every answer (unpaired: production traffic has no evaluation phase)."""
    import pandas as pd

    a = t.answers
    return None if a is None else pd.to_numeric(a["confidence"], errors="coerce").dropna().to_numpy(dtype=float)


def traffic_caption_length(t: TargetData):
    """Words of every answered caption (unpaired)."""
    a = t.answers if t.has_captions else None
    return None if a is None else a["caption"].fillna("").astype(str).str.split().str.len().to_numpy(dtype=float)


# ---------------------------------------------------------------------------- per image (paired)


def quality(t: TargetData):
    import pandas as pd

    if not t.references:
        return Missing(NO_REFERENCES)
    if not t.per_image_quality:
        return None
    return pd.Series(dict(t.per_image_quality), dtype=float)


def hallucination(t: TargetData):
    """Per image, 1 when its caption names an object the image does not hold (a category of the
    data set's vocabulary with no object of it in the image: the caption's CHAIR_s), else 0.
    Missing when the data set does not say what its images hold."""
    import pandas as pd

    if t.evaluated is None or not t.has_captions:
        return None
    if t.objects is None:
        from harness.quality.chair import NO_OBJECTS

        return Missing(NO_OBJECTS)
    return pd.Series({str(c.image_id): float(c.chair_s) for c in t.chair.captions}, dtype=float)


def clipscore(t: TargetData):
    """Per image, the CLIPScore of its caption against the image itself (reference-free); Missing
    with the reason where the captions could not be scored (no images, no torch, turned off)."""
    import pandas as pd

    c = t.clip_scores
    if isinstance(c, Missing):
        return c
    if t.evaluated is None or not t.has_captions or c is None:
        return None
    return pd.Series(dict(c), dtype=float)


def confidence(t: TargetData):
    import pandas as pd

    ev = t.evaluated
    return None if ev is None else pd.to_numeric(ev["confidence"], errors="coerce").dropna()


def caption_length(t: TargetData):
    ev = t.evaluated
    return None if ev is None else ev["caption"].fillna("").astype(str).str.split().str.len().astype(float)


def caption_text(t: TargetData):
    ev = t.evaluated
    return None if ev is None else ev["caption"].fillna("").astype(str)


def good_captions(t: TargetData):
    """Per image, whether the caption is good: quality at or above the floor and, on the canary,
    not worse than the baseline's caption of the same image by more than the delta."""
    q = quality(t)
    if q is None or isinstance(q, Missing):
        return None
    good = q >= t.quality_floor
    if t.baseline_quality:
        import pandas as pd

        base = pd.Series(dict(t.baseline_quality), dtype=float).reindex(q.index)
        good &= ~(q < base - t.quality_delta)
    return good


def calibration(t: TargetData):
    """Per image, the Brier error of confidence as a forecast of a good caption."""
    if not t.references:
        return Missing(NO_REFERENCES)
    conf, good = confidence(t), good_captions(t)
    if conf is None or good is None:
        return None
    conf, good = conf.align(good, join="inner")
    return (conf - good.astype(float)) ** 2


def auroc(t: TargetData) -> float | None:
    """How well confidence separates good captions from bad ones (None when the evaluation set has
    only one kind)."""
    conf, good = confidence(t), good_captions(t)
    if conf is None or good is None:
        return None
    conf, good = conf.align(good, join="inner")
    g = good.to_numpy(dtype=bool)
    if g.all() or not g.any():
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(g, conf.to_numpy()))


# ---------------------------------------------------------------------------- findings


def findings(t: TargetData, target: str) -> list[Finding]:
    """The output checks' findings on this target, as the decision record holds them: per check,
    how many answers and a few examples."""
    a, c = t.answers, t.checks
    if a is None or c is None:
        return []
    from harness.quality.checks import CHECKS
    from harness.report.model import Finding, FindingExample

    out = []
    for check in CHECKS:
        flags = np.asarray(c.flags(check), dtype=bool)
        if not flags.any():
            continue
        idx = np.flatnonzero(flags)[:FINDING_EXAMPLES]
        matches = c.matches(check)
        examples = [
            FindingExample(
                request_id=str(r.request_id),
                image_id=None if r.image_id is None else str(r.image_id),
                caption=_clip(r.caption),
                match=_clip("; ".join(matches[i]), 120),
            )
            for r, i in zip(a.iloc[idx].itertuples(), idx)
        ]
        out.append(
            Finding(target=target, check=check, count=int(flags.sum()), answers=int(len(flags)), examples=examples)
        )
    return out


def _clip(text: Any, n: int = 300) -> str | None:
    if text is None:
        return None
    s = str(text)
    return s if len(s) <= n else s[: n - 1] + "…"


def metric_samples(specs, baseline: TargetData, canary: TargetData) -> dict[str, MetricSample]:
    """Each metric's observations on both targets, drawn by its own ``observe``; a paired metric's
    carry the images' segments (the baseline's data set's: both captioned the same images)."""
    return {
        m.name: MetricSample(
            m.observe(baseline),
            m.observe(canary),
            m.p_value(canary) if m.p_value else None,
            baseline.segments if m.paired else None,
        )
        for m in specs
        if m.observe is not None
    }
