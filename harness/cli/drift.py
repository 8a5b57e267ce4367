"""``harness drift``: compare a current window of caption records with a reference window, and,
with an image store, give the label-free quality of both (``harness.drift.label_free``).

Exits 0 when no drift is found and 3 when it is, so cron and CI can alert on the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from harness.errors import EXIT_DRIFT, EXIT_OK, DataError, InputMissingError, UsageError

# Records per window that the scan reads (a seeded sample beyond it): at 20,000 a side the KS test at
# the report's level (alpha 0.05 over 8 detectors) still flags a shift of 0.017 in CDF distance, a
# change far below what a person acts on, and the permutation tests, linear in the sample, keep a
# week of 10M records within the scale benchmark's goal (docs/reference/records.md).
DEFAULT_SAMPLE = 20_000
DEFAULT_EMBEDDING_SAMPLE = 5_000
# Records per window whose captions are scored against their images: the embedded encoder scores
# about 2,000 distinct captions a second on 2 CPU cores, and 2,000 a side detect a change of the
# mean CLIPScore of about 0.1 x its spread (80% power at alpha 0.05).
DEFAULT_LABEL_FREE_SAMPLE = 2_000


def register(sub) -> None:
    p = sub.add_parser(
        "drift",
        help="compare caption records with a reference window (exit 3 on drift)",
        description="Compare a current window of request records with a reference window: confidence, "
        "embeddings, caption text and image statistics. Exit 0: no drift; 3: drift.",
    )
    p.add_argument(
        "--reference",
        required=True,
        type=Path,
        metavar="PATH",
        help="reference records (folder or .jsonl/.parquet), or a reference saved with --save-reference",
    )
    p.add_argument("--current", required=True, type=Path, metavar="PATH", help="current records (folder or file)")
    p.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="where drift.json, drift.html and drift.md go"
    )
    p.add_argument(
        "--reference-images", type=Path, metavar="DIR", help="images of the reference window (for image statistics)"
    )
    p.add_argument("--current-images", type=Path, metavar="DIR", help="images of the current window")
    p.add_argument("--alpha", type=float, default=0.05, help="false-alarm rate of the whole report (default 0.05)")
    p.add_argument("--max-n", type=int, default=None, help="cap on samples per side for every detector")
    p.add_argument(
        "--time-budget",
        type=float,
        default=None,
        metavar="SECONDS",
        help="subsample large inputs so that the detectors take about this long",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--since",
        metavar="TIME",
        help="current window: only records with t_start at or after TIME (unix s, ISO 8601 in UTC, now-7d)",
    )
    p.add_argument("--until", metavar="TIME", help="current window: only records with t_start before TIME")
    p.add_argument("--reference-since", metavar="TIME", help="reference window: records at or after TIME")
    p.add_argument("--reference-until", metavar="TIME", help="reference window: records before TIME")
    p.add_argument(
        "--sample",
        type=int,
        default=DEFAULT_SAMPLE,
        metavar="N",
        help=f"read at most N successful records per window, a seeded sample drawn in the scan "
        f"(default {DEFAULT_SAMPLE:,}; 0: all)",
    )
    p.add_argument(
        "--embedding-sample",
        type=int,
        default=DEFAULT_EMBEDDING_SAMPLE,
        metavar="N",
        help=f"read the embeddings of at most N records per window (default {DEFAULT_EMBEDDING_SAMPLE:,}, "
        "what the embedding detectors use; 0: all)",
    )
    p.add_argument("--save-reference", type=Path, metavar="DIR", help="save the fitted reference here for later runs")
    p.add_argument(
        "--quality-model",
        type=Path,
        metavar="FILE",
        help="a fitted confidence-to-quality mapping (JSON) to add a label-free quality estimate",
    )
    p.add_argument("--no-sentence-embeddings", action="store_true", help="skip the sentence-embedding MMD on captions")
    p.add_argument(
        "--image-store",
        type=Path,
        metavar="DIR",
        help="the images the records name by image_id: a data set folder (captions.json or instances.json and "
        "images/) or a folder of image files named by image id (7.png); adds label-free quality per time window: "
        "CLIPScore of each caption against its image and, where the folder says what each image holds "
        "(instances.json), the hallucination rate",
    )
    p.add_argument(
        "--clip",
        default="embedded",
        metavar="PATH",
        help="the encoder of the label-free CLIPScore: 'embedded' (the shapes encoder shipped with the reference "
        "model: meaningful on the shapes world only), a local CLIP folder, or 'off' (default: embedded)",
    )
    p.add_argument(
        "--label-free-sample",
        type=int,
        default=DEFAULT_LABEL_FREE_SAMPLE,
        metavar="N",
        help=f"records per window scored for label-free quality, a seeded sample drawn in the scan "
        f"(default {DEFAULT_LABEL_FREE_SAMPLE:,}; 0: all)",
    )
    p.add_argument(
        "--trend-step",
        default=None,
        metavar="DURATION",
        help="the label-free trend's bin (1h, 1d; default: the first of 1m, 5m, 15m, 1h, 6h, 1d, 7d, 28d that "
        "cuts each window into at most 24 bins)",
    )
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
        model = QualityModel(**fields)
    except (ValueError, TypeError, AttributeError):
        raise DataError(f"{path}: not a quality model (JSON with the fields of QualityModel)") from None
    problem = _model_problem(model)
    if problem is not None:
        raise DataError(f"{path}: not a usable quality model: {problem}")
    return model


def _model_problem(model) -> str | None:
    """Why a quality model read from a file cannot map confidences (None: it can): its knots are what
    ``QualityModel.predict`` interpolates, in order, and its ranges and errors are numbers."""
    import math

    def real(v) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    xs, ys = model.knots_x, model.knots_y
    if model.method not in ("isotonic", "binned"):
        return f"method must be isotonic or binned (got {str(model.method)[:40]!r})"
    if not isinstance(xs, tuple) or not isinstance(ys, tuple) or not xs or len(xs) != len(ys):
        return "knots_x and knots_y must be lists of numbers of the same, non-zero length"
    if not all(real(v) for v in xs + ys) or not all(math.isfinite(v) for v in ys):
        return "the knots must be numbers (knots_y finite)"
    inner = xs[:-1] if model.method == "binned" else xs  # a binned model's last edge is +inf
    if not all(math.isfinite(v) for v in inner) or any(b < a for a, b in zip(xs, xs[1:])):
        return "knots_x must be finite numbers in increasing order"
    rng = model.confidence_range
    if not (isinstance(rng, tuple) and len(rng) == 2 and all(real(v) and math.isfinite(v) for v in rng)):
        return "confidence_range must be two finite numbers"
    err = model.held_out_corpus_error
    if not (real(err) and math.isfinite(err) and err >= 0):
        return "held_out_corpus_error must be a finite number of 0 or more"
    return None


def _time_range(args: argparse.Namespace, since: str, until: str) -> dict[str, float | None]:
    """The window of ``--since``/``--until`` (or the reference's): each a finite time, in order."""
    from harness.cli.checks import time_option

    out = {"since": time_option(args, since), "until": time_option(args, until)}
    if out["since"] is not None and out["until"] is not None and out["since"] >= out["until"]:
        flags = [f"--{n.replace('_', '-')}" for n in (since, until)]
        raise UsageError(
            f"{flags[0]} must come before {flags[1]} (got {getattr(args, since)} and {getattr(args, until)})"
        )
    return out


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
    for name in ("sample", "embedding_sample", "label_free_sample"):
        at_least(name, getattr(args, name), 0)
    step = _trend_step(args.trend_step)
    cur_range = _time_range(args, "since", "until")
    ref_range = _time_range(args, "reference_since", "reference_until")
    quality = _quality_model(args.quality_model)
    labels = _LabelFree.open(args)  # a missing image store or CLIP folder stops here, before any work
    scan = {"sample": args.sample or None, "embedding_sample": args.embedding_sample or None}
    want_sentences = False if args.no_sentence_embeddings else None
    saved = DriftSuite.is_saved(args.reference)
    if saved:
        suite = DriftSuite.load(args.reference)
    else:
        reference = load_features(args.reference, args.reference_images, seed=args.seed, **ref_range, **scan)
        suite = DriftSuite(
            args.alpha,
            seed=args.seed,
            max_n=args.max_n,
            time_budget_s=args.time_budget,
            sentence_embeddings=want_sentences,
        )
        bar = Progress(None, "reference detectors fitted")
        suite.fit(reference, progress=bar)
        bar.close()
    current = load_features(
        args.current,
        args.current_images,
        seed=args.seed,
        **cur_range,
        **scan,
        embeddings="embedding" in suite.inputs.values(),
    )
    if not saved:
        labels.score_reference(suite, args.reference, seed=args.seed, **ref_range)
    if args.save_reference:
        suite.save(args.save_reference)
    bar = Progress(len(suite.detectors), "detectors")
    report = suite.predict(current, progress=bar, quality_model=quality)
    bar.close()
    report = dataclasses.replace(
        report,
        label_free=labels.section(suite, args.current, args.alpha, quality, step, seed=args.seed, **cur_range),
    )
    paths = write_report(report.to_dict(), args.out)
    verdict = f"drift found by {', '.join(report.drifted)}" if report.drift else "no drift"
    print(f"{verdict} ({len(report.results)} detectors, alpha {args.alpha:g}); report: {paths['html']}")
    if report.skipped:
        for s in report.skipped:
            print(f"not run: {s}", file=sys.stderr)
    return EXIT_DRIFT if report.drift else EXIT_OK


def _trend_step(text: str | None) -> int | None:
    if text is None:
        return None
    from harness.duration import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"--trend-step: {exc}") from None
    if seconds < 1:
        raise UsageError(f"--trend-step must be at least 1s (got {text})")
    return int(round(seconds))


