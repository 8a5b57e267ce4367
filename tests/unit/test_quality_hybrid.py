"""The hybrid score (M4) on constructed ratings with known values."""

import pytest

from harness.errors import DataError, UsageError
from harness.quality import HybridConfig, Rating, hybrid_score, load_ratings

CIDER = {"a": 0.5, "b": 1.0, "c": 3.0, "d": 0.0}  # normalised with cap 2: .25, .5, 1, 0 -> 43.75


def ratings(*rows):
    return [Rating(i, r, v) for i, r, v in rows]


def test_hybrid_known_value():
    # image a: (5 + 3) / 2 = 4 -> 0.75; image b: 1 -> 0; human = 37.5
    h = hybrid_score(CIDER, ratings(("a", "ann", 5), ("a", "bob", 3), ("b", "ann", 1)), HybridConfig(cider_cap=2.0))
    assert h.mode == "hybrid"
    assert h.human == pytest.approx(37.5) and h.metric == pytest.approx(43.75)
    assert h.score == pytest.approx(40.625)
    assert (h.n_images, h.n_rated_images, h.n_ratings, h.n_raters, h.ratings_ignored) == (4, 2, 3, 2, 0)


def test_weights_are_configurable_and_normalised():
    r = ratings(("a", "ann", 5), ("a", "bob", 3), ("b", "ann", 1))
    h = hybrid_score(CIDER, r, HybridConfig(human_weight=3, metric_weight=1, cider_cap=2.0))
    assert h.score == pytest.approx((3 * 37.5 + 43.75) / 4)
    h = hybrid_score(CIDER, r, HybridConfig(human_weight=0, metric_weight=2, cider_cap=2.0))
    assert h.score == pytest.approx(43.75)


def test_an_image_counts_once_however_many_raters():
    r = ratings(("a", "1", 5), ("a", "2", 5), ("a", "3", 5), ("b", "1", 1))
    h = hybrid_score(CIDER, r, HybridConfig(human_weight=1, metric_weight=0))
    assert h.human == pytest.approx(50.0)  # (100 + 0) / 2, not (3 * 100 + 0) / 4


def test_no_ratings_is_metric_only():
    h = hybrid_score(CIDER, None, HybridConfig(cider_cap=2.0))
    assert (h.mode, h.human, h.score) == ("metric-only", None, pytest.approx(43.75))
    h = hybrid_score(CIDER, ratings(("zz", "ann", 5)), HybridConfig(cider_cap=2.0))
    assert h.mode == "metric-only" and h.ratings_ignored == 1


def test_no_metric_is_human_only():
    h = hybrid_score(None, ratings(("x", "ann", 4), ("y", "ann", 2)))
    assert (h.mode, h.metric, h.score) == ("human-only", None, pytest.approx(50.0))
    with pytest.raises(DataError, match="neither"):
        hybrid_score(None, None)


def test_corpus_normalisation_and_cap():
    h = hybrid_score(CIDER, None, HybridConfig(cider_cap=2.0, normalisation="corpus"))
    assert h.metric == pytest.approx(100 * (4.5 / 4) / 2.0)
    h = hybrid_score({"a": 25.0, "b": -1.0}, None, HybridConfig(cider_cap=1.0))
    assert h.metric == pytest.approx(50.0)  # capped at 1, floored at 0


def test_integer_image_ids_match_csv_strings():
    h = hybrid_score({7: 1.0}, ratings(("7", "ann", 5)), HybridConfig(cider_cap=1.0))
    assert h.score == pytest.approx(100.0) and h.n_rated_images == 1


@pytest.mark.parametrize(
    "kwargs, msg",
    [
        ({"human_weight": -1}, "human_weight must be a number >= 0"),
        ({"human_weight": 0, "metric_weight": 0}, "must not both be 0"),
        ({"cider_cap": 0}, "cider_cap must be > 0"),
        ({"normalisation": "log"}, "normalisation must be per_image or corpus"),
    ],
)
def test_bad_config(kwargs, msg):
    with pytest.raises(UsageError, match=msg):
        HybridConfig(**kwargs)


def test_load_ratings(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("image_id,rater,rating\n1,ann,5\n2, bob ,3.5\n")
    assert load_ratings(p) == (Rating("1", "ann", 5.0), Rating("2", "bob", 3.5))
    p.write_text("image_id,rating\n1,5\n")
    with pytest.raises(DataError, match="missing rater"):
        load_ratings(p)
    p.write_text("image_id,rater,rating\n1,ann,6\n")
    with pytest.raises(DataError, match="line 2: rating 6 is outside 1 to 5"):
        load_ratings(p)
    p.write_text("image_id,rater,rating\n1,ann,good\n")
    with pytest.raises(DataError, match="line 2: rating 'good' is not a number"):
        load_ratings(p)
