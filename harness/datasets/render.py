"""Drawing a scene at any resolution: the same scene looks the same at 64 px and at 4096 px."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from harness.datasets.scene import COLOURS, UNSEEN_COLOURS, Scene, ShapeObject

__all__ = ["render_scene"]

_ALL_COLOURS = {**COLOURS, **UNSEEN_COLOURS}


def _background(scene: Scene, size: int) -> Image.Image:
    # Gradient and texture are made on a small grid and upsampled, so they do not depend on size.
    grid = 32
    yy, xx = np.mgrid[0:grid, 0:grid] / (grid - 1) - 0.5
    gx, gy = scene.gradient
    shade = 1.0 + gx * xx + gy * yy
    tex = np.random.default_rng(scene.texture_seed).normal(0.0, 6.0, size=(grid, grid, 3))
    base = np.asarray(scene.background, dtype=np.float64)
    arr = np.clip(base[None, None, :] * shade[..., None] + tex, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB").resize((size, size), Image.BILINEAR)


def _polygon(obj: ShapeObject, size: int) -> list[tuple[float, float]] | None:
    cx, cy, r = obj.x * size, obj.y * size, obj.radius * size
    if obj.shape == "square":
        h = r * 0.85
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if obj.shape == "triangle":
        return [
            (cx + r * math.cos(a), cy + r * math.sin(a))
            for a in (-math.pi / 2, -math.pi / 2 + 2 * math.pi / 3, -math.pi / 2 + 4 * math.pi / 3)
        ]
    if obj.shape == "hexagon":
        return [(cx + r * math.cos(k * math.pi / 3), cy + r * math.sin(k * math.pi / 3)) for k in range(6)]
    if obj.shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.45
            a = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
        return pts
    return None


def render_scene(scene: Scene, size: int = 128) -> Image.Image:
    """Render ``scene`` as an RGB image of ``size`` x ``size`` pixels."""
    img = _background(scene, size)
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        fill = _ALL_COLOURS[obj.colour]
        poly = _polygon(obj, size)
        if poly is None:  # circle
            cx, cy, r = obj.x * size, obj.y * size, obj.radius * size
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(poly, fill=fill)
    return img
