"""COCO metrics: the harness's figures equal pycocoevalcap's own on a fixed set."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from harness.errors import DataError
from harness.quality import compare_captions, load_candidates, load_references, make_scorers, score_captions
from harness.quality.bleu import bleu_from_counts
from harness.quality.meteor import meteor_from_stats
from harness.quality.tokenizer import ptb_tokenize, python_tokenize

pytestmark = pytest.mark.slow  # pycocoevalcap's Java tokenizer and METEOR

REFERENCES = {
    1: [
        "A man riding a wave on top of a surfboard.",
        "A surfer rides a large wave in the ocean.",
        "A person on a surfboard riding a wave.",
    ],
    2: ["Two dogs playing with a frisbee in the grass.", "Dogs run across a field chasing a frisbee."],
    3: [
        "A plate of food with broccoli and rice.",
        "A white plate topped with rice, meat and broccoli.",
        "Dinner plate with vegetables and rice on a table.",
    ],
    4: ["A red double decker bus driving down a street.", "A big red bus on a city street."],
    5: [
        "A cat sleeping on a laptop keyboard.",
        "A grey cat lies across the keys of a laptop.",
        "The cat is napping on a computer.",
    ],
    6: ["A kitchen with white cabinets and a stove.", "An empty kitchen with a stove and a sink."],
    7: ["A small red circle to the left of a blue square.", "A red circle left of a blue square."],
    8: ["Children flying kites on a windy beach.", "Kids fly colorful kites by the sea."],
    9: ["A giraffe standing next to a tree.", "A tall giraffe eating leaves from a tree."],
    10: ["A bowl of fruit on a wooden table.", "Apples and bananas in a bowl on a table."],
}
CANDIDATES = {
    1: "a man riding a wave on a surfboard",
    2: "two dogs are playing in the grass with a frisbee",
    3: "a plate of food with rice and broccoli",
    4: "a red bus driving down a city street",
    5: "a cat laying on a laptop computer",
    6: "a kitchen with a stove and a refrigerator",
    7: "A red circle left of a blue square.",
    8: "a group of people standing on a beach",
    9: "a giraffe standing in a field",
    10: "...",
}
# pycocoevalcap 1.2 on the set above (PTBTokenizer, Bleu(4), Meteor, Rouge, Cider).
EXPECTED = {
    "BLEU-1": 0.7657290716693025,
    "BLEU-2": 0.7017124443570042,
    "BLEU-3": 0.6026511965402658,
    "BLEU-4": 0.5012032929887881,
    "METEOR": 0.3530286572114986,
    "ROUGE-L": 0.6498536157127667,
    "CIDEr-D": 2.931621627086561,
}
EXPECTED_CIDER_PER_IMAGE = [
    3.7248351728874733,
    2.6728113874105675,
    3.2611862782655603,
    3.8303566686481654,
    1.77256831174635,
    4.7294436669140225,
    7.395312537521743,
    0.2938826694067239,
    1.635819578065003,
    0.0,
]
WORSE = {**CANDIDATES, 1: "a dog", 4: "a cat on a bus", 7: "a blue square"}
TOL = 1e-9


@pytest.fixture(scope="module")
def direct():
    """pycocoevalcap run directly, the way its COCOEvalCap does."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in REFERENCES.items()})
    res = tok.tokenize({k: [{"caption": CANDIDATES[k]}] for k in REFERENCES})
    out = {}
    b, bs = Bleu(4).compute_score(gts, res, verbose=0)
    for i in range(4):
        out[f"BLEU-{i + 1}"] = (b[i], bs[i])
    meteor = Meteor()
    out["METEOR"] = meteor.compute_score(gts, res)
    out["ROUGE-L"] = Rouge().compute_score(gts, res)
    out["CIDEr-D"] = Cider().compute_score(gts, res)
    return {"scores": out, "gts": gts, "res": res}


