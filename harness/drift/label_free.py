"""Label-free quality of traffic, window by window: the CLIPScore of each answered caption against
the image its record names (``image_id``, looked up in an image store), and, where the store says
what each image holds (``instances.json``, or an exported shapes world), whether the caption names
an object the image does not hold (CHAIR_s). Beside them, each window's mean confidence and the
confidence-based quality estimate (``harness.quality.estimate``) where a mapping is given.

Records hold no image: they name it. Without an image store, or where the records name no image,
the section says so (NoData with the reason) and nothing is guessed. Each figure is given for the
reference and the current window, their change with its test and the smallest change the two
windows could show (80% power), and per time bin of each window (the trend). None of it changes
the drift verdict.

Limits: CLIPScore is only as good as its encoder. The embedded encoder was trained on the shapes
world and means nothing on other images; bring a real CLIP (``--clip PATH``). Records that repeat
an image and caption are not independent, so the tests' p-values are optimistic when traffic
repeats itself."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.stats import POWER, normal_mde, rate_mde, wilson_interval

__all__ = [
    "LABEL_FREE_COLUMNS",
    "WindowScores",
    "score_window",
    "label_free_section",
    "missing_section",
    "trend_step",
    "NO_STORE",
    "NO_IMAGE_IDS",
]

LABEL_FREE_COLUMNS = ("t_start", "image_id", "caption", "confidence")
NO_STORE = (
    "the records name their images by id (image_id) and hold no image: give --image-store DIR (the images by "
    "id, or a data set folder) to score them"
)
NO_IMAGE_IDS = "the records name no image (image_id is empty): there is nothing to score a caption against"
STEPS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 28 * 86400)  # trend bins: the first giving <= 24
MAX_BINS = 24


@dataclass(frozen=True)
class WindowScores:
    """One window's label-free figures per scored record: the record's ``t_start`` beside each
    value. ``clip``: CLIPScore of records whose image the store has; ``hallucinated``: 1/0 for
    records whose image's objects are known; ``confidence``: records that carry one.
    ``n_records``: records in the window; ``n_sampled``: those read (a seeded sample), when fewer;
    ``named``: records naming an image; ``no_image``: of those, records whose image the store
    lacks (or cannot read)."""

    n_records: int
    n_sampled: int | None = None
    named: int = 0
    no_image: int = 0
    clip_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    clip: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hallucinated_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    hallucinated: np.ndarray = field(default_factory=lambda: np.zeros(0))
    confidence_t: np.ndarray = field(default_factory=lambda: np.zeros(0))
    confidence: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def arrays(self) -> dict[str, np.ndarray]:
        """The non-empty arrays, by name (what a saved drift reference keeps)."""
        names = ("clip_t", "clip", "hallucinated_t", "hallucinated", "confidence_t", "confidence")
        return {n: getattr(self, n) for n in names if len(getattr(self, n))}

    def counts(self) -> dict[str, int | None]:
        return {
            "n_records": self.n_records,
            "n_sampled": self.n_sampled,
            "named": self.named,
            "no_image": self.no_image,
        }

    @classmethod
    def restore(cls, counts: dict[str, Any], arrays: dict[str, np.ndarray]) -> WindowScores:
        """The window ``counts()`` and ``arrays()`` describe (a saved drift reference's)."""
        kw = {k: np.asarray(v, dtype=float) for k, v in arrays.items()}
        return cls(
            int(counts["n_records"]),
            None if counts.get("n_sampled") is None else int(counts["n_sampled"]),
            int(counts.get("named") or 0),
            int(counts.get("no_image") or 0),
            **kw,
        )


def score_window(df, store, scorer=None, n_records: int | None = None) -> WindowScores:
    """The label-free figures of one window's answered records (a frame with ``LABEL_FREE_COLUMNS``):
    CLIPScore with ``scorer`` (None: not scored) of each record's caption against the image the
    ``store`` (``harness.quality.image_store.ImageStore``) has for its ``image_id``, each distinct
    (image, caption) scored once; CHAIR_s where the store knows the image's objects."""
    import pandas as pd

    from harness.quality.clipscore import score_pairs

    t = pd.to_numeric(df["t_start"], errors="coerce").to_numpy(dtype=float)
    conf = pd.to_numeric(df["confidence"], errors="coerce").to_numpy(dtype=float)
    ids = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in df["image_id"]]
    caps = ["" if not isinstance(c, str) else c for c in df["caption"]]
    named = [i for i, k in enumerate(ids) if k is not None]
    have = {k for k in {ids[i] for i in named} if store.path(k) is not None}
    clip_t, clip = [], []
    if scorer is not None and have:
        scores, _ = score_pairs(scorer, [(ids[i], caps[i]) for i in named if ids[i] in have], store.read)
        for i in named:
            v = scores.get((ids[i], caps[i]))
            if v is not None:
                clip_t.append(t[i])
                clip.append(v)
        have = {k for k, _ in scores}
    hall_t, hall = [], []
    objects = store.objects
    if objects is not None:
        known = [i for i in named if ids[i] in objects.images]
        hall_t = [t[i] for i in known]
        hall = [float(f) for f in objects.hallucinated([ids[i] for i in known], [caps[i] for i in known])]
        have |= {ids[i] for i in known}
    ok = np.isfinite(conf) & np.isfinite(t)
    timed = [np.isfinite(x) for x in (np.asarray(clip_t, dtype=float), np.asarray(hall_t, dtype=float))]
    clip_t, clip = (np.asarray(v, dtype=float)[timed[0]] for v in (clip_t, clip))
    hall_t, hall = (np.asarray(v, dtype=float)[timed[1]] for v in (hall_t, hall))
    return WindowScores(
        n_records if n_records is not None else len(df),
        None if n_records is None or n_records <= len(df) else len(df),
        len(named),
        sum(1 for i in named if ids[i] not in have),
        clip_t,
        clip,
        hall_t,
        hall,
        t[ok],
        conf[ok],
    )


