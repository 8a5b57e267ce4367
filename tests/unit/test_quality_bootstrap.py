"""Bootstrap intervals and the paired bootstrap, on constructed scores with known answers."""

import numpy as np
import pytest

from harness.quality import MetricScore, bootstrap_intervals, paired_bootstrap
from harness.quality.bleu import bleu_from_counts
from harness.quality.bootstrap import resample_weights
from harness.quality.scorer import mean_aggregate, mean_stats


def mean_score(name, values):
    v = np.asarray(values, dtype=float)
    return MetricScore(name, float(v.mean()), v, mean_stats(v), mean_aggregate)


def test_resample_weights_are_seeded_counts():
    a = np.concatenate(list(resample_weights(7, 600, seed=5)))
    b = np.concatenate(list(resample_weights(7, 600, seed=5)))
    assert a.shape == (600, 7)
    np.testing.assert_array_equal(a, b)
    assert (a.sum(axis=1) == 7).all()
    assert not np.array_equal(a, np.concatenate(list(resample_weights(7, 600, seed=6))))


def test_constant_scores_give_a_point_interval():
    ci = bootstrap_intervals([mean_score("CIDEr-D", [0.7] * 20)], 300, seed=1)["CIDEr-D"]
    assert ci.low == pytest.approx(0.7, abs=1e-12) and ci.high == pytest.approx(0.7, abs=1e-12)


def test_interval_is_the_percentile_of_resampled_means():
    values = np.arange(10, dtype=float) ** 2
    ci = bootstrap_intervals([mean_score("ROUGE-L", values)], 1000, level=0.9, seed=2)["ROUGE-L"]
    w = np.concatenate(list(resample_weights(10, 1000, seed=2)))
    means = w @ values / 10
    assert (ci.low, ci.high) == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])), rel=1e-12)
    assert ci.low < values.mean() < ci.high


def test_bleu_is_resampled_from_counts_not_per_image_scores():
    counts = np.array([[5, 5, 5, 4, 3, 2, 5, 4, 3, 2], [3, 6, 3, 2, 1, 0, 1, 0, 0, 0]], dtype=float)
    s = MetricScore(
        "BLEU-1",
        float(bleu_from_counts(counts.sum(0), 1)[0]),
        np.zeros(2),
        counts,
        lambda summed: bleu_from_counts(summed, 1),
    )
    w = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    got = s.corpus_from(w)
    assert got[0] == pytest.approx(1.0, rel=1e-8)  # twice the perfect caption
    assert got[1] == pytest.approx(np.exp(1 - 12 / 6) * (2 / 6), rel=1e-8)  # twice the short one
    assert got[2] == pytest.approx(s.corpus, rel=1e-12)


def test_paired_difference_of_a_constant_shift_is_exact():
    rng = np.random.default_rng(0)
    b = rng.uniform(0, 2, size=50)
    d = paired_bootstrap(mean_score("CIDEr-D", b + 0.25), mean_score("CIDEr-D", b), 500, seed=4)
    assert d.difference == pytest.approx(0.25, abs=1e-12)
    assert d.interval.low == pytest.approx(0.25, abs=1e-12) and d.interval.high == pytest.approx(0.25, abs=1e-12)
    assert d.p_value == 0.0 and d.n_images == 50


def test_paired_difference_of_identical_targets_is_zero_with_p_one():
    v = np.linspace(0, 1, 30)
    d = paired_bootstrap(mean_score("CIDEr-D", v), mean_score("CIDEr-D", v), 200, seed=0)
    assert (d.difference, d.interval.low, d.interval.high, d.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_pairing_is_tighter_than_two_separate_intervals():
    rng = np.random.default_rng(1)
    hard = rng.uniform(0, 3, size=80)  # image difficulty shared by both targets
    a, b = hard + rng.normal(0.2, 0.05, 80), hard
    d = paired_bootstrap(mean_score("CIDEr-D", a), mean_score("CIDEr-D", b), 1000, seed=0)
    ia = bootstrap_intervals([mean_score("CIDEr-D", a)], 1000, seed=0)["CIDEr-D"]
    ib = bootstrap_intervals([mean_score("CIDEr-D", b)], 1000, seed=0)["CIDEr-D"]
    assert ia.overlaps(ib)  # unpaired, the two intervals cannot tell them apart
    assert d.interval.low > 0 and d.p_value == 0.0  # paired, the difference is clear


def test_bad_arguments():
    s = mean_score("CIDEr-D", [1.0, 2.0])
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_intervals([s], 0)
    with pytest.raises(ValueError, match="level"):
        bootstrap_intervals([s], 10, level=1.0)
    with pytest.raises(ValueError, match="same, non-empty set of images"):
        paired_bootstrap(s, mean_score("CIDEr-D", [1.0]), 10)
    with pytest.raises(ValueError, match="cannot pair"):
        paired_bootstrap(s, mean_score("ROUGE-L", [1.0, 2.0]), 10)
