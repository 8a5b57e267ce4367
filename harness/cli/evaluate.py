"""``harness evaluate``: caption a labelled set through a target, check the records, score them."""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from harness.cli.score import add_quality_options, quality_settings
from harness.errors import DataError, ServiceUnavailableError, UsageError
from harness.protocols.options import add_protocol_options, protocol_choice


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="caption a labelled data set through a target and score the captions")
    p.add_argument("--target", required=True, metavar="URL", help="base URL of the captioning service")
    p.add_argument(
        "--dataset", required=True, help="shapes:N[:shift[:severity][@fraction]] or coco:DIR (a segment per image)"
    )
    p.add_argument("--dataset-seed", type=int, default=12345, help="world seed of a shapes data set (default: 12345)")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight at most (default: 8)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one answer (default: 30)")
    p.add_argument("--max-retries", type=int, default=3, help="retries of an image where safe (default: 3)")
    p.add_argument("--name", default="target", help="target name in the records (default: target)")
    p.add_argument("--run-id", default=None, help="run id in the records (default: eval-<time>-<random>)")
    p.add_argument(
        "--coverage", type=float, default=0.99, help="coverage objective of the data contract (default: 0.99)"
    )
    p.add_argument("--out", required=True, type=Path, help="folder for records, contract.json and quality.json")
    p.add_argument(
        "--clip",
        default=None,
        metavar="PATH",
        help="also CLIPScore and RefCLIPScore with a local CLIP folder, or 'embedded' (the shapes encoder); "
        "default: none",
    )
    add_protocol_options(p)
    add_quality_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from harness.cli.checks import at_least, out_folder
    from harness.client import AsyncCaptionClient
    from harness.progress import Progress
    from harness.quality import score_captions, write_quality
    from harness.quality.chair import NO_OBJECTS, chair_for_dataset
    from harness.quality.evaluation import RetryPolicy, captions_from_records, parse_dataset, run_evaluation
    from harness.records import RECORDS_JSONL, RecordWriter, compact, load_records
    from harness.records.contract import RecordContract, validate_records
    from harness.redaction import credential_values
    from harness.text import one_line

    settings = quality_settings(args)
    if not args.target.startswith(("http://", "https://")):
        raise UsageError(f"--target must be an http(s) URL (got {args.target!r})")
    if args.timeout <= 0 or args.max_retries < 0:
        raise UsageError("--timeout must be > 0 and --max-retries >= 0")
    if not 0.0 <= args.coverage <= 1.0:
        raise UsageError(f"--coverage must be in [0, 1] (got {args.coverage})")
    at_least("dataset_seed", args.dataset_seed, 0)
    out_folder(args.out)
    dataset = parse_dataset(args.dataset, args.dataset_seed)
    clip_scorer = None
    if args.clip is not None:  # a bad folder fails here, before any request is sent
        from harness.quality.clipscore import load_clip_scorer

        clip_scorer = load_clip_scorer(args.clip)
    adapter = protocol_choice(args).build()
    if (args.out / RECORDS_JSONL).exists():
        raise UsageError(f"{args.out / RECORDS_JSONL} exists: give each run an empty --out folder")
    run_id = args.run_id or f"eval-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"

    bar = Progress(dataset.size, "images")
    with RecordWriter(args.out, secrets=credential_values(adapter)) as writer:
        summary = run_evaluation(
            lambda: AsyncCaptionClient(args.target, args.timeout, adapter=adapter, max_connections=args.concurrency),
            dataset,
            writer,
            run_id=run_id,
            target=args.name,
            concurrency=args.concurrency,
            policy=RetryPolicy(max_retries=args.max_retries),
            progress=bar,
        )
    bar.close()
    compact(args.out)
    df = load_records(args.out)
    if summary.n_ok == 0 and df["outcome"].isin(["connection_error", "timeout"]).all():
        raise ServiceUnavailableError(
            f"{args.target}: no answer to any of {summary.n_requests} requests (first: {df['error'].iloc[0]})"
        )

    contract = validate_records(df, RecordContract(coverage_objective=args.coverage))
    (args.out / "contract.json").write_text(json.dumps(contract.to_dict(), indent=1, default=str) + "\n")
    if not contract.success:
        raise DataError(contract.message())

    references = {k: v for k, v in summary.references.items() if v}
    candidates = captions_from_records(df, references)
    if not candidates:
        raise DataError(f"{args.out}: no ok captions for images with reference captions")
    report = score_captions(candidates, references, **settings)
    doc = report.to_dict()
    hallucination = None
    if dataset.objects is not None:
        hallucination = chair_for_dataset(dataset.objects, candidates, summary.objects, references)
    doc["chair"] = hallucination.to_dict() if hallucination is not None else None
    if hallucination is None:
        doc["notes"].append(NO_OBJECTS)
    clip = None
    if clip_scorer is not None:
        from harness.quality.clipscore import score_sent_images

        clip = score_sent_images(clip_scorer, dataset.images(), candidates, references)
        doc["clipscore"] = clip.to_dict()
    segments = {str(k): v for k, v in summary.segments.items()}
    if segments:
        from harness.quality.segments import segment_quality

        doc["segments"] = segment_quality(segments, report, hallucination, clip)
    versions = sorted({v for v in df["model_version"].dropna().astype(str)})
    doc["run"] = {**summary.to_dict(), "url": args.target, "model_versions": versions, "protocol": adapter.describe()}
    doc["contract"] = {"success": contract.success, "expectations": len(contract.results)}
    path = write_quality(doc, args.out)
    print(
        f"{summary.dataset}: {summary.n_images} images, {summary.n_requests} requests "
        f"({summary.n_retries} retries), {summary.n_ok} captions in {summary.wall_s:.1f} s; "
        f"model {', '.join(one_line(v, 120) for v in versions) or 'unknown'}"
    )
    print(report.table())
    print("\n".join(hallucination.lines()) if hallucination is not None else NO_OBJECTS)
    if clip is not None:
        print(clip.table())
    if doc.get("segments"):
        from harness.quality.segments import segment_table

        print(f"\nQuality by segment ({len(doc['segments'])} segments):\n")
        print(segment_table(doc, doc["segments"]))
    print(f"wrote {path}")
    return 0
