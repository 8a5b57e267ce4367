"""Typed stages end to end: the decision record is built from the judge's typed verdict and typed
stage parts, rendered and told from the model, and read back as the model."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
from test_report import INPUTS, SLOS, _extra, _verdict

from factories import decision_parts, slo_records, typed_inputs
from harness.canary.judgement import _drift_record, _slo_record
from harness.drift.base import DriftResult
from harness.drift.suite import DriftReport
from harness.report import DecisionParts, build_decision, load_decision, render_markdown, write_decision
from harness.report.model import Artifacts, DecisionRecord, Drift, SloRecord
from harness.report.notify import message
from harness.report.run import load_run


def _build(verdict=None, parts: DecisionParts | None = None) -> DecisionRecord:
    verdict = _verdict() if verdict is None else verdict
    parts = decision_parts(**_extra()) if parts is None else parts
    return build_decision(verdict, slo_records(SLOS), typed_inputs(INPUTS), "r1", parts, clock=lambda: 5.0)


def test_the_record_holds_the_parts_as_given():
    parts = decision_parts(**_extra())
    rec = _build(parts=parts)
    assert isinstance(rec, DecisionRecord)
    assert rec.slos == slo_records(SLOS) and rec.inputs == typed_inputs(INPUTS)
    assert rec.figures == parts.figures and rec.worst_captions == list(parts.worst_captions)
    assert rec.contracts == parts.contracts and rec.findings == list(parts.findings)
    assert rec.drift == parts.drift and rec.artifacts == parts.artifacts and rec.analysis is None
    bare = _build(parts=DecisionParts())
    assert bare.figures == {} and bare.worst_captions == [] and bare.drift is None and bare.artifacts == Artifacts()


@pytest.mark.parametrize("name", ["figures", "worst_captions", "contracts", "findings", "drift", "artifacts"])
def test_a_part_given_as_plain_values_is_refused(name):
    """A stage builds its part's model where it makes the values; the record takes nothing else."""
    with pytest.raises(TypeError, match=f"^{name} takes "):
        DecisionParts(**{name: _extra()[name]})


def test_inputs_and_slos_given_as_plain_values_are_refused():
    with pytest.raises(TypeError, match="^inputs takes Inputs"):
        build_decision(_verdict(), slo_records(SLOS), INPUTS, "r1")
    with pytest.raises(TypeError, match="^slos takes SloRecord"):
        build_decision(_verdict(), SLOS, typed_inputs(INPUTS), "r1")


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


def test_what_ran_is_completed_as_a_new_model():
    """The judgement completes what ran into a new ``Inputs`` (the spec where none is named, the
    thresholds judged with, a version from the records where the target reported none); the
    caller's stays as it was, so judging again with it starts from the same."""
    from pathlib import Path

    from harness.canary.judgement import Settings, Source, _what_ran, source_inputs
    from harness.canary.metric import JudgeConfig

    given = source_inputs(Source(Path("/b")), Source(Path("/c")))
    assert given.model_dump(mode="json") == typed_inputs(
        {"targets": {"baseline": {"url": "/b", "protocol": None}, "canary": {"url": "/c", "protocol": None}}}
    ).model_dump(mode="json")
    reported = typed_inputs({**given.model_dump(), "targets": {"baseline": {"url": "/b", "model_version": "v1"}}})
    settings = Settings(Path("slo.yaml"), JudgeConfig())
    done = _what_ran(reported, settings, 1, 0.5, 10, {"baseline": "v2", "canary": "v3"})
    assert done.targets["baseline"].model_version == "v1" and "canary" not in done.targets
    assert done.spec == "slo.yaml" and done.latency_threshold_s == 1.0 and done.traffic_rps == 10.0
    assert reported.spec is None and reported.latency_threshold_s is None  # the given inputs are unchanged
    done = _what_ran(given, settings, 1, 0.5, 10, {"canary": "v3"})
    assert done.targets["canary"].model_version == "v3" and done.targets["baseline"].model_version is None
    assert given.targets["canary"].model_version is None


def test_a_run_manifest_s_inputs_are_read_into_the_model():
    from pathlib import Path

    from harness.canary.judgement import Source, _manifest_inputs
    from harness.errors import DataError

    sources = (Source(Path("/r"), {"target": "baseline"}), Source(Path("/r"), {"target": "canary"}))
    saved = _manifest_inputs(Path("/r/run.json"), {**INPUTS, "duration_s": np.float64(20.0)}, sources)
    assert saved == typed_inputs(INPUTS)
    bare = _manifest_inputs(Path("/r/run.json"), {"scenario": "steady"}, sources)  # no targets: the sources
    assert bare.targets["canary"].url == "/r target=canary" and bare.scenario == "steady"
    with pytest.raises(DataError, match=r"^/r/run.json: inputs.colour: unknown field$"):
        _manifest_inputs(Path("/r/run.json"), {**INPUTS, "colour": "red"}, sources)
