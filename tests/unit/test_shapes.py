import json

import numpy as np
import pytest

from harness.cli import main
from harness.datasets import generate_shapes, load_coco, parse_shift, shapes_sample
from harness.datasets.scene import COLOURS, SHAPES, UNSEEN_COLOURS, UNSEEN_SHAPES
from harness.errors import UsageError


def test_same_seed_same_world():
    a = list(generate_shapes(20, seed=7))
    b = list(generate_shapes(20, seed=7))
    for x, y in zip(a, b):
        assert x.captions == y.captions
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))
    c = list(generate_shapes(20, seed=8))
    assert [x.captions for x in a] != [x.captions for x in c]


def test_an_image_does_not_depend_on_how_many_are_drawn():
    assert list(generate_shapes(5, seed=3))[4].captions == shapes_sample(4, seed=3).captions
    assert list(generate_shapes(2, seed=3, start=4))[0].captions == shapes_sample(4, seed=3).captions


def test_captions_describe_the_scene():
    counts = {1: 0, 2: 0, 3: 0}
    relations = set()
    for s in generate_shapes(300, seed=1):
        objs = s.scene.objects
        counts[len(objs)] += 1
        assert len(s.captions) >= 4
        assert s.image.size == (128, 128) and s.image.mode == "RGB"
        for o in objs:
            assert o.shape in SHAPES and o.colour in COLOURS
            assert o.phrase in s.captions[0]
        if len(objs) == 2:
            a, b = objs
            relations.add(s.scene.relation)
            if s.scene.relation == "horizontal":
                assert a.x < b.x and "to the left of" in s.captions[0]
                assert any("to the right of" in c for c in s.captions)
            else:
                assert a.y < b.y and " above " in s.captions[0]
                assert any(" below " in c for c in s.captions)
        if len(objs) == 3:
            assert objs[0].x < objs[1].x < objs[2].x
            assert s.captions[0].count(", ") == 1 and " and " in s.captions[0]
    assert min(counts.values()) > 50
    assert relations == {"horizontal", "vertical"}


def test_shifts_change_what_they_say():
    clean = [np.asarray(s.image, dtype=float).mean() for s in generate_shapes(30, seed=2)]
    dark = [
        np.asarray(s.image, dtype=float).mean() for s in generate_shapes(30, seed=2, shift=parse_shift("low_light"))
    ]
    assert max(d / c for d, c in zip(dark, clean)) < 0.5
    for s in generate_shapes(30, seed=2, shift=parse_shift("unseen_colour")):
        assert any(o.colour in UNSEEN_COLOURS for o in s.scene.objects)
        assert any(c in s.captions[0] for c in UNSEEN_COLOURS)
    for s in generate_shapes(10, seed=2, shift=parse_shift("unseen_shape:1")):
        assert all(o.shape in UNSEEN_SHAPES for o in s.scene.objects)
    hr = shapes_sample(0, seed=2, shift=parse_shift("high_res:0.5"))
    assert hr.image.size == (2560, 2560)
    assert hr.captions == shapes_sample(0, seed=2).captions
    noisy = shapes_sample(0, seed=2, shift=parse_shift("noise"))
    assert np.asarray(noisy.image, dtype=float).std() > np.asarray(shapes_sample(0, seed=2).image, dtype=float).std()


@pytest.mark.parametrize(
    "text,msg",
    [
        ("dusk", "unknown shift 'dusk'"),
        ("low_light:x", "not a number"),
        ("low_light:0", "out of range"),
        ("blur:1.5", "out of range"),
    ],
)
def test_bad_shift_names_the_problem(text, msg):
    with pytest.raises(UsageError, match=msg):
        parse_shift(text)


def test_export_writes_a_coco_folder(tmp_path, capsys):
    out = tmp_path / "set"
    assert (
        main(
            [
                "dataset",
                "export",
                "--name",
                "shapes",
                "--n",
                "12",
                "--seed",
                "1",
                "--shift",
                "blur:0.3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads((out / "captions.json").read_text())
    assert [im["id"] for im in doc["images"]] == list(range(12))
    assert all((out / "images" / im["file_name"]).exists() for im in doc["images"])
    assert len(doc["annotations"]) >= 4 * 12
    assert doc["info"]["shift"] == "blur:0.3"
    ds = load_coco(out)
    assert len(ds) == 12
    assert ds.items[0].captions[0] == shapes_sample(0, seed=1).captions[0]


def test_export_usage_errors(tmp_path, capsys):
    assert main(["dataset", "export", "--name", "imagenet", "--out", str(tmp_path)]) == 64
    assert "unknown data set 'imagenet'" in capsys.readouterr().err
