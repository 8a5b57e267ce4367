"""Promtool's own rule evaluation of a ``History`` (tests/slo_history.py) with the generated rules.

``promtool_test(history, rules_yaml, alerts=[AlertCheck(...)], values=[ValueCheck(...)], start, end)``
writes a ``promtool test rules`` file (``evaluation_interval`` and ``interval`` the History's
scrape interval, ``input_series`` from ``history.to_promtool_series(start, end)``) and runs it; the
``PromtoolRun`` says whether every check held (``.ok``) and keeps promtool's output (which shows
what it got for a check that failed).

Checks name History steps (``history.step(t)``), absolute: step ``start`` is promtool's time 0.
Promtool evaluates every rule at every interval from 0 to the last check, so a slice of the month
(``start``) keeps it fast; a check is trustworthy only where every window the alert reads lies
inside the slice (``start`` at least the longest alert window before it: the History and
Prometheus both clip windows at the data's start, but Prometheus also extrapolates there).

- ``AlertCheck(step, alert, firing)``: promtool's ``alert_rule_test``: at ``step`` the alert fires
  (with the rule's labels and annotations, as promtool compares them) or does not.
- ``ValueCheck(step, expr, value, rel=1e-9)``: ``expr`` (one series) is within ``rel`` of ``value``;
  written as ``round(sum(expr) / value * N)`` expecting ``N = round(1 / rel)`` (promtool compares
  values exactly); ``value`` 0 expects exactly 0, None expects no series.

``alert_checks(history, spec, slo, severity, since, start, end, every=1)``: the History's
expectation for one generated alert at every ``every``-th step of ``[start, end]`` (and at each
edge of its firing spans), refused unless ``start`` is the alert's longest window after ``since``.

Promtool evaluates the groups in the rules file's order at each step (``group_eval_order``), so an
alert reads the recording rules of the same evaluation, as the History assumes; a real Prometheus
evaluates groups on their own, and its alerts may lag the recordings by an interval.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Sequence

import pytest
import yaml

__all__ = ["AlertCheck", "ValueCheck", "PromtoolRun", "promtool_test", "alert_checks", "rule_alerts"]


@dataclass(frozen=True)
class AlertCheck:
    step: int
    alert: str
    firing: bool


@dataclass(frozen=True)
class ValueCheck:
    step: int
    expr: str
    value: float | Fraction | None
    rel: float = 1e-9


@dataclass(frozen=True)
class PromtoolRun:
    returncode: int
    output: str
    test_file: Path
    seconds: float
    checks: int

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and "SUCCESS" in self.output


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    return path


def rule_alerts(rules_yaml: str) -> dict[str, dict[str, Any]]:
    """Each alerting rule by name: the labels promtool expects of its alert (the expression's, taken
    from its SLO's recording rules without ``sloth_window``, then the rule's) and its annotations."""
    groups = yaml.safe_load(rules_yaml)["groups"]
    recorded: dict[str, dict[str, str]] = {}
    for g in groups:
        for r in g["rules"]:
            if "record" in r and "sloth_window" in r.get("labels", {}):
                labels = {k: str(v) for k, v in r["labels"].items() if k != "sloth_window"}
                recorded.setdefault(labels["sloth_id"], labels)
    out = {}
    for g in groups:
        for r in g["rules"]:
            if "alert" in r:
                labels = {k: str(v) for k, v in r.get("labels", {}).items()}
                annotations = {k: str(v) for k, v in r.get("annotations", {}).items()}
                if any("{{" in v for v in annotations.values()):
                    raise NotImplementedError(f"{r['alert']}: templated annotations are not expanded here")
                out[r["alert"]] = {
                    "exp_labels": {**recorded.get(labels.get("sloth_id", ""), {}), **labels},
                    "exp_annotations": annotations,
                }
    return out


def _duration(seconds: int) -> str:
    return f"{int(seconds)}s"


def promtool_test(
    history,
    rules_yaml: str,
    alerts: Sequence[AlertCheck] = (),
    values: Sequence[ValueCheck] = (),
    start: int = 0,
    end: int | None = None,
    workdir: Path | None = None,
    timeout: float = 300.0,
) -> PromtoolRun:
    """Run ``promtool test rules`` on steps ``start`` .. ``end`` of ``history`` (default: up to the
    last check) with ``rules_yaml``, asserting the checks; ``workdir`` keeps the files (else a
    temporary folder, removed)."""
    tool = _promtool()
    steps = [c.step for c in (*alerts, *values)]
    if not steps:
        raise ValueError("no checks")
    end = max(steps) if end is None else end
    if min(steps) < start or max(steps) > end:
        raise ValueError(f"checks at steps {min(steps)}..{max(steps)} lie outside {start}..{end}")
    interval = history.interval_s
    known = rule_alerts(rules_yaml)
    alert_tests = []
    for c in alerts:
        if c.alert not in known:
            raise KeyError(f"no alerting rule {c.alert!r}")
        test: dict[str, Any] = {"eval_time": _duration((c.step - start) * interval), "alertname": c.alert}
        if c.firing:
            test["exp_alerts"] = [known[c.alert]]
        alert_tests.append(test)
    expr_tests = []
    for v in values:
        at = _duration((v.step - start) * interval)
        if v.value is None:
            expr_tests.append({"expr": v.expr, "eval_time": at, "exp_samples": []})
        elif v.value == 0:
            expr_tests.append(
                {"expr": f"sum({v.expr})", "eval_time": at, "exp_samples": [{"labels": "{}", "value": 0}]}
            )
        else:
            scale = float(round(1 / v.rel))
            expr = f"round(sum({v.expr}) / {float(v.value)!r} * {scale:.0f})"
            expr_tests.append({"expr": expr, "eval_time": at, "exp_samples": [{"labels": "{}", "value": scale}]})
    test_group: dict[str, Any] = {
        "interval": _duration(interval),
        "input_series": history.to_promtool_series(start, end),
    }
    if alert_tests:
        test_group["alert_rule_test"] = alert_tests
    if expr_tests:
        test_group["promql_expr_test"] = expr_tests
    # every group in the file's order at each evaluation (promtool's own order is a map's: random,
    # so an alert would now and then read the recording rules of the evaluation before)
    order = [g["name"] for g in yaml.safe_load(rules_yaml)["groups"]]
    doc = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": _duration(interval),
        "group_eval_order": order,
        "tests": [test_group],
    }
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="promtool-history-")) if own else Path(workdir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rules.yml").write_text(rules_yaml)
        test_file = folder / "history_test.yml"
        test_file.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000))
        started = time.monotonic()
        done = subprocess.run(
            [tool, "test", "rules", test_file.name], cwd=folder, capture_output=True, text=True, timeout=timeout
        )
        return PromtoolRun(
            done.returncode,
            done.stdout + done.stderr,
            test_file,
            time.monotonic() - started,
            len(alert_tests) + len(expr_tests),
        )
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def alert_checks(
    history, spec, slo, severity: str, since: int, start: int, end: int, every: int = 1
) -> list[AlertCheck]:
    """The History's expectation for the generated ``severity`` alert of ``slo``: at every
    ``every``-th step of ``[start, end]`` and at each first and last firing step and the steps just
    outside them. ``since``: the promtool slice's first step; ``start`` must lie at least the alert's
    longest window after it (no window the alert reads reaches before the slice's data)."""
    from harness.slo.rules import alert_name

    windows = [w for w in slo.windows if w.severity == severity]
    longest = int(max(w.long_s for w in windows)) // history.interval_s
    if start - since < longest:
        raise ValueError(f"{slo.name} {severity}: checks from step {start} need data from step {start - longest}")
    name = slo.alerting.name or alert_name(spec, slo, severity)
    firing = history.firing(slo, severity)
    steps = set(range(start, end + 1, every))
    for a, b in history.firing_spans(slo, severity, start, end):
        steps |= {a - 1, a, b, b + 1}
    return [AlertCheck(k, name, bool(firing[k])) for k in sorted(steps) if start <= k <= end]
