"""The canary gate: the same images and the same load at baseline and canary at the same time
(acquisition: a run folder), then the judgement of that folder (``harness.canary.judgement``):
quality, data contracts, SLOs with burn-rate projection, output drift and one decision record."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.canary.metric import JudgeConfig
from harness.errors import UsageError
from harness.protocols import Adapter, ProtocolChoice

if TYPE_CHECKING:
    from harness.report.notify import Notify

__all__ = ["GateConfig", "run_gate", "TARGETS"]

TARGETS = ("baseline", "canary")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateConfig:
    """What the gate runs. ``dataset``: ``shapes:N[:shift[@fraction]]`` or ``coco:DIR``; ``spec``: an
    SLO spec (the built-in example when None); load: ``scenario`` for ``duration_s`` with ``users`` or an
    open-loop ``rate`` per target; ``notify``: where to tell the verdict (``harness.report.notify``)."""

    baseline: str
    canary: str
    out: Path
    spec: Path | None = None
    scenario: str = "steady"
    duration_s: float = 60.0
    users: int | None = 4
    rate: float | None = None
    dataset: str = "shapes:200"
    dataset_seed: int = 12345
    seed: int = 0
    concurrency: int = 4
    timeout_s: float = 10.0
    latency_threshold: float | None = None
    quality_floor: float | None = None
    traffic_rps: float | None = None
    api_key: str | None = None
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    faults: dict | None = None
    run_id: str | None = None
    baseline_protocol: ProtocolChoice = field(default_factory=ProtocolChoice)
    canary_protocol: ProtocolChoice = field(default_factory=ProtocolChoice)
    notify: Notify | None = None

    def protocol(self, target: str) -> ProtocolChoice:
        """How the gate speaks to ``target`` (baseline or canary)."""
        return self.baseline_protocol if target == "baseline" else self.canary_protocol


def _probe(url: str, timeout: float, api_key: str | None, adapter: Adapter) -> tuple[dict | None, str | None]:
    """(model info, None) when the target answers; (None, why) when it does not. Where to look
    is the protocol's: its health, info and readiness paths (a protocol without a health path is
    only checked for an answer at all)."""
    import httpx

    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout, headers=adapter.auth_headers(api_key)) as c:
            health = adapter.health_path or adapter.info_path or "/"
            h = c.get(base + health)
            if h.status_code >= 500 and adapter.health_path:
                return None, f"{health} answered {h.status_code}"
            info: dict = {}
            if adapter.info_path:
                m = h if health == adapter.info_path else c.get(base + adapter.info_path)
                if m.status_code == 200:
                    try:
                        doc = m.json()
                    except ValueError:
                        doc = None
                    info = adapter.read_info(doc)  # an answer that is not what the protocol says tells nothing
            if adapter.ready_path is None:
                return info, None
            for _ in range(int(max(timeout, 1) * 4)):
                r = c.get(base + adapter.ready_path)
                if r.status_code == 200 or r.status_code == 404:
                    return info, None
                time.sleep(0.25)
            return None, f"{adapter.ready_path} still answered {r.status_code} after {timeout:g}s"
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {str(exc) or 'no answer'}"


def _dataset_folder(cfg: GateConfig, out: Path) -> tuple[Path, str]:
    from harness.datasets import generate_shapes, parse_shapes_spec, write_coco

    kind, _, rest = cfg.dataset.partition(":")
    if kind == "coco":
        return Path(rest), cfg.dataset
    if kind != "shapes":
        raise UsageError(f"unknown --dataset {cfg.dataset!r}; use shapes:N[:shift] or coco:DIR")
    n, shift = parse_shapes_spec(rest)
    folder = out / "dataset"
    if not (folder / "captions.json").exists():
        write_coco(
            generate_shapes(n, cfg.dataset_seed, shift),
            folder,
            {"name": "shapes", "seed": cfg.dataset_seed, "n": n, "shift": str(shift) if shift else None},
        )
    return folder, cfg.dataset


def _parallel(fns: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run the callables in threads at the same time; re-raise the first error."""
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}

    def call(k: str) -> None:
        try:
            results[k] = fns[k]()
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            errors[k] = exc

    threads = [threading.Thread(target=call, args=(k,), daemon=True) for k in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise next(iter(errors.values()))
    return results


def _evaluate(cfg: GateConfig, run_id: str, url: str, name: str, folder: Path, out: Path, adapter: Adapter):
    from harness.client import AsyncCaptionClient
    from harness.quality.evaluation import parse_dataset, run_evaluation
    from harness.records import RecordWriter, compact, load_records
    from harness.redaction import credential_values

    ds = parse_dataset(f"coco:{folder}")
    tdir = out / "evaluate" / name
    with RecordWriter(tdir, secrets=credential_values(adapter, cfg.api_key)) as w:
        summary = run_evaluation(
            lambda: AsyncCaptionClient(
                url, cfg.timeout_s, api_key=cfg.api_key, adapter=adapter, max_connections=cfg.concurrency
            ),
            ds,
            w,
            run_id=run_id,
            target=name,
            concurrency=cfg.concurrency,
        )
    compact(tdir)
    return load_records(tdir), summary


def _score(df, references: dict, segments: dict[str, str] | None = None) -> dict:
    """One target's quality document (per image included: the judgement reads CIDEr-D from it),
    over the images with references (a set without any has none to score); ``segments`` (image id
    -> segment, where the data set names them): the same figures per segment too."""
    from harness.canary.observations import NO_REFERENCES
    from harness.quality import score_captions
    from harness.quality.evaluation import captions_from_records

    references = {k: v for k, v in references.items() if v}
    if not references:
        return {"note": NO_REFERENCES}
    cands = captions_from_records(df, references)
    if not cands:
        return {"note": "no captions to score"}
    rep = score_captions(cands, references, families=("bleu", "rouge", "cider"), n_resamples=500)
    doc = rep.to_dict(per_image=True)
    if segments:
        from harness.quality.segments import segment_quality

        doc["segments"] = segment_quality(segments, rep)
    return doc


def _load(cfg: GateConfig, run_id: str, url: str, name: str, folder: Path, n_images: int, out: Path, thr: float):
    from harness.load import LoadRun, run_load
    from harness.records import load_records

    tdir = out / "load" / name
    options = {
        "dataset": str(folder),
        "pool_size": n_images,
        "seed": cfg.seed,
        "target_name": name,
        "run_id": run_id,
        "latency_threshold": thr,
        "request_timeout": cfg.timeout_s,
        "api_key": cfg.api_key,
        **_protocol_options(cfg.protocol(name)),
    }
    outcome = run_load(LoadRun(cfg.scenario, tdir, url, cfg.duration_s, cfg.users, cfg.rate, options=options))
    try:
        df = load_records(tdir)
    except Exception:  # noqa: BLE001 - a run that left no records is judged as no data
        df = None
    return df, outcome


def _protocol_options(choice: ProtocolChoice) -> dict[str, str | None]:
    """The protocol options of a load run (names only: credentials stay in the environment)."""
    opts = choice.options()
    if opts["adapter"]:
        opts["adapter"] = str(Path(opts["adapter"]).resolve())
    return opts


def run_gate(cfg: GateConfig) -> dict:
    """Acquire a run folder (probe, evaluate and score, load) and judge it (``judge_sources``):
    ``decision.json`` and ``summary.md`` in ``cfg.out``; returns the decision record. Each stage is
    logged at INFO on ``harness.canary.gate``."""
    import shutil

    from harness.canary.config import write_judge_config
    from harness.canary.judgement import (
        JUDGE_YAML,
        SPEC_YAML,
        RunManifest,
        Settings,
        Source,
        judge_sources,
        thresholds,
        write_manifest,
    )
    from harness.redaction import Redactor, credential_values
    from harness.report.model import Inputs
    from harness.resources import example_path
    from harness.slo import load_spec

    out = Path(cfg.out)
    used = [n for n in ("decision.json", "records.jsonl", "evaluate", "load") if (out / n).exists()]
    if used:
        raise UsageError(f"{out} holds an earlier run ({', '.join(used)}): give each gate run an empty --out folder")
    adapters = {k: cfg.protocol(k).build() for k in TARGETS}  # a bad protocol or unset credential stops here
    out.mkdir(parents=True, exist_ok=True)
    run_id = cfg.run_id or f"gate-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"
    spec_path = cfg.spec or example_path("slo.yaml")
    spec = load_spec(spec_path)
    settings = Settings(
        out / SPEC_YAML, cfg.judge, cfg.latency_threshold, cfg.quality_floor, cfg.traffic_rps, seed=cfg.seed
    )
    thr, floor, traffic, _ = thresholds(settings, spec)
    settings = replace(settings, latency_threshold=thr, quality_floor=floor, traffic_rps=traffic)
    urls = {"baseline": cfg.baseline, "canary": cfg.canary}
    folder, dataset_name = _dataset_folder(cfg, out)
    inputs: dict[str, Any] = {
        "targets": {k: {"url": u, "protocol": adapters[k].name} for k, u in urls.items()},
        "scenario": cfg.scenario,
        "load": {"users": cfg.users, "rate": cfg.rate, "duration_s": cfg.duration_s, "seed": cfg.seed},
        "duration_s": cfg.duration_s,
        "dataset": dataset_name,
        "spec": str(spec_path),
        "faults": cfg.faults or {},
        "latency_threshold_s": thr,
        "quality_floor": floor,
        "traffic_rps": traffic,
    }
    reasons: list[str] = []
    log.info("run %s: baseline %s, canary %s", run_id, cfg.baseline, cfg.canary)
    probes = _parallel(
        {k: (lambda k=k, u=u: _probe(u, cfg.timeout_s, cfg.api_key, adapters[k])) for k, u in urls.items()}
    )
    # What a target says outside its records (its model info, an error) is stored too: redacted alike.
    redact = Redactor(s for a in adapters.values() for s in credential_values(a, cfg.api_key))
    for k, (info, why) in probes.items():
        if info is None:
            reasons.append(redact.text(f"{k} target {urls[k]} is unavailable: {why}"))
        else:
            inputs["targets"][k].update(
                {f: redact.value(info.get(f)) for f in ("model_version", "model", "device", "batching")}
            )
    if not reasons:
        reasons += [redact.text(r) for r in _acquire(cfg, run_id, urls, folder, out, thr, adapters)]
    # The run folder now holds everything the judgement reads: records, quality, the spec, the
    # judge config and this manifest. ``harness judge`` on it gives the same decision.
    shutil.copyfile(spec_path, out / SPEC_YAML)
    write_judge_config(cfg.judge, out / JUDGE_YAML)
    dataset = str(folder.relative_to(out)) if folder.is_relative_to(out) else str(folder.resolve())
    saved = json.loads(json.dumps(inputs))  # what ran, as the manifest keeps it and the judgement reads it
    write_manifest(out, RunManifest(run_id, saved, tuple(reasons), cfg.seed, dataset))
    return judge_sources(
        Source(out, {"target": "baseline"}),
        Source(out, {"target": "canary"}),
        out,
        settings,
        run_id=run_id,
        inputs=Inputs.model_validate(saved),
        reasons=reasons,
        dataset=folder,
        notify=cfg.notify,
    )


def _acquire(cfg: GateConfig, run_id: str, urls, folder: Path, out: Path, thr: float, adapters) -> list[str]:
    """Evaluate and score both targets, then load both at once; records, ``quality.json`` and
    ``records.parquet`` in ``out``. Returns what went wrong on the way (a load that left nothing)."""
    import pandas as pd

    from harness.datasets import load_coco
    from harness.quality import write_quality
    from harness.records import RecordWriter, compact, with_segments

    reasons: list[str] = []
    ds = load_coco(folder)
    references = {str(it.image_id): list(it.captions) for it in ds.items}
    log.info("evaluating %d images on both targets", len(ds))
    evals = _parallel(
        {k: (lambda k=k, u=u: _evaluate(cfg, run_id, u, k, folder, out, adapters[k])) for k, u in urls.items()}
    )
    log.info("scoring captions")
    segments = ds.segments()
    write_quality({"targets": {k: _score(evals[k][0], references, segments) for k in urls}}, out)
    log.info("load: scenario %s for %gs on both targets at once", cfg.scenario, cfg.duration_s)
    loads = _parallel(
        {k: (lambda k=k, u=u: _load(cfg, run_id, u, k, folder, len(ds), out, thr)) for k, u in urls.items()}
    )
    frames = []
    for k in urls:
        frames += [with_segments(d, segments) for d in (evals[k][0], loads[k][0]) if d is not None and len(d)]
        if loads[k][0] is None or not len(loads[k][0]):
            reasons.append(f"{k} load run left no records (exit {loads[k][1].returncode}): {loads[k][1].log_tail(2)}")
    with RecordWriter(out) as w:
        for f in frames:
            w.write_many(f.where(pd.notna(f), None).to_dict("records"))
    compact(out)
    return reasons
