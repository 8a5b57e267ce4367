"""The judgement over records: two record sets judged once or at every interval of a live analysis,
with alpha spending over the looks, resumed after a stop; the decisive-failure rules."""

import json
import math
from dataclasses import replace
from types import SimpleNamespace

import pytest

from cli_run import run_cli
from factories import write_records
from harness.canary.analysis import ANALYSIS_JSON, AnalysisPlan, run_analysis
from harness.canary.judge import judge
from harness.canary.judgement import Settings, Source
from harness.canary.metric import JudgeConfig, for_traffic
from harness.canary.observations import TargetData, metric_samples
from harness.canary.sequential import Look, schedule, spent
from harness.canary.simulation import simulate_traffic
from harness.resources import example_path

T0 = 1_700_000_000.0  # when the simulated production traffic starts (in the past: looks are due at once)


def _split(tmp_path, flaw=None, fraction=0.1, seed=1, n=6000, duration_s=300.0):
    """A 20% traffic split over ``duration_s``, as one records file with a target per record."""
    stable = simulate_traffic(int(n * 0.8), target="stable", seed=2 * seed, t0=T0, duration_s=duration_s)
    canary = simulate_traffic(
        int(n * 0.2), target="canary", seed=2 * seed + 1, t0=T0, duration_s=duration_s, flaw=flaw, fraction=fraction
    )
    return write_records(tmp_path / "production", stable, canary)


def _harness(*args):
    """``harness ARGS`` run in this process: its exit code, stdout and stderr."""
    code, out, err = run_cli(list(args))
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


# ---------------------------------------------------------------------------- the schedule


def test_pocock_spending_spends_alpha_exactly_over_the_looks():
    looks = schedule(12, 0.02)
    assert looks[0].level == pytest.approx(0.02 * math.log(1 + (math.e - 1) / 12), rel=1e-12)
    assert sum(lk.level for lk in looks) == pytest.approx(0.02, rel=1e-12)
    assert looks[-1].spent == pytest.approx(0.02, rel=1e-12) and looks[-1].final and not looks[0].final
    assert all(a.level > b.level for a, b in zip(looks, looks[1:]))  # Pocock: early looks spend a little more


def test_obrien_fleming_keeps_alpha_for_the_last_look():
    looks = schedule(12, 0.02, "obrien_fleming")
    assert sum(lk.level for lk in looks) == pytest.approx(0.02, rel=1e-12)
    assert looks[0].level < 1e-12 and looks[-1].level > 0.004
    assert spent(1.0, 0.05, "obrien_fleming") == pytest.approx(0.05, rel=1e-12)
    with pytest.raises(ValueError, match="a look is 1 to looks"):
        Look(13, 12, 0.02)


# ---------------------------------------------------------------------------- the decisive rules


def _traffic_verdict(flaw, fraction=0.1, n_base=2400, n_can=600, look=None):
    b = simulate_traffic(n_base, target="stable", seed=4)
    c = simulate_traffic(n_can, target="canary", seed=5, flaw=flaw, fraction=fraction)
    cfg = for_traffic(JudgeConfig(look=look))
    return judge(metric_samples(cfg.metrics, TargetData(None, b), TargetData(None, c)), cfg)


def test_a_canary_that_hangs_on_a_tenth_of_requests_is_rolled_back_whatever_else_lacks_power():
    v = _traffic_verdict("hang", n_base=400, n_can=100)
    timeouts = next(m for m in v.metrics if m.name == "timeout_rate")
    assert timeouts.classification == "High" and timeouts.critical
    assert any(m.adequate is False for m in v.metrics)  # the run is too small for error rate...
    assert v.verdict == "ROLLBACK"  # ...but a request that never answers is decisive
    assert v.reasons[0].startswith("critical metric timeout_rate failed")


def test_a_canary_that_halves_every_confidence_is_never_promoted():
    v = _traffic_verdict("halved_confidence")
    conf = next(m for m in v.metrics if m.name == "confidence")
    assert conf.classification == "Low" and conf.test == "mann_whitney_u" and conf.p_value < 1e-6
    assert v.verdict == "HOLD"
    assert any(r.startswith("decisive change in confidence") for r in v.reasons), v.reasons