# ---------------------------------------------------------------------------- figures


def _z(p: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(p))


def _mean_ci(x: np.ndarray) -> list[float] | None:
    """A 95% normal interval of the mean (None with fewer than two values)."""
    if len(x) < 2:
        return None
    half = _z(0.975) * float(np.std(x, ddof=1)) / math.sqrt(len(x))
    m = float(np.mean(x))
    return [m - half, m + half]


def _wilson(k: int, n: int) -> list[float] | None:
    """Wilson's 95% interval of a rate of ``k`` in ``n``, exactly 0 or 1 at a rate of 0 or 1."""
    if n == 0:
        return None
    low, high = wilson_interval(k, n, 0.95)
    return [0.0 if k == 0 else low, 1.0 if k == n else high]


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def _estimate(model: Any, conf: np.ndarray) -> float | None:
    return float(model.estimate(conf).estimate) if model is not None and len(conf) else None


def window_figures(w: WindowScores, quality_model: Any = None) -> dict[str, Any]:
    """One window's figures: counts, mean CLIPScore and hallucination rate with their 95%
    intervals, mean confidence and the confidence-based quality estimate."""
    k = int(np.sum(w.hallucinated)) if len(w.hallucinated) else 0
    return {
        **w.counts(),
        "n_scored": int(len(w.clip)),
        "clip_score": _mean(w.clip),
        "clip_score_ci": _mean_ci(w.clip),
        "n_checked": int(len(w.hallucinated)),
        "hallucinated": k,
        "hallucination_rate": _mean(w.hallucinated),
        "hallucination_rate_ci": _wilson(k, len(w.hallucinated)),
        "mean_confidence": _mean(w.confidence),
        "quality_estimate": _estimate(quality_model, w.confidence),
    }


def _mean_change(a: np.ndarray, b: np.ndarray, alpha: float) -> dict[str, Any] | None:
    """Welch's t-test of the current window's mean against the reference's, and the smallest change
    of the mean the two windows detect with 80% power at ``alpha`` (two-sided)."""
    if len(a) < 2 or len(b) < 2:
        return None
    from scipy import stats

    se = math.sqrt(float(np.var(a, ddof=1)) / len(a) + float(np.var(b, ddof=1)) / len(b))
    if se == 0:
        p = 1.0 if float(np.mean(a)) == float(np.mean(b)) else 0.0
    else:
        p = float(stats.ttest_ind(b, a, equal_var=False).pvalue)
    return {
        "test": "welch_t",
        "effect": float(np.mean(b) - np.mean(a)),
        "p_value": p,
        "significant": p < alpha,
        "min_detectable": normal_mde(se, 1 - alpha),
    }


def _rate_change(a: np.ndarray, b: np.ndarray, alpha: float) -> dict[str, Any] | None:
    """Fisher's exact test of the current window's rate against the reference's, and the smallest
    rise from the reference's rate the two windows detect with 80% power at ``alpha`` (normal
    approximation, the variance at both rates, solved by fixed point)."""
    if not len(a) or not len(b):
        return None
    from scipy import stats

    ka, kb, na, nb = int(a.sum()), int(b.sum()), len(a), len(b)
    p = float(stats.fisher_exact([[kb, nb - kb], [ka, na - ka]]).pvalue)
    p0 = ka / na
    d = rate_mde(p0, na, nb, 1 - alpha)
    return {"test": "fisher_exact", "effect": kb / nb - p0, "p_value": p, "significant": p < alpha, "min_detectable": d}


