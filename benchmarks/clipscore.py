"""CLIPScore with the embedded shapes encoder: what it knows, and what scoring costs beside torchmetrics.

Usage: python benchmarks/clipscore.py [--n 100] [--speed-n 512] [--batch 64] [--rounds 7] [--threads 0] [--judge-n 500]

1. On ``--n`` held-out scenes of the evaluation world (seed 12345, never drawn in training):
   retrieval (image to text and text to image, top 1) and CLIPScore separation of the right
   caption from another scene's and from one with one attribute changed (``reference_model.clip_eval``).
2. Images per second on the CPU, ``--speed-n`` shapes images (128x128) with their captions, ``--batch``
   per forward pass: ``reference_model.clip.ClipScorer`` (PIL images in) beside torchmetrics'
   ``CLIPScore`` (uint8 tensors in, its own input) on the same model and processor, taking turns
   for ``--rounds`` after one warm-up each (best and median), and the largest difference of the two
   per-caption figures.
3. What the judge and the drift report pay (``--judge-n`` images exported as a data set folder):
   loading the encoder in a fresh process (importing torch and transformers included, as the first
   judgement of a process does), then ``harness.quality.clipscore.score_pairs`` over the folder's
   images with their captions (``ImageStore``: reading and decoding each image included), best and
   median of ``--rounds``, per image.
Prints figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from harness.datasets import generate_shapes
from reference_model.clip import EMBEDDED, EMBEDDED_DIR, ClipScorer, W
from reference_model.clip_eval import held_out, torchmetrics_clipscore


def _interleaved(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds of each function per round, the functions taking turns within a round (so load on a
    shared machine falls on both alike), after one warm-up call each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return times


def _judgement_cost(n: int, rounds: int) -> None:
    """Part 3: the encoder loaded in a fresh process, then ``score_pairs`` over an exported folder."""
    import subprocess
    import tempfile

    from harness.datasets import write_coco
    from harness.quality.clipscore import score_pairs, shared_scorer
    from harness.quality.image_store import ImageStore

    load = (
        "import time; t = time.perf_counter(); from harness.quality.clipscore import shared_scorer; "
        "shared_scorer('embedded'); print(time.perf_counter() - t)"
    )
    root = str(Path(__file__).resolve().parents[1])
    first = float(
        subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, check=True, cwd=root).stdout
    )
    samples = list(generate_shapes(n, seed=12345))
    with tempfile.TemporaryDirectory() as tmp:
        write_coco(samples, Path(tmp) / "set")
        pairs = [(str(s.image_id), s.captions[0]) for s in samples]
        scorer, times = shared_scorer("embedded"), []
        for _ in range(rounds):
            store = ImageStore.open(Path(tmp) / "set")  # nothing cached between rounds
            t = time.perf_counter()
            score_pairs(scorer, pairs, store.read)
            times.append(time.perf_counter() - t)
    print(
        f"judgement cost: encoder loaded in a fresh process {first:.2f} s; {n} images scored as the judge scores "
        f"them: best {min(times) / n * 1000:.2f} ms per image, median {statistics.median(times) / n * 1000:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100, help="held-out scenes for retrieval and separation")
    ap.add_argument("--speed-n", type=int, default=512, help="images timed per round")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--judge-n", type=int, default=500, help="images scored as the judge scores them")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    scorer = ClipScorer(EMBEDDED, device="cpu", batch=a.batch)
    print(
        f"# {scorer.version}, {sum(p.numel() for p in scorer.model.parameters()):,} parameters; "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    )

    for n in sorted({a.n, 500}):
        f = held_out(scorer, n=n)
        print(
            f"held-out scenes {n} (seed {f['seed']}): retrieval top 1 image->text {f['retrieval_i2t_top1']:.3f}, "
            f"text->image {f['retrieval_t2i_top1']:.3f}"
        )
        for key, what in (("other_scene", "another scene's caption"), ("one_attribute", "one attribute changed")):
            s = f[key]
            print(
                f"  right vs {what:<24} CLIPScore {s['right']:.3f} vs {s['wrong']:.3f}: difference {s['difference']:.3f}, "
                f"d_z {s['effect_size_dz']:.2f}, right higher for {s['right_higher'] * 100:.0f}%"
            )

    _judgement_cost(a.judge_n, a.rounds)

    samples = list(generate_shapes(a.speed_n, seed=4242))
    images = [s.image for s in samples]
    captions = [s.captions[0] for s in samples]
    metric = torchmetrics_clipscore(EMBEDDED_DIR)
    tensors = [torch.from_numpy(np.asarray(i.convert("RGB")).copy()).permute(2, 0, 1) for i in images]

    def run_tm():
        metric.reset()
        with torch.inference_mode():
            for i in range(0, a.speed_n, a.batch):
                metric.update(tensors[i : i + a.batch], captions[i : i + a.batch])
        return float(metric.compute())

    fns = {"ours": lambda: scorer.score(images, captions)}
    if metric is not None:
        fns["torchmetrics"] = run_tm
    times = _interleaved(fns, a.rounds)
    print(f"speed, {a.speed_n} images of 128x128 with captions, batch {a.batch}, CPU, {a.rounds} rounds taking turns:")
    for name, ts in times.items():
        print(
            f"  {name:<13} best {a.speed_n / min(ts):6.0f} images/s, median {a.speed_n / statistics.median(ts):6.0f} "
            f"(rounds {', '.join(f'{t:.2f}' for t in ts)} s)"
        )
    if metric is None:
        print("  torchmetrics is not installed: no comparison")
        return
    best = {name: min(ts) for name, ts in times.items()}
    print(f"  ours / torchmetrics, best rounds: {best['torchmetrics'] / best['ours']:.2f}x")
    ours = scorer.score(images, captions)
    corpus = run_tm()
    worst = 0.0
    with torch.inference_mode():
        for k in range(min(a.speed_n, 64)):
            metric.reset()
            metric.update(tensors[k], captions[k])
            worst = max(worst, abs(float(metric.compute()) - 100 / W * ours.clip_score[k]))
    print(
        f"  parity: corpus torchmetrics {corpus:.4f} vs ours on its scale {ours.torchmetrics:.4f}; "
        f"largest per-caption difference (first 64, 100 * cos scale) {worst:.2e}"
    )


if __name__ == "__main__":
    main()
