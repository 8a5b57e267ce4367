"""Train ``clip-shapes``, the embedded image-text encoder of CLIPScore, from scratch on the shapes world.

A CLIP (transformers' ``CLIPModel`` from a small ``CLIPConfig``, so ``reference_model.clip`` and
torchmetrics load it as any other) with a byte-level BPE tokenizer whose merges spell every word
of the shapes world, learned here from those words (no download). Contrastive loss (CLIP's
symmetric InfoNCE with a learned temperature) on fresh scenes every step, each image with one of
its reference captions and, as an extra negative, its own caption with one attribute changed;
scenes that share a canonical caption count as positives of each other. Deterministic by seed on
a given machine. ``python -m reference_model.train_clip`` writes ``reference_model/weights/clip-shapes/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from harness.datasets import generate_shapes
from harness.datasets.scene import COLOURS, SHAPES, SIZES, UNSEEN_COLOURS, UNSEEN_SHAPES, sample_scene
from reference_model.clip import EMBEDDED_DIR, ClipScorer
from reference_model.clip_eval import HELD_OUT_SEED, held_out, one_attribute_changed, order_templates

__all__ = ["shapes_words", "bpe_merges", "build_tokenizer", "build_processor", "shapes_config", "train"]

IMAGE_SIDE = 64
PATCH = 16


def shapes_words() -> list[str]:
    """Every word the shapes world's reference captions use (seen and unseen colours and shapes),
    split as CLIP's pre-tokenizer splits them (letters, digits and punctuation apart)."""
    import re

    text = " ".join(list(COLOURS) + list(UNSEEN_COLOURS) + list(SHAPES) + list(UNSEEN_SHAPES) + list(SIZES))
    rng = np.random.default_rng(0)
    for _ in range(400):  # every template: one, two (both relations) and three objects
        text += " " + " ".join(sample_scene(rng).captions())
    return sorted(set(re.findall(r"[^\W\d_]+|\d|[^\s\w]+", text.lower())))


def bpe_merges(words: list[str]) -> list[tuple[str, str]]:
    """BPE merges that spell each of ``words`` as one token (CLIP's ``</w>`` end-of-word marker):
    the most frequent pair first, ties by the pair's text, until every word is whole."""
    seqs = {w: list(w[:-1]) + [w[-1] + "</w>"] for w in sorted(set(words))}
    merges: list[tuple[str, str]] = []
    while True:
        counts: Counter = Counter()
        for s in seqs.values():
            counts.update(zip(s, s[1:]))
        if not counts:
            return merges
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges.append(pair)
        for w, s in seqs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == pair:
                    out.append(s[i] + s[i + 1])
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out


