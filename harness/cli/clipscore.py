"""``harness clipscore``: CLIPScore and RefCLIPScore (Hessel et al. 2021) of captions made offline,
with the embedded shapes encoder or any CLIP in a local folder; ``clipscore.json`` per caption and
for the corpus. Nothing is downloaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import DataError, InputMissingError


def add_captions_and_images(p: argparse.ArgumentParser) -> None:
    """``--captions`` and ``--images``: the captions to score and the images they describe."""
    p.add_argument(
        "--captions", required=True, type=Path, metavar="FILE", help='COCO results JSON: [{"image_id", "caption"}]'
    )
    p.add_argument(
        "--images",
        required=True,
        type=Path,
        metavar="DIR",
        help="a data set folder (captions.json and images/) or a folder of image files named by image id (7.png)",
    )


def register(sub) -> None:
    p = sub.add_parser("clipscore", help="CLIPScore and RefCLIPScore of captions with a local CLIP model")
    add_captions_and_images(p)
    p.add_argument(
        "--references",
        type=Path,
        default=None,
        metavar="FILE",
        help="COCO captions JSON (or a data set folder) of reference captions: RefCLIPScore too",
    )
    p.add_argument(
        "--clip",
        default="embedded",
        metavar="PATH",
        help="a local folder transformers loads a CLIP from, or 'embedded': the shapes encoder shipped "
        "with the reference model (default: embedded)",
    )
    p.add_argument(
        "--prefix",
        default=None,
        metavar="TEXT",
        help="text put before every caption and reference ('A photo depicts' as in Hessel et al.'s code; "
        "default: none, as torchmetrics)",
    )
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--batch", type=int, default=64, metavar="N", help="images or texts per forward pass (default: 64)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder to write clipscore.json in")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import at_least, out_folder
    from harness.image import ImageDecodeError, ImageTooLargeError, decode_image
    from harness.progress import Progress
    from harness.quality.captions import load_candidates, load_references
    from harness.quality.clipscore import load_clip_scorer, score_items, write_clipscore
    from harness.quality.judge_model import find_images

    at_least("batch", args.batch, 1)
    out_folder(args.out)
    captions = load_candidates(args.captions)
    references = load_references(args.references) if args.references is not None else None
    items = find_images(captions, args.images)
    if references is not None:
        lacking = [it.image_id for it in items if not references.get(it.image_id)]
        if lacking:
            raise InputMissingError(
                f"{args.references}: no reference captions for {len(lacking)} of {len(items)} captions "
                f"(first: image_id {lacking[0]!r})"
            )
    scorer = load_clip_scorer(args.clip, args.device, args.batch, args.prefix or "")

    def reader(item):
        def read():
            data = item.read()
            if data is None:
                raise DataError(f"{item.path}: image of {item.image_id!r} could not be read")
            try:
                return decode_image(data)
            except (ImageDecodeError, ImageTooLargeError, OSError) as exc:
                raise DataError(f"{item.path}: image of {item.image_id!r}: {exc}") from None

        return read

    bar = Progress(len(items), "captions")
    try:
        report = score_items(
            scorer,
            ((it.image_id, it.caption, reader(it)) for it in items),
            references,
            chunk=max(args.batch, 256),
            progress=bar,
        )
    finally:
        bar.close()
    print(report.table())
    print(f"wrote {write_clipscore(report, args.out)}")
    return 0
