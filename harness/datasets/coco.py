"""COCO-format caption sets: ``captions.json`` ("images", "annotations") and an images folder,
and beside them, where the set says what each image holds, ``instances.json`` (COCO's instances
format). A folder with ``instances.json`` and no ``captions.json`` is a set without reference
captions: its images are those the instances file lists. An image entry may name its ``segment``
(text: a shift, a domain, a camera), beyond COCO's fields: the quality figures and the judge's
paired tests are then given per segment too."""

from __future__ import annotations

import json
import os
import stat
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from harness.errors import DataError, InputMissingError

__all__ = [
    "CocoItem",
    "CocoDataset",
    "load_coco",
    "write_coco",
    "ANNOTATIONS_NAME",
    "INSTANCES_NAME",
    "SHAPES_VOCABULARY",
    "MAX_IMAGE_BYTES",
    "image_file_problem",
    "read_image_file",
    "is_image_id",
]

ANNOTATIONS_NAME = "captions.json"
INSTANCES_NAME = "instances.json"
# The ``info.vocabulary`` of an instances file the shapes world wrote: its categories are shapes,
# and each annotation also gives the object's colour and size (``write_coco``).
SHAPES_VOCABULARY = "shapes"
# A data set's image file larger than this is refused (the reference server takes 20 MB bodies).
MAX_IMAGE_BYTES = 20 * 1024 * 1024


def _inside(real: str, root: str) -> bool:
    return real != root and os.path.commonpath([real, root]) == root


def image_file_problem(path: Path, root: Path) -> str | None:
    """Why ``path`` may not be read as an image of the data set rooted at ``root`` (None: it may).
    A data set is input from elsewhere: its file names must stay inside its folder once links are
    resolved, and name regular files of at most ``MAX_IMAGE_BYTES`` (no device, FIFO or folder)."""
    real, top = os.path.realpath(path), os.path.realpath(root)
    if real == top:
        return "names the images folder itself, not a file in it"
    if not _inside(real, top):
        return "leaves the images folder"
    try:
        st = os.stat(real)
    except OSError:
        return "not found"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_size > MAX_IMAGE_BYTES:
        return f"is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MB"
    return None


def read_image_file(path: Path, root: Path) -> bytes | None:
    """The bytes of an image file of the data set rooted at ``root``, or None when
    ``image_file_problem`` refuses it; the file opened is checked again (no link is followed, a
    FIFO does not block), so one swapped after the check is refused too."""
    if image_file_problem(path, root) is not None:
        return None
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(os.path.realpath(path), flags)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_IMAGE_BYTES:
            return None
        data = f.read(MAX_IMAGE_BYTES + 1)
    return data if len(data) <= MAX_IMAGE_BYTES else None


MAX_SEGMENT = 200  # characters of a segment's name


def _segment_name(value: object) -> bool:
    """Whether ``value`` may name a segment: printable text, not blank, at most ``MAX_SEGMENT``."""
    return isinstance(value, str) and bool(value.strip()) and value.isprintable() and len(value) <= MAX_SEGMENT


def is_image_id(value: object) -> bool:
    """Whether ``value`` may be an image id of a data set: a whole number or a string (a JSON object,
    list, decimal number, true/false or null is none; ids are keys, compared and written as they are)."""
    return isinstance(value, (int, str)) and not isinstance(value, bool)


_JSON_KINDS = {dict: "a JSON object", list: "a JSON list", bool: "true or false", float: "a decimal number"}


def _kind(value: object) -> str:
    """What is wrong with an image id that ``is_image_id`` refuses, for an error line."""
    what = "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
    return f"must be a whole number or a string, not {what}" + (f" ({value!r})" if isinstance(value, float) else "")


@dataclass(frozen=True)
class CocoItem:
    image_id: int
    path: Path
    captions: tuple[str, ...]
    segment: str | None = None  # the image entry's ``segment``, where the set gives one


@dataclass(frozen=True)
class CocoDataset:
    """Images with their reference captions, in the order of the annotations file."""

    items: tuple[CocoItem, ...]
    name: str
    images_dir: Path | None = None  # the folder every item's file lies in (resolved)

    def __len__(self) -> int:
        return len(self.items)

    def references(self) -> dict[int, list[str]]:
        return {it.image_id: list(it.captions) for it in self.items}

    def segments(self) -> dict[str, str]:
        """Image id (as text, as the records name images) -> segment, for the images that name one."""
        return {str(it.image_id): it.segment for it in self.items if it.segment is not None}


