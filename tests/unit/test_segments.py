"""Segments, on constructed data: a shift on a fraction of the shapes world names each image's
segment, a COCO folder keeps it, the records carry it; quality figures per segment; the judge's
paired tests per segment with Holm's correction; an SLO's ``segment:`` from records and in PromQL."""

import numpy as np
import pandas as pd
import pytest

from harness.canary import JudgeConfig, MetricSample, classify
from harness.canary.segments import holm, split_by_segment
from harness.datasets import UNSHIFTED, generate_shapes, load_coco, parse_shapes_spec, parse_shift, write_coco
from harness.datasets.shapes import shapes_sample
from harness.errors import DataError, UsageError
from harness.quality import MetricScore, QualityReport
from harness.quality.bleu import bleu_from_counts
from harness.quality.scorer import mean_aggregate, mean_stats
from harness.quality.segments import segment_ids, segment_quality, segment_table
from harness.records import with_segments
from harness.slo.errors import SpecError
from harness.slo.queries import error_ratio, sli_counters
from harness.slo.spec import native_spec

CFG = JudgeConfig()
QUALITY = CFG.metric("quality")
IDS = [str(i) for i in range(200)]
SEGMENT = {k: ("low_light" if int(k) % 10 == 9 else UNSHIFTED) for k in IDS}
LOW = [k for k in IDS if SEGMENT[k] == "low_light"]


# ---------------------------------------------------------------------------- the data set


def test_a_shift_on_a_fraction_of_the_set_names_each_image_s_segment():
    shift = parse_shift("low_light:0.6@0.1")
    assert (shift.name, shift.severity, shift.fraction, str(shift)) == ("low_light", 0.6, 0.1, "low_light:0.6@0.1")
    assert str(parse_shift("blur@0.25")) == "blur:0.5@0.25" and str(parse_shift("blur")) == "blur:0.5"
    assert parse_shapes_spec("200:low_light@0.1") == (200, parse_shift("low_light@0.1"))
    # exactly floor(n f) of the first n images, whatever n: every tenth image
    assert [i for i in range(40) if shift.applies(i)] == [9, 19, 29, 39]
    for n, f in ((1000, 0.1), (1000, 0.07), (999, 0.3), (10, 1.0)):
        assert sum(parse_shift(f"noise@{f}").applies(i) for i in range(n)) == int(n * f)
    images = list(generate_shapes(20, 3, shift))
    assert [s.segment for s in images].count("low_light") == 2 and images[0].segment == UNSHIFTED
    # an unshifted image is the world's own; a shifted one is the shift's
    plain, dark = shapes_sample(0, 3), shapes_sample(9, 3, parse_shift("low_light:0.6"))
    assert np.array_equal(np.asarray(images[0].image), np.asarray(plain.image))
    assert np.array_equal(np.asarray(images[9].image), np.asarray(dark.image))
    assert shapes_sample(9, 3, parse_shift("low_light")).segment is None  # a shift on every image: no segments


@pytest.mark.parametrize("text", ["low_light@0", "low_light@1.5", "low_light@x", "low_light:0.5@-1"])
def test_a_bad_fraction_names_the_problem(text):
    with pytest.raises(UsageError, match="shift fraction"):
        parse_shift(text)


def test_a_coco_folder_keeps_each_image_s_segment(tmp_path):
    write_coco(generate_shapes(20, 1, parse_shift("low_light@0.1")), tmp_path / "set")
    ds = load_coco(tmp_path / "set")
    assert ds.segments() == {str(i): ("low_light" if i % 10 == 9 else UNSHIFTED) for i in range(20)}
    write_coco(generate_shapes(3, 1), tmp_path / "plain")
    assert load_coco(tmp_path / "plain").segments() == {}


