"""``harness evaluate`` against the real reference server."""

import json
import socket

import httpx
import pandas as pd
import pytest

from harness.cli import main
from harness.client import CaptionResult
from harness.quality.evaluation import RetryPolicy, parse_dataset


def evaluate(url, dataset, out, *extra):
    return main(["evaluate", "--target", url, "--dataset", dataset, "--out", str(out), "--concurrency", "8", *extra])


def test_tiny_model_scores_and_low_light_is_lower(reference_server, tmp_path, capsys):
    clean, dark = tmp_path / "clean", tmp_path / "dark"
    assert evaluate(reference_server.url, "shapes:200", clean, "--metrics", "all") == 0
    shown = capsys.readouterr().out
    assert evaluate(reference_server.url, "shapes:200:low_light", dark, "--metrics", "cider") == 0

    q_clean = json.loads((clean / "quality.json").read_text())
    q_dark = json.loads((dark / "quality.json").read_text())
    for q in (q_clean, q_dark):
        assert q["n_images"] == 200 and len(q["per_image"]) == 200
        assert q["contract"]["success"] and q["run"]["n_ok"] == 200
        assert q["run"]["model_versions"][0].startswith("tiny")
    assert set(q_clean["metrics"]) >= {"BLEU-1", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr-D"}
    assert "CIDEr-D" in shown and "METEOR" in shown
    chair = q_clean["chair"]  # object hallucination: the shapes world says what each image holds
    assert chair["vocabulary"] == "shapes" and chair["captions"] == 200 and chair["mentions"] >= 200
    assert len(chair["per_image"]) == 200 and {"colour", "relation"} <= set(chair) and "CHAIR_i" in shown

    c, d = q_clean["metrics"]["CIDEr-D"], q_dark["metrics"]["CIDEr-D"]
    assert d["corpus"] < c["corpus"]
    assert d["ci"]["high"] < c["ci"]["low"]  # the 95% intervals do not overlap
    assert c["ci"]["low"] <= c["corpus"] <= c["ci"]["high"]

    per_image = pd.DataFrame(q_clean["per_image"])
    assert per_image["CIDEr-D"].mean() == pytest.approx(c["corpus"], abs=1e-9)

    records = pd.read_parquet(clean / "records.parquet")
    assert len(records) == 200 and records["request_id"].is_unique
    assert records["embedding"].map(lambda e: e is not None and len(e) > 0).all()
    assert sorted(records["image_id"].astype(int)) == list(range(200))
    assert json.loads((clean / "contract.json").read_text())["success"]


def _faults(server, method, body=None):
    r = httpx.request(
        method, server.url + "/admin/faults", json=body, headers={"X-Admin-Token": server.admin_token}, timeout=10
    )
    r.raise_for_status()


def test_retries_a_not_ready_target_after_retry_after(reference_server, tmp_path, capsys):
    _faults(reference_server, "POST", {"slow_start_s": 1.0})
    try:
        assert evaluate(reference_server.url, "shapes:6", tmp_path, "--metrics", "cider", "--bootstrap", "0") == 0
    finally:
        _faults(reference_server, "DELETE")
    records = pd.read_parquet(tmp_path / "records.parquet")
    assert (records["status"] == 503).sum() >= 1  # answered "not ready, Retry-After: 1"
    assert records.groupby("image_id")["outcome"].last().eq("ok").all()
    assert records["request_id"].is_unique
    q = json.loads((tmp_path / "quality.json").read_text())
    assert q["run"]["n_retries"] == int((records["status"] == 503).sum())


def test_failed_contract_stops_scoring(reference_server, tmp_path, capsys):
    _faults(reference_server, "POST", {"error_rate": 0.5, "seed": 3})
    try:
        rc = evaluate(reference_server.url, "shapes:20", tmp_path, "--metrics", "cider", "--coverage", "0.99")
    finally:
        _faults(reference_server, "DELETE")
    assert rc == 65
    err = capsys.readouterr().err
    assert "data contract failed: 1 of" in err and "coverage >= 0.99: observed" in err
    assert (tmp_path / "records.parquet").exists() and not (tmp_path / "quality.json").exists()
    assert not json.loads((tmp_path / "contract.json").read_text())["success"]


def test_unreachable_target_exits_69(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc = evaluate(f"http://127.0.0.1:{port}", "shapes:2", tmp_path, "--max-retries", "1")
    assert rc == 69
    err = capsys.readouterr().err
    assert "no answer to any of 4 requests" in err and err.count("\n") == 1
    assert len(pd.read_parquet(tmp_path / "records.parquet")) == 4


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--dataset", "shapes:x"], "needs a number of images"),
        (["--dataset", "mnist:3"], "unknown --dataset"),
        (["--dataset", "shapes:3:fog"], "unknown shift 'fog'"),
        (["--dataset", "shapes:3", "--concurrency", "0"], "--concurrency must be at least 1"),
    ],
)
def test_usage_errors_exit_64(tmp_path, capsys, args, msg):
    rc = main(["evaluate", "--target", "http://127.0.0.1:9", "--out", str(tmp_path), *args])
    assert rc == 64 and msg in capsys.readouterr().err


