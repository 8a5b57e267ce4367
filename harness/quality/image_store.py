"""The images that records name by id, for the figures that need the image itself (CLIPScore) or
what it holds (CHAIR): a data set folder (``captions.json`` or ``instances.json`` beside
``images/``) or a plain folder of image files named by image id (``7.png``).

Image ids come from records and are untrusted: in a plain folder only plain file names are looked
up, and in both only regular files inside the folder (after resolving links) of at most
``MAX_IMAGE_BYTES`` are read (``harness.datasets.coco.read_image_file``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.errors import InputMissingError

__all__ = ["EXTENSIONS", "ImageStore", "plain_image_id"]

EXTENSIONS = ("png", "jpg", "jpeg", "webp")  # looked up in this order in a plain image folder


def plain_image_id(image_id: str) -> bool:
    """Whether ``image_id`` may name a file of a plain image folder: not empty, no path separator,
    no NUL, no ``..``, no leading dot or surrounding white space."""
    return (
        bool(image_id)
        and not image_id.startswith(".")
        and not any(c in image_id for c in ("/", "\\", "\0"))
        and ".." not in image_id
        and image_id == image_id.strip()
    )


@dataclass
class ImageStore:
    """One folder of images, looked up by image id (as text). ``files``: a data set folder's
    images by id (None for a plain folder); ``objects``: what each image holds
    (``harness.quality.chair.DatasetObjects``), where the folder's ``instances.json`` says."""

    folder: Path
    root: Path
    files: Mapping[str, Path] | None = None
    objects: Any = None
    kind: str = "plain"
    _paths: dict[str, Path | None] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, folder: str | Path) -> ImageStore:
        """The store of ``folder``; ``InputMissingError`` when it is not a folder, ``DataError`` when
        its annotation files are malformed."""
        folder = Path(folder)
        if not folder.is_dir():
            raise InputMissingError(f"{folder}: images folder not found")
        if (folder / "captions.json").is_file() or (folder / "instances.json").is_file():
            from harness.datasets import load_coco
            from harness.quality.chair import dataset_objects

            ds = load_coco(folder)
            files = {str(it.image_id): it.path for it in ds.items}
            return cls(folder, ds.images_dir or folder / "images", files, dataset_objects(folder), "dataset")
        return cls(folder, folder)

    def path(self, image_id: Any) -> Path | None:
        """The file of ``image_id``, or None when the store has none (or the id names no plain file)."""
        key = str(image_id)
        if key in self._paths:
            return self._paths[key]
        found: Path | None = None
        if self.files is not None:
            found = self.files.get(key)
        elif plain_image_id(key):
            found = next((p for e in EXTENSIONS if os.path.lexists(p := self.folder / f"{key}.{e}")), None)
        self._paths[key] = found
        return found

    def read(self, image_id: Any):
        """The decoded image (PIL) of ``image_id``, or None when the store has no such file, the file
        is not a regular file inside the folder, or it does not decode."""
        from harness.datasets.coco import read_image_file
        from harness.image import ImageDecodeError, ImageTooLargeError, decode_image

        path = self.path(image_id)
        data = None if path is None else read_image_file(path, self.root)
        if data is None:
            return None
        try:
            return decode_image(data)
        except (ImageDecodeError, ImageTooLargeError, OSError):
            return None

    def describe(self) -> dict[str, Any]:
        return {
            "folder": str(self.folder),
            "kind": self.kind,
            "objects": None if self.objects is None else self.objects.vocabulary.name,
        }
