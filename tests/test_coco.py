import json

import pytest

from harness.datasets import generate_shapes, load_coco, write_coco
from harness.errors import DataError, InputMissingError


@pytest.fixture()
def coco(tmp_path):
    write_coco(generate_shapes(3, seed=4), tmp_path)
    return tmp_path


def test_round_trip(coco):
    ds = load_coco(coco / "captions.json", coco / "images")
    assert [it.image_id for it in ds.items] == [0, 1, 2]
    assert ds.references()[1] == next(generate_shapes(1, seed=4, start=1)).captions


def test_missing_file(tmp_path):
    with pytest.raises(InputMissingError, match="annotations file not found"):
        load_coco(tmp_path / "nope.json")


def test_malformed_json_names_file_and_place(coco):
    (coco / "captions.json").write_text('{"images": [}')
    with pytest.raises(DataError, match=r"captions.json: malformed JSON at line 1 column 13"):
        load_coco(coco)


def test_wrong_shape(coco):
    (coco / "captions.json").write_text(json.dumps({"images": [{"id": 1}], "annotations": []}))
    with pytest.raises(DataError, match=r"images\[0\] needs 'id' and a string 'file_name'"):
        load_coco(coco)
    (coco / "captions.json").write_text(json.dumps([1, 2]))
    with pytest.raises(DataError, match="expected an object with an 'images' list"):
        load_coco(coco)


def test_missing_image(coco):
    (coco / "images" / "000001.png").unlink()
    with pytest.raises(InputMissingError, match="000001.png: image listed in captions.json not found"):
        load_coco(coco)
