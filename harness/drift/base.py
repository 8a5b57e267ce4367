"""The detector base: fit on a reference once, score a current sample, return a frozen result.

A subclass implements ``score`` (and may override ``preprocess`` and ``fit_reference``); the base
validates input, subsamples to ``max_n`` and to the time budget, decides, times the work, and
saves or loads the fitted reference (JSON for parameters and small values, npz for arrays).
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.errors import DataError, InputMissingError, UsageError

__all__ = [
    "Score",
    "DriftResult",
    "Detector",
    "VectorDetector",
    "DETECTORS",
    "measured_flops",
    "subsample",
    "blas_threads",
    "to_jsonable",
]

DETECTORS: dict[str, type["Detector"]] = {}


@dataclass(frozen=True)
class Score:
    """What ``Detector.score`` returns: the statistic with a p-value, or with a decision threshold.

    ``min_detectable`` is the smallest value of the statistic that this test, at these sample
    sizes and this level, would flag as drift (the critical value)."""

    statistic: float
    p_value: float | None = None
    threshold: float | None = None
    min_detectable: float | None = None
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DriftResult:
    """One detector's verdict on one current sample, with everything needed to read it."""

    detector: str
    method: str
    feature: str
    statistic_name: str
    statistic: float
    p_value: float | None
    alpha: float
    threshold: float | None
    drift: bool
    n_reference: int
    n_current: int
    n_reference_used: int
    n_current_used: int
    min_detectable: float | None
    seconds: float
    note: str | None = None
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DriftResult":
        return cls(**data)


def to_jsonable(value: Any) -> Any:
    """``value`` with numpy types made plain and non-finite floats made None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a uniform random subset of ``k`` of ``range(n)`` (all when k >= n)."""
    if k >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=k, replace=False))


@functools.lru_cache(maxsize=1)
def measured_flops() -> float:
    """Float32 matrix-multiply throughput of this machine (flop/s), measured once per process."""
    a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
    a @ a
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * 512**3 / max(best, 1e-9)


def blas_threads(flop: float, parallel_above: float = 5e9):
    """Single-threaded BLAS for small problems (thread start-up and contention on a shared
    machine cost more than they save); the library's default for large ones."""
    if flop >= parallel_above:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(1)


