"""The synthetic shapes world: a seeded, labelled evaluation set whose ground truth is known."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterator

import numpy as np
from PIL import Image

from harness.datasets.render import render_scene
from harness.datasets.scene import UNSEEN_COLOURS, UNSEEN_SHAPES, Scene, sample_scene
from harness.datasets.shift import Shift

__all__ = ["Sample", "DEFAULT_SIZE", "shapes_sample", "generate_shapes"]

DEFAULT_SIZE = 128


@dataclass(frozen=True)
class Sample:
    """One labelled image: ``captions[0]`` is canonical, all are valid references. ``segment``: the
    part of the set it belongs to (a shift on a fraction of the set: the shift's name or
    ``unshifted``), None when the set has no segments."""

    image_id: int
    file_name: str
    image: Image.Image
    captions: list[str]
    scene: Scene
    segment: str | None = None


def _shift_scene(scene: Scene, shift: Shift, rng: np.random.Generator) -> Scene:
    if shift.name not in ("unseen_colour", "unseen_shape"):
        return scene
    objs = list(scene.objects)
    changed = [rng.random() < shift.severity for _ in objs]
    if not any(changed):
        changed[int(rng.integers(len(objs)))] = True
    for i, (obj, c) in enumerate(zip(objs, changed)):
        if not c:
            continue
        if shift.name == "unseen_colour":
            objs[i] = replace(obj, colour=str(rng.choice(list(UNSEEN_COLOURS))))
        else:
            objs[i] = replace(obj, shape=str(rng.choice(list(UNSEEN_SHAPES))))
    return replace(scene, objects=tuple(objs))


def shapes_sample(index: int, seed: int, shift: Shift | None = None, size: int = DEFAULT_SIZE) -> Sample:
    """Image ``index`` of the world ``seed``: independent of how many others are drawn. A shift on a
    fraction of the set (``Shift.applies``) changes only the images it applies to; the others are
    the world's own, and each image names its segment."""
    rng = np.random.default_rng([seed, index])
    scene = sample_scene(rng)
    segment = None if shift is None else shift.segment(index)
    if shift is not None and not shift.applies(index):
        shift = None
    if shift is not None:
        srng = np.random.default_rng([seed, index, shift.seed_salt])
        scene = _shift_scene(scene, shift, srng)
        img = shift.apply_pixels(render_scene(scene, shift.render_size(size)), srng)
    else:
        img = render_scene(scene, size)
    return Sample(index, f"{index:06d}.png", img, scene.captions(), scene, segment)


def generate_shapes(
    n: int, seed: int, shift: Shift | None = None, size: int = DEFAULT_SIZE, start: int = 0
) -> Iterator[Sample]:
    """Yield ``n`` samples of the world ``seed``, optionally shifted."""
    for i in range(start, start + n):
        yield shapes_sample(i, seed, shift, size)
