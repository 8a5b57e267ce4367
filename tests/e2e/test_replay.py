"""Production images replayed to both targets and judged paired: the seeded sample, the image
store's path safety, and ``harness judge --replay-images`` end to end on real servers."""

import json
import os
from types import SimpleNamespace

import pandas as pd
import pytest

from cli_run import run_cli
from harness.canary.replay import replay_dataset, replay_ids
from harness.errors import InputMissingError
from harness.records import RecordWriter

T0 = 1_700_000_000.0


def _ids(values):
    return pd.DataFrame({"image_id": values})


def test_replay_ids_are_a_seeded_deterministic_sample():
    base, can = _ids([str(i) for i in range(100)] + [None]), _ids(["100", "101", None])
    a = replay_ids(base, can, 20, seed=1)
    assert a == replay_ids(base, can, 20, seed=1) and a == sorted(a) and len(a) == 20
    assert replay_ids(base, can, 20, seed=2) != a
    assert set(a) <= {str(i) for i in range(102)}
    assert replay_ids(base, can, 500, seed=1) == sorted(str(i) for i in range(102))
    assert replay_ids(None, can, 5, seed=0) == ["100", "101"]


def test_replay_dataset_takes_only_regular_files_inside_the_store(tmp_path):
    from PIL import Image

    store, outside = tmp_path / "store", tmp_path / "outside"
    store.mkdir()
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(store / "ok.png")
    Image.new("RGB", (8, 8)).save(outside / "secret.png")
    Image.new("RGB", (8, 8)).save(store / ".hidden.png")
    os.symlink(outside / "secret.png", store / "link.png")
    os.mkfifo(store / "pipe.png")
    (store / "inner").mkdir()
    Image.new("RGB", (8, 8)).save(store / "inner" / "b.png")
    ids = ["ok", "../etc/passwd", "/etc/passwd", "inner/b", "..", ".hidden", "a\\b", "link", "pipe", "missing"]
    found = replay_dataset(store, ids, tmp_path / "out")
    assert found.replayed == ["ok"]
    assert sorted(found.skipped_unsafe) == sorted(
        ["../etc/passwd", "/etc/passwd", "inner/b", "..", ".hidden", "a\\b", "link", "pipe"]
    )
    assert found.not_found == ["missing"]
    assert found.summary(store, 10) == {
        "store": str(store),
        "sample": 10,
        "replayed": 1,
        "skipped_unsafe": 8,
        "not_found": 1,
    }
    doc = json.loads((found.folder / "captions.json").read_text())
    assert [im["id"] for im in doc["images"]] == ["ok"] and doc["annotations"] == []
    assert sorted(p.name for p in (found.folder / "images").iterdir()) == ["000000.png"]
    with pytest.raises(InputMissingError):
        replay_dataset(store, ["link", "missing"], tmp_path / "out2")


def test_a_coco_store_keeps_its_references(tmp_path):
    from harness.datasets import generate_shapes, load_coco, write_coco

    write_coco(generate_shapes(5, 3), tmp_path / "store")
    found = replay_dataset(tmp_path / "store", ["1", "3", "7", "../captions.json"], tmp_path / "out")
    assert found.replayed == ["1", "3"] and found.not_found == ["7"] and found.skipped_unsafe == ["../captions.json"]
    store = {str(it.image_id): it.captions for it in load_coco(tmp_path / "store").items}
    ds = load_coco(found.folder)
    assert {str(it.image_id): it.captions for it in ds.items} == {k: store[k] for k in ("1", "3")}
    assert all(it.captions for it in ds.items)


def test_the_store_s_objects_go_with_the_replayed_images(tmp_path):
    from harness.datasets import generate_shapes, load_coco, write_coco
    from harness.quality.chair import dataset_objects

    samples = list(generate_shapes(5, 3))
    write_coco(samples, tmp_path / "store")
    found = replay_dataset(tmp_path / "store", ["1", "3"], tmp_path / "out")
    objects = dataset_objects(found.folder)  # what the judge's hallucination metric reads
    assert objects is not None and sorted(objects.images) == ["1", "3"]
    report = objects.chair({"1": samples[1].captions[0], "3": samples[3].captions[0] + " and a green heart"})
    assert [bool(c.chair_s) for c in report.captions] == [False, True]
    # A store without references (instances.json alone) is replayed from its instances file.
    (tmp_path / "store" / "captions.json").unlink()
    bare = replay_dataset(tmp_path / "store", ["2", "9"], tmp_path / "out2")
    assert bare.replayed == ["2"] and bare.not_found == ["9"]
    assert all(not it.captions for it in load_coco(bare.folder).items)
    assert sorted(dataset_objects(bare.folder).images) == ["2"]


def test_replay_needs_urls_and_a_single_judgement(tmp_path):
    def harness(*args):
        return _harness_judge(list(args))

    (tmp_path / "recs").mkdir()
    base = ["--baseline", tmp_path / "recs", "--canary", tmp_path / "recs", "--out", tmp_path / "o"]
    p = harness(*base, "--replay-images", tmp_path, "--baseline-url", "http://127.0.0.1:9")
    assert p.returncode == 64 and "--baseline-url and --canary-url" in p.stderr
    urls = ["--baseline-url", "http://127.0.0.1:9", "--canary-url", "http://127.0.0.1:9"]
    p = harness(*base, "--replay-images", tmp_path, *urls, "--interval", "1m", "--lifetime", "5m")
    assert p.returncode == 64 and "--replay-images goes with a single judgement for now" in p.stderr


