"""METEOR 1.5 (English, normalised) through pycocoevalcap's Java wrapper.

The Java process starts once per scorer (it loads a paraphrase table, several seconds) and is
reused for every corpus the scorer is given.
"""

from __future__ import annotations

import shutil
from typing import Hashable, Mapping

import numpy as np

from harness.errors import ServiceUnavailableError
from harness.quality.scorer import MetricScore, Scorer

__all__ = ["MeteorScorer", "meteor_from_stats", "java_available"]

# Meteor 1.5 parameters for English (alpha, beta, gamma, delta) and the weights of its four
# matching stages (exact, stem, synonym, paraphrase), as the jar applies them with ``-l en``.
ALPHA, BETA, GAMMA, DELTA = 0.85, 0.20, 0.60, 0.75
STAGE_WEIGHTS = (1.0, 0.6, 0.8, 0.6)


def java_available() -> bool:
    return shutil.which("java") is not None


def meteor_from_stats(summed: np.ndarray) -> np.ndarray:
    """METEOR from (summed) 23-field statistics lines, the same formula the jar's EVAL applies
    (sum per-segment lines only after zeroing the chunk count of segments matched whole)."""
    s = np.atleast_2d(np.asarray(summed, dtype=float))
    test_len, ref_len, test_fn, ref_fn = s[:, 0], s[:, 1], s[:, 2], s[:, 3]
    stages = s[:, 4:20].reshape(len(s), 4, 4)  # per stage: test content, ref content, test function, ref function
    w = np.asarray(STAGE_WEIGHTS)
    test_m = (w * (DELTA * stages[:, :, 0] + (1 - DELTA) * stages[:, :, 2])).sum(axis=1)
    ref_m = (w * (DELTA * stages[:, :, 1] + (1 - DELTA) * stages[:, :, 3])).sum(axis=1)
    chunks, test_total, ref_total = s[:, 20], s[:, 21], s[:, 22]
    test_w = DELTA * (test_len - test_fn) + (1 - DELTA) * test_fn
    ref_w = DELTA * (ref_len - ref_fn) + (1 - DELTA) * ref_fn
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(test_w > 0, test_m / test_w, 0.0)
        r = np.where(ref_w > 0, ref_m / ref_w, 0.0)
        f_mean = np.where((p > 0) & (r > 0), p * r / (ALPHA * p + (1 - ALPHA) * r), 0.0)
        whole = (test_total == test_len) & (ref_total == ref_len) & (chunks == 1)
        frag = np.where(whole, 0.0, chunks / ((test_total + ref_total) / 2))
        frag = np.nan_to_num(frag)
    return f_mean * (1 - GAMMA * frag**BETA)


def _clean(text: str) -> str:
    return text.replace("|||", "").replace("  ", " ")


class MeteorScorer(Scorer):
    family = "meteor"
    metrics = ("METEOR",)

    def __init__(self) -> None:
        self._meteor = None

    def _process(self):
        if self._meteor is None:
            if not java_available():
                raise ServiceUnavailableError("java not found: METEOR needs a Java runtime")
            from pycocoevalcap.meteor.meteor import Meteor

            self._meteor = Meteor()
        return self._meteor

    def _readline(self, m) -> str:
        line = m.meteor_p.stdout.readline()
        if not line:
            err = m.meteor_p.stderr.read().decode(errors="replace").strip().splitlines()
            raise ServiceUnavailableError(f"METEOR stopped: {err[-1] if err else 'no output'}")
        return line.decode().strip()

    def score(
        self, references: Mapping[Hashable, list[str]], candidates: Mapping[Hashable, str]
    ) -> tuple[MetricScore, ...]:
        m = self._process()
        keys = list(references)
        with m.lock:
            stat_lines = []
            for k in keys:
                line = " ||| ".join(("SCORE", " ||| ".join(_clean(r) for r in references[k]), _clean(candidates[k])))
                m.meteor_p.stdin.write(f"{line}\n".encode())
                m.meteor_p.stdin.flush()
                stat_lines.append(self._readline(m))
            m.meteor_p.stdin.write(("EVAL ||| " + " ||| ".join(stat_lines) + "\n").encode())
            m.meteor_p.stdin.flush()
            per_image = np.asarray([float(self._readline(m)) for _ in keys], dtype=float)
            corpus = float(self._readline(m))
        stats = np.asarray([[float(x) for x in line.split()] for line in stat_lines], dtype=float).reshape(-1, 23)
        # The jar adds no chunks for a segment matched whole in one chunk when it sums statistics.
        whole = (stats[:, 21] == stats[:, 0]) & (stats[:, 22] == stats[:, 1]) & (stats[:, 20] == 1)
        stats[whole, 20] = 0.0
        return (MetricScore("METEOR", corpus, per_image, stats, meteor_from_stats),)

    def close(self) -> None:
        m, self._meteor = self._meteor, None
        if m is not None:
            with m.lock:
                m.meteor_p.stdin.close()
                m.meteor_p.kill()
                m.meteor_p.wait()
            m.meteor_p.stdout.close()
            m.meteor_p.stderr.close()
