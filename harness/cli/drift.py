"""``harness drift``: compare a current window of caption records with a reference window.

Exits 0 when no drift is found and 3 when it is, so cron and CI can alert on the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.errors import EXIT_DRIFT, EXIT_OK, DataError, InputMissingError, UsageError


def register(sub) -> None:
    p = sub.add_parser("drift", help="compare caption records with a reference window (exit 3 on drift)",
                       description="Compare a current window of request records with a reference window: confidence, "
                                   "embeddings, caption text and image statistics. Exit 0: no drift; 3: drift.")
    p.add_argument("--reference", required=True, type=Path, metavar="PATH",
                   help="reference records (folder or .jsonl/.parquet), or a reference saved with --save-reference")
    p.add_argument("--current", required=True, type=Path, metavar="PATH", help="current records (folder or file)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="where drift.json, drift.html and drift.md go")
    p.add_argument("--reference-images", type=Path, metavar="DIR", help="images of the reference window (for image statistics)")
    p.add_argument("--current-images", type=Path, metavar="DIR", help="images of the current window")
    p.add_argument("--alpha", type=float, default=0.05, help="false-alarm rate of the whole report (default 0.05)")
    p.add_argument("--max-n", type=int, default=None, help="cap on samples per side for every detector")
    p.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                   help="subsample large inputs so that the detectors take about this long")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-reference", type=Path, metavar="DIR", help="save the fitted reference here for later runs")
    p.add_argument("--quality-model", type=Path, metavar="FILE",
                   help="a fitted confidence-to-quality mapping (JSON) to add a label-free quality estimate")
    p.add_argument("--no-sentence-embeddings", action="store_true", help="skip the sentence-embedding MMD on captions")
    p.set_defaults(func=run)


def _quality_model(path: Path | None):
    if path is None:
        return None
    from harness.quality.estimate import QualityModel

    if not path.exists():
        raise InputMissingError(f"{path}: quality model not found")
    try:
        data = json.loads(path.read_text())
        data = data.get("quality_model", data)
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return QualityModel(**fields)
    except (ValueError, TypeError, AttributeError):
        raise DataError(f"{path}: not a quality model (JSON with the fields of QualityModel)") from None


def run(args: argparse.Namespace) -> int:
    from harness.cli.checks import at_least, out_folder
    from harness.drift import DriftSuite, load_features, write_report
    from harness.progress import Progress

    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1 (got {args.alpha})")
    if args.max_n is not None and args.max_n < 10:
        raise UsageError(f"--max-n must be at least 10 (got {args.max_n})")
    if args.time_budget is not None and args.time_budget <= 0:
        raise UsageError(f"--time-budget must be positive (got {args.time_budget})")
    at_least("seed", args.seed, 0)
    out_folder(args.out)
    out_folder(args.save_reference, "--save-reference")
    quality = _quality_model(args.quality_model)
    want_sentences = False if args.no_sentence_embeddings else None
    if DriftSuite.is_saved(args.reference):
        suite = DriftSuite.load(args.reference)
    else:
        reference = load_features(args.reference, args.reference_images, seed=args.seed)
        suite = DriftSuite(args.alpha, seed=args.seed, max_n=args.max_n, time_budget_s=args.time_budget,
                           sentence_embeddings=want_sentences)
        bar = Progress(None, "reference detectors fitted")
        suite.fit(reference, progress=bar)
        bar.close()
    current = load_features(args.current, args.current_images, seed=args.seed)
    if args.save_reference:
        suite.save(args.save_reference)
    bar = Progress(len(suite.detectors), "detectors")
    report = suite.predict(current, progress=bar, quality_model=quality)
    bar.close()
    paths = write_report(report.to_dict(), args.out)
    verdict = f"drift found by {', '.join(report.drifted)}" if report.drift else "no drift"
    print(f"{verdict} ({len(report.results)} detectors, alpha {args.alpha:g}); report: {paths['html']}")
    if report.skipped:
        for s in report.skipped:
            print(f"not run: {s}", file=sys.stderr)
    return EXIT_DRIFT if report.drift else EXIT_OK
