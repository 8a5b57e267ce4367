"""Generated Prometheus rules: Sloth names, promtool check, and the promtool unit tests in tests/promtool/."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.slo import generate_rules, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_DIR = ROOT / "tests" / "promtool"
DASHBOARD = ROOT / "dashboards" / "grafana" / "caption-slo.json"
SERVER_METRICS = {
    "caption_requests_total",
    "caption_request_duration_seconds_bucket",
    "caption_request_duration_seconds_count",
    "caption_batch_size_bucket",
    "caption_batch_size_sum",
    "caption_batch_size_count",
    "caption_queue_depth",
    "caption_confidence_bucket",
    "caption_confidence_sum",
    "caption_confidence_count",
    "caption_safety_flags_total",
    "caption_model_info",
}


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    return path


def test_committed_rules_are_what_harness_rules_makes(tmp_path):
    out = tmp_path / "rules.yml"
    assert main(["rules", "--spec", str(PROMTOOL_DIR / "spec.yaml"), "--out", str(out)]) == 0
    assert out.read_text() == (PROMTOOL_DIR / "rules.yml").read_text()


def test_sloth_names_and_labels():
    spec = load_spec(ROOT / "examples" / "slo.yaml")
    rules = generate_rules(spec)
    assert rules.skipped == (("quality", "no metric shows a quality SLI; give the SLO promql: {errors, total}"),)
    groups = {g["name"]: g["rules"] for g in rules.groups}
    rec = groups["sloth-slo-sli-recordings-captioner-availability"]
    assert [r["record"] for r in rec] == [
        f"slo:sli_error:ratio_rate{w}" for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d")
    ]
    assert rec[0]["labels"] == {
        "sloth_id": "captioner-availability",
        "sloth_service": "captioner",
        "sloth_slo": "availability",
        "sloth_window": "5m",
    }
    assert 'caption_requests_total{status=~"5..|429|499"}[5m]' in rec[0]["expr"]
    meta = {r["record"]: r for r in groups["sloth-slo-meta-recordings-captioner-availability"]}
    assert list(meta) == [
        "slo:objective:ratio",
        "slo:error_budget:ratio",
        "slo:time_period:days",
        "slo:current_burn_rate:ratio",
        "slo:period_burn_rate:ratio",
        "slo:period_error_budget_remaining:ratio",
        "sloth_slo_info",
    ]
    assert meta["slo:objective:ratio"]["expr"] == "vector(0.999)"
    assert meta["slo:error_budget:ratio"]["expr"] == "vector(0.001)"
    assert meta["slo:time_period:days"]["expr"] == "vector(30)"
    alerts = groups["sloth-slo-alerts-captioner-availability"]
    assert [a["alert"] for a in alerts] == ["CaptionerAvailabilityPageBurn", "CaptionerAvailabilityTicketBurn"]
    page = alerts[0]["expr"]
    # thresholds are burn factor x budget written exactly: 14.4 x 0.001, 6 x 0.001
    assert "slo:sli_error:ratio_rate5m{" in page and ">= 0.0144)" in page and ">= 0.006)" in page
    assert "ratio_rate6h{" in page and "ratio_rate3d{" not in page
    latency = groups["sloth-slo-sli-recordings-captioner-latency-500ms"][0]["expr"]
    assert 'caption_request_duration_seconds_bucket{le="0.5"}[5m]' in latency


def test_le_label_is_written_as_clients_write_it():
    spec = parse_spec("service: s\nslos: [{name: a, sli: latency, threshold: 1, objective: 0.9}]")
    expr = generate_rules(spec).groups[0]["rules"][0]["expr"]
    assert 'le="1.0"' in expr


def test_selector_and_custom_promql():
    spec = parse_spec("""
service: s
selector: {job: captioner}
slos:
  - {name: a, sli: coverage, objective: 0.9}
  - name: q
    sli: quality
    threshold: 0.5
    objective: 0.9
    promql:
      errors: sum(rate(my_low_quality_total[{{window}}]))
      total: sum(rate(my_scored_total[{{window}}]))
