import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from harness.datasets import generate_shapes

pytest.importorskip("torch")


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_bad_files_get_one_line_each_and_good_ones_are_captioned(tmp_path):
    samples = list(generate_shapes(2, seed=12345))
    good = []
    for s in samples:
        p = tmp_path / s.file_name
        p.write_bytes(_png(s.image))
        good.append(p)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(_png(samples[0].image)[:400])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all\n")
    jpeg = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    samples[1].image.save(buf, format="JPEG")
    jpeg.write_bytes(buf.getvalue()[:300])
    files = [truncated, good[0], empty, text, jpeg, good[1], tmp_path / "absent.png"]
    out = subprocess.run(
        [sys.executable, "-m", "harness", "caption", "--json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 65
    assert "Traceback" not in out.stderr
    errs = out.stderr.strip().splitlines()
    assert errs == [
        f"harness caption: {truncated}: undecodable image: truncated image data",
        f"harness caption: {empty}: empty file (0 bytes)",
        f"harness caption: {text}: not an image (unrecognised format)",
        f"harness caption: {jpeg}: undecodable image: truncated image data",
        f"harness caption: {tmp_path / 'absent.png'}: file not found",
    ]
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["file"] for r in rows] == [str(p) for p in good]
    for r, s in zip(rows, samples):
        assert r["caption"] in s.captions
        assert 0 <= r["confidence"] <= 1


def test_all_good_exits_zero(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(p)
    out = subprocess.run(
        [sys.executable, "-m", "harness", "caption", str(p)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    path, conf, text = out.stdout.strip().split("\t")
    assert path == str(p) and 0 <= float(conf) <= 1 and text


def test_unknown_model_is_a_usage_error(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGB", (40, 30)).save(p)
    out = subprocess.run(
        [sys.executable, "-m", "harness", "caption", "--model", "nope", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 64
    assert out.stderr.strip().count("\n") == 0 and "cannot load model 'nope'" in out.stderr
