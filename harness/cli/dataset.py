"""``harness dataset export``: write a shapes-world set as a COCO-format folder, its objects in
``instances.json`` (with ``--no-references``, without the reference captions)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("dataset", help="export evaluation data sets")
    dsub = p.add_subparsers(dest="dataset_command", metavar="ACTION", parser_class=type(p))
    e = dsub.add_parser(
        "export", help="write a COCO-format folder (images/*.png, captions.json, the objects in instances.json)"
    )
    e.add_argument("--name", default="shapes", help="data set name (only 'shapes' is built in)")
    e.add_argument("--n", type=int, default=500, help="number of images")
    e.add_argument("--seed", type=int, default=1)
    e.add_argument(
        "--shift",
        default=None,
        help="NAME[:SEVERITY][@FRACTION], e.g. low_light:0.8; with @FRACTION (low_light@0.1) only that share of "
        "the images is shifted, and each image names its segment (the shift's name or unshifted)",
    )
    e.add_argument("--size", type=int, default=128, help="image side in pixels (high_res ignores it)")
    e.add_argument("--out", required=True, type=Path)
    e.add_argument(
        "--no-references",
        action="store_true",
        help="leave the reference captions out (no captions.json): a set the gate judges without references",
    )
    e.set_defaults(func=run_export)
    p.set_defaults(func=lambda a: (p.print_help(sys.stderr), 64)[1])


def run_export(args: argparse.Namespace) -> int:
    from harness.cli.checks import at_least, out_folder
    from harness.datasets import generate_shapes, parse_shift, write_coco
    from harness.datasets.coco import INSTANCES_NAME
    from harness.progress import Progress

    if args.name != "shapes":
        raise UsageError(f"unknown data set {args.name!r}; built in: shapes (use a COCO folder for your own)")
    if args.n < 1:
        raise UsageError(f"--n must be at least 1 (got {args.n})")
    if args.size < 16:
        raise UsageError(f"--size must be at least 16 pixels (got {args.size})")
    at_least("seed", args.seed, 0)
    out_folder(args.out)
    shift = parse_shift(args.shift)
    info = {"name": "shapes", "seed": args.seed, "n": args.n, "shift": str(shift) if shift else None}
    bar = Progress(args.n, "images")
    path = write_coco(
        generate_shapes(args.n, args.seed, shift, args.size), args.out, info, bar, references=not args.no_references
    )
    bar.close()
    written = [path] if args.no_references else [path, path.with_name(INSTANCES_NAME)]
    print(f"wrote {args.n} images and {' and '.join(str(p) for p in written)}")
    return 0