def test_a_decisive_paired_change_on_the_evaluation_set_holds_a_canary_with_a_passing_score():
    ev = simulate_traffic(200, target="stable", seed=6)
    ev = ev[ev["outcome"] == "ok"].assign(image_id=lambda d: [str(i) for i in range(len(d))], scenario="evaluate")
    halved = ev.assign(confidence=ev["confidence"] / 2, target="canary")
    q = {i: 1.0 for i in ev["image_id"]}
    load_b = simulate_traffic(2000, target="stable", seed=7)
    load_c = simulate_traffic(2000, target="canary", seed=8, flaw="halved_confidence")
    base, can = TargetData(ev, load_b, q), TargetData(halved, load_c, q, baseline_quality=q)
    cfg = JudgeConfig()
    v = judge(metric_samples(cfg.metrics, base, can), cfg)
    failed = {m.name for m in v.metrics if m.failed}
    assert failed == {"confidence", "calibration"}
    assert v.score >= cfg.pass_threshold and v.verdict == "HOLD", (v.score, v.reasons)
    assert v.reasons[0].startswith("decisive change in confidence (p=")


# ---------------------------------------------------------------------------- one judgement over records


def test_judge_two_scopes_of_one_records_file(tmp_path):
    prod = _split(tmp_path, "status_502")
    out = tmp_path / "judged"
    proc = _harness(
        "judge",
        "--baseline", prod, "--baseline-where", "target=stable",
        "--canary", prod, "--canary-where", "target=canary",
        "--out", out, "--json",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    rec = json.loads(proc.stdout)
    err = next(m for m in rec["metrics"] if m["name"] == "error_rate")
    assert err["classification"] == "High" and err["n_baseline"] == 4800 and err["n_canary"] == 1200
    assert rec["inputs"]["targets"]["canary"]["url"] == f"{prod} target=canary"
    assert next(m for m in rec["metrics"] if m["name"] == "quality")["classification"] == "NoData"
    assert rec["analysis"] is None and (out / "summary.md").exists()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--baseline", "nowhere"], 66, "--baseline: nowhere not found"),
        (["--baseline-where", "target"], 64, "--baseline-where: expected COLUMN=VALUE"),
        (["--canary-where", "track=canary"], 65, "records have no column 'track'"),
        (["--canary-where", "target=green"], 66, "--canary: no records in"),
        (["--interval", "30s"], 64, "--interval and --lifetime go together"),
        (["--interval", "30s", "--lifetime", "5m", "--until", "now"], 64, "--until does not go with --interval"),
        (["--interval", "5m", "--lifetime", "30s"], 64, "must be at least one --interval"),
    ],
)
def test_bad_judge_input_is_one_line_with_its_exit_code(tmp_path, args, code, message):
    prod = _split(tmp_path, n=200)
    base = [
        "--baseline",
        prod,
        "--baseline-where",
        "target=stable",
        "--canary",
        prod,
        "--canary-where",
        "target=canary",
    ]
    for opt in ("--baseline", "--baseline-where", "--canary-where"):
        if opt in args and opt in base:
            i = base.index(opt)
            base[i + 1] = args[args.index(opt) + 1]
            args = args[: args.index(opt)] + args[args.index(opt) + 2 :]
    proc = _harness("judge", *base, *args, "--out", tmp_path / "out")
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- a live analysis