def trend_step(spans: list[tuple[float, float]]) -> int:
    """The trend's bin: the first of ``STEPS`` that cuts each window into at most 24 bins."""
    longest = max((b - a for a, b in spans), default=0.0)
    return next((s for s in STEPS if longest / s <= MAX_BINS), STEPS[-1])


def _bins(name: str, w: WindowScores, step: int, quality_model: Any) -> list[dict[str, Any]]:
    """The window's figures per ``step`` seconds (bins aligned to multiples of the step, UTC)."""
    times = np.concatenate([w.clip_t, w.hallucinated_t, w.confidence_t])
    if not len(times):
        return []
    out = []
    for start in np.unique(np.floor(times / step) * step):
        lo, hi = float(start), float(start) + step
        clip, hall, conf = (
            vv[(tt >= lo) & (tt < hi)]
            for tt, vv in ((w.clip_t, w.clip), (w.hallucinated_t, w.hallucinated), (w.confidence_t, w.confidence))
        )
        out.append(
            {
                "window": name,
                "start_unix": lo,
                "end_unix": hi,
                "n_scored": int(len(clip)),
                "clip_score": _mean(clip),
                "n_checked": int(len(hall)),
                "hallucination_rate": _mean(hall),
                "n_confidence": int(len(conf)),
                "mean_confidence": _mean(conf),
                "quality_estimate": _estimate(quality_model, conf),
            }
        )
    return out


def _span(w: WindowScores) -> tuple[float, float]:
    times = np.concatenate([w.clip_t, w.hallucinated_t, w.confidence_t])
    return (float(times.min()), float(times.max())) if len(times) else (0.0, 0.0)


def label_free_section(
    windows: dict[str, WindowScores],
    *,
    store: dict[str, Any] | None,
    clip: dict[str, Any] | None,
    clip_reason: str | None,
    hallucination_reason: str | None,
    alpha: float = 0.05,
    quality_model: Any = None,
    step_s: int | None = None,
    comparable: str | None = None,
) -> dict[str, Any]:
    """The drift report's ``label_free`` section from the scored windows (``reference`` and
    ``current``; the reference may be missing). ``clip``: the encoder that scored CLIPScore (its
    ``describe()``), or None with ``clip_reason``; ``hallucination_reason``: why objects are not
    known (None: they are). ``comparable``: why the reference's CLIPScore cannot be compared with
    the current's (another encoder), if so."""
    ref, cur = windows.get("reference"), windows["current"]
    step = step_s or trend_step([_span(w) for w in windows.values()])
    change: dict[str, Any] = {}
    if ref is not None:
        change["clip_score"] = None if comparable else _mean_change(ref.clip, cur.clip, alpha)
        change["hallucination_rate"] = _rate_change(ref.hallucinated, cur.hallucinated, alpha)
    reason = None
    if not any(len(w.clip) or len(w.hallucinated) for w in windows.values()):
        reason = _nothing_scored(windows, clip_reason, hallucination_reason)
    return {
        "reason": reason,
        "store": store,
        "clip": clip,
        "clip_reason": clip_reason,
        "hallucination_reason": hallucination_reason,
        "not_comparable": comparable,
        "alpha": alpha,
        "power": POWER,
        "windows": {name: window_figures(w, quality_model) for name, w in windows.items()},
        "change": change,
        "trend": {
            "step_s": step,
            "bins": [b for name, w in windows.items() for b in _bins(name, w, step, quality_model)],
        },
    }


def _nothing_scored(windows: dict[str, WindowScores], clip_reason: str | None, hall_reason: str | None) -> str:
    named = sum(w.named for w in windows.values())
    if not named:
        return NO_IMAGE_IDS
    lacking = sum(w.no_image for w in windows.values())
    if lacking == named:
        return f"none of the images the {named} records name is in the image store"
    return clip_reason or hall_reason or "no record could be scored"


def missing_section(reason: str, alpha: float = 0.05) -> dict[str, Any]:
    """The section where nothing could be scored at all, and why."""
    return {
        "reason": reason,
        "store": None,
        "clip": None,
        "clip_reason": reason,
        "hallucination_reason": reason,
        "not_comparable": None,
        "alpha": alpha,
        "power": POWER,
        "windows": {},
        "change": {},
        "trend": {"step_s": None, "bins": []},
    }
