"""Paired quality on production inputs: the images production asked about (``image_id`` of the
traffic records), taken from the user's image store, captioned by both targets at the same time
and scored against their references where the store has any, as the gate does with its own set;
reference-free, each caption is scored against its image (CLIPScore) and, where the store's
``instances.json`` says what each image holds, read for objects the image does not hold.

The ids come from the records and are untrusted: only plain file names are looked up, and only
regular files inside the store (after resolving links), at most ``MAX_IMAGE_BYTES``, are read."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness.datasets.coco import MAX_IMAGE_BYTES, read_image_file
from harness.errors import InputMissingError
from harness.quality.image_store import plain_image_id

__all__ = ["EXTENSIONS", "MAX_IMAGE_BYTES", "ReplaySet", "replay_ids", "replay_dataset", "replay"]

log = logging.getLogger(__name__)

EXTENSIONS = ("png", "jpg", "jpeg", "webp")  # looked up in this order in a plain image folder
INSTANCES = "instances.json"  # what each image of a COCO store holds (harness.quality.chair)
ROLES = ("baseline", "canary")


def replay_ids(baseline_df, canary_df, n: int, seed: int) -> list[str]:
    """The image ids seen in either target's records (non-null), a seeded sample of at most ``n``
    (the ``n`` with the smallest hash of (id, seed)), sorted."""
    seen: set[str] = set()
    for df in (baseline_df, canary_df):
        if df is None or not len(df) or "image_id" not in df.columns:
            continue
        seen.update(str(v) for v in df["image_id"].dropna())

    def key(image_id: str) -> bytes:
        return hashlib.blake2b(f"{seed}\0{image_id}".encode(), digest_size=16).digest()

    return sorted(sorted(seen, key=key)[: max(int(n), 0)])


@dataclass
class ReplaySet:
    """What ``replay_dataset`` found: the folder written, and the ids it could not take."""

    folder: Path
    replayed: list[str] = field(default_factory=list)
    skipped_unsafe: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    def summary(self, store: Path, sample: int) -> dict[str, Any]:
        return {
            "store": str(store),
            "sample": sample,
            "replayed": len(self.replayed),
            "skipped_unsafe": len(self.skipped_unsafe),
            "not_found": len(self.not_found),
        }


def _coco_entries(store: Path) -> dict[str, tuple[str, list[str]]]:
    """id -> (file name, references) of a COCO store's ``captions.json``, or of its
    ``instances.json`` where it has no captions file (a store without references: none); read as
    text: the images themselves are checked one by one when taken."""
    from harness.errors import DataError

    ann = store / "captions.json"
    if not ann.is_file():
        ann = store / INSTANCES
    try:
        doc = json.loads(ann.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{ann}: unreadable ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(f"{ann}: expected an object with an 'images' list (COCO captions format)")
    refs: dict[str, list[str]] = {}
    for a in doc.get("annotations") or [] if ann.name == "captions.json" else []:
        if isinstance(a, dict) and isinstance(a.get("caption"), str) and "image_id" in a:
            refs.setdefault(str(a["image_id"]), []).append(a["caption"])
    out: dict[str, tuple[str, list[str]]] = {}
    for im in doc["images"]:
        if isinstance(im, dict) and "id" in im and isinstance(im.get("file_name"), str):
            out[str(im["id"])] = (im["file_name"], refs.get(str(im["id"]), []))
    return out


def replay_dataset(store: str | Path, ids: Iterable[str], out: str | Path) -> ReplaySet:
    """A COCO folder at ``out/replay/dataset`` with the images of ``ids`` from ``store``: a COCO
    folder (``captions.json``: its items with those ids, references included) or a plain folder
    (``store/<id>.<ext>``, ext in ``EXTENSIONS``). An id that is not a plain file name, or whose
    file is not a regular file inside the store of at most 20 MB, is skipped as unsafe; one the
    store lacks is not found. ``InputMissingError`` when none of the ids is in the store."""
    store = Path(store)
    if not store.is_dir():
        raise InputMissingError(f"--replay-images {store}: not a folder")
    folder = Path(out) / "replay" / "dataset"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    coco = _coco_entries(store) if (store / "captions.json").is_file() or (store / INSTANCES).is_file() else None
    res = ReplaySet(folder)
    images, annotations = [], []
    for image_id in ids:
        image_id = str(image_id)
        if not plain_image_id(image_id):
            res.skipped_unsafe.append(image_id)
            continue
        if coco is not None:
            if image_id not in coco:
                res.not_found.append(image_id)
                continue
            file_name, references = coco[image_id]
            candidates = [store / "images" / file_name]
        else:
            references = []
            candidates = [store / f"{image_id}.{ext}" for ext in EXTENSIONS]
        existing = [p for p in candidates if os.path.lexists(p)]
        if not existing:
            res.not_found.append(image_id)
            continue
        data = read_image_file(existing[0], store)
        if data is None:
            res.skipped_unsafe.append(image_id)
            continue
        suffix = Path(existing[0].name).suffix.lower() or ".png"
        name = f"{len(images):06d}{suffix}"
        (folder / "images" / name).write_bytes(data)
        images.append({"id": image_id, "file_name": name})
        for c in references:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "caption": c})
        res.replayed.append(image_id)
    if res.skipped_unsafe:
        log.warning("replay: %d image ids skipped (not a plain file name in the store)", len(res.skipped_unsafe))
    if not images:
        raise InputMissingError(
            f"--replay-images {store}: none of the {len(res.not_found) + len(res.skipped_unsafe)} sampled "
            f"image ids is in the store ({len(res.skipped_unsafe)} unsafe, {len(res.not_found)} not found)"
        )
    doc = {"info": {"name": "replay", "store": str(store)}, "images": images, "annotations": annotations}
    (folder / "captions.json").write_text(json.dumps(doc, indent=1) + "\n")
    _replay_instances(store, images, folder)
    return res


def _replay_instances(store: Path, images: list[dict], folder: Path) -> None:
    """The store's ``instances.json`` (what each image holds) narrowed to the replayed images, their
    ids as the replayed set names them, into ``folder``: the hallucination metric reads it. A store
    without one, or with one that is not an instances file, gives none (the metric says why)."""
    path = store / INSTANCES
    if not path.is_file():
        return
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        return
    names = {str(im["id"]): im["file_name"] for im in images}
    kept = [
        {**im, "id": str(im["id"]), "file_name": names[str(im["id"])]}
        for im in doc.get("images") or []
        if isinstance(im, dict) and str(im.get("id")) in names
    ]
    notes = [
        {**a, "image_id": str(a["image_id"])}
        for a in doc["annotations"]
        if isinstance(a, dict) and str(a.get("image_id")) in names
    ]
    out = {**{k: v for k, v in doc.items() if k in ("info", "categories")}, "images": kept, "annotations": notes}
    (folder / INSTANCES).write_text(json.dumps(out, indent=1) + "\n")


def replay(
    baseline_url: str,
    canary_url: str,
    dataset_folder: Path,
    out: Path,
    run_id: str,
    timeout_s: float = 10.0,
    api_key: str | None = None,
    concurrency: int = 4,
    protocols: Mapping[str, Any] | None = None,
) -> dict[str, tuple[Any, dict[str, float], dict]]:
    """Caption every image of ``dataset_folder`` on both targets at the same time (records in
    ``out/replay/evaluate/ROLE``) and score them against the references (``out/replay/quality.json``).
    Returns role -> (records, per-image CIDEr-D, quality document); without references the
    per-image map is empty and the document says so."""
    from harness.canary.gate import GateConfig, _evaluate, _parallel, _score
    from harness.datasets import load_coco
    from harness.protocols import ProtocolChoice
    from harness.quality import write_quality

    protocols = dict(protocols or {})
    cfg = GateConfig(
        baseline_url,
        canary_url,
        Path(out),
        timeout_s=timeout_s,
        api_key=api_key,
        concurrency=concurrency,
        baseline_protocol=protocols.get("baseline") or ProtocolChoice(),
        canary_protocol=protocols.get("canary") or ProtocolChoice(),
    )
    adapters = {k: cfg.protocol(k).build() for k in ROLES}
    urls = {"baseline": baseline_url, "canary": canary_url}
    rdir = Path(out) / "replay"
    ds = load_coco(dataset_folder)
    references = {str(it.image_id): list(it.captions) for it in ds.items if it.captions}
    log.info("replay: captioning %d production images on both targets", len(ds))
    evals = _parallel(
        {k: (lambda k=k: _evaluate(cfg, run_id, urls[k], k, Path(dataset_folder), rdir, adapters[k])) for k in ROLES}
    )
    result: dict[str, tuple[Any, dict[str, float], dict]] = {}
    for k in ROLES:
        df = evals[k][0]
        if references:
            doc = _score(df, references)
            per_image = {
                str(r.get("image_id")): float("nan") if r.get("CIDEr-D") is None else float(r["CIDEr-D"])
                for r in doc.get("per_image") or []
            }
        else:
            doc, per_image = {"note": "no references"}, {}
        result[k] = (df, per_image, doc)
    write_quality({"targets": {k: result[k][2] for k in ROLES}}, rdir)
    return result