@pytest.mark.parametrize("bad", [3, "", "  ", "a\nb", "x" * 201])
def test_a_bad_segment_in_a_coco_folder_is_refused(tmp_path, bad):
    import json

    write_coco(generate_shapes(2, 1), tmp_path)
    doc = json.loads((tmp_path / "captions.json").read_text())
    doc["images"][1]["segment"] = bad
    (tmp_path / "captions.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"images\[1\]\.segment must be printable text"):
        load_coco(tmp_path)


def test_records_take_their_image_s_segment_where_they_name_none():
    df = pd.DataFrame({"image_id": ["1", "2", None, "4"], "segment": [None, "own", None, None]})
    out = with_segments(df, {"1": "a", "2": "b", "4": "c"})
    assert out["segment"].tolist() == ["a", "own", None, "c"]
    assert with_segments(df, {}) is df


# ---------------------------------------------------------------------------- quality by segment


def _mean(name, values):
    v = np.asarray(values, dtype=float)
    return MetricScore(name, float(v.mean()), v, mean_stats(v), mean_aggregate)


def _report():
    counts = np.array([[5, 5, 5, 4, 3, 2, 5, 4, 3, 2], [3, 6, 3, 2, 1, 0, 1, 0, 0, 0]] * 2, dtype=float)
    bleu = MetricScore(
        "BLEU-1", float(bleu_from_counts(counts.sum(0), 1)[0]), np.zeros(4), counts, lambda s: bleu_from_counts(s, 1)
    )
    return QualityReport(
        (1, 2, 3, 4),
        ("a", "b", "c", "d"),
        (bleu, _mean("CIDEr-D", [4.0, 2.0, 6.0, 0.0])),
        {},
        (),
        "python",
        8,
        bootstrap={"n_resamples": 200, "level": 0.95, "seed": 0},
        reference_counts=(2, 2, 2, 2),
    )


def test_a_segment_s_figures_come_from_its_own_images_statistics():
    rep = _report()
    sub = rep.subset([1, 3])  # the perfect captions: BLEU-1 from their counts alone
    assert sub.image_ids == (1, 3) and sub.n_references == 4
    assert sub.metric("BLEU-1").corpus == pytest.approx(1.0, rel=1e-8)
    assert sub.metric("CIDEr-D").corpus == 5.0
    assert sub.intervals["CIDEr-D"].low >= 4.0 and sub.intervals["CIDEr-D"].high <= 6.0
    assert rep.subset([1, 2, 3, 4]).metric("BLEU-1").corpus == pytest.approx(rep.metric("BLEU-1").corpus, rel=1e-12)
    with pytest.raises(ValueError, match="none of these images"):
        rep.subset([9])
    segments = {"1": "day", "3": "day", "2": "night", "4": "night"}
    assert segment_ids(segments, [1, 2, 3, 4, 5]) == {"day": [1, 3], "night": [2, 4]}
    doc = segment_quality(segments, rep)
    assert list(doc) == ["day", "night"]
    assert doc["night"]["metrics"]["CIDEr-D"]["corpus"] == 1.0 and doc["night"]["n_images"] == 2
    table = segment_table(rep.to_dict(per_image=False), doc)
    assert "| figure | corpus | segment day | segment night |" in table
    assert "| CIDEr-D | 3.0000 | 5.0000 | 1.0000 |" in table


# ---------------------------------------------------------------------------- the judge by segment


def _quality(seed=0):
    rng = np.random.default_rng(seed)
    return pd.Series(rng.uniform(2.0, 8.0, len(IDS)), index=IDS)


def _hidden(base):
    """Worse on every low-light image, better on as many unshifted ones: the corpus sign test sees
    20 worse and 20 better."""
    can = base.copy()
    can[LOW] -= 2.0
    can[[k for k in IDS if SEGMENT[k] == UNSHIFTED][: len(LOW)]] += 2.0
    return can


def test_holm_adjusts_in_order_and_keeps_the_family_wise_error():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002]) and holm([]) == []
    assert holm([0.9, 0.8]) == [1.0, 1.0] and holm([0.2]) == [0.2]
    # Unchanged segments (uniform p-values): a family of 3 fails at most alpha of the time; uncorrected, 3 times that.
    p = np.random.default_rng(7).uniform(size=(20000, 3))
    family = np.mean([min(holm(row)) < 0.02 for row in p])
    assert family < 0.022 and np.mean(p.min(axis=1) < 0.02) > 0.055


def test_a_regression_on_one_segment_fails_the_metric_with_the_segment_named():
    base = _quality()
    corpus = classify(QUALITY, MetricSample(base, _hidden(base)), CFG)
    assert corpus.classification == "Pass" and corpus.p_value == 1.0 and corpus.segments == ()
    r = classify(QUALITY, MetricSample(base, _hidden(base), None, SEGMENT), CFG)
    assert r.classification == "Low" and r.failed and r.p_value == 1.0  # the corpus's figures stay
    assert r.reason.startswith("in segment 'low_light': canary per-image quality (20 of 20 images worse, 0 better")
    assert "Holm-adjusted over 2 segments" in r.reason
    low, day = r.segments
    assert (low.segment, low.classification, low.pairs) == ("low_light", "Low", 20)
    assert low.p_unadjusted == pytest.approx(2 * 0.5**20) and low.p_value == pytest.approx(4 * 0.5**20)
    assert (day.segment, day.classification, day.pairs) == (UNSHIFTED, "Pass", 180)
    # power at the family's level (alpha / 2): a segment of 20 pairs detects less than the corpus
    assert low.detectable == f"a quality regression on >= {low.mde:.1%} of images" and low.mde > corpus.mde
    assert low.adequate is False and day.adequate is True