""")
    rules = generate_rules(spec)
    assert rules.skipped == ()
    first = {g["name"]: g["rules"] for g in rules.groups}
    assert (
        'caption_requests_total{job="captioner",status!~"2.."}[1h]' in first["sloth-slo-sli-recordings-s-a"][2]["expr"]
    )
    assert first["sloth-slo-sli-recordings-s-q"][0]["expr"] == (
        "(sum(rate(my_low_quality_total[5m])))\n/\n((sum(rate(my_scored_total[5m]))) > 0)\n"
    )


def test_the_traffic_guard_wraps_the_whole_total():
    """``> 0`` binds tighter than ``or``: the total is parenthesised before it is compared."""
    spec = parse_spec(
        "service: s\nslos: [{name: a, sli: availability, objective: 0.9, promql: "
        "{errors: 'e[{{window}}]', total: 'a[{{window}}] or b[{{window}}]'}}]"
    )
    assert generate_rules(spec).groups[0]["rules"][0]["expr"] == "(e[5m])\n/\n((a[5m] or b[5m]) > 0)\n"


def test_windows_are_named_as_prometheus_prints_durations():
    spec = parse_spec("""
service: s
slos:
  - {name: m, sli: availability, objective: 0.99, period: 28d}
  - name: w
    sli: availability
    objective: 0.99
    period: 7d
    windows: [{severity: page, budget_percent: 5, long: 90m, short: 10m}]
""")
    groups = {g["name"]: g["rules"] for g in generate_rules(spec).groups}
    month = [r["record"] for r in groups["sloth-slo-sli-recordings-s-m"]]
    assert (
        month[-1] == "slo:sli_error:ratio_rate4w"
        and groups["sloth-slo-sli-recordings-s-m"][-1]["labels"]["sloth_window"] == "4w"
    )
    assert "slo:sli_error:ratio_rate4w{" in groups["sloth-slo-meta-recordings-s-m"][4]["expr"]
    assert groups["sloth-slo-meta-recordings-s-m"][2]["expr"] == "vector(28)"
    week = [r["record"].removeprefix("slo:sli_error:ratio_rate") for r in groups["sloth-slo-sli-recordings-s-w"]]
    assert week == ["5m", "10m", "30m", "1h", "1h30m", "2h", "6h", "1d", "3d", "1w"]
    (page,) = groups["sloth-slo-alerts-s-w"]
    # 5% of a week's budget in 90 minutes: 0.05 x 168h / 1.5h = 5.6x, so 5.6 x 0.01
    assert "ratio_rate1h30m{" in page["expr"] and ">= 0.056) without (sloth_window)" in page["expr"]
    assert page["annotations"]["summary"].endswith("(5.6x over 90m and 10m).")


def test_labels_and_alerting_reach_the_rules():
    spec = parse_spec("""
