import json
import os
import subprocess
import sys

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


def _point_at(coco, file_name):
    doc = json.loads((coco / "captions.json").read_text())
    doc["images"][1]["file_name"] = file_name
    (coco / "captions.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda d, secret: str(secret), "leaves the images folder"),
        (lambda d, secret: "../../secret.txt", "leaves the images folder"),
        (lambda d, secret: (d / "images" / "link.png").symlink_to(secret) or "link.png", "leaves the images folder"),
        (lambda d, secret: "/dev/zero", "leaves the images folder"),
        (lambda d, secret: os.mkfifo(d / "images" / "pipe.png") or "pipe.png", "is not a regular file"),
        (lambda d, secret: (d / "images" / "sub").mkdir() or "sub", "is not a regular file"),
        (lambda d, secret: _sparse(d / "images" / "big.png") or "big.png", "is larger than 20 MB"),
    ],
    ids=["absolute", "dotdot", "symlink-out", "device", "fifo", "folder", "oversize"],
)
def test_a_data_set_never_reaches_outside_its_images_folder(tmp_path, make, words):
    secret = tmp_path / "secret.txt"
    secret.write_text("a secret")
    coco = tmp_path / "set"
    write_coco(generate_shapes(3, seed=4), coco)
    _point_at(coco, make(coco, secret))
    with pytest.raises(DataError, match=rf"captions.json: images\[1\].file_name .* {words}"):
        load_coco(coco)


def _sparse(path):
    with open(path, "wb") as f:
        f.truncate(21 * 1024 * 1024)


def test_evaluate_refuses_such_a_data_set_in_one_line_before_sending_anything(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("a secret")
    coco = tmp_path / "set"
    write_coco(generate_shapes(3, seed=4), coco)
    _point_at(coco, str(secret))
    out = subprocess.run(
        [sys.executable, "-m", "harness", "evaluate", "--target", "http://127.0.0.1:9", "--dataset", f"coco:{coco}"]
        + ["--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 65, out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith("leaves the images folder")
    assert "Traceback" not in out.stderr