@pytest.fixture(scope="module")
def report():
    return score_captions(CANDIDATES, REFERENCES, n_resamples=200, seed=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("captions")
    (d / "candidates.json").write_text(json.dumps([{"image_id": k, "caption": c} for k, c in CANDIDATES.items()]))
    (d / "worse.json").write_text(json.dumps([{"image_id": k, "caption": c} for k, c in WORSE.items()]))
    anns = [
        {"id": i, "image_id": k, "caption": c}
        for i, (k, c) in enumerate((k, c) for k, v in REFERENCES.items() for c in v)
    ]
    (d / "references.json").write_text(
        json.dumps({"images": [{"id": k, "file_name": f"{k}.jpg"} for k in REFERENCES], "annotations": anns})
    )
    return d


@pytest.mark.slow
def test_pycocoevalcap_gives_the_recorded_figures(direct):
    for name, value in EXPECTED.items():
        assert direct["scores"][name][0] == pytest.approx(value, abs=TOL), name
    np.testing.assert_allclose(direct["scores"]["CIDEr-D"][1], EXPECTED_CIDER_PER_IMAGE, rtol=0, atol=TOL)


@pytest.mark.slow
def test_harness_figures_equal_pycocoevalcap(report, direct):
    assert [s.name for s in report.scores] == list(EXPECTED)
    for s in report.scores:
        assert s.corpus == pytest.approx(EXPECTED[s.name], abs=TOL), s.name
        want = np.asarray(direct["scores"][s.name][1], dtype=float).reshape(-1)
        np.testing.assert_allclose(s.per_image, want, rtol=0, atol=TOL, err_msg=s.name)
    assert report.image_ids == tuple(REFERENCES)
    assert report.n_references == 23


def test_tokenizer_equals_pycocoevalcap(direct):
    ours = ptb_tokenize(REFERENCES)
    assert ours == direct["gts"]
    assert {k: v[0] for k, v in ptb_tokenize({k: [c] for k, c in CANDIDATES.items()}).items()} == {
        k: v[0] for k, v in direct["res"].items()
    }
    # the Java-free tokenizer agrees on these captions too
    assert python_tokenize(REFERENCES) == ours


def test_corpus_figures_rebuild_from_per_image_statistics(report):
    ones = np.ones(len(report.image_ids))
    for s in report.scores:
        assert float(s.corpus_from(ones)[0]) == pytest.approx(s.corpus, abs=1e-12), s.name


def test_meteor_formula_matches_the_jar_per_segment(report):
    m = report.metric("METEOR")
    np.testing.assert_allclose(meteor_from_stats(m.stats), m.per_image, rtol=0, atol=1e-12)


def test_bleu_from_counts_known_values():
    # 4 words, all unigrams and bigrams right, no trigram; reference 8 words: brevity e^(1-2)
    counts = np.array([4, 8, 4, 3, 2, 1, 4, 3, 0, 0], dtype=float)
    assert bleu_from_counts(counts, 1)[0] == pytest.approx(np.exp(-1), rel=1e-8)
    assert bleu_from_counts(counts, 2)[0] == pytest.approx(np.exp(-1), rel=1e-8)
    assert bleu_from_counts(counts, 3)[0] < 1e-5  # pycocoevalcap smooths a zero count by 1e-15
    assert bleu_from_counts(np.array([8, 8, 8, 7, 6, 5, 8, 7, 6, 5.0]), 4)[0] == pytest.approx(1.0, rel=1e-8)


def test_intervals_hold_the_corpus_figures(report):
    for s in report.scores:
        ci = report.intervals[s.name]
        assert ci.low <= s.corpus <= ci.high
        assert (ci.level, ci.n_resamples, ci.seed) == (0.95, 200, 3)


def test_spice_is_skipped_with_a_one_line_note(report):
    from harness.quality.spice import spice_missing

    why = spice_missing()
    if why is None:
        pytest.skip("SPICE models are installed here")
    notes = [n for n in report.notes if n.startswith("SPICE skipped: ")]
    assert notes == [f"SPICE skipped: {why}"] and "\n" not in notes[0]


def test_scorers_are_reused_across_corpora():
    scorers, _ = make_scorers(("bleu", "cider"))
    a = score_captions(CANDIDATES, REFERENCES, ("bleu", "cider"), n_resamples=0, scorers=scorers)
    half = {k: CANDIDATES[k] for k in list(CANDIDATES)[:5]}
    b = score_captions(half, REFERENCES, ("bleu", "cider"), n_resamples=0, scorers=scorers)
    assert a.corpus()["BLEU-1"] == pytest.approx(EXPECTED["BLEU-1"], abs=TOL)
    assert len(b.image_ids) == 5 and len(b.unscored) == 5
    assert a.intervals == {}


def test_paired_comparison_of_two_caption_sets():
    scorers, _ = make_scorers(("cider",))
    worse = score_captions(WORSE, REFERENCES, ("cider",), n_resamples=0, scorers=scorers).corpus()["CIDEr-D"]
    (d,) = compare_captions(CANDIDATES, WORSE, REFERENCES, ("cider",), n_resamples=500, seed=1, scorers=scorers)
    assert d.metric == "CIDEr-D" and d.n_images == 10
    assert d.a == pytest.approx(EXPECTED["CIDEr-D"], abs=TOL) and d.b == pytest.approx(worse, abs=TOL)
    assert d.difference == pytest.approx(EXPECTED["CIDEr-D"] - worse, abs=TOL) and d.difference > 0
    assert d.interval.low >= 0.0 and d.interval.low <= d.difference <= d.interval.high  # 7 images equal: ties at 0
    (same,) = compare_captions(CANDIDATES, CANDIDATES, REFERENCES, ("cider",), n_resamples=50, scorers=scorers)
    assert (same.difference, same.p_value) == (0.0, 1.0)


@pytest.mark.slow
def test_harness_score_cli_equals_pycocoevalcap(files, direct, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "score",
            "--candidates",
            str(files / "candidates.json"),
            "--references",
            str(files / "references.json"),
            "--out",
            str(tmp_path),
            "--bootstrap",
            "100",
            "--compare",
            str(files / "worse.json"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "quality.json").read_text())
    for name in EXPECTED:
        assert doc["metrics"][name]["corpus"] == pytest.approx(direct["scores"][name][0], abs=TOL), name
        assert f"{name:<10} {EXPECTED[name]:>8.4f}" in out.stdout
    per = {row["image_id"]: row for row in doc["per_image"]}
    for k, want in zip(direct["gts"], direct["scores"]["CIDEr-D"][1]):
        assert per[k]["CIDEr-D"] == pytest.approx(want, abs=TOL)
    assert doc["hybrid"]["mode"] == "metric-only"
    assert doc["n_images"] == 10 and doc["bootstrap"]["n_resamples"] == 100
    paired = {d["metric"]: d for d in doc["paired"]["differences"]}
    assert list(paired) == list(EXPECTED)
    for name, d in paired.items():
        assert d["a"] == pytest.approx(EXPECTED[name], abs=TOL)
        assert d["difference"] == pytest.approx(d["a"] - d["b"], abs=1e-12) and d["difference"] > 0
    assert "paired on 10 images both captioned" in out.stdout


def test_without_java_meteor_is_skipped_and_the_rest_runs(files, tmp_path):
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "score",
            "--candidates",
            str(files / "candidates.json"),
            "--references",
            str(files / "references.json"),
            "--out",
            str(tmp_path),
            "--bootstrap",
            "0",
            "--metrics",
            "bleu,meteor,cider",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "quality.json").read_text())
    assert list(doc["metrics"]) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D"]
    assert doc["notes"] == ["METEOR skipped: java not found (METEOR 1.5 runs on a Java runtime)"]
    assert doc["tokenizer"].startswith("python")
    # the Python tokenizer gives the same tokens on this set, so the same figures
    assert doc["metrics"]["CIDEr-D"]["corpus"] == pytest.approx(EXPECTED["CIDEr-D"], abs=TOL)


def test_bad_inputs_are_one_line_errors(files, tmp_path):
    with pytest.raises(DataError, match="1 candidate image ids have no reference captions"):
        score_captions({99: "a dog"}, REFERENCES, ("bleu",))
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps([{"image_id": 1, "caption": "a"}, {"image_id": 1, "caption": "b"}]))
    with pytest.raises(DataError, match="image_id 1 has more than one caption"):
        load_candidates(dup)
    bad = tmp_path / "bad.json"
    bad.write_text('{"annotations": [{"image_id": 1}]}')
    with pytest.raises(DataError, match=r"annotations\[0\] needs an 'image_id' and a string 'caption'"):
        load_references(bad)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "score",
            "--candidates",
            str(tmp_path / "none.json"),
            "--references",
            str(files / "references.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 66 and "candidates file not found" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "score",
            "--candidates",
            str(dup),
            "--references",
            str(files / "references.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 65 and out.stderr.count("\n") == 1
