"""Scenes of the shapes world: what is in an image, and the reference captions that describe it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "COLOURS",
    "UNSEEN_COLOURS",
    "SHAPES",
    "UNSEEN_SHAPES",
    "SIZES",
    "ShapeObject",
    "Scene",
    "sample_scene",
]

# Colours the reference model is trained on, and colours it never sees (for the unseen-colour shift).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 70),
    "blue": (50, 90, 235),
    "yellow": (240, 215, 40),
    "purple": (150, 60, 205),
    "white": (245, 245, 245),
}
UNSEEN_COLOURS: dict[str, tuple[int, int, int]] = {
    "orange": (255, 140, 0),
    "pink": (255, 125, 195),
    "cyan": (0, 225, 225),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
UNSEEN_SHAPES: tuple[str, ...] = ("star", "hexagon")
# Radius of the shape as a fraction of the image side.
SIZES: dict[str, float] = {"small": 0.08, "large": 0.14}


@dataclass(frozen=True)
class ShapeObject:
    """One object: what it is and where its centre lies, in fractions of the image side."""

    shape: str
    colour: str
    size: str
    x: float
    y: float

    @property
    def radius(self) -> float:
        return SIZES[self.size]

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    """Objects on a background; ``relation`` is ``horizontal`` or ``vertical`` for two objects."""

    objects: tuple[ShapeObject, ...]
    background: tuple[int, int, int]
    gradient: tuple[float, float]
    relation: str | None
    texture_seed: int

    def captions(self) -> list[str]:
        """Reference captions, COCO style; the first is the canonical one the model learns."""
        objs = self.objects
        if len(objs) == 1:
            (a,) = objs
            return [
                f"a {a.phrase}",
                f"a single {a.phrase}",
                f"one {a.phrase} in the picture",
                f"a {a.phrase} on a plain background",
                f"a {a.colour} {a.shape}",
            ]
        if len(objs) == 2:
            a, b = objs
            if self.relation == "horizontal":
                return [
                    f"a {a.phrase} to the left of a {b.phrase}",
                    f"a {b.phrase} to the right of a {a.phrase}",
                    f"a {a.phrase} left of a {b.phrase}",
                    f"two shapes: a {a.phrase} on the left and a {b.phrase} on the right",
                    f"a {a.phrase} and a {b.phrase} side by side",
                ]
            return [
                f"a {a.phrase} above a {b.phrase}",
                f"a {b.phrase} below a {a.phrase}",
                f"a {a.phrase} on top of a {b.phrase}",
                f"two shapes: a {a.phrase} at the top and a {b.phrase} at the bottom",
                f"a {a.phrase} over a {b.phrase}",
            ]
        a, b, c = objs
        return [
            f"a {a.phrase}, a {b.phrase} and a {c.phrase}",
            f"three shapes: a {a.phrase}, a {b.phrase} and a {c.phrase}",
            f"from left to right a {a.phrase}, a {b.phrase} and a {c.phrase}",
            f"a {c.phrase}, a {b.phrase} and a {a.phrase} from right to left",
            f"three shapes in a row: a {a.phrase}, a {b.phrase} and a {c.phrase}",
        ]


def _far_enough(objs: list[ShapeObject], new: ShapeObject, gap: float) -> bool:
    for o in objs:
        if np.hypot(o.x - new.x, o.y - new.y) < o.radius + new.radius + gap:
            return False
    return True


def sample_scene(
    rng: np.random.Generator,
    colours: tuple[str, ...] = tuple(COLOURS),
    shapes: tuple[str, ...] = SHAPES,
) -> Scene:
    """Draw a scene with 1 to 3 distinct objects whose spatial relations are unambiguous."""
    n = int(rng.choice([1, 2, 3], p=[0.3, 0.4, 0.3]))
    base = rng.integers(25, 105)
    tint = rng.integers(-18, 19, size=3)
    background = tuple(int(np.clip(base + t, 0, 255)) for t in tint)
    gradient = (float(rng.uniform(-0.25, 0.25)), float(rng.uniform(-0.25, 0.25)))
    texture_seed = int(rng.integers(0, 2**31 - 1))
    relation = None
    if n == 2:
        relation = "horizontal" if rng.random() < 0.5 else "vertical"
    for _ in range(1000):
        kinds: set[tuple[str, str]] = set()
        objs: list[ShapeObject] = []
        for _ in range(n):
            while True:
                kind = (str(rng.choice(shapes)), str(rng.choice(colours)))
                if kind not in kinds:
                    kinds.add(kind)
                    break
            size = str(rng.choice(list(SIZES)))
            r = SIZES[size]
            x, y = (float(v) for v in rng.uniform(r + 0.02, 1 - r - 0.02, size=2))
            objs.append(ShapeObject(kind[0], kind[1], size, x, y))
        if not all(_far_enough(objs[:i], o, 0.03) for i, o in enumerate(objs)):
            continue
        if n == 2:
            a, b = objs
            dx, dy = b.x - a.x, b.y - a.y
            major, minor = (dx, dy) if relation == "horizontal" else (dy, dx)
            # The relation must read at a glance: the major offset clearly dominates.
            if abs(major) < a.radius + b.radius + 0.03 or abs(minor) > 0.4 * abs(major):
                continue
            if major < 0:
                objs = [b, a]
        elif n == 3:
            objs.sort(key=lambda o: o.x)
            if any(objs[i + 1].x - objs[i].x < 0.12 for i in range(2)):
                continue
        return Scene(tuple(objs), background, gradient, relation, texture_seed)
    raise RuntimeError("could not place objects")  # pragma: no cover - unreachable in practice
