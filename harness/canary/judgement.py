"""The judgement: from saved artifacts (records, per-image quality, the SLO spec, the judge config)
to the decision record. It never makes traffic, so it can be run again on a saved run, with another
config, or on records that came from elsewhere (a service's imported logs, a Hive-partitioned
dataset, a traffic split's records).

A source is one target's data: a gate run folder (``run.json`` beside its records) gives the
evaluation and load records and the per-image quality of one of its targets; any other records file
or folder gives traffic records, filtered by column values (``target=canary``) and a time window.
``harness gate`` acquires a run folder and judges it with ``judge_sources``, so judging the folder
again gives the same decision record (bar the run id and the time it was written)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.canary.judge import judge
from harness.canary.metric import JudgeConfig, burn_metric, drift_metric, for_traffic
from harness.canary.observations import NO_REFERENCES, TargetData, findings, metric_samples
from harness.canary.sample import Missing
from harness.canary.side import Side
from harness.errors import DataError, InputMissingError

if TYPE_CHECKING:
    from harness.drift.suite import DriftReport
    from harness.report.decision import DecisionParts
    from harness.report.model import Analysis, Drift, Inputs, SloRecord, WorstCaption
    from harness.report.notify import Notify
    from harness.slo.report import SLOResult

__all__ = [
    "RUN_JSON",
    "JUDGE_YAML",
    "SPEC_YAML",
    "Source",
    "Settings",
    "RunManifest",
    "judge_sources",
    "judge_run",
    "source_inputs",
    "read_manifest",
    "write_manifest",
    "thresholds",
]

log = logging.getLogger(__name__)

RUN_JSON = "run.json"  # what a gate acquired: run id, inputs, acquisition problems, seed
JUDGE_YAML = "judge.yaml"  # the judge config the gate ran with
SPEC_YAML = "slo.yaml"  # the SLO spec the gate ran with
ROLES = ("baseline", "canary")
# What a traffic record must have to be judged at all.
TRAFFIC_FIELDS = ("target", "request_id", "t_start", "latency_s", "status", "outcome")


@dataclass(frozen=True)
class Source:
    """Where one target's data comes from. ``where``: column values a record must have (compared as
    text); ``since``/``until``: ``since <= t_start < until`` (unix seconds). For a gate run folder
    the ``target`` value picks which of its targets (default: the role judged). A ``path`` of
    ``prometheus:http://HOST:9090`` (text) is a Prometheus scope: the series that ``selector``
    (``{track="canary"}``) picks, over ``[since, until)`` (``harness.canary.prom_scope``)."""

    path: Path | str
    where: Mapping[str, str] = field(default_factory=dict)
    since: float | None = None
    until: float | None = None
    selector: str | None = None

    @property
    def is_scope(self) -> bool:
        return str(self.path).startswith("prometheus:")

    @property
    def is_run(self) -> bool:
        return not self.is_scope and (Path(self.path) / RUN_JSON).is_file()

    def describe(self) -> str:
        parts = [str(self.path)] + ([self.selector] if self.is_scope and self.selector else [])
        parts += [f"{k}={v}" for k, v in self.where.items()]
        if self.since is not None or self.until is not None:
            parts.append(f"t_start in [{self.since}, {self.until})")
        return " ".join(parts)


@dataclass(frozen=True)
class RunManifest:
    """What acquisition saved beside the records (``run.json``)."""

    run_id: str
    inputs: Mapping[str, Any]
    reasons: tuple[str, ...] = ()
    seed: int = 0
    dataset: str | None = None  # the labelled folder both targets captioned

    def to_dict(self) -> dict:
        return {
            "run_id": self.run_id,
            "inputs": dict(self.inputs),
            "reasons": list(self.reasons),
            "seed": self.seed,
            "dataset": self.dataset,
        }


def read_manifest(folder: str | Path) -> RunManifest:
    p = Path(folder) / RUN_JSON
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputMissingError(f"{p}: not found (not a gate run folder)") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{p}: unreadable run manifest ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), dict) or not isinstance(doc.get("run_id"), str):
        raise DataError(f"{p}: a run manifest needs run_id (text) and inputs (a mapping)")
    reasons = doc.get("reasons") or []
    seed = doc.get("seed", 0)
    if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
        raise DataError(f"{p}: reasons must be a list of text")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise DataError(f"{p}: seed must be a whole number")
    dataset = doc.get("dataset")
    if dataset is not None and not isinstance(dataset, str):
        raise DataError(f"{p}: dataset must be a folder name")
    return RunManifest(doc["run_id"], doc["inputs"], tuple(reasons), seed, dataset)


def write_manifest(folder: Path, manifest: RunManifest) -> None:
    p = folder / RUN_JSON
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=1, allow_nan=False) + "\n")
    tmp.replace(p)


# ---------------------------------------------------------------------------- reading a source


def _records_or_none(folder: Path):
    from harness.records import load_records

    try:
        return load_records(folder)
    except (InputMissingError, DataError):
        return None


def _per_image_quality(doc: Any, target: str) -> dict[str, float]:
    """Per-image CIDEr-D of one target of a run's ``quality.json`` (no value: NaN)."""
    rows = (((doc or {}).get("targets") or {}).get(target) or {}).get("per_image") or []
    out: dict[str, float] = {}
    for r in rows:
        v = r.get("CIDEr-D")
        out[str(r.get("image_id"))] = float("nan") if v is None else float(v)
    return out