class Detector(ABC):
    """Fit on a reference, then ``predict(current)`` returns a ``DriftResult``.

    ``alpha`` is the false-alarm rate the test is calibrated to; ``max_n`` caps each side's sample
    size; ``time_budget_s`` shrinks both sides further until the detector's estimated cost fits.
    """

    kind: ClassVar[str] = ""
    method: ClassVar[str] = ""
    statistic_name: ClassVar[str] = ""
    min_samples: ClassVar[int] = 2
    PARAMS: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            DETECTORS[cls.kind] = cls

    def __init__(
        self,
        feature: str = "value",
        *,
        alpha: float = 0.05,
        max_n: int | None = None,
        time_budget_s: float | None = None,
        seed: int = 0,
        flops: float | None = None,
    ):
        if not 0.0 < alpha < 1.0:
            raise UsageError(f"alpha must be between 0 and 1 (got {alpha})")
        if max_n is not None and max_n < self.min_samples:
            raise UsageError(f"max_n must be at least {self.min_samples} (got {max_n})")
        if time_budget_s is not None and time_budget_s <= 0:
            raise UsageError(f"time budget must be positive (got {time_budget_s})")
        self.feature = feature
        self.alpha = float(alpha)
        self.max_n = max_n
        self.time_budget_s = time_budget_s
        self.seed = int(seed)
        self.flops = flops
        self.state: dict[str, Any] = {}

    # -- what a subclass provides ------------------------------------------------------------
    def preprocess(self, data: Any, side: str) -> Any:
        """Validate and convert one side's raw data; rows are samples. Default: finite floats."""
        x = np.asarray(data, dtype=np.float64)
        if x.ndim != 1:
            raise DataError(f"{side} {self.feature}: expected one value per sample (got shape {x.shape})")
        if not np.all(np.isfinite(x)):
            raise DataError(f"{side} {self.feature}: values must be finite numbers")
        return x

    def fit_reference(self, reference: Any) -> None:
        """Learn statistics of the (subsampled) reference into ``self.state``; optional."""

    def cost(self, n_reference: int, n_current: int) -> float:
        """Estimated floating-point operations of one ``score`` call; 0 means cheap."""
        return 0.0

    @abstractmethod
    def score(self, current: Any, reference: Any, rng: np.random.Generator) -> Score:
        """Compare ``current`` with ``reference`` (both preprocessed and subsampled)."""

    # -- the machinery -----------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return "reference" in self.state

    def params(self) -> dict[str, Any]:
        base = {
            "feature": self.feature,
            "alpha": self.alpha,
            "max_n": self.max_n,
            "time_budget_s": self.time_budget_s,
            "seed": self.seed,
        }
        return base | {name: getattr(self, name) for name in self.PARAMS}

    def _check(self, x: Any, side: str) -> None:
        n = _length(x)
        if n < self.min_samples:
            raise DataError(f"{side} {self.feature}: {n} samples, need at least {self.min_samples}")

    def fit(self, reference: Any) -> "Detector":
        """Preprocess and store the reference (subsampled to ``max_n``) and its statistics."""
        x = self.preprocess(reference, "reference")
        self._check(x, "reference")
        n = _length(x)
        rng = np.random.default_rng([self.seed, 1])
        if self.max_n is not None and n > self.max_n:
            x = _take(x, subsample(n, self.max_n, rng))
        self.state = {"reference": x, "n_reference": n}
        self.fit_reference(x)
        return self

    def _sizes(self, n_ref: int, n_cur: int) -> tuple[int, int, str | None]:
        nr = min(n_ref, self.max_n or n_ref)
        nc = min(n_cur, self.max_n or n_cur)
        why = "max_n" if (nr, nc) != (n_ref, n_cur) else None
        if self.time_budget_s is not None and self.cost(nr, nc) > 0:
            rate = self.flops or measured_flops()
            while self.cost(nr, nc) / rate > self.time_budget_s and max(nr, nc) > self.min_samples:
                nr = max(self.min_samples, int(nr * 0.9))
                nc = max(self.min_samples, int(nc * 0.9))
                why = "time budget"
        return nr, nc, why

    def predict(self, current: Any) -> DriftResult:
        """Score ``current`` against the fitted reference and decide at level ``alpha``."""
        if not self.fitted:
            raise UsageError(f"{self.kind} detector for {self.feature}: fit it on a reference first")
        t0 = time.perf_counter()
        y = self.preprocess(current, "current")
        self._check(y, "current")
        x = self.state["reference"]
        n_ref_total, n_cur = int(self.state["n_reference"]), _length(y)
        nr, nc, why = self._sizes(_length(x), n_cur)
        rng = np.random.default_rng([self.seed, 2])
        x = _take(x, subsample(_length(x), nr, rng))
        y = _take(y, subsample(n_cur, nc, rng))
        with blas_threads(self.cost(nr, nc)):
            s = self.score(y, x, rng)
        if s.p_value is not None:
            drift = bool(s.p_value <= self.alpha)
        elif s.threshold is not None:
            drift = bool(s.statistic > s.threshold)
        else:
            raise TypeError(f"{type(self).__name__}.score returned neither a p-value nor a threshold")
        note = None
        if why or nr < n_ref_total:
            note = (
                f"subsampled to {nr} of {n_ref_total} reference and {nc} of {n_cur} current samples ({why or 'max_n'})"
            )
        return DriftResult(
            detector=self.kind,
            method=self.method,
            feature=self.feature,
            statistic_name=self.statistic_name,
            statistic=float(s.statistic),
            p_value=None if s.p_value is None else float(s.p_value),
            alpha=self.alpha,
            threshold=None if s.threshold is None else float(s.threshold),
            drift=drift,
            n_reference=n_ref_total,
            n_current=n_cur,
            n_reference_used=nr,
            n_current_used=nc,
            min_detectable=None if s.min_detectable is None else float(s.min_detectable),
            seconds=time.perf_counter() - t0,
            note=note,
            details=to_jsonable(s.details),
        )

    # -- persistence -------------------------------------------------------------------------
    def to_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, numeric arrays) describing the fitted detector."""
        meta: dict[str, Any] = {"kind": self.kind, "params": self.params(), "state": {}}
        arrays: dict[str, np.ndarray] = {}
        for key, value in self.state.items():
            if isinstance(value, np.ndarray) and value.dtype != object:
                arrays[key] = value
            elif isinstance(value, np.ndarray):
                meta["state"][key] = {"object_array": [list(v) if isinstance(v, (list, tuple)) else v for v in value]}
            else:
                meta["state"][key] = to_jsonable(value)
        return meta, arrays

    @staticmethod
    def from_state(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> "Detector":
        cls = DETECTORS.get(meta.get("kind", ""))
        if cls is None:
            raise DataError(f"unknown detector kind {meta.get('kind')!r} in a saved reference")
        det = cls(**meta["params"])
        state: dict[str, Any] = {}
        for key, value in meta["state"].items():
            if isinstance(value, dict) and set(value) == {"object_array"}:
                arr = np.empty(len(value["object_array"]), dtype=object)
                arr[:] = [tuple(v) if isinstance(v, list) else v for v in value["object_array"]]
                state[key] = arr
            else:
                state[key] = value
        state.update({k: np.asarray(v) for k, v in arrays.items()})
        det.state = state
        return det

    def save(self, path: str | Path) -> Path:
        """Write ``PATH.json`` and ``PATH.npz``; returns the JSON path."""
        path = Path(path)
        meta, arrays = self.to_state()
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path.with_suffix(".npz"), **arrays)
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        return path.with_suffix(".json")

    @staticmethod
    def load(path: str | Path) -> "Detector":
        path = Path(path)
        if not path.with_suffix(".json").exists():
            raise InputMissingError(f"{path.with_suffix('.json')}: saved detector not found")
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: unreadable saved detector ({type(exc).__name__})") from None
        return Detector.from_state(meta, arrays)


class VectorDetector(Detector):
    """A detector over fixed-size vectors (one row per sample), such as embeddings."""

    def preprocess(self, data: Any, side: str) -> np.ndarray:
        try:
            x = np.asarray(data, dtype=np.float32)
        except (ValueError, TypeError):
            raise DataError(f"{side} {self.feature}: vectors of different sizes") from None
        if x.ndim != 2:
            raise DataError(f"{side} {self.feature}: expected one vector per sample (got shape {x.shape})")
        if not np.all(np.isfinite(x)):
            raise DataError(f"{side} {self.feature}: values must be finite numbers")
        if self.fitted and x.shape[1] != self.state["reference"].shape[1]:
            raise DataError(
                f"{side} {self.feature}: vectors of size {x.shape[1]}, "
                f"the reference's are of size {self.state['reference'].shape[1]}"
            )
        return x


def _length(x: Any) -> int:
    return int(x.shape[0]) if hasattr(x, "shape") else len(x)


def _take(x: Any, idx: np.ndarray) -> Any:
    if len(idx) == _length(x) and np.array_equal(idx, np.arange(len(idx))):
        return x
    return x[idx]
