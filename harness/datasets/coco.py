"""COCO-format caption sets: ``captions.json`` ("images", "annotations") and an images folder."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.errors import DataError, InputMissingError

__all__ = ["CocoItem", "CocoDataset", "load_coco", "write_coco", "ANNOTATIONS_NAME"]

ANNOTATIONS_NAME = "captions.json"


@dataclass(frozen=True)
class CocoItem:
    image_id: int
    path: Path
    captions: tuple[str, ...]


@dataclass(frozen=True)
class CocoDataset:
    """Images with their reference captions, in the order of the annotations file."""

    items: tuple[CocoItem, ...]
    name: str

    def __len__(self) -> int:
        return len(self.items)

    def references(self) -> dict[int, list[str]]:
        return {it.image_id: list(it.captions) for it in self.items}


def load_coco(annotations: str | Path, images_dir: str | Path | None = None) -> CocoDataset:
    """Load a COCO captions file; ``annotations`` may be the file or a folder holding
    ``captions.json`` and ``images/``. Errors name the file and what is wrong with it."""
    ann = Path(annotations)
    if ann.is_dir():
        ann = ann / ANNOTATIONS_NAME
    if not ann.exists():
        raise InputMissingError(f"{ann}: annotations file not found")
    root = Path(images_dir) if images_dir is not None else ann.parent / "images"
    if not root.is_dir():
        raise InputMissingError(f"{root}: images folder not found")
    try:
        doc = json.loads(ann.read_text())
    except UnicodeDecodeError:
        raise DataError(f"{ann}: not a text file") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{ann}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise DataError(f"{ann}: expected an object with an 'images' list (COCO captions format)")
    if not isinstance(doc.get("annotations"), list):
        raise DataError(f"{ann}: expected an 'annotations' list (COCO captions format)")
    caps: dict[int, list[str]] = defaultdict(list)
    for k, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or "image_id" not in a or not isinstance(a.get("caption"), str):
            raise DataError(f"{ann}: annotations[{k}] needs 'image_id' and a string 'caption'")
        caps[a["image_id"]].append(a["caption"])
    items = []
    for k, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise DataError(f"{ann}: images[{k}] needs 'id' and a string 'file_name'")
        path = root / im["file_name"]
        if not path.exists():
            raise InputMissingError(f"{path}: image listed in {ann.name} not found")
        items.append(CocoItem(im["id"], path, tuple(caps.get(im["id"], ()))))
    if not items:
        raise DataError(f"{ann}: no images listed")
    return CocoDataset(tuple(items), ann.parent.name)


def write_coco(samples: Iterable, out: str | Path, info: dict | None = None, progress=None) -> Path:
    """Write samples (``image_id``, ``file_name``, ``image``, ``captions``) as a COCO folder."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for s in samples:
        s.image.save(out / "images" / s.file_name)
        images.append({"id": s.image_id, "file_name": s.file_name, "width": s.image.width, "height": s.image.height})
        for c in s.captions:
            annotations.append({"id": len(annotations) + 1, "image_id": s.image_id, "caption": c})
        if progress is not None:
            progress(len(images))
    doc = {"info": info or {}, "images": images, "annotations": annotations}
    path = out / ANNOTATIONS_NAME
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