def _read_run_side(src: Source, role: str) -> Side:
    folder = Path(src.path)
    target = str(src.where.get("target", role))
    unknown = [k for k in src.where if k != "target"]
    if unknown:
        raise DataError(f"{folder}: a gate run folder is filtered by target only (got {unknown[0]}=...)")
    if not (folder / "evaluate" / target).exists() and not (folder / "load" / target).exists():
        raise InputMissingError(f"{folder}: this run has no target {target!r}")
    ev = _records_or_none(folder / "evaluate" / target)
    ld = _records_or_none(folder / "load" / target)
    if src.since is not None or src.until is not None:
        ev, ld = (_window(d, src) for d in (ev, ld))
    qpath = folder / "quality.json"
    qdoc = json.loads(qpath.read_text()) if qpath.exists() else {}
    summary = folder / "load" / target / "summary.json"
    pipeline = None
    if summary.exists():
        pipeline = (json.loads(summary.read_text()) or {}).get("pipeline")
    part = ((qdoc or {}).get("targets") or {}).get(target) or {}
    return Side(ev, ld, _per_image_quality(qdoc, target), part, pipeline)


def _window(df, src: Source):
    if df is None:
        return None
    import pandas as pd

    t = pd.to_numeric(df["t_start"], errors="coerce")
    keep = pd.Series(True, index=df.index)
    if src.since is not None:
        keep &= t >= src.since
    if src.until is not None:
        keep &= t < src.until
    return df[keep].reset_index(drop=True)


def _read_records_side(src: Source) -> Side:
    from harness.records import load_records

    df = load_records(src.path, since=src.since, until=src.until, where=dict(src.where))
    return Side(None, df, {})


def read_side(src: Source, role: str, missing_ok: bool = False) -> Side:
    """One target's data from its source; with ``missing_ok`` a target the run has no records of
    (it was down) is empty instead of an error."""
    try:
        if src.is_scope:
            from harness.canary.prom_scope import PromScope, read_prom_side

            scope = PromScope.parse(str(src.path), src.selector, f"--{role}")
            return read_prom_side(scope, src.since, src.until)
        return _read_run_side(src, role) if src.is_run else _read_records_side(src)
    except InputMissingError:
        if missing_ok:
            return Side(None, None, {})
        raise


# ---------------------------------------------------------------------------- the judgement


@dataclass(frozen=True)
class Settings:
    """What the judgement needs besides the data: the SLO spec, the judge config, the thresholds of
    goodput and calibration, the traffic the burn rates are projected at."""

    spec_path: Path
    judge: JudgeConfig
    latency_threshold: float | None = None
    quality_floor: float | None = None
    traffic_rps: float | None = None
    seed: int = 0


def thresholds(settings: Settings, spec) -> tuple[float, float, float, tuple[str, ...]]:
    from harness.slo.spec import DEFAULT_BLOCKLIST

    lat_slo = next((s for s in spec.slos if s.sli == "latency"), None)
    q_slo = next((s for s in spec.slos if s.sli == "quality"), None)
    thr = settings.latency_threshold or (lat_slo.threshold if lat_slo else 0.5)
    floor = settings.quality_floor if settings.quality_floor is not None else (q_slo.threshold if q_slo else 0.5)
    traffic = settings.traffic_rps or spec.traffic_rps or 10.0
    blocklist = next((s.blocklist for s in spec.slos if s.sli == "safety"), DEFAULT_BLOCKLIST)
    return thr, floor, traffic, tuple(blocklist)


