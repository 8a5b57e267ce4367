"""Drift against the real reference server: traffic from the shapes world is captioned over HTTP
(contract v1, with embeddings), recorded, and compared with ``harness drift``. In-distribution vs
low-light traffic must be reported as drift (exit 3); two in-distribution runs must not (exit 0)."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.cli import main
from harness.client import CaptionClient, to_record
from harness.datasets import generate_shapes, parse_shift
from harness.records import RecordWriter

pytest.importorskip("torch")

N = 300


def _traffic(url: str, path: Path, run: str, seed: int, start: int, shift: str | None) -> Path:
    """Send ``N`` shapes images to ``url`` and write one record per request to ``path``."""
    samples = list(generate_shapes(N, seed, parse_shift(shift), start=start))
    bodies = []
    for s in samples:
        buf = io.BytesIO()
        s.image.save(buf, format="PNG")
        bodies.append(buf.getvalue())
    with CaptionClient(url, timeout=60.0) as client, RecordWriter(path) as writer:

        def send(i: int):
            return client.caption(bodies[i], "image/png", request_id=f"{run}-{i}", return_embedding=True)

        with ThreadPoolExecutor(8) as pool:
            for i, result in enumerate(pool.map(send, range(N))):
                w, h = samples[i].image.size
                writer.write(
                    to_record(
                        result,
                        run_id=run,
                        target="reference",
                        scenario=shift or "in_distribution",
                        image_id=str(samples[i].image_id),
                        image_bytes=len(bodies[i]),
                        image_w=w,
                        image_h=h,
                    )
                )
    return path


@pytest.fixture(scope="module")
def runs(reference_server, tmp_path_factory):
    d = tmp_path_factory.mktemp("server-records")
    return {
        "a": _traffic(reference_server.url, d / "a" / "records.jsonl", "a", seed=21, start=0, shift=None),
        "b": _traffic(reference_server.url, d / "b" / "records.jsonl", "b", seed=21, start=N, shift=None),
        "low": _traffic(
            reference_server.url, d / "low" / "records.jsonl", "low", seed=21, start=2 * N, shift="low_light"
        ),
    }


def _drift(reference: Path, current: Path, out: Path) -> tuple[int, dict]:
    code = main(
        [
            "drift",
            "--reference",
            str(reference),
            "--current",
            str(current),
            "--out",
            str(out),
            "--no-sentence-embeddings",
        ]
    )
    return code, json.loads((out / "drift.json").read_text())


def test_records_carry_what_drift_reads(runs):
    from harness.records import load_records

    df = load_records(runs["a"])
    assert len(df) == N and (df["outcome"] == "ok").all()
    assert df["embedding"].map(len).nunique() == 1 and df["confidence"].between(0, 1).all()


def test_low_light_traffic_is_drift(runs, tmp_path):
    code, record = _drift(runs["a"], runs["low"], tmp_path)
    assert code == 3 and record["drift"] is True
    assert {"embedding.mmd", "embedding.classifier", "image.stats"} <= set(record["drifted"])


def test_two_in_distribution_runs_are_not_drift(runs, tmp_path):
    code, record = _drift(runs["a"], runs["b"], tmp_path)
    assert code == 0 and record["drift"] is False, record["drifted"]
    assert len(record["results"]) == 8  # confidence x3, embedding x2, caption x2, image sizes
