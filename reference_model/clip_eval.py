"""How well a CLIP knows the shapes world: retrieval and CLIPScore separation on held-out scenes.

- retrieval: each image against the canonical captions of all ``n`` scenes (image to text, top 1; a
  hit when the caption ranked first is the image's own, so two scenes with the same caption do not
  count as a miss), and each caption against all images (text to image, top 1, the same rule);
- separation: per image, CLIPScore of its canonical caption minus that of a wrong caption, either
  the caption of another scene (the next one with a different caption) or the image's own caption
  with one attribute changed (a colour, a shape, a size, or two objects swapped; for a swap the
  image's first caption that states the order, the right one and the swapped one). Reported as the
  mean difference, the paired effect size (Cohen's d_z: mean difference over its standard
  deviation) and the share of images whose right caption scores higher.

``torchmetrics_clipscore(folder)`` is the peer's own CLIPScore on the same model, which the parity
test and ``benchmarks/clipscore.py`` set beside ours.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from typing import Sequence

import numpy as np

from harness.datasets import generate_shapes
from harness.datasets.scene import COLOURS, SHAPES, SIZES, Scene

__all__ = ["HELD_OUT_SEED", "one_attribute_changed", "held_out", "separation", "torchmetrics_clipscore"]

HELD_OUT_SEED = 12345  # the evaluation world of the reference model; training never draws from it


def order_templates(scene: Scene) -> list[int]:
    """Indices of the scene's reference captions that state where the objects are ("to the left
    of", "above", "from left to right"), so two objects swapped make them wrong; a plain list
    ("a red circle, a blue square and ...") or "side by side" does not. All for one object."""
    if len(scene.objects) == 2:
        return [0, 1, 2, 3] if scene.relation == "horizontal" else [0, 1, 2, 3, 4]
    if len(scene.objects) == 3:
        return [2, 3]
    return list(range(len(scene.captions())))


def one_attribute_changed(scene: Scene, rng: np.random.Generator, what: str | None = None) -> tuple[Scene, str]:
    """The scene with one thing changed (colour, shape or size of one object, or, with two or three
    objects, two of them swapped: wrong for the captions of ``order_templates``), so its captions
    are wrong for the original; and what changed. ``what`` picks the change (a swap only where
    there are two objects); by default it is drawn."""
    objs = list(scene.objects)
    kinds = ["colour", "shape", "size"] + (["swap"] if len(objs) > 1 else [])
    if what is None or what not in kinds:
        what = str(rng.choice(kinds))
    if what == "swap":
        i, j = (int(k) for k in rng.choice(len(objs), size=2, replace=False))
        objs[i], objs[j] = objs[j], objs[i]
    else:
        k = int(rng.integers(len(objs)))
        o = objs[k]
        if what == "colour":
            objs[k] = replace(o, colour=str(rng.choice([c for c in COLOURS if c != o.colour])))
        elif what == "shape":
            objs[k] = replace(o, shape=str(rng.choice([s for s in SHAPES if s != o.shape])))
        else:
            objs[k] = replace(o, size=next(s for s in SIZES if s != o.size))
    return replace(scene, objects=tuple(objs)), what


def separation(right: Sequence[float], wrong: Sequence[float]) -> dict:
    """Mean scores, their mean paired difference, Cohen's d_z and the share with right > wrong."""
    diff = [r - w for r, w in zip(right, wrong)]
    sd = statistics.stdev(diff) if len(diff) > 1 else float("nan")
    return {
        "n": len(diff),
        "right": statistics.fmean(right),
        "wrong": statistics.fmean(wrong),
        "difference": statistics.fmean(diff),
        "effect_size_dz": statistics.fmean(diff) / sd if sd and not math.isnan(sd) else float("inf"),
        "right_higher": sum(d > 0 for d in diff) / len(diff),
    }


def held_out(scorer, n: int = 100, seed: int = HELD_OUT_SEED, start: int = 0) -> dict:
    """Retrieval and separation of ``scorer`` (a ``ClipScorer``) on ``n`` scenes of world ``seed``."""
    import torch

    from reference_model.clip import W

    samples = list(generate_shapes(n, seed, start=start))
    images = [s.image for s in samples]
    canon = [s.captions[0] for s in samples]
    img = scorer.embed_images(images)
    txt = scorer.embed_texts(canon)
    sims = img @ txt.T
    i2t = sum(canon[int(j)] == canon[i] for i, j in enumerate(sims.argmax(dim=1).tolist())) / n
    t2i = sum(canon[int(j)] == canon[i] for i, j in enumerate(sims.argmax(dim=0).tolist())) / n
    right = (W * torch.clamp(sims.diagonal(), min=0)).tolist()

    other = []
    for i in range(n):
        j = next((k % n for k in range(i + 1, i + n) if canon[k % n] != canon[i]), i)
        other.append(W * max(float(sims[i, j]), 0.0))
    rng = np.random.default_rng([seed, 7])
    right_attr, changed, kinds = [], [], []
    for s in samples:
        scene, what = one_attribute_changed(s.scene, rng)
        k = 0 if what != "swap" else order_templates(s.scene)[0]  # a swap, where the caption states the order
        right_attr.append(s.captions[k])
        changed.append(scene.captions()[k])
        kinds.append(what)
    right_attr = scorer.score(images, right_attr).clip_score
    wrong_attr = scorer.score(images, changed).clip_score
    by_kind = {}
    for kind in sorted(set(kinds)):
        at = [k for k, w in enumerate(kinds) if w == kind]
        by_kind[kind] = separation([right_attr[k] for k in at], [wrong_attr[k] for k in at])
    return {
        "n": n,
        "seed": seed,
        "retrieval_i2t_top1": i2t,
        "retrieval_t2i_top1": t2i,
        "other_scene": separation(right, other),
        "one_attribute": separation(right_attr, wrong_attr),
        "one_attribute_by_kind": by_kind,
    }


def torchmetrics_clipscore(folder):
    """torchmetrics' ``CLIPScore`` on the model and processor of ``folder`` (it takes hub names as
    strings, a folder only as a callable giving the model and processor); None without torchmetrics.

    transformers 5's ``get_*_features`` return a model output where torchmetrics up to 1.9.0 expects
    the tensor (Lightning-AI/torchmetrics#3407, fixed after 1.9.0): the model is handed over in a
    wrapper that gives the ``pooler_output``, the projected embedding, and changes nothing else."""
    try:
        from torchmetrics.multimodal.clip_score import CLIPScore
    except ImportError:
        return None
    import torch
    from transformers import CLIPModel, CLIPProcessor

    class Features(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model, self.config = model, model.config

        def get_image_features(self, *args, **kwargs):
            out = self.model.get_image_features(*args, **kwargs)
            return out if isinstance(out, torch.Tensor) else out.pooler_output

        def get_text_features(self, *args, **kwargs):
            out = self.model.get_text_features(*args, **kwargs)
            return out if isinstance(out, torch.Tensor) else out.pooler_output

    def load():
        model = CLIPModel.from_pretrained(folder, local_files_only=True).eval()
        return Features(model), CLIPProcessor.from_pretrained(folder, local_files_only=True)

    return CLIPScore(model_name_or_path=load)