def judge_sources(
    baseline: Source,
    canary: Source,
    out: Path,
    settings: Settings,
    *,
    run_id: str,
    inputs: Inputs | None = None,
    reasons: Sequence[str] = (),
    dataset: Path | None = None,
    analysis: Analysis | None = None,
    read: bool = True,
    strict: bool = False,
    replayed: Mapping[str, tuple] | None = None,
    notify: Notify | None = None,
    clock=time.time,
) -> dict:
    """Judge the two sources and write ``decision.json``, ``summary.md`` and the drift report into
    ``out``; returns the decision record. ``inputs``: what ran (default: the sources,
    ``source_inputs``); the record adds the spec where they name none, the thresholds judged with
    and, for a target that reported no model version, the first its records name. ``reasons`` are
    acquisition problems (a target down): any makes the verdict HOLD. ``dataset``: the labelled
    folder both targets captioned, for the worst captions with their references. ``analysis``:
    which look of a live analysis this is (``harness.canary.analysis``); ``read=False`` judges
    without reading the sources (HOLD).
    ``strict``: a source with no records is an error (``InputMissingError``), not a HOLD.
    ``replayed``: role -> (records, per-image CIDEr-D, quality document) of production images
    captioned by both targets (``harness.canary.replay``): each side's evaluation, so the paired
    metrics are judged as in the gate; the sources' records stay the traffic. ``notify``: where to
    tell the verdict once the record is written (``harness.report.notify``: a Pushgateway, a
    webhook; a failure there is one warning line and changes nothing)."""
    from harness.report import DecisionParts, build_decision, render_markdown, write_decision
    from harness.report.model import Artifacts
    from harness.slo import load_spec

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = load_spec(settings.spec_path)
    thr, floor, traffic, blocklist = thresholds(settings, spec)
    reasons = list(reasons)
    if inputs is None:
        inputs = source_inputs(baseline, canary)
    measured: _Measured | None = None
    if read:
        sides = {k: read_side(src, k, missing_ok=bool(reasons)) for k, src in zip(ROLES, (baseline, canary))}
    else:
        sides = {k: Side(None, None, {}) for k in ROLES}
    if strict:
        for (k, side), src in zip(sides.items(), (baseline, canary)):
            if _empty(side):
                raise InputMissingError(f"--{k}: no records in {src.describe()}")
    if not reasons:
        reasons += [
            f"{k}: no records in {src.describe()}"
            for (k, side), src in zip(sides.items(), (baseline, canary))
            if _empty(side)
        ]
    reasons += _left_out_ahead(sides, (baseline, canary), clock())
    if replayed is not None:
        sides = {
            k: replace(side, evaluation=replayed[k][0], per_image=dict(replayed[k][1]), quality=replayed[k][2])
            for k, side in sides.items()
        }
    # A labelled set without reference captions (images replayed from a store without any, or a
    # data set of images and their objects alone): what is scored against references has no data.
    references = not (
        (replayed is not None and not any(sides[k].per_image for k in ROLES))
        or (dataset is not None and _has_references(dataset) is False)
    )
    if not any(_empty(side) for side in sides.values()):
        measured = _measure(sides, spec, thr, floor, traffic, blocklist, settings, out, dataset, references)
        reasons += measured.reasons
    targets = measured.targets if measured is not None else None
    slos = measured.slos if measured is not None else []
    cfgj = settings.judge
    if targets is not None and not all(t.evaluation is not None and len(t.evaluation) for t in targets):
        cfgj = for_traffic(cfgj)  # traffic records only (production): no paired evaluation
    elif not references:
        cfgj = _without_references(cfgj)
    for s in slos:
        if s.target == "canary":
            cfgj = cfgj.with_metrics(burn_metric(s.name, s.page_factor))
    cfgj = cfgj.with_metrics(drift_metric())
    samples = metric_samples(cfgj.metrics, *targets) if targets else {}
    verdict = judge(samples, cfgj, reasons)
    files = {"summary_md": "summary.md", "dataset": None if dataset is None else str(dataset)}
    if measured is not None:
        drift = measured.parts.drift is not None
        files.update(
            records="records.parquet" if (out / "records.parquet").exists() else None,
            quality="quality.json" if (out / "quality.json").exists() else None,
            drift="drift.json" if drift else None,
            drift_html="drift.html" if drift else None,
        )
    parts = replace(
        measured.parts if measured is not None else DecisionParts(), analysis=analysis, artifacts=Artifacts(**files)
    )
    inputs = _what_ran(
        inputs,
        settings,
        thr,
        floor,
        traffic,
        measured.versions if measured is not None else {},
        measured.clip if measured is not None else None,
    )
    rec = build_decision(verdict, slos, inputs, run_id, parts, clock=clock)
    path = write_decision(out, rec)
    (out / "summary.md").write_text(render_markdown(rec))
    log.info("verdict %s (score %s): %s", rec.verdict, rec.score, path)
    if notify:
        from harness.report.notify import tell

        tell(rec, path, notify.grouped(run_id))
    return rec.model_dump(mode="json", by_alias=True)  # the record as written, for the commands to print