@pytest.mark.slow
def test_a_live_analysis_replayed_over_saved_records_promotes_only_at_the_last_look(tmp_path):
    prod = _split(tmp_path)
    out = tmp_path / "analysis"
    proc = _harness(
        "judge",
        "--baseline", prod, "--baseline-where", "target=stable",
        "--canary", prod, "--canary-where", "target=canary",
        "--since", f"{T0:.0f}", "--interval", "1m", "--lifetime", "5m", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    state = json.loads((out / ANALYSIS_JSON).read_text())
    assert [lk["verdict"] for lk in state["looks"]] == ["HOLD"] * 4 + ["PROMOTE"]
    assert [lk["at_unix"] for lk in state["looks"]] == [T0 + 60 * k for k in range(1, 6)]
    first = json.loads((out / "look-01" / "decision.json").read_text())
    assert first["analysis"]["look"] == 1 and first["analysis"]["looks"] == 5
    assert first["analysis"]["level"] == pytest.approx(Look(1, 5, 0.02).level)
    assert first["reasons"][0].startswith("look 1 of 5: no decisive failure")
    last = json.loads((out / "decision.json").read_text())
    assert last["analysis"]["final"] is True and last["verdict"] == "PROMOTE"
    err = next(m for m in last["metrics"] if m["name"] == "error_rate")
    assert err["n_canary"] == 1200 and err["adequate"] is True
    assert "look 5 of 5" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_a_flawed_canary_is_rolled_back_at_the_look_that_sees_it(tmp_path):
    prod = _split(tmp_path, "status_502")
    out = tmp_path / "analysis"
    proc = _harness(
        "judge",
        "--baseline", prod, "--baseline-where", "target=stable",
        "--canary", prod, "--canary-where", "target=canary",
        "--since", f"{T0:.0f}", "--interval", "30s", "--lifetime", "5m", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    looks = json.loads((out / ANALYSIS_JSON).read_text())["looks"]
    assert looks[-1]["verdict"] == "ROLLBACK" and len(looks) <= 2
    assert not (out / f"look-{len(looks) + 1:02d}").exists()


def test_an_analysis_stopped_midway_resumes_at_its_next_look(tmp_path):
    prod = _split(tmp_path, n=1500, duration_s=120.0)
    src = {t: Source(prod, {"target": t}) for t in ("stable", "canary")}
    settings = Settings(example_path("slo.yaml"), replace(JudgeConfig(), min_samples=5))
    plan = AnalysisPlan(30.0, 120.0, T0, 0.02)
    now = [T0 + 65.0]  # looks 1 and 2 are due; look 3 is 25 s away

    def stop(_seconds):
        raise KeyboardInterrupt

    out = tmp_path / "analysis"
    with pytest.raises(KeyboardInterrupt):
        run_analysis(src["stable"], src["canary"], out, settings, plan, run_id="r", clock=lambda: now[0], sleep=stop)
    assert [lk["look"] for lk in json.loads((out / ANALYSIS_JSON).read_text())["looks"]] == [1, 2]
    kept = (out / "look-01" / "decision.json").read_bytes()
    later = AnalysisPlan(99.0, 999.0, T0 + 500, 0.5)  # a restart with other settings keeps the saved plan
    rec = run_analysis(src["stable"], src["canary"], out, settings, later, run_id="r", clock=lambda: T0 + 1e6)
    looks = json.loads((out / ANALYSIS_JSON).read_text())["looks"]
    assert [lk["look"] for lk in looks] == [1, 2, 3, 4]
    assert (out / "look-01" / "decision.json").read_bytes() == kept
    assert rec["analysis"]["look"] == 4 and rec["analysis"]["final"] is True


def test_a_look_with_no_data_for_a_target_holds_and_the_analysis_goes_on(tmp_path):
    late = simulate_traffic(600, target="canary", seed=3, t0=T0 + 60.0, duration_s=60.0)
    prod = write_records(
        tmp_path / "production", simulate_traffic(2400, target="stable", seed=2, t0=T0, duration_s=120.0), late
    )
    settings = Settings(example_path("slo.yaml"), replace(JudgeConfig(), min_samples=5))
    out = tmp_path / "analysis"
    run_analysis(
        Source(prod, {"target": "stable"}),
        Source(prod, {"target": "canary"}),
        out,
        settings,
        AnalysisPlan(60.0, 120.0, T0, 0.02),
        run_id="r",
        clock=lambda: T0 + 1e6,
    )
    first = json.loads((out / "look-01" / "decision.json").read_text())
    assert first["verdict"] == "HOLD" and first["reasons"][-1].startswith("canary: no records in")
    assert json.loads((out / "look-02" / "decision.json").read_text())["analysis"]["look"] == 2


def test_records_stamped_after_the_judges_clock_hold_the_look(tmp_path):
    # the service's clock runs an hour ahead of the judge's: its records seem to come from the future
    ahead = [
        simulate_traffic(800, target=t, seed=s, t0=T0, duration_s=3600.0) for t, s in (("stable", 8), ("canary", 9))
    ]
    prod = write_records(tmp_path / "production", *ahead)
    settings = Settings(example_path("slo.yaml"), replace(JudgeConfig(), min_samples=5))
    out = tmp_path / "analysis"
    rec = run_analysis(
        Source(prod, {"target": "stable"}),
        Source(prod, {"target": "canary"}),
        out,
        settings,
        AnalysisPlan(30.0, 60.0, T0, 0.02),
        run_id="r",
        clock=lambda: T0 + 61.0,
    )
    assert rec["verdict"] == "HOLD" and rec["analysis"]["final"]
    assert any("after the judge's clock" in r and "the clocks disagree" in r for r in rec["reasons"]), rec["reasons"]
