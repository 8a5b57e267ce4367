"""Agreement of a judge's scores with people's ratings: exact figures on constructed ratings, the
pairing of ratings to captions, the seeded bootstrap and the gating rule."""

import math

import numpy as np
import pytest

from harness.quality.agreement import (
    Agreement,
    Figure,
    Pairs,
    agreement,
    gate_allowed,
    kendall_tau_b,
    pair_ratings,
    spearman_rho,
    to_scale,
    weighted_kappa,
)
from harness.quality.bootstrap import resample_weights, statistic_interval
from harness.quality.hybrid import Rating, load_rated_captions, load_ratings


def _pairs(judge, people) -> Pairs:
    return Pairs(tuple(judge), tuple(float(v) for v in people), len(judge), 0, 0)


def test_perfect_agreement_is_one_on_every_figure():
    x = [1, 2, 3, 4, 5, 3, 2, 4]
    a = agreement(_pairs(x, x), n_resamples=200, seed=1)
    assert a.n_pairs == 8
    assert a.kendall_tau_b.value == pytest.approx(1.0, abs=1e-12)
    assert a.spearman_rho.value == pytest.approx(1.0, abs=1e-12)
    assert a.weighted_kappa.value == pytest.approx(1.0, abs=1e-12)
    assert a.weighted_kappa.interval.low == pytest.approx(1.0, abs=1e-12)  # every resample agrees perfectly