def source_inputs(baseline: Source, canary: Source, **fields: Any) -> Inputs:
    """What ran, where the sources are all that is known of it: each target named by its source
    (``Source.describe``), its protocol unknown; ``fields``: other fields of ``Inputs`` (``replay``)."""
    from harness.report.model import Inputs, TargetInfo

    return Inputs(targets={k: TargetInfo(url=s.describe()) for k, s in zip(ROLES, (baseline, canary))}, **fields)


def _what_ran(
    inputs: Inputs,
    settings: Settings,
    thr: float,
    floor: float,
    traffic: float,
    versions: Mapping[str, str],
    clip: str | None = None,
) -> Inputs:
    """``inputs`` as the record holds them: the spec judged with where they name none, the
    thresholds judged with, a target that reported no model version given its records' first, and
    the encoder that scored CLIPScore."""
    from harness.report.model import Inputs, TargetInfo

    targets = {
        k: TargetInfo.model_validate({**dict(t), "model_version": versions[k]})
        if k in versions and not t.model_version
        else t
        for k, t in inputs.targets.items()
    }
    return Inputs.model_validate(
        {
            **dict(inputs),
            "targets": targets,
            "spec": str(settings.spec_path) if inputs.spec is None else inputs.spec,
            "latency_threshold_s": thr,
            "quality_floor": floor,
            "traffic_rps": traffic,
            "clip": clip,
        }
    )


def _left_out_ahead(sides: dict, sources, now: float) -> list[str]:
    """Records from elsewhere answered more than ``CLOCK_SKEW_S`` after the judge's clock: their
    clock disagrees with the judge's, so the windows would hold the wrong requests. They are left
    out of each side (in place) and each side with some gives a reason (the verdict holds), as a
    look of a live analysis holds (``harness.canary.analysis``)."""
    from harness.records import ahead_note, ahead_of_clock, answer_times

    out = []
    for k, src in zip(ROLES, sources):
        load = sides[k].load
        if src.is_run or src.is_scope or load is None or not len(load):
            continue  # a gate's own records, or records made from a Prometheus window
        ahead = ahead_of_clock(load, now)
        if ahead.any():
            first = float(answer_times(load)[ahead].min())
            note = ahead_note(int(ahead.sum()), len(load), first, now, whose="the judge's clock")
            out.append(f"{k}: {note} in {src.describe()}: left out; the clocks disagree")
            sides[k] = replace(sides[k], load=load[~ahead].reset_index(drop=True))
    return out


def judge_run(
    folder: str | Path,
    out: str | Path,
    judge_cfg: JudgeConfig | None = None,
    spec: Path | None = None,
    run_id: str | None = None,
    notify: Notify | None = None,
    clock=time.time,
) -> dict:
    """Judge a gate's run folder again from what it saved: its records, quality, SLO spec, judge
    config, thresholds and seed (``judge_cfg`` or ``spec`` judge it another way). With neither, the
    decision record is the gate's own, bar the run id, the time and the artifacts' paths.
    ``notify``: as for ``judge_sources``."""
    from harness.canary.config import load_judge_config

    folder = Path(folder)
    m = read_manifest(folder)
    if judge_cfg is None:
        judge_cfg = load_judge_config(folder / JUDGE_YAML)
    sources = (Source(folder, {"target": "baseline"}), Source(folder, {"target": "canary"}))
    inputs = _manifest_inputs(folder / RUN_JSON, m.inputs, sources)
    settings = Settings(
        Path(spec) if spec is not None else folder / SPEC_YAML,
        judge_cfg,
        inputs.latency_threshold_s,
        inputs.quality_floor,
        inputs.traffic_rps,
        seed=m.seed,
    )
    dataset = None
    if m.dataset is not None:
        dataset = Path(m.dataset) if Path(m.dataset).is_absolute() else folder / m.dataset
    return judge_sources(
        *sources,
        Path(out),
        settings,
        run_id=run_id or f"judge-{time.strftime('%Y%m%dT%H%M%S')}-{m.run_id}",
        inputs=inputs,
        reasons=m.reasons,
        dataset=dataset,
        notify=notify,
        clock=clock,
    )


