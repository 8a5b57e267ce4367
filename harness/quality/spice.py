"""SPICE, where the Stanford CoreNLP 3.6.0 models it needs are present locally.

pycocoevalcap would download them on first use; the harness never does: without them SPICE is
skipped and the report says why.
"""

from __future__ import annotations

from pathlib import Path
from typing import Hashable, Mapping

import numpy as np

from harness.errors import ServiceUnavailableError
from harness.quality.scorer import MetricScore, Scorer, mean_aggregate, mean_stats

__all__ = ["SpiceScorer", "spice_missing"]

_CORENLP = "stanford-corenlp-3.6.0"


def _spice_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "spice"


def spice_missing() -> str | None:
    """Why SPICE cannot run here, or ``None`` when it can."""
    import shutil

    if shutil.which("java") is None:
        return "java not found"
    d = _spice_dir()
    if d is None or not (d / "spice-1.0.jar").exists():
        return "pycocoevalcap's spice-1.0.jar not found"
    lib = d / "lib"
    missing = [n for n in (f"{_CORENLP}.jar", f"{_CORENLP}-models.jar") if not (lib / n).exists()]
    if missing:
        return f"Stanford CoreNLP models not found ({', '.join(missing)} in {lib})"
    return None


class SpiceScorer(Scorer):
    family = "spice"
    metrics = ("SPICE",)

    def score(
        self, references: Mapping[Hashable, list[str]], candidates: Mapping[Hashable, str]
    ) -> tuple[MetricScore, ...]:
        why = spice_missing()
        if why:
            raise ServiceUnavailableError(f"SPICE cannot run: {why}")
        from pycocoevalcap.spice.spice import Spice

        keys = list(references)
        # SPICE keys its results by image id and sorts them: map to strings it can sort.
        names = {k: f"{i:09d}" for i, k in enumerate(keys)}
        corpus, per_image = Spice().compute_score(
            {names[k]: references[k] for k in keys}, {names[k]: [candidates[k]] for k in keys}
        )
        per_image = np.asarray([s["All"]["f"] for s in per_image], dtype=float)
        return (MetricScore("SPICE", float(corpus), per_image, mean_stats(per_image), mean_aggregate),)
