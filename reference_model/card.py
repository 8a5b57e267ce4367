"""Measure the shipped checkpoints and write ``reference_model/MODEL_CARD.md``.

``python -m reference_model.card`` (or ``make model-card``): exact match and corpus CIDEr-D
(pycocoevalcap, PTB-tokenized) on 500 images of the shapes world with seed 12345, clean and shifted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from harness.datasets import generate_shapes, parse_shift
from reference_model import load_captioner
from reference_model.tiny import WEIGHTS_DIR

__all__ = ["measure"]

CARD = Path(__file__).parent / "MODEL_CARD.md"
SEED = 12345


def _cider(refs: dict[int, list[str]], cands: dict[int, str]) -> float:
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tok = PTBTokenizer()
    gts = tok.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tok.tokenize({k: [{"caption": c}] for k, c in cands.items()})
    score, _ = Cider().compute_score(gts, res)
    return float(score)


def measure(spec: str, n: int = 500, shift: str | None = None, batch: int = 100) -> dict:
    """Exact match, corpus CIDEr-D and mean confidence of ``spec`` on the evaluation world."""
    model = load_captioner(spec, device="cpu")
    samples = list(generate_shapes(n, SEED, parse_shift(shift)))
    caps = []
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        caps += model.caption([s.image for s in samples[i : i + batch]])
    secs = time.perf_counter() - t0
    refs = {s.image_id: s.captions for s in samples}
    cands = {s.image_id: c.text for s, c in zip(samples, caps)}
    return {
        "model": spec,
        "version": model.version,
        "shift": shift or "none",
        "n": n,
        "exact_match": sum(c.text in s.captions for s, c in zip(samples, caps)) / n,
        "cider_d": _cider(refs, cands),
        "mean_confidence": sum(c.confidence for c in caps) / n,
        "images_per_s": n / secs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--out", type=Path, default=CARD)
    a = p.parse_args(argv)
    rows = []
    for spec, shift in [
        ("tiny", None),
        ("tiny", "low_light"),
        ("tiny", "low_light:0.4"),
        ("tiny", "noise"),
        ("tiny", "unseen_colour"),
        ("tiny", "blur"),
        ("tiny", "occlusion"),
        ("tiny:int8", None),
        ("tiny-undertrained", None),
    ]:
        r = measure(spec, a.n, shift)
        print(json.dumps(r), file=sys.stderr, flush=True)
        rows.append(r)
    meta = json.loads((WEIGHTS_DIR / "tiny.json").read_text())
    table = "\n".join(
        f"| `{r['model']}` | {r['shift']} | {r['exact_match'] * 100:.1f}% | {r['cider_d']:.3f} | {r['mean_confidence']:.3f} |"
        for r in rows
    )
    cfg = meta["config"]
    clip = clip_section()
    a.out.write_text(
        CARD_TEMPLATE.format(
            table=table,
            n=a.n,
            seed=SEED,
            steps=meta["steps"],
            tseed=meta["seed"],
            batch=meta["batch"],
            secs=meta["seconds"],
            d=cfg["d_model"],
            layers=cfg["n_layers"],
            vocab=cfg["vocab_size"],
        )
        + clip
    )
    print(f"wrote {a.out}")
    return 0


def clip_section(n: int = 500) -> str:
    """The card of ``clip-shapes``, the embedded encoder of CLIPScore: its training (from
    ``training.json``) and its figures on ``n`` and 100 held-out scenes, measured now."""
    from reference_model.clip import EMBEDDED, EMBEDDED_DIR, ClipScorer
    from reference_model.clip_eval import held_out

    meta = json.loads((EMBEDDED_DIR / "training.json").read_text())
    scorer = ClipScorer(EMBEDDED, device="cpu")
    cfg = scorer.model.config
    rows = []
    kinds = ""
    for k in (100, n):
        f = held_out(scorer, n=k)
        print(json.dumps(f), file=sys.stderr, flush=True)
        o, w = f["other_scene"], f["one_attribute"]
        rows.append(
            f"| {k} | {f['retrieval_i2t_top1'] * 100:.1f}% | {f['retrieval_t2i_top1'] * 100:.1f}% "
            f"| {o['right']:.3f} | {o['wrong']:.3f} ({o['difference']:.3f}, {o['effect_size_dz']:.2f}, "
            f"{o['right_higher'] * 100:.0f}%) | {w['wrong']:.3f} ({w['difference']:.3f}, {w['effect_size_dz']:.2f}, "
            f"{w['right_higher'] * 100:.0f}%) |"
        )
        if k == n:
            kinds = "\n".join(
                f"| {kind} | {s['n']} | {s['difference']:.3f} | {s['effect_size_dz']:.2f} | {s['right_higher'] * 100:.0f}% |"
                for kind, s in f["one_attribute_by_kind"].items()
            )
    size = sum(p.stat().st_size for p in EMBEDDED_DIR.glob("*.safetensors"))
    return CLIP_TEMPLATE.format(
        params=meta["parameters"] / 1e6,
        mb=size / 1e6,
        vwidth=cfg.vision_config.hidden_size,
        vlayers=cfg.vision_config.num_hidden_layers,
        patch=cfg.vision_config.patch_size,
        side=cfg.vision_config.image_size,
        twidth=cfg.text_config.hidden_size,
        tlayers=cfg.text_config.num_hidden_layers,
        vocab=cfg.text_config.vocab_size,
        dim=cfg.projection_dim,
        steps=meta["steps"],
        batch=meta["batch"],
        tseed=meta["seed"],
        secs=meta["seconds"],
        rows="\n".join(rows),
        n=n,
        kinds=kinds,
        version=scorer.version,
    )


CARD_TEMPLATE = """# Model card: `tiny`, the reference captioner