service: s
labels: {team: vision}
slos:
  - name: a
    sli: availability
    objective: 0.999
    labels: {tier: "1"}
    alerting:
      labels: {owner: ml}
      annotations: {runbook: https://example.org/a}
      page_alert: {labels: {severity: critical}, annotations: {summary: my own}}
      ticket_alert: {disable: true}
""")
    groups = {g["name"]: g["rules"] for g in generate_rules(spec).groups}
    for rule in groups["sloth-slo-sli-recordings-s-a"] + groups["sloth-slo-meta-recordings-s-a"]:
        assert rule["labels"]["team"] == "vision" and rule["labels"]["tier"] == "1"
    (page,) = groups["sloth-slo-alerts-s-a"]  # the ticket is switched off
    assert page["alert"] == "SAPageBurn"
    assert page["labels"] == {
        "severity": "critical",
        "sloth_severity": "page",
        "sli": "availability",
        "sloth_id": "s-a",
        "sloth_service": "s",
        "sloth_slo": "a",
        "owner": "ml",
    }
    assert page["annotations"] == {
        "runbook": "https://example.org/a",
        "summary": "my own",
        "title": "(page) s a SLO error budget burn rate is too fast.",
    }


def test_a_raw_error_ratio_is_used_as_written():
    spec = parse_spec(
        "service: s\nslos: [{name: a, sli: availability, objective: 0.9, "
        "promql: {error_ratio: 'sum(rate(bad[{{window}}])) / sum(rate(all[{{window}}]))'}}]"
    )
    rules = generate_rules(spec)
    assert rules.skipped == ()
    assert rules.groups[0]["rules"][0]["expr"] == "(sum(rate(bad[5m])) / sum(rate(all[5m])))"


def test_promtool_checks_the_generated_rules(tmp_path, capsys):
    tool = promtool()
    out = tmp_path / "rules.yml"
    assert main(["rules", "--spec", str(ROOT / "examples" / "slo.yaml"), "--out", str(out)]) == 0
    assert "skipped SLO 'quality'" in capsys.readouterr().err
    done = subprocess.run([tool, "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 68 rules found" in done.stdout


@pytest.mark.slow
def test_promtool_unit_tests_page_at_14_4x_and_not_at_0_5x():
    tool = promtool()
    done = subprocess.run(
        [tool, "test", "rules", "slo_alerts_test.yml"], cwd=PROMTOOL_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


@pytest.mark.slow
def test_promtool_unit_tests_fail_on_rules_with_another_budget(tmp_path):
    """The unit tests can fail: rules for a 0.99 objective (ten times the budget) do not page at 144 errors in 10,000."""
    tool = promtool()
    text = (PROMTOOL_DIR / "spec.yaml").read_text().replace("objective: 0.999", "objective: 0.99")
    (tmp_path / "rules.yml").write_text(generate_rules(parse_spec(text)).to_yaml())
    shutil.copy(PROMTOOL_DIR / "slo_alerts_test.yml", tmp_path)
    done = subprocess.run(
        [tool, "test", "rules", "slo_alerts_test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "CaptionerAvailabilityPageBurn" in done.stdout + done.stderr


# ---- the Grafana dashboard ---------------------------------------------------------------------


def dashboard_exprs():
    data = json.loads(DASHBOARD.read_text())
    return data, [(p["title"], t["expr"]) for p in data["panels"] for t in p.get("targets", [])]


def grafana_free(expr):
    """The expression with Grafana's variables replaced, as Prometheus would receive it."""
    return (
        expr.replace("$__rate_interval", "1m")
        .replace("$service", "captioner")
        .replace('"$slo"', '".*"')
        .replace('"$job"', '".*"')
    )


def test_dashboard_covers_the_asked_views_over_the_same_names():
    data, exprs = dashboard_exprs()
    titles = " | ".join(p["title"] for p in data["panels"]).lower()
    for view in (
        "latency percentiles",
        "error ratio",
        "burn rate",
        "budget remaining",
        "batch size",
        "queue depth",
        "confidence",
    ):
        assert view in titles, view
    names = set()
    for _, expr in exprs:
        names |= set(re.findall(r"\b(caption_[a-z_]+|slo:[a-z_:0-9]+)", expr))
    rule_names = {
        r.get("record") for g in generate_rules(load_spec(ROOT / "examples" / "slo.yaml")).groups for r in g["rules"]
    }
    unknown = {n for n in names if n not in SERVER_METRICS and n not in rule_names}
    assert not unknown
    assert {
        "slo:period_error_budget_remaining:ratio",
        "slo:current_burn_rate:ratio",
        "caption_queue_depth",
        "caption_batch_size_bucket",
        "caption_confidence_bucket",
    } <= names


def test_dashboard_queries_parse(tmp_path):
    tool = promtool()
    _, exprs = dashboard_exprs()
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:query{i}", "expr": grafana_free(e)} for i, (_, e) in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
