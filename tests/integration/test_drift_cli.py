"""``harness drift`` on request records made from the tiny model's outputs (tests/drift_pool.py):
exit codes 0 / 3, the three report files, a saved reference, images folders, and bad input."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drift_pool import pool_fixture
from harness.cli import main
from harness.records import RecordWriter, RequestRecord

pytestmark = pytest.mark.slow  # the model's outputs on a pool of images, then whole drift runs
N = 400


@pytest.fixture(scope="module")
def pool(request, tmp_path_factory):
    return pool_fixture(request, tmp_path_factory)


def _write(path: Path, part: dict, lo: int, hi: int, run: str) -> Path:
    with RecordWriter(path) as w:
        for i in range(lo, hi):
            w.write(
                RequestRecord(
                    run_id=run,
                    target="baseline",
                    scenario="drift",
                    request_id=f"{run}-{i}",
                    image_id=str(i),
                    t_start=1_700_000_000.0 + i,
                    latency_s=0.01,
                    status=200,
                    outcome="ok",
                    caption=part["captions"][i],
                    confidence=float(part["confidence"][i]),
                    model_version="tiny",
                    embedding=[float(v) for v in part["embedding"][i]],
                )
            )
        w.write(
            RequestRecord(
                run_id=run,
                target="baseline",
                scenario="drift",
                request_id=f"{run}-x",
                image_id=None,
                t_start=1_700_000_000.0,
                latency_s=30.0,
                status=0,
                outcome="timeout",
                error="timed out",
            )
        )
    return path


@pytest.fixture(scope="module")
def windows(pool, tmp_path_factory):
    d = tmp_path_factory.mktemp("records")
    return {
        "reference": _write(d / "ref" / "records.jsonl", pool["clean"], 0, N, "ref"),
        "same": _write(d / "same" / "records.jsonl", pool["clean"], N, 2 * N, "same"),
        "low_light": _write(d / "low" / "records.jsonl", pool["low_light"], 0, N, "low"),
    }


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["drift", *args, "--no-sentence-embeddings"])
    out, err = capsys.readouterr()
    return code, out, err


def test_no_drift_between_two_clean_windows_exits_0(windows, tmp_path, capsys):
    code, out, _ = _run(
        capsys,
        "--reference",
        str(windows["reference"].parent),
        "--current",
        str(windows["same"]),
        "--out",
        str(tmp_path),
    )
    assert code == 0, out
    assert out.startswith("no drift")
    record = json.loads((tmp_path / "drift.json").read_text())
    assert record["drift"] is False and record["drifted"] == []
    assert record["reference"]["n_records"] == N and record["current"]["n_records"] == N
    names = [r["detector"] for r in record["results"]]
    assert names == [
        "confidence.ks",
        "confidence.psi",
        "confidence.wasserstein",
        "embedding.mmd",
        "embedding.classifier",
        "caption.length",
        "caption.tokens",
    ]


def test_low_light_drift_exits_3_with_a_self_contained_report(windows, tmp_path, capsys):
    code, out, _ = _run(
        capsys, "--reference", str(windows["reference"]), "--current", str(windows["low_light"]), "--out", str(tmp_path)
    )
    assert code == 3
    assert out.startswith("drift found by")
    record = json.loads((tmp_path / "drift.json").read_text())
    assert record["drift"] is True
    assert {"embedding.mmd", "embedding.classifier", "confidence.ks"} <= set(record["drifted"])
    page = (tmp_path / "drift.html").read_text()
    assert "<svg" in page and page.count("<figure>") == len(record["distributions"]) >= 4
    assert not re.search(r"""(src|href)\s*=""", page)  # nothing fetched from outside
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)
    md = (tmp_path / "drift.md").read_text()
    assert md.startswith("# Drift: DRIFT FOUND") and "| embedding.mmd |" in md


def test_saved_reference_is_reused_with_the_same_verdicts(windows, tmp_path, capsys):
    first, saved = tmp_path / "a", tmp_path / "ref"
    code1, _, _ = _run(
        capsys,
        "--reference",
        str(windows["reference"]),
        "--current",
        str(windows["low_light"]),
        "--out",
        str(first),
        "--save-reference",
        str(saved),
    )
    assert (saved / "drift_reference.json").exists() and (saved / "drift_reference.npz").exists()
    code2, _, _ = _run(
        capsys, "--reference", str(saved), "--current", str(windows["low_light"]), "--out", str(tmp_path / "b")
    )
    a = json.loads((first / "drift.json").read_text())["results"]
    b = json.loads((tmp_path / "b" / "drift.json").read_text())["results"]
    assert code1 == code2 == 3
    assert [(r["detector"], r["statistic"], r["p_value"], r["drift"]) for r in a] == [
        (r["detector"], r["statistic"], r["p_value"], r["drift"]) for r in b
    ]


def test_image_folders_add_image_statistics(windows, tmp_path, capsys):
    from harness.datasets import generate_shapes, parse_shift

    for name, shift in (("ref_img", None), ("cur_img", parse_shift("low_light"))):
        (tmp_path / name).mkdir()
        for s in generate_shapes(60, 3, shift):
            s.image.save(tmp_path / name / s.file_name)
    (tmp_path / "cur_img" / "broken.png").write_bytes(b"not a png")
    code, _, _ = _run(
        capsys,
        "--reference",
        str(windows["reference"]),
        "--current",
        str(windows["same"]),
        "--reference-images",
        str(tmp_path / "ref_img"),
        "--current-images",
        str(tmp_path / "cur_img"),
        "--out",
        str(tmp_path / "out"),
    )
    record = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert code == 3 and record["drifted"] == ["image.stats"]
    stats = next(r for r in record["results"] if r["detector"] == "image.stats")
    assert stats["n_reference"] == 60 and stats["n_current"] == 60
    assert stats["details"]["features"]["brightness"]["D"] == 1.0
    assert "image_brightness" in record["distributions"]


def test_quality_estimate_rides_along(windows, tmp_path, capsys):
    from harness.quality.estimate import fit_quality_model

    rng = np.random.default_rng(0)
    conf = rng.uniform(0, 1, 200)
    model = fit_quality_model(conf, 2 * conf + rng.normal(0, 0.05, 200))
    (tmp_path / "q.json").write_text(json.dumps(model.to_dict()))
    code, _, _ = _run(
        capsys,
        "--reference",
        str(windows["reference"]),
        "--current",
        str(windows["same"]),
        "--quality-model",
        str(tmp_path / "q.json"),
        "--out",
        str(tmp_path / "out"),
    )
    q = json.loads((tmp_path / "out" / "drift.json").read_text())["quality"]
    assert code == 0 and q["current"]["n"] == N
    assert q["change"] == pytest.approx(q["current"]["estimate"] - q["reference"]["estimate"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", "drift", *args, "--no-sentence-embeddings"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_bad_input_is_one_line_with_the_shared_exit_codes(windows, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    no_conf = tmp_path / "noconf.jsonl"
    rows = [json.loads(line) for line in windows["same"].read_text().splitlines()]
    no_conf.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "confidence"}) + "\n" for r in rows))
    small = tmp_path / "small.jsonl"
    small.write_text(
        "".join(json.dumps(r | {"embedding": r["embedding"][:64] if r["embedding"] else None}) + "\n" for r in rows)
    )
    ref, out = str(windows["reference"]), str(tmp_path / "out")
    cases = [
        (["--reference", ref, "--current", str(empty), "--out", out], 65, "no records"),
        (["--reference", ref, "--current", str(tmp_path / "nowhere"), "--out", out], 66, "records not found"),
        (["--reference", ref, "--current", str(no_conf), "--out", out], 65, "carry no confidence"),
        (["--reference", ref, "--current", str(small), "--out", out], 65, "size 64, the reference's are of size 128"),
        (["--reference", ref, "--current", ref, "--out", out, "--alpha", "2"], 64, "--alpha"),
    ]
    for args, code, text in cases:
        p = _cli(*args)
        assert p.returncode == code, (args, p.stderr)
        assert p.stderr.count("\n") == 1 and text in p.stderr and "Traceback" not in p.stderr


def test_a_confidence_too_large_to_round_is_reported_as_it_is(windows, tmp_path, capsys):
    """A service may give any real as its confidence: one of 1e308 in a parquet window is a value
    like the others, its histogram edge kept as it is (rounding it to 6 decimals would overflow)."""
    import pandas as pd

    rows = [json.loads(line) for line in windows["same"].read_text().splitlines()]
    rows[3]["confidence"] = 1e308
    current = tmp_path / "current" / "records.parquet"
    current.parent.mkdir()
    pd.DataFrame(rows).to_parquet(current)
    out = tmp_path / "out"
    code, _, err = _run(
        capsys, "--reference", str(windows["reference"]), "--current", str(current.parent), "--out", str(out)
    )
    assert code in (0, 1), err
    edges = json.loads((out / "drift.json").read_text())["distributions"]["confidence"]["edges"]
    assert edges[-1] == 1e308 and all(math.isfinite(e) for e in edges)
    assert (out / "drift.html").read_text().count("<figure>") >= 1