def _manifest_inputs(path: Path, saved: Mapping[str, Any], sources: tuple[Source, Source]) -> Inputs:
    """The inputs a run manifest saved, as the record's model (targets it does not name: the
    sources); inputs that do not fit the model are a ``DataError`` naming the file and the field."""
    from pydantic import ValidationError

    from harness.report.decision import plain
    from harness.report.model import Inputs
    from harness.validation import first_error

    try:
        return Inputs.model_validate(plain({"targets": source_inputs(*sources).targets, **saved}))
    except ValidationError as exc:
        raise DataError(f"{path}: {first_error(exc, 'inputs')}") from None


def _without_references(cfg: JudgeConfig) -> JudgeConfig:
    """Per-image quality cannot have data without references: its missing data does not hold."""
    return replace(
        cfg, metrics=tuple(replace(m, must_have_data=False) if m.name == "quality" else m for m in cfg.metrics)
    )


def _has_references(dataset: Path) -> bool | None:
    """Whether any image of the labelled folder has a reference caption (None: the folder is not
    there to say)."""
    from harness.datasets import load_coco

    if not Path(dataset).is_dir():
        return None
    try:
        return any(it.captions for it in load_coco(dataset).items)
    except (InputMissingError, DataError):
        return None


def _objects(dataset: Path | None):
    """What each image of the labelled folder holds (``harness.quality.chair.DatasetObjects``), or
    None when it does not say."""
    if dataset is None:
        return None
    from harness.quality.chair import dataset_objects

    return dataset_objects(dataset)


def _segments(dataset: Path | None, evaluation) -> dict[str, str]:
    """Each image's segment (image id as text -> segment): the labelled folder's where it names
    them, else the evaluation records' own ``segment`` column; empty when neither says."""
    if dataset is not None and Path(dataset).is_dir():
        from harness.datasets import load_coco

        try:
            named = load_coco(dataset).segments()
        except (InputMissingError, DataError):
            named = {}
        if named:
            return named
    if evaluation is None or not len(evaluation) or "segment" not in evaluation.columns:
        return {}
    rows = evaluation[evaluation["segment"].notna() & evaluation["image_id"].notna()]
    return dict(zip(rows["image_id"].astype(str), rows["segment"].astype(str)))


def _empty(side: Side) -> bool:
    return all(d is None or not len(d) for d in (side.evaluation, side.load))


@dataclass(frozen=True)
class _Measured:
    """What measuring both sides gives the judgement: each target's data for the metrics, the SLOs,
    the record's parts (figures, worst captions, contracts, findings, drift), reasons to hold (the
    harness's own records broke their contract), each target's first model version in its
    records, and the encoder that scored CLIPScore (its name and version; None when not scored)."""

    targets: tuple[TargetData, TargetData]
    slos: list[SloRecord]
    parts: DecisionParts
    reasons: list[str]
    versions: dict[str, str]
    clip: str | None = None


