"""Train the ``tiny`` captioner from scratch on the shapes world.

Deterministic by seed: the same seed and step count give the same weights on the same machine.
``python -m reference_model.train`` (or ``make train``) writes ``reference_model/weights/tiny.*``
and an undertrained snapshot ``tiny-undertrained.*`` used as a canary that should be rolled back.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from harness.datasets.scene import COLOURS, SHAPES, SIZES
from harness.datasets.shapes import generate_shapes
from reference_model.network import NetConfig, TinyCaptionNet
from reference_model.preprocess import to_tensor
from reference_model.tiny import WEIGHTS_DIR, save_checkpoint
from reference_model.vocab import Vocab

__all__ = ["build_vocab", "train"]

EVAL_SEED = 12345  # the evaluation world; training draws from other seeds only


def build_vocab() -> Vocab:
    """Every word the canonical captions of the (unshifted) world can use."""
    words = set(Vocab.tokenize("a to the left of above , and"))
    words |= set(COLOURS) | set(SHAPES) | set(SIZES)
    return Vocab(sorted(words))


def _batch(vocab: Vocab, seed: int, step: int, size: int, max_len: int):
    samples = list(generate_shapes(size, seed=1_000_003 * (seed + 1), start=step * size))
    pixels = to_tensor([s.image for s in samples])
    tokens = torch.full((size, max_len + 1), vocab.pad_id, dtype=torch.long)
    for i, s in enumerate(samples):
        ids = [vocab.bos_id] + vocab.encode(s.captions[0]) + [vocab.eos_id]
        tokens[i, : len(ids)] = torch.tensor(ids)
    return pixels, tokens


def exact_match(net: TinyCaptionNet, vocab: Vocab, n: int = 256, seed: int = EVAL_SEED) -> float:
    net.eval()
    samples = list(generate_shapes(n, seed=seed))
    hits = 0
    for i in range(0, n, 128):
        chunk = samples[i : i + 128]
        ids, _, _ = net.generate(to_tensor([s.image for s in chunk]), vocab.bos_id, vocab.eos_id)
        hits += sum(vocab.decode(row) in s.captions for row, s in zip(ids.tolist(), chunk))
    net.train()
    return hits / n


def train(
    steps: int = 3000,
    seed: int = 0,
    batch: int = 64,
    lr: float = 2e-3,
    out: Path = WEIGHTS_DIR / "tiny.safetensors",
    snapshot_step: int | None = 250,
    snapshot_out: Path | None = WEIGHTS_DIR / "tiny-undertrained.safetensors",
    log=print,
) -> dict:
    """Train for a fixed step count and save the checkpoint; returns the training summary."""
    torch.manual_seed(seed)
    vocab = build_vocab()
    cfg = NetConfig(vocab_size=len(vocab))
    net = TinyCaptionNet(cfg)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, min(200, steps // 10))

    def lr_at(step: int) -> float:
        if step < warmup:
            return lr * (step + 1) / warmup
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    t0 = time.time()
    meta_base = {"seed": seed, "batch": batch, "lr": lr, "torch": torch.__version__}
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        pixels, tokens = _batch(vocab, seed, step, batch, cfg.max_len)
        logits = net(pixels, tokens[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), tokens[:, 1:].reshape(-1), ignore_index=vocab.pad_id)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if (step + 1) % 100 == 0 or step == steps - 1:
            log(f"step {step + 1}/{steps}  loss {loss.item():.4f}  {time.time() - t0:.0f}s")
        if snapshot_out is not None and snapshot_step is not None and step + 1 == snapshot_step:
            em = exact_match(net, vocab)
            log(f"snapshot at step {step + 1}: exact match {em:.3f} -> {snapshot_out}")
            save_checkpoint(net, vocab, snapshot_out, {**meta_base, "steps": step + 1, "exact_match_256": em})
    em = exact_match(net, vocab)
    summary = {**meta_base, "steps": steps, "seconds": round(time.time() - t0, 1), "exact_match_256": em}
    save_checkpoint(net, vocab, out, summary)
    log(f"done: exact match {em:.3f} on 256 evaluation images, {summary['seconds']}s -> {out}")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", type=Path, default=WEIGHTS_DIR / "tiny.safetensors")
    p.add_argument("--snapshot-step", type=int, default=250)
    p.add_argument("--snapshot-out", type=Path, default=WEIGHTS_DIR / "tiny-undertrained.safetensors")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    train(
        a.steps,
        a.seed,
        a.batch,
        a.lr,
        a.out,
        a.snapshot_step,
        a.snapshot_out,
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