**What it is.** A 0.73M-parameter image captioner trained from scratch on the synthetic shapes
world (`harness/datasets/`). A 3-layer CNN turns a 64x64 image into an 8x8 grid of {d}-d features;
learned row and column embeddings are added to each cell (without them, above/below is not
learned), one transformer layer mixes the grid, and a {layers}-layer transformer decoder writes the
caption word by word (vocabulary of {vocab} tokens) with a key/value cache, so each decoding step
costs one token rather than the whole prefix.

**Outputs.** Caption text; confidence = geometric mean of the probabilities of the chosen tokens,
end-of-sequence included (in [0, 1], independent of caption length); token count; a 128-d image
embedding (mean of the encoder grid), which drift detection compares across windows.

**Training.** `make train` (`python -m reference_model.train`): {steps} steps of batch {batch}, seed
{tseed}, AdamW with warm-up and cosine decay, fresh scenes every step from world seeds disjoint from
the evaluation seed; {secs} s on the machine that trained the shipped weights (2 CPU cores, shared).
Deterministic by seed on a given machine. The same run saves `tiny-undertrained` at step 400, a
checkpoint used as a canary that must be rolled back.

**Intended use.** The target of the harness's demo, tests and benchmarks, and a worked example of a
service whose quality, drift and cost are known. It knows nothing outside the shapes world.

## Measured quality

{n} images of `harness dataset export --name shapes --n {n} --seed {seed}` (and the same with
`--shift NAME`); exact match = the caption equals one of the image's reference captions; CIDEr-D
is pycocoevalcap's corpus score against all references, PTB-tokenized. Measured by
`make model-card` (`python -m reference_model.card`), which rewrites this file.

| model | shift | exact match | CIDEr-D | mean confidence |
| --- | --- | --- | --- | --- |
{table}

The unseen-colour shift uses colour words the model has never seen, so it cannot say them: its
captions are wrong by construction, and its confidence drops. Low light and occlusion hide objects.
"""

CLIP_TEMPLATE = """
# Model card: `clip-shapes`, the embedded encoder of CLIPScore

**What it is.** A {params:.2f}M-parameter image-text dual encoder (transformers' `CLIPModel`, so any
CLIP loader reads it, torchmetrics' included) trained from scratch on the shapes world, shipped in
`reference_model/weights/clip-shapes/` ({mb:.1f} MB of float32 weights, its config, tokenizer and
image processor): `harness clipscore` scores captions with it offline unless `--clip` names
another. Images are resized (bicubic) to {side}x{side}; a {vlayers}-layer ViT of width {vwidth} reads
{patch}x{patch} patches; a {tlayers}-layer text transformer of width {twidth} reads a byte-level BPE
vocabulary of {vocab} tokens (the 512 byte symbols, so any text encodes, and merges that spell every
word of the world whole, learned by the training script: no download); both project to {dim}
dimensions. Version `{version}`.

**Training.** `python -m reference_model.train_clip`: {steps} steps of batch {batch}, seed {tseed},
AdamW with warm-up and cosine decay, CLIP's symmetric contrastive loss with a learned temperature;
fresh scenes every step from world seeds disjoint from the evaluation seed, each image with one of
its five reference captions and, as an extra negative, the same caption with one attribute changed
(scenes sharing a canonical caption are each other's positives). {secs} s on the machine that
trained the shipped weights (2 CPU cores, shared).

**Intended use.** CLIPScore and RefCLIPScore of captions of the shapes world, in the demo, tests
and benchmarks, where no downloaded CLIP is at hand. It knows nothing outside that world: for any
other images give `--clip` a real CLIP folder.

## Measured on held-out scenes

Scenes 0 to N-1 of world 12345 (never drawn in training), each image against the canonical captions
of all N: retrieval top 1 counts a hit when the caption ranked first is the image's own (for text to
image, when the image ranked first has that caption). Separation: mean CLIPScore (2.5 * max(cos, 0))
of the right caption against a wrong one, another scene's or the right one with one attribute
changed, with the mean paired difference, the effect size d_z (mean difference over its standard
deviation) and the share of images whose right caption scores higher. Measured by
`python -m reference_model.card` (and `python benchmarks/clipscore.py`).

| N | image to text | text to image | right | another scene's (diff., d_z, right higher) | one attribute changed (diff., d_z, right higher) |
| --- | --- | --- | --- | --- | --- |
{rows}

By the attribute changed, on {n} scenes:

| changed | images | difference | d_z | right higher |
| --- | --- | --- | --- | --- |
{kinds}

Colour and size are told apart; shape less; two objects swapped (left and right, above and below,
the order of three; scored with a caption that states the order) not at all: like CLIP itself (Yuksekgonul et al., ICLR 2023), it reads a
caption much as a bag of words, so CLIPScore here does not see a relation stated the wrong way round
(CHAIR's relation check does).
"""

if __name__ == "__main__":
    raise SystemExit(main())
