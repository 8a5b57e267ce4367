"""A live analysis: the canary judged again at every interval over the cumulative data, with an
alpha-spending schedule (``harness.canary.sequential``) so that looking again does not buy false
rollbacks. A decisive failure rolls back at the look that sees it; PROMOTE only at the last look;
every other look is HOLD (the analysis goes on).

Each look writes its decision record into ``look-NN/`` and copies it to the folder's own
``decision.json`` and ``summary.md``; the state (plan and looks done) is ``analysis.json``, written
atomically after every look, so an analysis stopped midway resumes at its next look and nothing
already judged is lost. Looks whose time has passed (an analysis started in the past, or resumed
late) are judged at once: an analysis over saved records replays the looks it would have made.

``judge_due`` is the step without a clock of its own: it judges the looks due at a given time and
returns where the analysis stands, so a server (``harness judge serve``) judges them when a
controller asks or its scheduler wakes; ``run_analysis`` (``harness judge --interval``) sleeps
until each look and calls it."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.canary.judgement import Settings, Source, judge_sources
from harness.canary.sequential import Look, Spending
from harness.errors import DataError, HarnessError

if TYPE_CHECKING:
    from harness.report.model import Analysis, Inputs
    from harness.report.notify import Notify

__all__ = [
    "ANALYSIS_JSON",
    "AnalysisPlan",
    "AnalysisState",
    "start_analysis",
    "read_analysis",
    "judge_due",
    "run_analysis",
]

log = logging.getLogger(__name__)

ANALYSIS_JSON = "analysis.json"


@dataclass(frozen=True)
class AnalysisPlan:
    """Looks every ``interval_s`` from ``started_unix`` until ``lifetime_s`` is over; each metric's
    false-failure rate over all looks is at most ``alpha`` (spent by ``spending``)."""

    interval_s: float
    lifetime_s: float
    started_unix: float
    alpha: float
    spending: Spending = "pocock"

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and self.lifetime_s >= self.interval_s):
            raise ValueError("the interval must be positive and the lifetime at least one interval")

    @property
    def looks(self) -> int:
        return max(1, math.ceil(self.lifetime_s / self.interval_s - 1e-9))

    def at(self, look: int) -> float:
        """When look ``look`` is judged: the end of its window."""
        return self.started_unix + min(look * self.interval_s, self.lifetime_s)

    def look(self, k: int) -> Look:
        return Look(k, self.looks, self.alpha, self.spending)

    def to_dict(self) -> dict:
        return {
            "interval_s": self.interval_s,
            "lifetime_s": self.lifetime_s,
            "started_unix": self.started_unix,
            "alpha": self.alpha,
            "spending": self.spending,
            "looks": self.looks,
        }


def _read_state(out: Path, plan: AnalysisPlan) -> tuple[AnalysisPlan, list[dict]]:
    p = out / ANALYSIS_JSON
    if not p.exists():
        return plan, []
    try:
        doc = json.loads(p.read_text())
        saved = doc["plan"]
        plan = AnalysisPlan(
            float(saved["interval_s"]),
            float(saved["lifetime_s"]),
            float(saved["started_unix"]),
            float(saved["alpha"]),
            saved["spending"],
        )
        looks = list(doc["looks"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{p}: unreadable analysis state ({type(exc).__name__}); give a new --out folder") from None
    return plan, looks


def _write_state(out: Path, plan: AnalysisPlan, looks: list[dict]) -> None:
    p = out / ANALYSIS_JSON
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"plan": plan.to_dict(), "looks": looks}, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, p)


def _clock_skew(sources, now: float, plan: AnalysisPlan) -> list[str]:
    """Records stamped after the judge's own clock (by more than a tenth of an interval, at least
    5 s) mean the two clocks disagree: the windows would judge the wrong requests, so the look holds."""
    from harness.records import load_records

    slack = max(5.0, 0.1 * plan.interval_s)
    out = []
    for role, src in zip(("baseline", "canary"), sources):
        if src.is_scope or src.is_run:
            continue
        t = load_records(src.path, columns=["t_start"], where=dict(src.where), since=now + slack)
        if len(t):
            ahead = float(t["t_start"].max()) - now
            out.append(
                f"{role}: records stamped up to {ahead:.0f} s after the judge's clock ({src.describe()}): "
                "the clocks disagree; judged again at the next look"
            )
    return out


@dataclass(frozen=True)
class AnalysisState:
    """Where an analysis stands: its plan, the looks judged (as ``analysis.json`` lists them) and the
    latest look's decision record (None before the first look)."""

    plan: AnalysisPlan
    looks: tuple[dict, ...]
    record: dict | None

    @property
    def verdict(self) -> str | None:
        return self.looks[-1]["verdict"] if self.looks else None

    @property
    def done(self) -> bool:
        """Whether the analysis has said its last word: ROLLBACK at any look, or the last look."""
        return bool(self.looks) and (self.verdict == "ROLLBACK" or len(self.looks) >= self.plan.looks)

    @property
    def next_look(self) -> int | None:
        return None if self.done else len(self.looks) + 1