def _measure(
    sides, spec, thr, floor, traffic, blocklist, settings: Settings, out: Path, dataset, references=True
) -> _Measured:
    import pandas as pd

    from harness.canary import observations as o
    from harness.records import check_types, with_segments
    from harness.records.contract import RecordContract, validate_records
    from harness.report import DecisionParts
    from harness.report.decision import plain
    from harness.report.model import ContractReport, TargetFigures
    from harness.slo import evaluate_records
    from harness.slo.job_figures import gate_figures

    reasons: list[str] = []
    frames = [d for k in ROLES for d in (sides[k].evaluation, sides[k].load) if d is not None and len(d)]
    contracts: dict[str, ContractReport] = {}
    if all(sides[k].evaluation is not None and len(sides[k].evaluation) for k in ROLES):
        # A gate's own records must be well formed; what the targets answered is judged by the
        # metrics, not here. One validation over all of them (each costs a Great Expectations pass).
        rep = validate_records(
            pd.concat(frames, ignore_index=True), RecordContract(coverage_objective=0.0, service=False)
        )
        contracts["records"] = ContractReport.model_validate(plain(rep.to_dict()))
        if not rep.success:
            reasons.append(f"the harness's records failed their data contract: {rep.message()}")
    else:
        # Traffic records from elsewhere (imported logs, a dataset, a traffic split): the record's
        # own kinds of value, checked at every look without a Great Expectations pass.
        for k in ROLES:
            for d in (sides[k].evaluation, sides[k].load):
                if d is not None and len(d):
                    check_types(d, f"{k} records", required=TRAFFIC_FIELDS)
    by_target: dict[str, TargetData] = {}
    figures: dict[str, dict[str, Any]] = {}  # each target's, until complete (the canary's AUROC last)
    slos: list[SloRecord] = []
    versions: dict[str, str] = {}
    # What one side cannot see (a Prometheus scope: captions, client timeouts) is compared on neither.
    captions, timeouts = (all(getattr(sides[k], f) for k in ROLES) for f in ("captions", "timeouts"))
    evaluated = all(sides[k].evaluation is not None and len(sides[k].evaluation) for k in ROLES)
    objects = _objects(dataset) if evaluated else None
    segments = _segments(dataset, sides["baseline"].evaluation)
    for k in ROLES:
        side = sides[k]
        ev, ld = (with_segments(d, segments) for d in (side.evaluation, side.load))
        both = [d for d in (ev, ld) if d is not None]
        named = pd.concat(both)["model_version"].dropna().unique() if both else []
        if len(named):
            versions[k] = str(named[0])
        qmap = pd.DataFrame({"image_id": list(side.per_image), "CIDEr-D": list(side.per_image.values())})
        burn: dict[str, float | Missing | None] = {}
        if ld is not None and len(ld):
            from harness.canary.prom_scope import SCOPE_SLIS

            spec_k = spec if side.captions else replace(spec, slos=tuple(s for s in spec.slos if s.sli in SCOPE_SLIS))
            srep = evaluate_records(spec_k, ld, quality=qmap if len(qmap) else None, traffic_rps=traffic)
            for r in srep.results:
                row = _slo_record(k, r)
                slos.append(row)
                burn[row.name] = row.burn_low
                if row.burn_low is None and row.kind == "quality" and not references:
                    burn[row.name] = Missing(NO_REFERENCES)  # its SLI is scored against references
            fig = srep.figures.to_dict()
        else:
            fig = {}
        by_target[k] = TargetData(
            ev,
            ld,
            side.per_image,
            thr,
            floor,
            blocklist,
            burn=burn,
            has_captions=captions,
            has_timeouts=timeouts,
            objects=objects,
            references=references,
            segments=segments or None,
        )
        figures[k] = _figures(fig, side.quality, by_target[k], thr)
        if not side.captions:
            figures[k].update(coverage=None, cost_per_1000=None)
        figures[k].update(gate_figures(side.pipeline))  # an asynchronous load
    by_target["canary"] = replace(
        by_target["canary"],
        baseline_quality=sides["baseline"].per_image,
        quality_delta=_quality_delta(settings.judge),
    )
    clip_model = None
    if captions:
        clip, clip_model = _clip_scores(by_target, dataset, settings.judge.clip, evaluated)
        for k in ROLES:
            by_target[k] = replace(by_target[k], clip_scores=clip[k])
            figures[k]["clip_score"] = _mean(o.clipscore(by_target[k])) if not isinstance(clip[k], Missing) else None
    figures["canary"]["auroc"] = o.auroc(by_target["canary"])
    base_out, can_out = _outputs(sides["baseline"]), _outputs(sides["canary"])
    # No drift without captions: confidence alone would be compared on histogram-rounded values.
    drift = _drift(base_out, can_out, out, settings.seed, _drift_alpha(settings.judge)) if captions else None
    if drift is not None:
        by_target["baseline"] = replace(by_target["baseline"], drifted=0.0)
        by_target["canary"] = replace(
            by_target["canary"], drifted=1.0 if drift.drifted else 0.0, drift_p_value=drift.p_value
        )
    parts = DecisionParts(
        figures={k: TargetFigures.model_validate(plain(f)) for k, f in figures.items()},
        worst_captions=_worst(sides, dataset),
        contracts=contracts,
        findings=[f for k in ROLES for f in findings(by_target[k], k)],
        drift=drift,
    )
    return _Measured((by_target["baseline"], by_target["canary"]), slos, parts, reasons, versions, clip_model)