class _LabelFree:
    """The label-free quality of ``harness drift``: the image store, the encoder (or why there is
    none) and each window's scores (``harness.drift.label_free``)."""

    def __init__(self, args: argparse.Namespace, store: Any, scorer: Any, clip_reason: str | None):
        self.args, self.store, self.scorer, self.clip_reason = args, store, scorer, clip_reason

    @classmethod
    def open(cls, args: argparse.Namespace) -> _LabelFree:
        """The store and the encoder: a store or a CLIP folder that is missing (66) or not what it
        should be (65) stops the command; without torch, the embedded encoder is a reason, not an
        error (the hallucination rate needs no model)."""
        from harness.errors import MissingExtraError

        if args.image_store is None:
            return cls(args, None, None, None)
        from harness.quality.image_store import ImageStore

        store = ImageStore.open(args.image_store)
        if args.clip == "off":
            return cls(args, store, None, "CLIPScore: turned off (--clip off)")
        from harness.quality.clipscore import shared_scorer

        try:
            return cls(args, store, shared_scorer(args.clip), None)
        except MissingExtraError as exc:
            if args.clip != "embedded":
                raise
            return cls(args, store, None, f"CLIPScore: {exc}")

    def _frame(self, path: Path, seed: int, since: float | None, until: float | None):
        from harness.drift.label_free import LABEL_FREE_COLUMNS
        from harness.records import check_types, load_records

        df = load_records(
            path,
            LABEL_FREE_COLUMNS + ("outcome",),
            outcome="ok",
            embeddings="skip",
            sample=self.args.label_free_sample or None,
            seed=seed,
            since=since,
            until=until,
        )
        check_types(df, str(path))
        return df

    def _score(self, path: Path, seed: int, since: float | None, until: float | None):
        from harness.drift.label_free import score_window

        df = self._frame(path, seed, since, until)
        return score_window(df, self.store, self.scorer, int(df.attrs.get("records_in_window", len(df))))

    def _info(self) -> dict[str, Any]:
        objects = self.store.objects if self.store is not None else None
        return {
            "clip": None if self.scorer is None else self.scorer.version,
            "objects": None if objects is None else objects.vocabulary.name,
        }

    def score_reference(self, suite: Any, path: Path, *, seed: int, since=None, until=None) -> None:
        """Score the reference window's records and keep them on the suite (a saved reference
        keeps them for later runs)."""
        if self.store is None:
            return
        suite.label_free = self._score(path, seed, since, until)
        suite.label_free_info = self._info()

    def section(self, suite, path: Path, alpha: float, quality, step: int | None, *, seed: int, since=None, until=None):
        """The report's ``label_free`` section: the reference window (scored now, or kept by a saved
        reference) and the current one; NoData with the reason where nothing can be scored."""
        from harness.drift.label_free import NO_IMAGE_IDS, NO_STORE, label_free_section, missing_section
        from harness.quality.chair import NO_OBJECTS

        if self.store is None:
            ids = self._frame(path, seed, since, until)["image_id"]
            return missing_section(NO_STORE if ids.notna().any() else NO_IMAGE_IDS, alpha)
        windows = {}
        comparable = None
        if suite.label_free is not None:
            windows["reference"] = suite.label_free
            kept, now = suite.label_free_info.get("clip"), self._info()["clip"]
            if kept and now and kept != now:
                comparable = f"the reference's CLIPScore was scored with {kept}, the current window's with {now}"
        windows["current"] = self._score(path, seed, since, until)
        return label_free_section(
            windows,
            store=self.store.describe(),
            clip=None if self.scorer is None else self.scorer.describe(),
            clip_reason=self.clip_reason,
            hallucination_reason=None if self.store.objects is not None else NO_OBJECTS,
            alpha=alpha,
            quality_model=quality,
            step_s=step,
            comparable=comparable,
        )