def start_analysis(out: Path, plan: AnalysisPlan) -> AnalysisPlan:
    """Write the state of an analysis that has judged no look yet (its plan, so that a restart keeps
    its start time); an analysis already in ``out`` keeps its own plan, which is returned."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / ANALYSIS_JSON).exists():
        return _read_state(out, plan)[0]
    _write_state(out, plan, [])
    return plan


def _latest(out: Path, looks: list[dict]) -> dict | None:
    if not looks:
        return None
    last = out / looks[-1]["folder"] / "decision.json"
    return json.loads(last.read_text()) if last.exists() else None


def read_analysis(out: Path, plan: AnalysisPlan) -> AnalysisState:
    """The state of the analysis in ``out`` (``plan`` when it has none saved), judging nothing."""
    out = Path(out)
    plan, looks = _read_state(out, plan)
    try:
        rec = _latest(out, looks)
    except (OSError, ValueError) as exc:
        raise DataError(f"{out}: unreadable decision record of look {len(looks)} ({type(exc).__name__})") from None
    return AnalysisState(plan, tuple(looks), rec)


def _judge_look(
    baseline: Source,
    canary: Source,
    out: Path,
    settings: Settings,
    plan: AnalysisPlan,
    k: int,
    until: float,
    *,
    run_id: str,
    inputs: Inputs | None,
    notify: Notify | None,
    clock: Callable[[], float],
) -> dict:
    """Judge look ``k`` over the cumulative data up to ``until`` (its time, or earlier when judged
    ahead of it) into ``out/look-NN`` and copy its record to ``out``."""
    look = plan.look(k)
    folder = f"look-{k:02d}"
    srcs = [
        replace(s, since=max(s.since or plan.started_unix, plan.started_unix), until=until) for s in (baseline, canary)
    ]
    cfg = replace(settings, judge=replace(settings.judge, look=look))
    analysis = _analysis_record(plan, look, until)
    reasons: list[str] = []
    try:
        reasons += _clock_skew(srcs, clock(), plan)
        rec = judge_sources(
            *srcs,
            out / folder,
            cfg,
            run_id=f"{run_id}-look{k:02d}",
            inputs=inputs,
            analysis=analysis,
            reasons=reasons,
            notify=notify,
        )
    except HarnessError as exc:
        # A source that cannot be read now (a Prometheus down, a file being replaced): this look
        # holds; the analysis goes on and judges the cumulative data at the next one.
        reasons.append(f"look {k}: a source could not be read: {exc}")
        log.warning("%s", reasons[-1])
        rec = judge_sources(
            *srcs,
            out / folder,
            cfg,
            run_id=f"{run_id}-look{k:02d}",
            inputs=inputs,
            analysis=analysis,
            reasons=reasons,
            read=False,
            notify=notify,
        )
    for name in ("decision.json", "summary.md"):
        tmp = out / f".{name}.tmp"
        shutil.copyfile(out / folder / name, tmp)
        os.replace(tmp, out / name)
    return rec


def _analysis_record(plan: AnalysisPlan, look: Look, until: float) -> Analysis:
    """Which look of the analysis a record is, as the record holds it: the plan, the look's level
    and alpha spent, and the window judged (cumulative, from the start to ``until``)."""
    from harness.report.model import Analysis

    return Analysis.model_validate(
        {**plan.to_dict(), **look.to_dict(), "window_start_unix": plan.started_unix, "window_end_unix": until}
    )


def judge_due(
    baseline: Source,
    canary: Source,
    out: Path,
    settings: Settings,
    plan: AnalysisPlan,
    *,
    run_id: str,
    inputs: Inputs | None = None,
    notify: Notify | None = None,
    now: float | None = None,
    grace: float = 0.0,
    clock: Callable[[], float] = time.time,
) -> AnalysisState:
    """Judge every look of ``plan`` (resuming from ``out/analysis.json``) that is due by ``now``
    (default: ``clock()``): look k is due once ``now >= at(k) - grace``, and a look judged before
    its time ends its window at ``now``. Stops after a ROLLBACK; never sleeps. Returns where the
    analysis stands, the latest look's decision record included. ``notify``: as for
    ``run_analysis``."""
    out = Path(out)
    notify = notify.grouped(run_id) if notify else None
    out.mkdir(parents=True, exist_ok=True)
    state = read_analysis(out, plan)
    plan, looks, rec = state.plan, list(state.looks), state.record
    if state.done:
        return state
    now = clock() if now is None else now
    for k in range(len(looks) + 1, plan.looks + 1):
        at = plan.at(k)
        if now < at - grace:
            break
        rec = _judge_look(
            baseline,
            canary,
            out,
            settings,
            plan,
            k,
            min(at, now),
            run_id=run_id,
            inputs=inputs,
            notify=notify,
            clock=clock,
        )
        looks.append(
            {"look": k, "at_unix": at, "verdict": rec["verdict"], "score": rec["score"], "folder": f"look-{k:02d}"}
        )
        _write_state(out, plan, looks)
        log.info("look %d of %d: %s (score %s)", k, plan.looks, rec["verdict"], rec["score"])
        if rec["verdict"] == "ROLLBACK":
            break
    return AnalysisState(plan, tuple(looks), rec)


def run_analysis(
    baseline: Source,
    canary: Source,
    out: Path,
    settings: Settings,
    plan: AnalysisPlan,
    *,
    run_id: str,
    inputs: Inputs | None = None,
    notify: Notify | None = None,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Judge every look of ``plan`` (resuming from ``out/analysis.json``), sleeping until each is
    due; returns the last decision record: ROLLBACK at the first look with a decisive failure, else
    the last look's. ``notify``: where each look's verdict is told (``harness.report.notify``),
    every look pushed under one group (the one given, else ``run_id``), so the latest look
    replaces the one before."""
    out = Path(out)
    args = (baseline, canary, out, settings)
    kw: dict[str, Any] = {"run_id": run_id, "inputs": inputs, "notify": notify, "clock": clock}
    if (out / ANALYSIS_JSON).exists():
        saved = read_analysis(out, plan)
        log.info("resuming the analysis of %s after look %d of %d", out, len(saved.looks), saved.plan.looks)
    state = judge_due(*args, plan, now=clock(), **kw)
    while not state.done:
        k = len(state.looks) + 1
        at = state.plan.at(k)
        wait = at - clock()
        if wait > 0:
            log.info(
                "look %d of %d at %s (in %.0fs)", k, state.plan.looks, time.strftime("%H:%M:%S", time.gmtime(at)), wait
            )
            sleep(wait)
        # look k is judged now, whatever the clock says after the sleep (its window ends at its time)
        state = judge_due(*args, state.plan, now=max(clock(), at), **kw)
    assert state.record is not None
    return state.record