def test_an_unchanged_canary_passes_every_segment_and_small_segments_are_not_tested():
    base = _quality(1)
    r = classify(QUALITY, MetricSample(base, base.copy(), None, SEGMENT), CFG)
    assert r.classification == "Pass" and [s.classification for s in r.segments] == ["Pass", "Pass"]
    few = {**SEGMENT, **{k: "tiny" for k in IDS[:5]}}
    r = classify(QUALITY, MetricSample(base, _hidden(base), None, few), CFG)
    tiny = next(s for s in r.segments if s.segment == "tiny")
    assert tiny.classification == "NoData" and tiny.reason == "5 pairs (needs 20): not tested"
    assert "Holm-adjusted over 2 segments" in r.reason  # the family is the segments tested
    # one segment is the corpus itself; values paired by position have no images to place
    assert classify(QUALITY, MetricSample(base, _hidden(base), None, dict.fromkeys(IDS, "all")), CFG).segments == ()
    listed = MetricSample(base.tolist(), _hidden(base).tolist(), None, SEGMENT)
    assert classify(QUALITY, listed, CFG).segments == ()
    parts = split_by_segment(MetricSample(base, base), SEGMENT)
    assert list(parts) == ["low_light", UNSHIFTED] and len(parts["low_light"].canary) == 20


def test_a_corpus_failure_keeps_its_reason_and_adds_the_segments():
    base = _quality(2)
    can = base.copy()
    can[IDS[:60]] -= 2.0  # 60 images worse: the corpus fails, and both segments
    r = classify(QUALITY, MetricSample(base, can, None, SEGMENT), CFG)
    assert r.reason.startswith("canary per-image quality (60 of 200 images worse") and "; in segment " in r.reason


def test_the_decision_record_summary_and_dashboard_hold_the_segments(tmp_path, monkeypatch):
    pytest.importorskip("streamlit")
    from dashboard_fixture import open_app
    from harness.canary.judge import decide
    from harness.report import build_decision, render_markdown, write_decision
    from harness.report.model import Inputs

    base = _quality()
    r = classify(QUALITY, MetricSample(base, _hidden(base), None, SEGMENT), CFG)
    v = decide([r], CFG)
    assert v.verdict == "ROLLBACK" and v.reasons[0].startswith("critical metric quality failed: in segment 'low_light'")
    rec = build_decision(v, [], Inputs(targets={}), "run")
    seg = rec.metrics[0].segments
    assert [s.segment for s in seg] == ["low_light", UNSHIFTED] and seg[0].p_unadjusted == pytest.approx(2 * 0.5**20)
    md = render_markdown(rec)
    assert "### By segment" in md
    assert "| quality | low_light | 20 | " in md and "| **LOW** |" in md
    write_decision(tmp_path / "run", rec)
    at = open_app(tmp_path, monkeypatch)
    metrics, by_segment = at.dataframe[0].value, at.dataframe[1].value
    assert metrics["segments"].tolist() == ["low_light: Low, unshifted: Pass"]
    assert by_segment[["metric", "segment", "pairs", "classification"]].values.tolist() == [
        ["quality", "low_light", 20, "Low"],
        ["quality", UNSHIFTED, 180, "Pass"],
    ]


# ---------------------------------------------------------------------------- SLOs by segment


def _spec(**slo):
    return native_spec([{"service": "captioner", "slos": [{"name": "s", "objective": 0.99, **slo}]}], "inline")


def test_an_slo_s_segment_narrows_its_promql_to_the_segment_label():
    slo = _spec(sli="availability", segment="low_light").slos[0]
    assert slo.segment == "low_light" and slo.to_dict()["segment"] == "low_light"
    bad, total = sli_counters(slo, {"job": "captioner"})
    assert total == 'sum(caption_requests_total{job="captioner",segment="low_light"})'
    assert 'segment="low_light",status=~"5..|429|499"' in bad
    assert 'segment="low_light"' in error_ratio(slo, {}, "5m")
    quoted = _spec(sli="latency", threshold=0.3, segment='a "b"').slos[0]
    assert 'segment="a \\"b\\""' in sli_counters(quoted, {})[1]
    assert _spec(sli="availability").slos[0].segment is None


@pytest.mark.parametrize(
    "slo,message",
    [
        ({"sli": "availability", "segment": ""}, "slos[0].segment: must be a segment's name"),
        ({"sli": "availability", "segment": "a\tb"}, "slos[0].segment: must be a segment's name"),
        ({"sli": "availability", "segment": 7}, "slos[0].segment: must be a string"),
        ({"sli": "correction", "segment": "x"}, "slos[0].segment: is only for SLOs counted from the request records"),
        (
            {"sli": "availability", "segment": "x", "promql": {"error_ratio": "x[{{window}}]"}},
            "slos[0].segment: cannot narrow the SLO's own promql queries",
        ),
    ],
)
def test_a_bad_segment_selector_names_its_path(slo, message):
    with pytest.raises(SpecError) as err:
        _spec(**slo)
    assert str(err.value).startswith(message)