def test_a_reversed_order_is_minus_one():
    x = [1, 2, 3, 4, 5]
    y = [6 - v for v in x]
    assert kendall_tau_b(x, y) == pytest.approx(-1.0, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(-1.0, abs=1e-12)
    # sum (x - y)^2 = 40; mean over all (x_a - y_b)^2 = 100 / 5 = 20: kappa = 1 - 40 / 20
    assert weighted_kappa(x, y) == pytest.approx(-1.0, abs=1e-12)


def test_weighted_kappa_by_hand():
    # judge 1 2 3 4, people 1 3 3 4: observed sum of squared differences 1; expected under chance,
    # the mean of (x_a - y_b)^2 over all 16 pairs times 4: (17 + 7 + 5 + 11) / 4 = 10. kappa = 1 - 1/10.
    assert weighted_kappa([1, 2, 3, 4], [1, 3, 3, 4]) == pytest.approx(0.9, abs=1e-12)


def test_weighted_kappa_rounds_mean_ratings_halves_up():
    assert [to_scale(v) for v in (1.0, 1.49, 1.5, 2.5, 4.5, 5.0)] == [1, 1, 2, 3, 5, 5]
    assert weighted_kappa([2, 3, 5], [1.5, 2.5, 4.5]) == pytest.approx(1.0, abs=1e-12)


def test_tau_b_and_rho_with_ties_by_hand():
    # pairs: 4 concordant, 0 discordant, one tied in x only, one in y only: 4 / sqrt(5 * 5)
    x, y = [1, 1, 2, 3], [1, 2, 2, 3]
    assert kendall_tau_b(x, y) == pytest.approx(0.8, abs=1e-12)
    # ranks (1.5, 1.5, 3, 4) and (1, 2.5, 2.5, 4): 3.75 / sqrt(4.5 * 4.5)
    assert spearman_rho(x, y) == pytest.approx(5 / 6, abs=1e-12)


def test_undefined_figures_are_none_never_made_up():
    a = agreement(_pairs([4, 4, 4, 4], [4, 4, 4, 4]), n_resamples=50)
    assert a.kendall_tau_b == Figure(None, None)
    assert a.spearman_rho == Figure(None, None)
    assert a.weighted_kappa == Figure(None, None)  # a judge that always says 4 earns no kappa
    empty = agreement(_pairs([], []), n_resamples=50)
    assert empty.n_pairs == 0 and empty.weighted_kappa == Figure(None, None)
    assert math.isnan(weighted_kappa([], []))


def test_bootstrap_is_seeded_and_reproducible():
    rng = np.random.default_rng(3)
    judge = rng.integers(1, 6, 60)
    people = np.clip(judge + rng.integers(-1, 2, 60), 1, 5)
    p = _pairs(judge.tolist(), people.tolist())
    a, b = agreement(p, n_resamples=300, seed=7), agreement(p, n_resamples=300, seed=7)
    assert a == b
    c = agreement(p, n_resamples=300, seed=8)
    assert c.kendall_tau_b.interval != a.kendall_tau_b.interval
    for f in (a.kendall_tau_b, a.spearman_rho, a.weighted_kappa):
        assert f.interval.low <= f.value <= f.interval.high
        assert (f.interval.level, f.interval.n_resamples, f.interval.seed) == (0.95, 300, 7)


def test_statistic_interval_is_the_percentile_over_the_shared_resamples():
    values = np.arange(12, dtype=float) ** 2
    ci = statistic_interval(lambda idx: float(values[idx].mean()), 12, 500, level=0.9, seed=4)
    w = np.concatenate(list(resample_weights(12, 500, seed=4)))
    means = w @ values / 12
    assert (ci.low, ci.high) == pytest.approx(tuple(np.quantile(means, [0.05, 0.95])), rel=1e-12)
    assert statistic_interval(lambda idx: math.nan, 5, 20) is None


def test_pairs_match_image_and_caption_and_average_raters():
    scored = [(1, "a red circle", 5), ("2", "two  squares", 3), (3, "a blue star", None)]
    ratings = [
        (Rating("1", "ana", 5.0), "a red circle"),
        (Rating("1", "bo", 4.0), None),  # no caption column: rates the image's caption
        (Rating("2", "ana", 2.0), "two squares"),  # whitespace runs compare as one space
        (Rating("1", "cy", 1.0), "a green circle"),  # another target's caption of image 1
        (Rating("3", "ana", 4.0), "a blue star"),  # the judge did not score it
        (Rating("9", "ana", 4.0), "nothing judged"),
    ]
    p = pair_ratings(scored, ratings)
    assert (p.judge, p.people) == ((5, 3), (4.5, 2.0))
    assert (p.ratings_used, p.rated_not_scored, p.ratings_unmatched) == (3, 1, 2)


def _agreement(n: int, kappa: float | None) -> Agreement:
    f = Figure(kappa, None)
    return Agreement(n, Figure(None, None), Figure(None, None), f, n, 0, 0, 0, 0)


def test_the_gating_rule():
    ok = gate_allowed(_agreement(30, 0.6), 0.6)
    assert ok.allowed and ok.reason == "weighted kappa 0.600 is at least 0.6 on 30 pairs"
    low = gate_allowed(_agreement(40, 0.59), 0.6)
    assert not low.allowed and low.reason == "weighted kappa 0.590 is below 0.6 on 40 pairs"
    few = gate_allowed(_agreement(29, 0.95), 0.6)
    assert not few.allowed and few.reason == "only 29 captions both judged and rated by people (at least 30 needed)"
    assert gate_allowed(_agreement(3, 0.95), 0.6, min_pairs=3).allowed
    assert not gate_allowed(_agreement(50, None), 0.6).allowed


def test_ratings_are_read_with_the_caption_they_rate(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(
        "image_id,rater,rating,target,caption,time\n"
        "7,ana,4,canary,'=1+1 circles,2024-01-01T00:00:00Z\n"
        "8,bo,2,baseline,,2024-01-01T00:00:00Z\n"
    )
    assert load_rated_captions(path) == ((Rating("7", "ana", 4.0), "=1+1 circles"), (Rating("8", "bo", 2.0), None))
    assert load_ratings(path) == (Rating("7", "ana", 4.0), Rating("8", "bo", 2.0))
    bare = tmp_path / "bare.csv"
    bare.write_text("image_id,rater,rating\n1,ann,5\n")
    assert load_rated_captions(bare) == ((Rating("1", "ann", 5.0), None),)