# Why clipscore has no data on records of traffic alone: they name their images, they do not hold them.
TRAFFIC_IMAGES = (
    "CLIPScore: traffic records name their images by id and hold no image; harness judge --replay-images "
    "STORE captions a sample of them on both targets and scores them paired"
)


def _clip_scores(
    targets: Mapping[str, TargetData], dataset: Path | None, model: str, evaluated: bool
) -> tuple[dict[str, Mapping[str, float] | Missing], str | None]:
    """Each target's CLIPScore of its evaluated captions, image by image, against the images of the
    labelled folder, with the encoder ``model`` (``harness.quality.clipscore.shared_scorer``:
    loaded once per process); and the encoder's name and version. The two targets' captions are
    scored together, once per distinct (image, caption), so an image both captioned alike has the
    same figure on both. Where they cannot be scored, ``Missing`` with the reason on both."""
    from harness.canary.metric import CLIP_OFF
    from harness.errors import HarnessError

    def both(reason: str):
        return {k: Missing(reason) for k in ROLES}, None

    if not evaluated:
        return both(TRAFFIC_IMAGES)
    if model == CLIP_OFF:
        return both("CLIPScore: turned off (the judge config's clip: off)")
    if dataset is None or not Path(dataset).is_dir():
        return both("CLIPScore: no images of the evaluation set (no data set folder)")
    from harness.quality.clipscore import score_pairs, shared_scorer
    from harness.quality.image_store import ImageStore

    try:
        scorer = shared_scorer(model)
        store = ImageStore.open(dataset)
    except HarnessError as exc:
        return both(f"CLIPScore: {exc}")
    captions = {}
    for k in ROLES:
        ev = targets[k].evaluated
        captions[k] = {} if ev is None else dict(zip(ev.index, ev["caption"].fillna("").astype(str)))
    log.info("scoring captions with CLIP (%s)", scorer.name)
    scores, unread = score_pairs(scorer, [(i, c) for k in ROLES for i, c in captions[k].items()], store.read)
    if unread:
        log.warning("CLIPScore: %d images of %s could not be read, left out", len(unread), dataset)
    per = {k: {i: scores[(i, c)] for i, c in captions[k].items() if (i, c) in scores} for k in ROLES}
    return per, scorer.version


def _outputs(side: Side):
    """The records whose outputs are compared for drift: the evaluation phase where there is one
    (the same images on both targets), else the traffic."""
    return side.evaluation if side.evaluation is not None and len(side.evaluation) else side.load


def _worst(sides, dataset: Path | None) -> list[WorstCaption]:
    """Each target's five lowest-scoring captions, with the references of their images."""
    if dataset is None or not (Path(dataset) / "captions.json").exists():
        return []
    from harness.datasets import load_coco
    from harness.report.decision import plain
    from harness.report.model import WorstCaption

    ds = load_coco(dataset)
    references = {str(it.image_id): list(it.captions) for it in ds.items}
    paths = {str(it.image_id): str(it.path) for it in ds.items}
    worst = []
    for k in ROLES:
        per_image, cap = sides[k].per_image, sides[k].evaluation
        if cap is None or not len(cap):
            continue
        rows = sorted(per_image.items(), key=lambda kv: kv[1])[:5]
        caps = dict(zip(cap["image_id"].astype(str), cap["caption"]))
        confs = dict(zip(cap["image_id"].astype(str), cap["confidence"]))
        for image_id, score in rows:
            row = {
                "target": k,
                "image_id": image_id,
                "image_path": paths.get(image_id),
                "caption": caps.get(image_id),
                "references": references.get(image_id, []),
                "cider_d": score,
                "confidence": confs.get(image_id),
            }
            worst.append(WorstCaption.model_validate(plain(row)))
    return worst


def _quality_delta(judge_cfg: JudgeConfig) -> float:
    try:
        return judge_cfg.metric("quality").delta
    except KeyError:
        return 0.0


def _mean(x) -> float | None:
    import numpy as np

    return float(np.mean(x)) if x is not None and len(x) else None