def _byte_alphabet() -> list[str]:
    """The 256 characters byte-level BPE (GPT-2, CLIP) maps the bytes to."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b if b in keep else next(extra)) for b in range(256)]


def build_tokenizer(words: list[str]):
    """A ``CLIPTokenizer`` built offline: the 256 byte symbols (each also with ``</w>``), so any
    text encodes, the merges of ``words``, and ``<|startoftext|>``, ``<|endoftext|>`` last (the
    end-of-text token is the largest id, as in OpenAI's CLIP)."""
    from transformers import CLIPTokenizer

    merges = bpe_merges(words)
    alphabet = _byte_alphabet()
    vocab: dict[str, int] = {}
    for tok in alphabet + [a + "</w>" for a in alphabet] + [a + b for a, b in merges]:
        vocab.setdefault(tok, len(vocab))
    for tok in ("<|startoftext|>", "<|endoftext|>"):
        vocab[tok] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    for w in words:  # each word is one token, or the merges are wrong
        ids = tokenizer(w, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise AssertionError(f"the tokenizer splits {w!r} into {tokenizer.convert_ids_to_tokens(ids)}")
    return tokenizer


def build_processor(tokenizer, side: int = IMAGE_SIDE):
    """A ``CLIPProcessor``: images resized (bicubic) and centre-cropped to ``side``, CLIP's mean and
    standard deviation; the tokenizer given."""
    import transformers

    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    images = cls(size={"shortest_edge": side}, crop_size={"height": side, "width": side})
    return transformers.CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def shapes_config(tokenizer, side: int = IMAGE_SIDE, patch: int = PATCH, width: int = 96, layers: int = 3):
    """The encoder's ``CLIPConfig``: a ViT on ``patch`` x ``patch`` patches and a 2-layer text transformer."""
    from transformers import CLIPConfig

    ids = dict(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=32,
        **ids,
    )
    vision = dict(
        hidden_size=width,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=4,
        image_size=side,
        patch_size=patch,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=64)


def _batch(processor, seed: int, step: int, size: int, rng: np.random.Generator):
    """Pixels, the caption of each image (one of its references, drawn), a wrong caption of each
    (the same with one attribute changed, drawn), and each image's canonical caption (the key of
    its positives)."""
    samples = list(generate_shapes(size, seed=1_000_033 * (seed + 1), start=step * size))
    pixels = processor.image_processor(images=[s.image for s in samples], return_tensors="pt")["pixel_values"]
    picks = [int(rng.integers(len(s.captions))) for s in samples]
    right = [s.captions[k] for s, k in zip(samples, picks)]
    wrong = [_wrong(s.scene, k, rng) for s, k in zip(samples, picks)]
    return pixels, right, wrong, [s.captions[0] for s in samples]


def _wrong(scene, k: int, rng: np.random.Generator, what: str | None = None) -> str:
    """Caption ``k`` of the scene with one attribute changed; for a swap, a caption that states the
    order (``k`` where it does), so that the wrong caption is wrong."""
    changed, what = one_attribute_changed(scene, rng, what)
    order = order_templates(scene)
    if what == "swap" and k not in order:
        k = int(rng.choice(order))
    return changed.captions()[k]


def _soft_targets(keys: list[str]) -> torch.Tensor:
    same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
    return same / same.sum(dim=1, keepdim=True)


def train(
    steps: int = 1200,
    seed: int = 0,
    batch: int = 128,
    lr: float = 2e-3,
    out: Path = EMBEDDED_DIR,
    log=print,
    patch: int = PATCH,
    width: int = 96,
    layers: int = 3,
) -> dict:
    """Train for a fixed step count, save the folder, measure it on held-out scenes; the summary."""
    from transformers import CLIPModel

    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 1])
    tokenizer = build_tokenizer(shapes_words())
    processor = build_processor(tokenizer)
    model = CLIPModel(shapes_config(tokenizer, patch=patch, width=width, layers=layers))
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.98))
    warmup = max(1, steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    t0, cpu0 = time.time(), time.process_time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        pixels, right, wrong, keys = _batch(processor, seed, step, batch, rng)
        enc = tokenizer(right + wrong, padding=True, return_tensors="pt")
        img = F.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        txt = F.normalize(
            model.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output,
            dim=-1,
        )
        scale = model.logit_scale.clamp(max=math.log(100.0)).exp()
        logits = scale * img @ txt.T  # images x (captions, then the wrong caption of each image)
        targets = _soft_targets(keys)
        i2t = F.cross_entropy(logits, F.pad(targets, (0, logits.shape[1] - batch)))
        t2i = F.cross_entropy(logits[:, :batch].T, targets)
        loss = (i2t + t2i) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (step + 1) % 50 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps}  loss {loss.item():.4f}  scale {scale.item():.1f}  {time.time() - t0:.0f}s")
    seconds, cpu_seconds = round(time.time() - t0, 1), round(time.process_time() - cpu0, 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    for f in out.iterdir():  # transformers writes the weights owner-only; they ship in the wheel
        f.chmod(0o644)
    scorer = ClipScorer(out, device="cpu")
    figures = held_out(scorer, n=100, seed=HELD_OUT_SEED)
    summary = {
        "seed": seed,
        "steps": steps,
        "batch": batch,
        "lr": lr,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # all threads: on a shared machine, the figure that load does not inflate
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vision": {"patch": patch, "width": width, "layers": layers},
        "held_out": figures,
    }
    (out / "training.json").write_text(json.dumps(summary, indent=1) + "\n")
    log(
        f"done in {seconds}s ({cpu_seconds}s of CPU): retrieval (image to text, top 1, {figures['n']} held-out scenes) "
        f"{figures['retrieval_i2t_top1']:.3f}; CLIPScore right - wrong: other scene "
        f"{figures['other_scene']['difference']:.3f}, one attribute {figures['one_attribute']['difference']:.3f} -> {out}"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=EMBEDDED_DIR)
    p.add_argument("--patch", type=int, default=PATCH, help="side of the ViT's patches, in pixels of the 64x64 input")
    p.add_argument("--width", type=int, default=96, help="width of the ViT")
    p.add_argument("--layers", type=int, default=3, help="layers of the ViT")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.set_flush_denormal(True)
    train(
        a.steps,
        a.seed,
        a.batch,
        a.lr,
        a.out,
        log=lambda m: print(m, file=sys.stderr, flush=True),
        patch=a.patch,
        width=a.width,
        layers=a.layers,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
