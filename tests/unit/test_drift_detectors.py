"""Drift detectors on constructed data: statistics against their definitions, exact p-values and
critical values, persistence, subsampling, and one-line errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.spatial.distance import jensenshannon
from scipy.special import kolmogi
from scipy.stats import chi2, ks_2samp, wasserstein_distance

from harness.drift import (
    CaptionLengthDrift,
    ClassifierDrift,
    Detector,
    DriftFeatures,
    DriftSuite,
    ImageStatsDrift,
    KSDrift,
    MMDDrift,
    PSIDrift,
    TokenDrift,
    WassersteinDrift,
    features_from_records,
    image_statistics,
)
from harness.drift.mmd import gaussian_kernel, mmd2_permutations, whiten
from harness.drift.permutation import critical_value, label_matrix, permutation_p_value, permutations_for
from harness.drift.text import jensen_shannon, tokenize
from harness.drift.wasserstein import wasserstein_statistics
from harness.errors import DataError, UsageError


def test_permutation_p_value_is_k_plus_one_over_n_plus_one():
    null = np.arange(1.0, 100.0)  # 99 permuted statistics
    assert permutation_p_value(100.0, null) == 1 / 100
    assert permutation_p_value(95.5, null) == 5 / 100
    assert permutation_p_value(95.0, null) == 6 / 100
    assert permutation_p_value(0.0, null) == 1.0


def test_critical_value_is_the_smallest_flagged_statistic():
    null = np.arange(1.0, 100.0)
    c = critical_value(null, 0.05)
    assert c == 95.0
    assert permutation_p_value(c + 1e-6, null) <= 0.05 < permutation_p_value(c, null)
    assert math.isinf(critical_value(np.arange(10.0), 0.05))  # 10 permutations cannot reach 5%
    assert permutations_for(0.005, 200) == 2000


def test_label_matrix_keeps_group_sizes():
    lab = label_matrix(3, 4, 50, np.random.default_rng(0))
    assert lab.shape == (7, 51)
    assert lab[:, 0].tolist() == [True] * 3 + [False] * 4
    assert (lab.sum(axis=0) == 3).all()
    assert np.array_equal(lab, label_matrix(3, 4, 50, np.random.default_rng(0)))


def test_wasserstein_statistics_match_scipy_with_ties():
    rng = np.random.default_rng(1)
    pooled = rng.integers(0, 6, size=40).astype(float)
    lab = label_matrix(15, 25, 20, rng)
    got = wasserstein_statistics(pooled, lab, chunk=7)
    want = [wasserstein_distance(pooled[lab[:, j]], pooled[~lab[:, j]]) for j in range(lab.shape[1])]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_mmd_all_permutations_in_one_product_match_the_definition():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(30, 4))
    k64 = np.exp(-((z[:, None, :] - z[None, :, :]) ** 2).sum(-1) / (2 * 1.5**2))
    lab = label_matrix(12, 18, 6, rng)
    got = mmd2_permutations(gaussian_kernel(z, 1.5), lab)
    for j in range(lab.shape[1]):
        x, y = lab[:, j], ~lab[:, j]
        kxx, kyy, kxy = k64[np.ix_(x, x)], k64[np.ix_(y, y)], k64[np.ix_(x, y)]
        want = (kxx.sum() - np.trace(kxx)) / (12 * 11) + (kyy.sum() - np.trace(kyy)) / (18 * 17) - 2 * kxy.mean()
        assert got[j] == pytest.approx(want, abs=2e-6)


def test_whitening_gives_unit_covariance_without_ridge():
    z = np.random.default_rng(3).normal(size=(500, 3)) @ np.array([[5.0, 0, 0], [1, 0.2, 0], [0, 0, 0.01]])
    w = whiten(z, ridge=0.0)
    np.testing.assert_allclose(np.cov(w.T), np.eye(3), atol=1e-8)


def test_ks_matches_scipy_and_states_its_smallest_detectable_distance():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=300), rng.normal(0.2, size=200)
    res = KSDrift("confidence").fit(a).predict(b)
    want = ks_2samp(a, b)
    assert res.statistic == want.statistic and res.p_value == want.pvalue
    assert res.min_detectable == pytest.approx(kolmogi(0.05) * math.sqrt(500 / (300 * 200)))
    assert res.drift == (want.pvalue <= 0.05)


def test_ks_on_several_features_is_bonferroni_corrected():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(200, 2))
    b = np.column_stack([rng.normal(size=200), rng.normal(0.5, size=200)])
    res = KSDrift("image", features=["x", "y"]).fit(a).predict(b)
    px, py = ks_2samp(a[:, 0], b[:, 0]).pvalue, ks_2samp(a[:, 1], b[:, 1]).pvalue
    assert res.p_value == pytest.approx(min(1.0, 2 * min(px, py)))
    assert set(res.details["features"]) == {"x", "y"}


def test_psi_value_and_its_sample_size_aware_threshold():
    ref = np.arange(1000.0)
    cur = np.full(400, -1.0)  # all in the first reference decile
    res = PSIDrift("confidence").fit(ref).predict(cur)
    want = (1 - 0.1) * math.log(1 / 0.1) + 9 * (1e-4 - 0.1) * math.log(1e-4 / 0.1)
    assert res.statistic == pytest.approx(want)
    assert res.threshold == pytest.approx(max(0.1, chi2.ppf(0.95, 9) * (1 / 1000 + 1 / 400)))
    assert res.drift and res.p_value is None
    small = PSIDrift("confidence").fit(ref[:40]).predict(ref[40:80])
    assert small.threshold == pytest.approx(chi2.ppf(0.95, 9) * (1 / 40 + 1 / 40))


def test_jensen_shannon_in_bits():
    assert jensen_shannon(np.array([3.0, 0.0]), np.array([0.0, 5.0])) == pytest.approx(1.0)
    assert jensen_shannon(np.array([1.0, 2.0]), np.array([2.0, 4.0])) == pytest.approx(0.0)
    p, q = np.array([5.0, 3.0, 2.0]), np.array([1.0, 1.0, 8.0])
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)


def test_token_drift_sends_new_words_to_one_bucket():
    ref = ["a red circle", "a small blue square", "a red square"] * 20
    same = TokenDrift(n_permutations=99).fit(ref).predict(list(ref))
    assert same.statistic == pytest.approx(0.0, abs=1e-12) and same.p_value == 1.0 and not same.drift
    new = TokenDrift(n_permutations=99).fit(ref).predict(["a orange circle", "a cyan square"] * 30)
    assert new.drift and new.p_value == 1 / 100
    assert new.details["other_share_reference"] == 0.0 and new.details["other_share_current"] == pytest.approx(1 / 3)
    assert tokenize("A small, RED circle's edge") == ["a", "small", "red", "circle's", "edge"]


def test_caption_length_counts_words():
    det = CaptionLengthDrift(n_permutations=199).fit(["a red circle"] * 30 + ["a small red circle"] * 30)
    res = det.predict(["a large red circle to the left of a small blue square"] * 40)
    assert res.statistic == pytest.approx(12 - 3.5) and res.drift and res.p_value == 1 / 200


def test_classifier_p_value_merges_folds_by_twice_their_mean():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(60, 5)), rng.normal(size=(60, 5)) + 3.0
    res = ClassifierDrift(folds=4).fit(a).predict(b)
    assert res.statistic == 1.0 and res.drift
    assert res.p_value == pytest.approx(min(1.0, 2 * np.mean(res.details["fold_p_value"])))
    assert 0.5 < res.min_detectable < 1.0


def test_image_statistics_of_constructed_images():
    grey = Image.new("RGB", (20, 10), (100, 100, 100))
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    half = Image.new("RGB", (2, 1))
    half.putpixel((0, 0), (0, 0, 0))
    half.putpixel((1, 0), (255, 255, 255))
    s = image_statistics([grey, red, half])
    np.testing.assert_allclose(s[0], [100 / 255, 0.0, 0.0, 200.0], atol=1e-12)
    np.testing.assert_allclose(s[1], [0.299, 0.0, 0.3 * math.hypot(255, 127.5), 64.0], atol=1e-12)
    np.testing.assert_allclose(s[2], [0.5, 0.5, 0.0, 2.0], atol=1e-12)
    res = ImageStatsDrift().fit([grey] * 30).predict([red] * 30)
    assert res.drift and set(res.details["features"]) == {"brightness", "contrast", "colourfulness", "pixels"}


@pytest.mark.parametrize(
    "make,data",
    [
        (lambda: KSDrift("c"), "scalar"),
        (lambda: PSIDrift("c"), "scalar"),
        (lambda: WassersteinDrift("c", n_permutations=99), "scalar"),
        (lambda: MMDDrift(n_permutations=99), "vector"),
        (lambda: ClassifierDrift(), "vector"),
        (lambda: CaptionLengthDrift(n_permutations=99), "text"),
        (lambda: TokenDrift(n_permutations=99), "text"),
        (lambda: ImageStatsDrift(), "table"),
    ],
)
def test_saved_reference_gives_the_same_result(tmp_path, make, data):
    rng = np.random.default_rng(7)
    words = np.array(["a", "red", "blue", "circle", "square", "small", "large"])
    gen = {
        "scalar": lambda n, s: rng.normal(s, size=n),
        "vector": lambda n, s: rng.normal(s, size=(n, 6)),
        "text": lambda n, s: [" ".join(rng.choice(words[: 5 + 2 * int(s > 0)], size=3 + int(s * 2))) for _ in range(n)],
        "table": lambda n, s: rng.normal(s, size=(n, 4)),
    }[data]
    ref, cur = gen(80, 0.0), gen(60, 0.5)
    det = make().fit(ref)
    det.save(tmp_path / "det")
    again = Detector.load(tmp_path / "det")
    a, b = det.predict(cur), again.predict(cur)
    assert type(again) is type(det)
    assert (a.statistic, a.p_value, a.threshold, a.drift, a.min_detectable) == (
        b.statistic,
        b.p_value,
        b.threshold,
        b.drift,
        b.min_detectable,
    )


def test_max_n_and_time_budget_subsample_and_say_so():
    rng = np.random.default_rng(8)
    ref, cur = rng.normal(size=(3000, 16)), rng.normal(size=(2500, 16))
    capped = MMDDrift(n_permutations=50, max_n=1000).fit(ref).predict(cur)
    assert (capped.n_reference, capped.n_current, capped.n_reference_used, capped.n_current_used) == (
        3000,
        2500,
        1000,
        1000,
    )
    assert "max_n" in capped.note
    det = MMDDrift(n_permutations=50, time_budget_s=1.0, flops=1e9).fit(ref)
    res = det.predict(cur)
    assert res.n_reference_used < 3000 and res.n_current_used < 2500
    assert det.cost(res.n_reference_used, res.n_current_used) <= 1e9 < det.cost(3000, 2500)
    assert "time budget" in res.note and res.min_detectable > 0


def test_bad_input_is_a_one_line_data_error():
    with pytest.raises(DataError, match="size 5, the reference's are of size 6"):
        MMDDrift().fit(np.zeros((10, 6))).predict(np.zeros((10, 5)))
    with pytest.raises(DataError, match="need at least 2"):
        KSDrift("confidence").fit([])
    with pytest.raises(DataError, match="finite"):
        WassersteinDrift("confidence").fit([0.1, float("nan"), 0.3])
    with pytest.raises(DataError, match="different sizes"):
        MMDDrift().fit([[1.0, 2.0], [1.0]])
    with pytest.raises(UsageError, match="fit it on a reference first"):
        KSDrift("confidence").predict([1.0, 2.0])
    with pytest.raises(DataError, match="no records"):
        features_from_records(pd.DataFrame(columns=["outcome", "confidence", "embedding", "caption"]), "empty.jsonl")


def _records(n: int, dim: int, shift: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "outcome": ["ok"] * n + ["timeout"],
            "confidence": list(np.clip(rng.normal(0.7 + shift, 0.1, n), 0, 1)) + [None],
            "embedding": [list(v) for v in rng.normal(shift, 1.0, (n, dim))] + [None],
            "caption": [("a red circle" if rng.random() < 0.5 + shift else "a blue square") for _ in range(n)] + [None],
            "image_w": [64] * n + [None],
            "image_h": [64] * n + [None],
            "image_bytes": list(rng.integers(900, 1100, n)) + [None],
        }
    )


def test_suite_runs_every_detector_at_alpha_over_k_and_round_trips(tmp_path):
    ref = features_from_records(_records(150, 8, 0.0, 1), "ref")
    assert ref.n_records == 150 and ref.embedding.shape == (150, 8) and ref.image_stat_names == ("pixels", "bytes")
    suite = DriftSuite(0.05, sentence_embeddings=False).fit(ref)
    k = len(suite.detectors)
    assert k == 8
    assert all(d.alpha == pytest.approx(0.05 / k) for d in suite.detectors.values())
    assert suite.detectors["embedding.mmd"].n_permutations == math.ceil(10 / (0.05 / k))
    shifted = suite.predict(features_from_records(_records(120, 8, 0.3, 2), "cur"))
    assert shifted.drift and shifted.alpha_per_detector == pytest.approx(0.05 / k)
    assert {"confidence.ks", "embedding.mmd"} <= set(shifted.drifted)
    suite.save(tmp_path)
    again = DriftSuite.load(tmp_path).predict(features_from_records(_records(120, 8, 0.3, 2), "cur"))
    assert [(r.detector, r.statistic, r.p_value, r.drift) for r in again.results] == [
        (r.detector, r.statistic, r.p_value, r.drift) for r in shifted.results
    ]
    d = shifted.to_dict()
    assert d["drifted"] == shifted.drifted and d["distributions"]["confidence"]["type"] == "histogram"


def test_suite_names_the_missing_column_and_mismatched_sizes():
    suite = DriftSuite(sentence_embeddings=False).fit(features_from_records(_records(50, 8, 0.0, 1), "ref"))
    cur = _records(50, 8, 0.0, 2)
    cur["confidence"] = None
    with pytest.raises(DataError, match="carry no confidence but the reference does"):
        suite.predict(features_from_records(cur, "cur"))
    with pytest.raises(DataError, match="size 4, the reference's are of size 8"):
        suite.predict(features_from_records(_records(50, 4, 0.0, 2), "cur"))
    ragged = _records(50, 8, 0.0, 3)
    ragged.at[0, "embedding"] = [1.0, 2.0]
    with pytest.raises(DataError, match="embeddings of different sizes"):
        features_from_records(ragged, "cur")
    with pytest.raises(DataError, match="none of confidence"):
        features_from_records(
            pd.DataFrame(
                {
                    "outcome": ["ok"],
                    "confidence": [None],
                    "embedding": [None],
                    "caption": [None],
                    "image_w": [None],
                    "image_h": [None],
                    "image_bytes": [None],
                }
            ),
            "x",
        )
    assert isinstance(DriftFeatures("x", 0), DriftFeatures)