def _figures(fig: dict, qdoc: Mapping[str, Any], t: TargetData, thr: float) -> dict:
    from harness.canary import observations as o

    cider = (qdoc.get("metrics") or {}).get("CIDEr-D") if isinstance(qdoc, dict) else None
    good = o.goodput(t)
    chair = t.chair
    dur = fig.get("duration_s") or 0
    res = {
        k: fig.get(k) for k in ("requests", "throughput_rps", "p50_s", "p95_s", "p99_s", "coverage", "cost_per_1000")
    }
    res.update(
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
            "chair_i": _float(chair.chair_i) if chair is not None else None,
            "chair_s": _float(chair.chair_s) if chair is not None else None,
        }
    )
    return res


def _float(x) -> float | None:
    return None if x is None else float(x)


def _slo_record(target: str, result: SLOResult) -> SloRecord:
    """One SLO of one target as the decision record holds it: its SLI, budget, every alert projected,
    the fastest page alert's burn rate and the slowest's lower bound (judged by burn:SLO)."""
    from harness.report.decision import plain
    from harness.report.model import SloRecord

    proj = result.projection
    pages = [p for p in proj if p.severity == "page"]
    tickets = [p for p in proj if p.severity == "ticket"]
    fastest = max(pages, key=lambda p: p.factor or 0, default=None)
    lowest = min(pages, key=lambda p: p.factor or 0, default=None)
    burn_low = None if lowest is None or lowest.burn_low is None else round(lowest.burn_low, 9)
    alert_fields = (
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
    return SloRecord.model_validate(
        plain(
            {
                "target": target,
                "name": result.slo.name,
                "kind": result.sli.kind,
                "segment": result.slo.segment,
                "objective": result.slo.objective,
                "sli": result.sli.ratio,
                "good": result.sli.good,
                "total": result.sli.total,
                "budget_remaining": result.budget.remaining,
                "projected_burn_rate": None if fastest is None else fastest.burn_rate,
                "burn_low": burn_low,
                "page_factor": (lowest.factor if lowest is not None else None) or 6.0,
                "would_page": any(p.decision == "fires" for p in pages),
                "would_ticket": any(p.decision == "fires" for p in tickets),
                "alerts": [{f: getattr(p, f) for f in alert_fields} for p in proj],
            }
        )
    )


DRIFT_ALPHA = 0.05  # the drift suite's false-alarm rate over all its detectors (one judgement)


def _drift_alpha(cfg: JudgeConfig) -> float:
    """The drift suite's level: 5% for one judgement; at a look of an interval analysis, 5% spent
    over the looks the way the analysis spends its own error rate."""
    if cfg.look is None:
        return DRIFT_ALPHA
    return DRIFT_ALPHA * cfg.look.level / cfg.look.alpha


def _drift(base_df, can_df, out: Path, seed: int, alpha: float = DRIFT_ALPHA) -> Drift | None:
    from harness.drift.features import features_from_records
    from harness.drift.report import write_report
    from harness.drift.suite import DriftSuite
    from harness.errors import HarnessError

    if base_df is None or can_df is None or not len(base_df) or not len(can_df):
        return None
    for col in ("embedding", "confidence"):
        # A target on a protocol without this field (no embeddings, no log-probabilities): the
        # detectors that read it are left out on both sides, and the drift report says so.
        if base_df[col].notna().any() != can_df[col].notna().any():
            base_df, can_df = base_df.assign(**{col: None}), can_df.assign(**{col: None})
    try:
        ref = features_from_records(base_df, "baseline")
        cur = features_from_records(can_df, "canary")
        suite = DriftSuite(alpha, seed=seed, sentence_embeddings=False).fit(ref)
        rep = suite.predict(cur)
    except HarnessError as exc:
        log.warning("drift skipped: %s", exc)
        return None
    write_report(rep.to_dict(), out)
    return _drift_record(rep)


def _drift_record(rep: DriftReport) -> Drift:
    """The drift suite's verdict as the decision record holds it, with the suite's own p-value: its
    smallest detector's, Bonferroni-adjusted over the detectors."""
    from harness.drift.base import to_jsonable
    from harness.report.model import Drift, DriftDetector

    detectors = [
        DriftDetector(
            name=r.detector,
            method=r.method,
            statistic=to_jsonable(r.statistic),
            p_value=to_jsonable(r.p_value),
            threshold=to_jsonable(r.threshold),
            drift=to_jsonable(r.drift),
        )
        for r in rep.results
    ]
    ps = [d.p_value for d in detectors if d.p_value is not None]
    return Drift(
        drifted=to_jsonable(rep.drift),
        p_value=min(1.0, min(ps) * len(detectors)) if ps else None,
        detectors=detectors,
    )
