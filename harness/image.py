"""Decoding untrusted image bytes: one clear reason for every way an input can be bad."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageDecodeError",
    "ImageTooLargeError",
    "open_image",
    "load_rgb",
    "decode_image",
    "read_image",
    "DEFAULT_MAX_PIXELS",
]

DEFAULT_MAX_PIXELS = 4096 * 4096


class ImageDecodeError(ValueError):
    """The bytes are not a whole image of a supported format."""


class ImageTooLargeError(ValueError):
    """The image declares more pixels than allowed (a decompression-bomb guard)."""


def open_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read only the header of ``data`` and check its declared size: nothing is decoded yet, so a
    decompression bomb costs no memory here. ``load_rgb`` decodes the image returned."""
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image rejected as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _undecodable(exc) from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLargeError(f"image is {w}x{h} = {w * h} pixels, over the limit of {max_pixels}")
    if w == 0 or h == 0:
        raise ImageDecodeError(f"image has no pixels ({w}x{h})")
    return img


def load_rgb(img: Image.Image) -> Image.Image:
    """Decode an image from ``open_image`` (after any ``draft``) and return it in RGB, the way it
    is meant to be seen: turned as its EXIF orientation says (a phone photo taken upright is
    stored sideways with orientation 6 or 8)."""
    try:
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _undecodable(exc) from None
    _apply_orientation(img)
    return img.convert("RGB") if img.mode != "RGB" else img


def _apply_orientation(img: Image.Image) -> None:
    """Transpose ``img`` in place as its EXIF orientation says (no copy when there is none)."""
    try:
        ImageOps.exif_transpose(img, in_place=True)
    except Exception:  # a malformed EXIF block: the pixels decoded, so the image stays as stored
        pass


def _undecodable(exc: BaseException) -> ImageDecodeError:
    msg = str(exc) or type(exc).__name__
    if "truncated" in msg.lower():
        msg = "truncated image data"
    return ImageDecodeError(f"undecodable image: {msg}")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode ``data`` to an RGB image; the pixel count is checked from the header, before decoding."""
    return load_rgb(open_image(data, max_pixels))


def read_image(path: str | Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and decode a file; errors are ``ImageDecodeError``/``ImageTooLargeError``/``OSError``."""
    p = Path(path)
    if p.is_dir():
        raise ImageDecodeError("is a directory, not an image")
    return decode_image(p.read_bytes(), max_pixels)