def _result(outcome, status, error=None, retry_after=None):
    return CaptionResult(outcome, status, 0.1, 0.0, "r", error=error, retry_after_s=retry_after)


def test_retry_policy_retries_only_where_safe():
    p = RetryPolicy(max_retries=2, backoff_s=0.5, max_wait_s=5.0)
    assert p.delay(_result("connection_error", 0, "ConnectError: refused"), 0) == 0.5
    assert p.delay(_result("connection_error", 0, "ConnectError: refused"), 1) == 1.0
    assert p.delay(_result("connection_error", 0, "ConnectError: refused"), 2) is None  # bounded
    assert p.delay(_result("connection_error", 0, "RemoteProtocolError: disconnected"), 0) is None  # may have been sent
    assert p.delay(_result("timeout", 0, "ReadTimeout: x"), 0) is None
    assert p.delay(_result("http_error", 429, "HTTP 429", retry_after=2.0), 0) == 2.0
    assert p.delay(_result("http_error", 503, "HTTP 503", retry_after=60.0), 0) == 5.0  # capped
    assert p.delay(_result("http_error", 503, "HTTP 503"), 0) is None  # no Retry-After
    assert p.delay(_result("http_error", 500, "HTTP 500", retry_after=1.0), 0) is None
    assert p.delay(_result("ok", 200), 0) is None


def test_shapes_dataset_carries_references():
    ds = parse_dataset("shapes:3:low_light:0.5", seed=4)
    images = list(ds.images())
    assert ds.size == 3 and [im.image_id for im in images] == [0, 1, 2]
    assert images[0].content.startswith(b"\x89PNG") and images[0].references
    assert "low_light:0.5" in ds.name


def test_clip_scores_the_captions_with_the_embedded_encoder(reference_server, tmp_path, capsys):
    """``--clip embedded``: CLIPScore and RefCLIPScore of the target's captions beside the rest."""
    pytest.importorskip("transformers")
    out = tmp_path / "clip"
    rc = evaluate(reference_server.url, "shapes:12", out, "--clip", "embedded")
    said = capsys.readouterr()
    assert rc == 0, said.err
    clip = json.loads((out / "quality.json").read_text())["clipscore"]
    assert clip["n_captions"] == 12 and 0 < clip["clip_score"] <= 2.5 and 0 < clip["ref_clip_score"] <= 2.5
    assert "CLIPScore" in said.out


def test_clip_folder_missing_exits_66_before_any_request(tmp_path, capsys):
    rc = main(
        [
            "evaluate",
            "--target",
            "http://127.0.0.1:9",
            "--dataset",
            "shapes:4",
            "--clip",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert rc == 66 and capsys.readouterr().err.count("\n") == 1
