"""The canary gate: the same images and the same load at baseline and canary at the same time,
quality, data contracts, SLOs with burn-rate projection and output drift, then one judgement
written as the decision record."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from harness.canary.judge import judge
from harness.canary.metric import JudgeConfig, burn_metric, drift_metric
from harness.canary.observations import TargetData, findings, metric_samples
from harness.errors import UsageError
from harness.pipeline import gate_figures
from harness.protocols import Adapter, ProtocolChoice

__all__ = ["GateConfig", "run_gate", "TARGETS"]

TARGETS = ("baseline", "canary")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateConfig:
    """What the gate runs. ``dataset``: ``shapes:N[:shift]`` or ``coco:DIR``; ``spec``: an SLO spec
    (the built-in example when None); load: ``scenario`` for ``duration_s`` with ``users`` or an
    open-loop ``rate`` per target."""

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

    ds = parse_dataset(f"coco:{folder}")
    tdir = out / "evaluate" / name
    with RecordWriter(tdir) as w:
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


def _score(df, references: dict) -> tuple[dict, dict[str, float]]:
    from harness.quality import score_captions
    from harness.quality.evaluation import captions_from_records

    cands = captions_from_records(df, references)
    if not cands:
        return {"note": "no captions to score"}, {}
    rep = score_captions(cands, references, families=("bleu", "rouge", "cider"), n_resamples=500)
    per = {str(k): float(v) for k, v in zip(rep.image_ids, rep.metric("CIDEr-D").per_image)}
    return rep.to_dict(per_image=True), per


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
    """Run the whole gate and write ``decision.json`` and ``summary.md`` into ``cfg.out``;
    returns the decision record. Each stage is logged at INFO on ``harness.canary.gate``."""

    from harness.report import build_decision, render_markdown, write_decision
    from harness.resources import example_path
    from harness.slo import load_spec
    from harness.slo.spec import DEFAULT_BLOCKLIST

    out = Path(cfg.out)
    used = [n for n in ("decision.json", "records.jsonl", "evaluate", "load") if (out / n).exists()]
    if used:
        raise UsageError(f"{out} holds an earlier run ({', '.join(used)}): give each gate run an empty --out folder")
    adapters = {k: cfg.protocol(k).build() for k in TARGETS}  # a bad protocol or unset credential stops here
    out.mkdir(parents=True, exist_ok=True)
    run_id = cfg.run_id or f"gate-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:4]}"
    spec_path = cfg.spec or example_path("slo.yaml")
    spec = load_spec(spec_path)
    lat_slo = next((s for s in spec.slos if s.sli == "latency"), None)
    q_slo = next((s for s in spec.slos if s.sli == "quality"), None)
    thr = cfg.latency_threshold or (lat_slo.threshold if lat_slo else 0.5)
    floor = cfg.quality_floor if cfg.quality_floor is not None else (q_slo.threshold if q_slo else 0.5)
    traffic = cfg.traffic_rps or spec.traffic_rps or 10.0
    blocklist = next((s.blocklist for s in spec.slos if s.sli == "safety"), DEFAULT_BLOCKLIST)
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
    for k, (info, why) in probes.items():
        if info is None:
            reasons.append(f"{k} target {urls[k]} is unavailable: {why}")
        else:
            inputs["targets"][k].update({f: info.get(f) for f in ("model_version", "model", "device", "batching")})
    artifacts = {"dataset": str(folder), "summary_md": "summary.md"}
    extra: dict[str, Any] = {"artifacts": artifacts}
    targets: tuple[TargetData, TargetData] | None = None
    slos: list[dict] = []
    if not reasons:
        targets, slos, extra2, more_reasons = _measure(
            cfg, run_id, urls, folder, out, thr, floor, traffic, blocklist, spec, inputs, adapters
        )
        reasons += more_reasons
        artifacts.update(extra2.pop("artifacts", {}))
        extra.update(extra2)
    cfgj = cfg.judge
    for s in slos:
        if s["target"] == "canary":
            cfgj = cfgj.with_metrics(burn_metric(s["name"], s["page_factor"]))
    cfgj = cfgj.with_metrics(drift_metric())
    samples = metric_samples(cfgj.metrics, *targets) if targets else {}
    verdict = judge(samples, cfgj, reasons)
    rec = build_decision(verdict.to_dict(), slos, inputs, run_id, {**extra, "artifacts": artifacts})
    write_decision(out, rec)
    (out / "summary.md").write_text(render_markdown(rec))
    log.info("verdict %s (score %s): %s", rec["verdict"], rec["score"], out / "decision.json")
    return rec


def _measure(cfg, run_id, urls, folder, out, thr, floor, traffic, blocklist, spec, inputs, adapters):
    import pandas as pd

    from harness.canary import observations as o
    from harness.datasets import load_coco
    from harness.expectations import RecordContract, validate_records
    from harness.quality import write_quality
    from harness.records import RecordWriter, compact
    from harness.slo import evaluate_records

    reasons: list[str] = []
    ds = load_coco(folder)
    references = {str(it.image_id): list(it.captions) for it in ds.items}
    paths = {str(it.image_id): str(it.path) for it in ds.items}
    log.info("evaluating %d images on both targets", len(ds))
    evals = _parallel(
        {k: (lambda k=k, u=u: _evaluate(cfg, run_id, u, k, folder, out, adapters[k])) for k, u in urls.items()}
    )
    log.info("scoring captions")
    quality_docs, per_image = {}, {}
    for k in urls:
        quality_docs[k], per_image[k] = _score(evals[k][0], references)
    write_quality({"targets": quality_docs}, out)
    log.info("load: scenario %s for %gs on both targets at once", cfg.scenario, cfg.duration_s)
    loads = _parallel(
        {k: (lambda k=k, u=u: _load(cfg, run_id, u, k, folder, len(ds), out, thr)) for k, u in urls.items()}
    )
    frames = []
    for k in urls:
        frames += [d for d in (evals[k][0], loads[k][0]) if d is not None and len(d)]
        if loads[k][0] is None or not len(loads[k][0]):
            reasons.append(f"{k} load run left no records (exit {loads[k][1].returncode}): {loads[k][1].log_tail(2)}")
    with RecordWriter(out) as w:
        for f in frames:
            w.write_many(f.where(pd.notna(f), None).to_dict("records"))
    compact(out)
    # The harness's own records must be well formed; what the targets answered is judged by the
    # metrics, not here. One validation over all of them (each costs a Great Expectations pass).
    contracts = {}
    if frames:
        rep = validate_records(
            pd.concat(frames, ignore_index=True), RecordContract(coverage_objective=0.0, service=False)
        )
        contracts["records"] = rep.to_dict()
        if not rep.success:
            reasons.append(f"the harness's records failed their data contract: {rep.message()}")
    by_target: dict[str, TargetData] = {}
    figures, slos = {}, []
    for k in urls:
        ev, ld = evals[k][0], loads[k][0]
        versions = [v for v in pd.concat([d for d in (ev, ld) if d is not None])["model_version"].dropna().unique()]
        if versions and not inputs["targets"][k].get("model_version"):
            inputs["targets"][k]["model_version"] = str(versions[0])
        qmap = pd.DataFrame({"image_id": list(per_image[k]), "CIDEr-D": list(per_image[k].values())})
        burn: dict[str, float | None] = {}
        if ld is not None and len(ld):
            rep = evaluate_records(spec, ld, quality=qmap if len(qmap) else None, traffic_rps=traffic)
            for r in rep.results:
                row = _slo_row(k, r.to_dict())
                slos.append(row)
                burn[row["name"]] = row["burn_low"]
            fig = rep.figures.to_dict()
        else:
            fig = {}
        by_target[k] = TargetData(ev, ld, per_image[k], thr, floor, tuple(blocklist), burn=burn)
        figures[k] = _figures(fig, quality_docs[k], by_target[k], thr)
        figures[k].update(gate_figures((loads[k][1].summary or {}).get("pipeline")))  # an asynchronous load
    by_target["canary"] = replace(
        by_target["canary"], baseline_quality=per_image["baseline"], quality_delta=_quality_delta(cfg.judge)
    )
    figures["canary"]["auroc"] = o.auroc(by_target["canary"])
    drift = _drift(evals["baseline"][0], evals["canary"][0], out, cfg.seed)
    if drift is not None:
        by_target["baseline"] = replace(by_target["baseline"], drifted=0.0)
        by_target["canary"] = replace(by_target["canary"], drifted=1.0 if drift["drifted"] else 0.0)
    worst = []
    for k in urls:
        rows = sorted(per_image[k].items(), key=lambda kv: kv[1])[:5]
        cap = evals[k][0]
        caps = dict(zip(cap["image_id"].astype(str), cap["caption"]))
        confs = dict(zip(cap["image_id"].astype(str), cap["confidence"]))
        for image_id, score in rows:
            worst.append(
                {
                    "target": k,
                    "image_id": image_id,
                    "image_path": paths.get(image_id),
                    "caption": caps.get(image_id),
                    "references": references.get(image_id, []),
                    "cider_d": score,
                    "confidence": confs.get(image_id),
                }
            )
    found = [f for k in urls for f in findings(by_target[k], k)]
    extra = {
        "figures": figures,
        "worst_captions": worst,
        "contracts": contracts,
        "findings": found,
        "artifacts": {
            "records": "records.parquet",
            "quality": "quality.json",
            "drift": "drift.json" if drift else None,
            "drift_html": "drift.html" if drift else None,
        },
    }
    if drift is not None:
        extra["drift"] = drift
    return (by_target["baseline"], by_target["canary"]), slos, extra, reasons


def _quality_delta(judge_cfg: JudgeConfig) -> float:
    try:
        return judge_cfg.metric("quality").delta
    except KeyError:
        return 0.0


def _mean(x) -> float | None:
    import numpy as np

    return float(np.mean(x)) if x is not None and len(x) else None


def _figures(fig: dict, qdoc: dict, t: TargetData, thr: float) -> dict:
    from harness.canary import observations as o

    cider = (qdoc.get("metrics") or {}).get("CIDEr-D") if isinstance(qdoc, dict) else None
    good = o.goodput(t)
    dur = fig.get("duration_s") or 0
    out = {
        k: fig.get(k) for k in ("requests", "throughput_rps", "p50_s", "p95_s", "p99_s", "coverage", "cost_per_1000")
    }
    out.update(
        {
            "error_rate": _mean(o.errors(t)),
            "timeout_rate": _mean(o.timeouts(t)),
            "safety_flag_rate": _mean(o.unsafe(t)),
            "pii_rate": _mean(o.pii(t)),
            "blank_rate": _mean(o.blank(t)),
            "mean_confidence": _mean(o.confidence(t)),
            "auroc": o.auroc(t),
            "cider_d": cider.get("corpus") if cider else None,
            "cider_d_ci": cider.get("ci") if cider else None,
            "hybrid_score": (qdoc.get("hybrid") or {}).get("score") if isinstance(qdoc, dict) else None,
            "goodput_rps": float(good.sum()) / dur if good is not None and dur > 0 else None,
            "latency_threshold_s": thr,
        }
    )
    return out


def _slo_row(target: str, d: dict) -> dict:
    proj = d.get("projection") or []
    pages = [p for p in proj if p.get("severity") == "page"]
    tickets = [p for p in proj if p.get("severity") == "ticket"]
    fastest = max(pages, key=lambda p: p.get("factor") or 0, default={})
    lowest = min(pages, key=lambda p: p.get("factor") or 0, default={})
    sli = d.get("sli") or {}
    budget = d.get("budget") or {}
    return {
        "target": target,
        "name": d.get("name"),
        "kind": d.get("sli") if isinstance(d.get("sli"), str) else sli.get("kind"),
        "objective": d.get("objective"),
        "sli": sli.get("ratio"),
        "good": sli.get("good"),
        "total": sli.get("total"),
        "budget_remaining": budget.get("remaining"),
        "projected_burn_rate": fastest.get("burn_rate"),
        "burn_low": None if lowest.get("burn_low") is None else round(lowest["burn_low"], 9),
        "page_factor": lowest.get("factor") or 6.0,
        "would_page": any(p.get("decision") == "fires" for p in pages),
        "would_ticket": any(p.get("decision") == "fires" for p in tickets),
        "alerts": [
            {
                k: p.get(k)
                for k in (
                    "severity",
                    "factor",
                    "long",
                    "short",
                    "burn_rate",
                    "burn_low",
                    "burn_high",
                    "budget_consumed",
                    "decision",
                )
            }
            for p in proj
        ],
    }


def _drift(base_df, can_df, out: Path, seed: int) -> dict | None:
    from harness.drift.features import features_from_records
    from harness.drift.report import write_report
    from harness.drift.suite import DriftSuite
    from harness.errors import HarnessError

    for col in ("embedding", "confidence"):
        # A target on a protocol without this field (no embeddings, no log-probabilities): the
        # detectors that read it are left out on both sides, and the drift report says so.
        if base_df[col].notna().any() != can_df[col].notna().any():
            base_df, can_df = base_df.assign(**{col: None}), can_df.assign(**{col: None})
    try:
        ref = features_from_records(base_df, "baseline")
        cur = features_from_records(can_df, "canary")
        suite = DriftSuite(0.05, seed=seed, sentence_embeddings=False).fit(ref)
        rep = suite.predict(cur).to_dict()
    except HarnessError as exc:
        log.warning("drift skipped: %s", exc)
        return None
    write_report(rep, out)
    return {
        "drifted": rep["drift"],
        "detectors": [
            {
                "name": r.get("detector"),
                "method": r.get("method"),
                "statistic": r.get("statistic"),
                "p_value": r.get("p_value"),
                "threshold": r.get("threshold"),
                "drift": r.get("drift"),
            }
            for r in rep["results"]
        ],
    }
