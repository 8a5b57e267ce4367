"""Seconds to score 5,000 captions with each COCO metric (and to tokenize and bootstrap them).

Usage: python benchmarks/quality.py [--n 5000] [--resamples 1000]
References: five per image from the shapes world; candidates: a seeded mix of right, wrong and
one-word-off captions. Prints one row per stage; figures, not pass/fail.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.datasets import generate_shapes
from harness.quality.bootstrap import bootstrap_intervals
from harness.quality.report import FAMILIES
from harness.quality.tokenizer import tokenize


def corpus(n: int, seed: int = 7) -> tuple[dict, dict]:
    refs = {s.image_id: s.captions for s in generate_shapes(n, seed, None, 16)}
    rng = np.random.default_rng(seed)
    words = ["red", "blue", "green", "circle", "square", "triangle", "small", "large", "above", "below"]
    cands = {}
    for k, caps in refs.items():
        u = rng.random()
        if u < 0.4:
            cands[k] = caps[0]
        elif u < 0.7:
            cands[k] = refs[int(rng.integers(n))][0]
        else:
            toks = caps[int(rng.integers(len(caps)))].split()
            toks[int(rng.integers(len(toks)))] = str(rng.choice(words))
            cands[k] = " ".join(toks)
    return refs, cands


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--resamples", type=int, default=1000)
    a = ap.parse_args()
    refs, cands = corpus(a.n)
    print(
        f"# {a.n} captions, {sum(map(len, refs.values()))} references; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    t = time.perf_counter()
    doc = {("r", k): v for k, v in refs.items()}
    doc.update({("c", k): [c] for k, c in cands.items()})
    tok, name = tokenize(doc)
    print(f"{'tokenize (PTB, one Java call)':<40} {time.perf_counter() - t:8.2f} s   {name.split(' (')[0]}")
    r = {k: tok[("r", k)] for k in refs}
    c = {k: tok[("c", k)][0] for k in refs}
    scores = []
    for fam in ("bleu", "rouge", "cider", "meteor"):
        scorer = FAMILIES[fam]()
        try:
            extra = ""
            if fam == "meteor":  # the jar loads its paraphrase table once per scorer: time it apart
                t = time.perf_counter()
                first = next(iter(r))
                scorer.score({first: r[first]}, c)
                extra = f"   (+{time.perf_counter() - t:.2f} s to start the jar, once)"
            t = time.perf_counter()
            out = scorer.score(r, c)
            dt = time.perf_counter() - t
        finally:
            scorer.close()
        scores.extend(out)
        names = ",".join(s.name for s in out) if len(out) == 1 else "BLEU-1..4"
        figures = " ".join(f"{s.corpus:.4f}" for s in out)
        print(f"{names:<40} {dt:8.2f} s   corpus {figures}{extra}")
    t = time.perf_counter()
    bootstrap_intervals(scores, a.resamples, seed=0)
    print(f"{f'bootstrap, {a.resamples} resamples, all metrics':<40} {time.perf_counter() - t:8.2f} s")


if __name__ == "__main__":
    main()
