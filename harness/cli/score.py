"""``harness score``: COCO metrics for captions made offline, against reference captions."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import UsageError


def add_quality_options(p: argparse.ArgumentParser) -> None:
    """Options shared by the commands that score captions."""
    p.add_argument("--metrics", default="all", help="comma list of bleu, meteor, rouge, cider, spice (default: all)")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the CIs (0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    p.add_argument("--ratings", type=Path, default=None, help="CSV of human ratings: image_id,rater,rating (1-5)")
    p.add_argument("--human-weight", type=float, default=0.5, help="weight of the ratings in the hybrid score")
    p.add_argument("--metric-weight", type=float, default=0.5, help="weight of CIDEr-D in the hybrid score")
    p.add_argument("--cider-cap", type=float, default=1.0, help="CIDEr-D that counts as 100 in the hybrid score")


def quality_settings(args: argparse.Namespace) -> dict:
    """Keyword arguments for ``score_captions`` from the shared options."""
    from harness.cli.checks import at_least, out_folder
    from harness.quality import HybridConfig, load_ratings, parse_families

    if args.bootstrap < 0:
        raise UsageError(f"--bootstrap must be 0 or more (got {args.bootstrap})")
    at_least("seed", args.seed, 0)
    out_folder(getattr(args, "out", None))
    return {
        "families": parse_families(args.metrics),
        "n_resamples": args.bootstrap,
        "seed": args.seed,
        "ratings": load_ratings(args.ratings) if args.ratings else None,
        "hybrid": HybridConfig(args.human_weight, args.metric_weight, args.cider_cap),
    }


def register(sub) -> None:
    p = sub.add_parser("score", help="score captions made offline against reference captions")
    p.add_argument("--candidates", required=True, type=Path, help='COCO results JSON: [{"image_id", "caption"}]')
    p.add_argument("--references", required=True, type=Path, help="COCO captions JSON (or a folder with captions.json)")
    p.add_argument(
        "--compare",
        type=Path,
        default=None,
        metavar="FILE",
        help="a second candidates file (e.g. the baseline's): paired bootstrap of candidates minus it",
    )
    p.add_argument("--out", type=Path, default=None, help="folder to write quality.json in")
    add_quality_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.quality import (
        compare_captions,
        load_candidates,
        load_references,
        make_scorers,
        paired_table,
        score_captions,
        write_quality,
    )

    settings = quality_settings(args)
    if args.compare is not None and settings["n_resamples"] < 1:
        raise UsageError("--compare needs --bootstrap of at least 1")
    candidates, references = load_candidates(args.candidates), load_references(args.references)
    other = load_candidates(args.compare) if args.compare is not None else None
    scorers, _ = make_scorers(settings["families"])
    try:
        report = score_captions(candidates, references, **settings, scorers=scorers)
        doc = report.to_dict()
        print(report.table())
        if other is not None:
            diffs = compare_captions(
                candidates,
                other,
                references,
                settings["families"],
                scorers=scorers,
                n_resamples=settings["n_resamples"],
                seed=settings["seed"],
            )
            doc["paired"] = {"against": str(args.compare), "differences": [d.to_dict() for d in diffs]}
            print()
            print(paired_table(diffs, "candidates", "compare"))
    finally:
        for s in scorers.values():
            s.close()
    if args.out is not None:
        print(f"wrote {write_quality(doc, args.out)}")
    return 0
