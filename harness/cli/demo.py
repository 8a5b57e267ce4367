"""``harness demo``: a short tour on the shipped model, and what it did."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the end-to-end demo on the shipped reference model")
    p.add_argument("--out", type=Path, default=Path("reports/demo"))
    p.add_argument("--n", type=int, default=200, help="images in the evaluation set")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.datasets import generate_shapes, load_coco, parse_shift, write_coco
    from harness.image import read_image
    from reference_model import load_captioner

    t0 = time.monotonic()
    model = load_captioner("tiny")
    print(f"loaded {model.version} on {model.device}")
    summary = {"model": model.version, "device": model.device, "sets": {}}
    for shift in (None, "low_light"):
        name = f"shapes-{shift or 'clean'}"
        folder = args.out / "datasets" / name
        write_coco(generate_shapes(args.n, seed=12345, shift=parse_shift(shift)), folder,
                   {"name": "shapes", "seed": 12345, "shift": shift})
        ds = load_coco(folder)
        caps = model.caption([read_image(it.path) for it in ds.items])
        exact = sum(c.text in it.captions for c, it in zip(caps, ds.items)) / len(ds)
        conf = sum(c.confidence for c in caps) / len(caps)
        summary["sets"][name] = {"n": len(ds), "exact_match": exact, "mean_confidence": conf}
        print(f"{name}: exported {len(ds)} images to {folder}; exact match {exact:.1%}, mean confidence {conf:.3f}")
        print(f"  e.g. {ds.items[0].path.name}: {caps[0].text!r} (confidence {caps[0].confidence:.3f})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {args.out / 'demo.json'} in {time.monotonic() - t0:.0f}s")
    return 0
