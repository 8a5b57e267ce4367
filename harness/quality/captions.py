"""Caption files: candidates in COCO results format and references in COCO captions format."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.errors import DataError, InputMissingError

__all__ = ["load_candidates", "load_references", "write_candidates"]


def _read_json(path: Path, what: str) -> Any:
    if path.is_dir():
        path = path / "captions.json"
    if not path.exists():
        raise InputMissingError(f"{path}: {what} file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 text file") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def _image_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def load_candidates(path: str | Path) -> dict[Any, str]:
    """``[{"image_id", "caption"}, ...]`` -> image id -> caption; one caption per image."""
    path = Path(path)
    doc = _read_json(path, "candidates")
    if isinstance(doc, dict) and isinstance(doc.get("annotations"), list):
        doc = doc["annotations"]
    if not isinstance(doc, list):
        raise DataError(f'{path}: expected a list of {{"image_id", "caption"}} (COCO results format)')
    out: dict[Any, str] = {}
    for k, row in enumerate(doc):
        if not isinstance(row, dict) or not _image_id(row.get("image_id")) or not isinstance(row.get("caption"), str):
            raise DataError(f"{path}: entry {k} needs an 'image_id' (number or string) and a string 'caption'")
        if row["image_id"] in out:
            raise DataError(f"{path}: image_id {row['image_id']!r} has more than one caption (entry {k})")
        out[row["image_id"]] = row["caption"]
    if not out:
        raise DataError(f"{path}: no candidate captions")
    return out


def load_references(path: str | Path) -> dict[Any, list[str]]:
    """A COCO captions file (or a folder with ``captions.json``) -> image id -> reference captions."""
    path = Path(path)
    doc = _read_json(path, "references")
    if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
        raise DataError(f"{path}: expected an object with an 'annotations' list (COCO captions format)")
    out: dict[Any, list[str]] = {}
    for k, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or not _image_id(a.get("image_id")) or not isinstance(a.get("caption"), str):
            raise DataError(f"{path}: annotations[{k}] needs an 'image_id' and a string 'caption'")
        if not re.search(r"\w", a["caption"]):  # nothing a tokenizer keeps: no reference to score against
            raise DataError(f"{path}: annotations[{k}].caption holds no word")
        out.setdefault(a["image_id"], []).append(a["caption"])
    if not out:
        raise DataError(f"{path}: no reference captions")
    return out


def write_candidates(candidates: dict[Any, str], path: str | Path) -> Path:
    """Write captions in COCO results format."""
    path = Path(path)
    path.write_text(json.dumps([{"image_id": k, "caption": c} for k, c in candidates.items()], indent=1) + "\n")
    return path