def load_coco(annotations: str | Path, images_dir: str | Path | None = None) -> CocoDataset:
    """Load a COCO captions file; ``annotations`` may be the file or a folder holding
    ``captions.json`` and ``images/``. A folder without ``captions.json`` but with
    ``instances.json`` is a set without references: its images are the instances file's, each with
    no reference caption. Errors name the file and what is wrong with it."""
    ann = Path(annotations)
    captions = True
    if ann.is_dir():
        if not (ann / ANNOTATIONS_NAME).exists() and (ann / INSTANCES_NAME).exists():
            ann, captions = ann / INSTANCES_NAME, False
        else:
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
    for k, a in enumerate(doc["annotations"] if captions else ()):  # an instances file's are objects
        if not isinstance(a, dict) or "image_id" not in a or not isinstance(a.get("caption"), str):
            raise DataError(f"{ann}: annotations[{k}] needs 'image_id' and a string 'caption'")
        if not is_image_id(a["image_id"]):
            raise DataError(f"{ann}: annotations[{k}].image_id {_kind(a['image_id'])}")
        caps[a["image_id"]].append(a["caption"])
    items = []
    for k, im in enumerate(doc["images"]):
        if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
            raise DataError(f"{ann}: images[{k}] needs 'id' and a string 'file_name'")
        if not is_image_id(im["id"]):
            raise DataError(f"{ann}: images[{k}].id {_kind(im['id'])}")
        if "\0" in im["file_name"]:
            raise DataError(f"{ann}: images[{k}].file_name {im['file_name'][:120]!r} holds a NUL character")
        path = root / im["file_name"]
        if not os.path.lexists(path):
            raise InputMissingError(f"{path}: image listed in {ann.name} not found")
        problem = image_file_problem(path, root)
        if problem is not None:
            raise DataError(f"{ann}: images[{k}].file_name {im['file_name'][:120]!r} {problem}")
        segment = im.get("segment")
        if segment is not None and not _segment_name(segment):
            raise DataError(
                f"{ann}: images[{k}].segment must be printable text, not blank, at most {MAX_SEGMENT} characters "
                f"(got {str(segment)[:60]!r})"
            )
        items.append(CocoItem(im["id"], Path(os.path.realpath(path)), tuple(caps.get(im["id"], ())), segment))
    if not items:
        raise DataError(f"{ann}: no images listed")
    return CocoDataset(tuple(items), ann.parent.name, Path(os.path.realpath(root)))


def write_coco(
    samples: Iterable, out: str | Path, info: dict | None = None, progress=None, references: bool = True
) -> Path:
    """Write samples (``image_id``, ``file_name``, ``image``, ``captions``, optionally ``segment``) as
    a COCO folder; the shapes world's samples (with a ``scene``) also as ``instances.json``
    (``_shapes_instances``).
    ``references=False`` leaves ``captions.json`` out: a set without reference captions (it needs
    the instances file, which lists the images). Returns ``captions.json``, or without it
    ``instances.json``."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations, scenes = [], [], []
    for s in samples:
        s.image.save(out / "images" / s.file_name)
        images.append({"id": s.image_id, "file_name": s.file_name, "width": s.image.width, "height": s.image.height})
        if getattr(s, "segment", None) is not None:
            images[-1]["segment"] = s.segment
        for c in s.captions:
            annotations.append({"id": len(annotations) + 1, "image_id": s.image_id, "caption": c})
        scenes.append(getattr(s, "scene", None))
        if progress is not None:
            progress(len(images))
    shapes = bool(images) and all(sc is not None for sc in scenes)
    if not references and not shapes:
        raise ValueError("a set without references needs its objects (the shapes world's scenes)")
    if shapes:
        doc = _shapes_instances(images, scenes, info or {})
        (out / INSTANCES_NAME).write_text(json.dumps(doc, indent=1) + "\n")
    if not references:
        return out / INSTANCES_NAME
    path = out / ANNOTATIONS_NAME
    path.write_text(json.dumps({"info": info or {}, "images": images, "annotations": annotations}, indent=1) + "\n")
    return path


def _shapes_instances(images: list[dict], scenes: list, info: dict) -> dict:
    """The shapes world's objects in COCO's instances format: a category per shape, an annotation
    per object with its ``bbox`` in pixels (the circle around it) and, beyond COCO's fields, its
    ``colour`` and ``size``; each image also gives its two objects' ``relation`` (horizontal or
    vertical, else null). ``info.vocabulary`` says the captions are read with the shapes world's
    words (``harness.quality.chair.load_objects``)."""
    from harness.datasets.scene import SHAPES, SIZES, UNSEEN_SHAPES

    category = {name: k + 1 for k, name in enumerate((*SHAPES, *UNSEEN_SHAPES))}
    annotations = []
    for im, scene in zip(images, scenes):
        w, h = im["width"], im["height"]
        for o in scene.objects:
            r = SIZES[o.size]
            box = [(o.x - r) * w, (o.y - r) * h, 2 * r * w, 2 * r * h]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": im["id"],
                    "category_id": category[o.shape],
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                    "colour": o.colour,
                    "size": o.size,
                }
            )
    return {
        "info": {**info, "vocabulary": SHAPES_VOCABULARY},
        "images": [{**im, "relation": sc.relation} for im, sc in zip(images, scenes)],
        "categories": [{"id": k, "name": name, "supercategory": "shape"} for name, k in category.items()],
        "annotations": annotations,
    }