# ---------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def servers():
    pytest.importorskip("torch")
    from contextlib import ExitStack

    from reference_model.server.launch import start_server

    with ExitStack() as st:
        yield {
            "stable": st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
            "twin": st.enter_context(start_server("tiny", extra_args=["--threads", "1"])),
            "undertrained": st.enter_context(start_server("tiny-undertrained", extra_args=["--threads", "1"])),
        }


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """A shapes COCO folder of 60 images (the image store) and traffic records of both targets
    naming those images."""
    from harness.canary.simulation import Traffic, simulate_traffic
    from harness.datasets import generate_shapes, write_coco

    root = tmp_path_factory.mktemp("production")
    write_coco(generate_shapes(60, 12345), root / "store")
    traffic = Traffic(images=60)
    frames = [
        simulate_traffic(600, target=t, seed=s, t0=T0, traffic=traffic) for t, s in (("baseline", 1), ("canary", 2))
    ]
    df = pd.concat(frames, ignore_index=True).sort_values("t_start", kind="stable")
    with RecordWriter(root / "recs") as w:
        w.write_many(df.astype(object).where(pd.notna(df), None).to_dict("records"))
    ids = {str(it["id"]) for it in json.loads((root / "store" / "captions.json").read_text())["images"]}
    assert set(df["image_id"].astype(str)) <= ids  # the records name the store's images
    return root


def _judge(production, out, baseline_url, canary_url):
    recs = production / "recs"
    return _harness_judge(
        ["--baseline", recs, "--baseline-where", "target=baseline"]
        + ["--canary", recs, "--canary-where", "target=canary"]
        + ["--replay-images", production / "store", "--replay-sample", "60"]
        + ["--baseline-url", baseline_url, "--canary-url", canary_url, "--out", out, "--json"]
    )


def _harness_judge(args: list):
    """``harness judge ARGS`` run in this process: its exit code, stdout and stderr."""
    code, out, err = run_cli(["judge", *args])
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def _metric(rec, name):
    return next(m for m in rec["metrics"] if m["name"] == name)


@pytest.mark.slow
def test_an_undertrained_canary_is_rolled_back_on_replayed_images(servers, production, tmp_path):
    p = _judge(production, tmp_path / "out", servers["stable"].url, servers["undertrained"].url)
    assert p.returncode == 1, p.stderr
    rec = json.loads(p.stdout)
    assert rec["verdict"] == "ROLLBACK"
    assert rec["inputs"]["replay"] == {
        "store": str(production / "store"),
        "sample": 60,
        "replayed": 60,
        "skipped_unsafe": 0,
        "not_found": 0,
    }
    q = _metric(rec, "quality")
    assert q["classification"] == "Low" and q["n_canary"] == 60, q
    assert (tmp_path / "out" / "replay" / "evaluate" / "canary").is_dir()


@pytest.mark.slow
def test_an_identical_canary_passes_on_replayed_images(servers, production, tmp_path):
    p = _judge(production, tmp_path / "out", servers["stable"].url, servers["twin"].url)
    assert p.returncode in (0, 1, 2), p.stderr
    rec = json.loads(p.stdout)
    assert rec["verdict"] != "ROLLBACK", rec["reasons"]  # 60 images: PROMOTE, or HOLD as underpowered
    assert _metric(rec, "quality")["classification"] == "Pass"
    assert _metric(rec, "caption_changed")["effect"] == 0.0
    # Reference-free on the production images: each caption against its image, and what the store
    # says each image holds.
    for name in ("clipscore", "hallucination"):
        m = _metric(rec, name)
        assert m["classification"] == "Pass" and m["n_canary"] == 60 and m["effect"] == 0.0, m
    assert rec["inputs"]["clip"].startswith("embedded-") and rec["figures"]["canary"]["clip_score"] > 1.0


@pytest.mark.slow
def test_a_target_that_does_not_answer_is_unavailable(production, tmp_path):
    p = _judge(production, tmp_path / "out", "http://127.0.0.1:9", "http://127.0.0.1:9")
    assert p.returncode == 69, p.stderr
    assert "unavailable" in p.stderr


@pytest.mark.slow
def test_a_store_without_references_leaves_quality_without_data(servers, production, tmp_path):
    import shutil

    store = tmp_path / "plain"
    store.mkdir()
    for im in json.loads((production / "store" / "captions.json").read_text())["images"]:
        shutil.copyfile(production / "store" / "images" / im["file_name"], store / f"{im['id']}.png")
    recs = production / "recs"
    p = _harness_judge(
        ["--baseline", recs, "--baseline-where", "target=baseline"]
        + ["--canary", recs, "--canary-where", "target=canary"]
        + ["--replay-images", store, "--replay-sample", "20", "--seed", "3"]
        + ["--baseline-url", servers["stable"].url, "--canary-url", servers["twin"].url]
        + ["--out", tmp_path / "out", "--json"]
    )
    rec = json.loads(p.stdout)
    assert rec["inputs"]["replay"]["replayed"] == 20
    assert _metric(rec, "quality")["classification"] == "NoData"
    assert _metric(rec, "caption_changed")["n_canary"] == 20 and _metric(rec, "caption_changed")["effect"] == 0.0
    assert _metric(rec, "clipscore")["n_canary"] == 20  # the images alone are enough for CLIPScore
    assert _metric(rec, "hallucination")["reason"].startswith("CHAIR: no object annotations")
    assert not any(r.startswith("no data for required metric") for r in rec["reasons"]), rec["reasons"]
