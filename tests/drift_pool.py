"""A pool of the tiny model's outputs on the shapes world (clean, low light, unseen colour), built
once and cached under pytest's cache folder (keyed by model version), for the drift tests. The
pytest workers that need it at once wait on a lock for the one that builds it.

Tests draw their samples from the pool with seeded generators, so a calibration run of 100
pairs costs 100 detector runs, not 100 x 1000 model calls."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import numpy as np

POOL_SEED = 11
POOL_SIZES = {"clean": (3000, None), "low_light": (1000, "low_light"), "unseen_colour": (1000, "unseen_colour")}
BATCH = 200


def _build(model) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    from harness.datasets import generate_shapes, parse_shift
    from harness.drift import image_statistics

    arrays: dict[str, np.ndarray] = {}
    captions: dict[str, list[str]] = {}
    for name, (n, shift) in POOL_SIZES.items():
        conf, emb, caps, stats = [], [], [], []
        for start in range(0, n, BATCH):
            imgs = [s.image for s in generate_shapes(min(BATCH, n - start), POOL_SEED, parse_shift(shift), start=start)]
            out = model.caption(imgs)
            conf += [c.confidence for c in out]
            emb += [c.embedding for c in out]
            caps += [c.text for c in out]
            stats.append(image_statistics(imgs))
        arrays[f"{name}/confidence"] = np.array(conf)
        arrays[f"{name}/embedding"] = np.array(emb, dtype=np.float32)
        arrays[f"{name}/image_stats"] = np.concatenate(stats)
        captions[name] = caps
    return arrays, captions


def load_pool(cache_dir: Path) -> dict[str, dict]:
    """``{"clean": {"confidence", "embedding", "captions", "image_stats"}, "low_light": ..., ...}``."""
    from reference_model import load_captioner

    model = load_captioner("tiny", "cpu")
    key = f"{model.version}-{POOL_SEED}-" + "-".join(f"{k}{n}" for k, (n, _) in POOL_SIZES.items())
    npz, js = cache_dir / f"{key}.npz", cache_dir / f"{key}.json"
    with open(cache_dir / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if npz.exists() and js.exists():
            with np.load(npz) as f:
                arrays = {k: f[k] for k in f.files}
            captions = json.loads(js.read_text())
        else:
            arrays, captions = _build(model)
            np.savez(npz, **arrays)
            js.write_text(json.dumps(captions))
    pool: dict[str, dict] = {}
    for name in POOL_SIZES:
        pool[name] = {
            "confidence": arrays[f"{name}/confidence"],
            "embedding": arrays[f"{name}/embedding"],
            "image_stats": arrays[f"{name}/image_stats"],
            "captions": captions[name],
        }
    return pool


def pool_fixture(request, tmp_path_factory) -> dict[str, dict]:
    """The pool for a module-scoped fixture: in pytest's cache, else in the folder every worker of
    this session shares."""
    import pytest

    pytest.importorskip("torch")
    cache = getattr(request.config, "cache", None)
    if cache is not None:
        return load_pool(cache.mkdir("drift-pool"))
    shared = tmp_path_factory.getbasetemp().parent / "drift-pool"
    shared.mkdir(exist_ok=True)
    return load_pool(shared)
