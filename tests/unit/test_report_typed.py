"""Typed stages end to end: the decision record is built from the judge's typed verdict and typed
stage parts, rendered and told from the model, and read back as the model."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from test_report import INPUTS, SLOS, _extra, _verdict

from harness.canary.judgement import _drift_record, _slo_record
from harness.drift.base import DriftResult
from harness.drift.suite import DriftReport
from harness.report import build_decision, load_decision, render_markdown, write_decision
from harness.report.model import DecisionRecord, Drift, Inputs, SloRecord, TargetFigures
from harness.report.notify import message
from harness.report.run import load_run


def _build(verdict=None, slos=SLOS, inputs=INPUTS, extra=None) -> DecisionRecord:
    verdict = _verdict() if verdict is None else verdict
    return build_decision(verdict, slos, inputs, "r1", _extra() if extra is None else extra, clock=lambda: 5.0)


def test_parts_given_as_models_make_the_same_record():
    plain = _build()
    extra = _extra()
    extra["figures"] = {k: TargetFigures.model_validate(v) for k, v in extra["figures"].items()}
    extra["drift"] = Drift.model_validate(extra["drift"])
    typed = _build(slos=[SloRecord.model_validate(s) for s in SLOS], inputs=Inputs.model_validate(INPUTS), extra=extra)
    assert isinstance(typed, DecisionRecord) and typed == plain
    assert render_markdown(typed) == render_markdown(plain)


def test_the_verdict_is_read_by_its_attributes():
    """Any object with the verdict's attributes will do (``JudgedVerdict``): the report layer does not
    import the judge."""
    v = _verdict()
    metrics = [SimpleNamespace(**dataclasses.asdict(m)) for m in v.metrics]
    groups = [SimpleNamespace(**dataclasses.asdict(g)) for g in v.groups]
    like = SimpleNamespace(
        verdict=v.verdict,
        score=v.score,
        reasons=list(v.reasons),
        metrics=metrics,
        groups=groups,
        thresholds=v.thresholds,
    )
    assert _build(like) == _build(v)


def test_numpy_and_nan_in_a_typed_verdict_become_plain_values():
    v = _verdict()
    m0 = dataclasses.replace(v.metrics[0], baseline=np.float64("nan"), n_baseline=np.int64(7), details={"q": (1, 2)})
    rec = _build(dataclasses.replace(v, metrics=(m0, *v.metrics[1:]), score=np.float64(60.0)))
    assert (
        rec.metrics[0].baseline is None and rec.metrics[0].n_baseline == 7 and rec.metrics[0].details == {"q": [1, 2]}
    )
    assert type(rec.score) is float and rec.score == 60.0


def test_written_read_rendered_and_told_from_the_model(tmp_path):
    rec = _build()
    path = write_decision(tmp_path / "run", rec)
    (tmp_path / "run" / "summary.md").write_text(render_markdown(rec))
    back = load_decision(path)
    assert isinstance(back, DecisionRecord) and back == rec
    assert path.read_text() == json.dumps(rec.model_dump(mode="json", by_alias=True), indent=1) + "\n"
    assert render_markdown(back) == (tmp_path / "run" / "summary.md").read_text()
    assert message(back, path) == message(rec, path)
    run = load_run(tmp_path / "run", tmp_path)
    assert run.record == rec and run.verdict == "ROLLBACK" and run.created_unix == 5.0
    assert run.decision == json.loads(path.read_text())  # the JSON, for pages that show it as data
    assert run.artifact("summary_md") == (tmp_path / "run" / "summary.md").resolve()


def test_an_slo_record_is_made_from_the_typed_result():
    from harness.canary.simulation import simulate_traffic
    from harness.resources import example_path
    from harness.slo import evaluate_records, load_spec

    records = simulate_traffic(400, target="canary", seed=3, flaw="hang", fraction=0.2)
    report = evaluate_records(load_spec(example_path("slo.yaml")), records, traffic_rps=10.0)
    for result in report.results:
        row = _slo_record("canary", result)
        pages = [p for p in result.projection if p.severity == "page"]
        assert isinstance(row, SloRecord) and row.name == result.slo.name and row.kind == result.sli.kind
        assert row.sli == result.sli.ratio and row.budget_remaining == result.budget.remaining
        assert len(row.alerts) == len(result.projection)
        assert [a.decision for a in row.alerts] == [p.decision for p in result.projection]
        if pages:
            slowest = min(pages, key=lambda p: p.factor)
            assert row.page_factor == slowest.factor
            assert row.burn_low == (None if slowest.burn_low is None else round(slowest.burn_low, 9))
            assert row.projected_burn_rate == max(pages, key=lambda p: p.factor).burn_rate
            assert row.would_page == any(p.decision == "fires" for p in pages)
        else:
            assert row.page_factor == 6.0 and row.burn_low is None and row.projected_burn_rate is None
    assert any(r.would_page for r in (_slo_record("canary", x) for x in report.results))


def _result(name: str, p_value, drift: bool) -> DriftResult:
    return DriftResult(
        detector=name,
        method="ks",
        feature="confidence",
        statistic_name="D",
        statistic=np.float64(0.3),
        p_value=p_value,
        alpha=0.05,
        threshold=None,
        drift=np.bool_(drift),
        n_reference=10,
        n_current=10,
        n_reference_used=10,
        n_current_used=10,
        min_detectable=None,
        seconds=0.0,
    )


def test_a_drift_record_is_made_from_the_typed_report():
    results = (_result("a", np.float64(0.01), True), _result("b", float("nan"), False), _result("c", 0.2, False))
    report = DriftReport(np.bool_(True), 0.05, "bonferroni", 0.05 / 3, results, (), {}, {}, {}, 0.0)
    drift = _drift_record(report)
    assert isinstance(drift, Drift) and drift.drifted is True
    assert drift.p_value == pytest.approx(0.03)  # the smallest p-value, Bonferroni-adjusted over three
    assert [(d.name, d.p_value, d.drift) for d in drift.detectors] == [
        ("a", 0.01, True),
        ("b", None, False),
        ("c", 0.2, False),
    ]
    assert _drift_record(dataclasses.replace(report, results=results[1:2])).p_value is None
