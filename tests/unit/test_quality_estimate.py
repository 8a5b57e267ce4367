"""The label-free quality estimate: confidence -> quality learned on labelled data."""

import numpy as np
import pytest

from harness.quality import fit_quality_model
from harness.quality.estimate import isotonic_fit


def test_isotonic_fit_pools_adjacent_violators():
    xs, ys = isotonic_fit([1, 2, 3, 4, 5], [1, 3, 2, 4, 3.5])
    np.testing.assert_allclose(xs, [1, 2, 3, 4, 5])
    np.testing.assert_allclose(ys, [1, 2.5, 2.5, 3.75, 3.75])
    xs, ys = isotonic_fit([0.2, 0.2, 0.8], [1.0, 3.0, 0.0])  # ties first: 2.0 (weight 2), then 0.0
    np.testing.assert_allclose(xs, [0.2, 0.8])
    np.testing.assert_allclose(ys, [4 / 3, 4 / 3])


def world(n, rng, shift=0.0):
    """Quality rises with confidence (a logistic curve) plus noise; ``shift`` lowers confidence."""
    conf = np.clip(rng.beta(5, 2, size=n) - shift, 0, 1)
    quality = 3.0 / (1 + np.exp(-12 * (conf - 0.6))) + rng.normal(0, 0.3, size=n)
    return conf, quality


@pytest.mark.parametrize("method", ["isotonic", "binned"])
def test_estimate_tracks_quality_under_covariate_shift(method):
    rng = np.random.default_rng(7)
    model = fit_quality_model(*world(2000, rng), method=method, folds=5, seed=0)
    assert model.n_reference == 2000 and model.folds == 5
    assert 0.2 < model.held_out_mae < 0.4  # the noise is N(0, 0.3): mean |e| is 0.24
    assert model.held_out_corpus_error < 0.05
    for shift in (0.0, 0.25):
        conf, quality = world(1500, rng, shift)
        est = model.estimate(conf)
        assert abs(est.estimate - quality.mean()) < 0.1, (shift, est.estimate, quality.mean())
        assert est.n == 1500 and est.held_out_error == model.held_out_corpus_error
    assert model.estimate(world(1500, rng, 0.25)[0]).estimate < model.reference_quality - 0.5


def test_fit_is_reproducible_and_reports_extrapolation():
    rng = np.random.default_rng(3)
    conf, quality = world(300, rng)
    a = fit_quality_model(conf, quality, seed=1)
    b = fit_quality_model(conf, quality, seed=1)
    assert a == b
    est = a.estimate([a.confidence_range[0] - 0.1, a.confidence_range[1], np.nan])
    assert est.n == 2 and est.outside_reference == 0.5


def test_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        fit_quality_model([0.1, 0.2], [1.0])
    with pytest.raises(ValueError, match="at least 10 labelled images"):
        fit_quality_model([0.1] * 9, [1.0] * 9)
    with pytest.raises(ValueError, match="method"):
        fit_quality_model([0.1] * 20, [1.0] * 20, method="spline")
