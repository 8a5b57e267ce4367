"""``harness caption``: caption image files with a local model and print text and confidence."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.errors import EXIT_DATA, MissingExtraError, UsageError, require_extra


def register(sub) -> None:
    p = sub.add_parser("caption", help="caption image files with a local model")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--model", default="tiny", help="tiny | tiny-undertrained | tiny:int8 | hf:PATH (default: tiny)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: CUDA when present)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.image import ImageDecodeError, ImageTooLargeError, read_image

    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1 (got {args.batch})")
    good: list[tuple[Path, object]] = []
    failed = 0
    for path in args.images:
        try:
            good.append((path, read_image(path)))
        except FileNotFoundError:
            print(f"harness caption: {path}: file not found", file=sys.stderr)
            failed += 1
        except (ImageDecodeError, ImageTooLargeError, OSError) as exc:
            print(f"harness caption: {path}: {exc}", file=sys.stderr)
            failed += 1
    if good:
        require_extra("torch", "captioning with a local model")
        try:
            from reference_model import load_captioner

            model = load_captioner(args.model, args.device)
        except ImportError as exc:
            raise MissingExtraError.from_import_error(exc, f"model {args.model!r}") or UsageError(
                f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}"
            ) from None
        except (ValueError, FileNotFoundError, OSError) as exc:
            raise UsageError(f"cannot load model {args.model!r}: {str(exc).splitlines()[0]}") from None
        for i in range(0, len(good), args.batch):
            chunk = good[i : i + args.batch]
            for (path, _), cap in zip(chunk, model.caption([img for _, img in chunk])):
                if args.json:
                    print(
                        json.dumps(
                            {
                                "file": str(path),
                                "caption": cap.text,
                                "confidence": round(cap.confidence, 4),
                                "tokens": cap.tokens,
                                "model_version": model.version,
                            }
                        )
                    )
                else:
                    print(f"{path}\t{cap.confidence:.3f}\t{cap.text}")
    return EXIT_DATA if failed else 0
