"""OpenSLO v1 read faithfully or refused: OpenSLO's own examples (tests/data/openslo/), queries kept as
written in the generated rules, and promtool over the result."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.cli import main
from harness.errors import EXIT_DATA
from harness.slo import generate_rules, load_spec, parse_spec
from harness.slo.spec import SpecError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "openslo"

# Each of OpenSLO's example files alone: refused in one line that names the path of the first
# construct the harness does not read (or says the file holds no SLO to read).
REFUSED = {
    "budgeting-method--occurences-slo.yaml": "spec.indicator.spec.thresholdMetric.metricSource.type: 'Any' not supported (only Prometheus)",
    "budgeting-method--ratio-timeslices.yaml": "spec.budgetingMethod: 'RatioTimeslices' not supported (only Occurrences: good events over all events)",
    "budgeting-method--timeslices-slo.yaml": "spec.budgetingMethod: 'Timeslices' not supported (only Occurrences: good events over all events)",
    "treat-low-traffic-as-equally-important--timeslices-slo.yaml": "spec.budgetingMethod: 'Timeslices' not supported (only Occurrences: good events over all events)",
    "pkg--slos.yaml": "spec.budgetingMethod: 'Timeslices' not supported (only Occurrences: good events over all events)",
    "readme--slo-inline-sli.yaml": "spec.budgetingMethod: is required",
    "sdk--v1_slos.yaml": "spec.budgetingMethod: is required",
    "pkg--slis.yaml": "no OpenSLO object of kind SLO found",
    "pkg--alert_policies.yaml": "no OpenSLO object of kind SLO found",
    "pkg--alert_conditions.yaml": "no OpenSLO object of kind SLO found",
    "readme--alert-policy-ref.yaml": "no OpenSLO object of kind SLO found",
    "readme--alert-policy-inline.yaml": "no OpenSLO object of kind SLO found",
    "readme--alert-condition.yaml": "no OpenSLO object of kind SLO found",
}


def test_every_example_file_is_listed():
    assert sorted(p.name for p in DATA.glob("*.yaml")) == sorted(REFUSED)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_each_example_alone_is_refused_with_its_path(name, tmp_path, capsys):
    path = DATA / name
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(err.value) == f"{path}: {REFUSED[name]}"
    assert main(["rules", "--spec", str(path), "--out", str(tmp_path / "r.yml")]) == EXIT_DATA
    out = capsys.readouterr().err
    assert out.count("\n") == 1 and "Traceback" not in out and REFUSED[name] in out


def slo_on(ref_key: str, ref: str, extra: str = "", objectives: str = "[{target: 0.99}]") -> str:
    """An SLO document that refers to an object of OpenSLO's examples."""
    return f"""
---
apiVersion: openslo/v1
kind: SLO
metadata: {{name: on-example}}
spec:
  service: example
  {ref_key}: {ref}
  budgetingMethod: Occurrences
  timeWindow: [{{duration: 28d, isRolling: true}}]
  objectives: {objectives}
{extra}"""


def example(name: str) -> str:
    return (DATA / name).read_text()


def rules_of(text: str) -> dict:
    return {r.get("record") or r.get("alert"): r for g in generate_rules(parse_spec(text)).groups for r in g["rules"]}


def test_a_raw_success_ratio_is_kept_as_written():
    """OpenSLO's wifi-client-satisfaction SLI: raw, rawType success, Sloth's {{.window}}."""
    spec = parse_spec(example("pkg--slis.yaml") + slo_on("indicatorRef", "wifi-client-satisfaction"))
    (slo,) = spec.slos
    assert slo.sli == "promql" and dict(slo.labels) == {"env": "dev", "team": "team-a,team-b"}
    query = yaml.safe_load(example("pkg--slis.yaml"))[2]["spec"]["ratioMetric"]["raw"]["metricSource"]["spec"]["query"]
    expr = rules_of(example("pkg--slis.yaml") + slo_on("indicatorRef", "wifi-client-satisfaction"))
    assert expr["slo:sli_error:ratio_rate1h"]["expr"] == f"(1 - (\n{query.replace('{{.window}}', '1h')}\n))"
    assert expr["slo:sli_error:ratio_rate1h"]["labels"]["team"] == "team-a,team-b"


def test_a_threshold_metric_keeps_its_query_op_and_value_in_the_metrics_unit():
    """OpenSLO's annotator-throughput SLI: an instant query; a sample is good when ``query < 1000``."""
    text = example("pkg--slis.yaml") + slo_on(
        "indicatorRef", "annotator-throughput", objectives="[{op: lt, value: 1000, target: 0.99}]"
    )
    query = (
        'sum(min_over_time(kafka_consumergroup_lag{k8s_cluster="prod", consumergroup="annotator", '
        'topic="annotator-in"}[2m]))'
    )
    assert rules_of(text)["slo:sli_error:ratio_rate5m"]["expr"] == (
        f"(1 - avg(avg_over_time((\n(\n{query}\n) < bool 1000\n)[5m:])))"
    )


@pytest.mark.parametrize(
    "ref, message",
    [
        (
            "search-availability",
            "[0][0].spec.ratioMetric.good.metricSource.type: 'Datadog' not supported (only Prometheus)",
        ),
        (
            "end-user-response",
            "[0][1].spec.ratioMetric.bad.metricSource.type: 'AppDynamics' not supported (only Prometheus)",
        ),
        ("no-such-sli", "[1].spec.indicatorRef: no SLI named 'no-such-sli' in this file"),
    ],
)
def test_other_slis_of_the_examples_are_refused_with_their_path(ref, message):
    with pytest.raises(SpecError) as err:
        parse_spec(example("pkg--slis.yaml") + slo_on("indicatorRef", ref), "f.yaml")
    assert str(err.value) == f"f.yaml: {message}"


POLICY_FILES = "pkg--alert_conditions.yaml", "pkg--alert_policies.yaml", "pkg--slis.yaml"


def with_policy(policy: str) -> str:
    docs = "\n---\n".join(example(n) for n in POLICY_FILES)
    return docs + slo_on("indicatorRef", "wifi-client-satisfaction", f"  alertPolicies: [{{alertPolicyRef: {policy}}}]")


def test_an_alert_policy_with_an_inline_burn_rate_condition_becomes_the_alert():
    """high-priority: page when the burn rate is above 2 (gt) over 1h, for 5m."""
    spec = parse_spec(with_policy("high-priority"))
    (slo,) = spec.slos
    ((w),) = slo.windows
    assert (w.severity, w.burn_rate, w.long, w.short, w.strict, w.alert_after_s) == ("page", 2.0, "1h", "1h", True, 300)
    alert = rules_of(with_policy("high-priority"))["ExampleOnExamplePageBurn"]
    assert alert["expr"] == (
        '(\n    max(slo:sli_error:ratio_rate1h{sloth_id="example-on-example", '
        'sloth_service="example", sloth_slo="on-example"} > 0.02) without (sloth_window)\n)\n'
    )
    assert alert["for"] == "5m"
    assert alert["annotations"]["notification_targets"] == "on-call-pd-notification"
    assert "ExampleOnExampleTicketBurn" not in rules_of(with_policy("high-priority"))


@pytest.mark.parametrize(
    "policy, message",
    [
        (
            "low-priority",
            "[0][0].spec.condition.op: 'lte' not supported: a burn-rate alert fires when the burn rate "
            "reaches its threshold (gt or gte)",
        ),
        ("medium-priority", "[0][0].spec.condition.op: 'lte' not supported"),
        ("nobody", "[3].spec.alertPolicies[0].alertPolicyRef: no AlertPolicy named 'nobody' in this file"),
    ],
)
def test_alert_policies_the_harness_cannot_write_are_refused(policy, message):
    with pytest.raises(SpecError) as err:
        parse_spec(with_policy(policy), "f.yaml")
    assert str(err.value).startswith(f"f.yaml: {message}")


def test_the_readme_ratio_example_without_a_window_is_refused():
    text = example("pkg--slis.yaml").replace("[{{.window}}]", "")
    with pytest.raises(
        SpecError,
        match=r"\[0\]\[2\]\.spec\.ratioMetric\.raw\.metricSource\.spec\.query: must contain "
        r"\{\{window\}\}",
    ):
        parse_spec(text + slo_on("indicatorRef", "wifi-client-satisfaction"))


SHIPPED = ROOT / "examples" / "openslo.yaml"


def test_the_shipped_example_keeps_its_queries_and_label_matchers():
    spec = load_spec(SHIPPED)
    avail, latency = spec.slos
    assert (avail.sli, avail.objective, avail.period, dict(avail.labels)) == (
        "availability",
        0.999,
        "28d",
        {"tier": "1"},
    )
    assert (latency.sli, latency.objective) == ("promql", 0.99)
    rules = generate_rules(spec)
    first = rules.groups[0]["rules"][0]
    assert first["expr"] == (
        '(sum(rate(caption_requests_total{status=~"5..|429|499"}[5m])))\n/\n'
        "((sum(rate(caption_requests_total[5m]))) > 0)\n"
    )
    latency_5m = rules.groups[3]["rules"][0]
    assert latency_5m["expr"] == (
        "((sum(rate(caption_request_duration_seconds_count[5m]))) - "
        '(sum(rate(caption_request_duration_seconds_bucket{le="0.5"}[5m]))))\n/\n'
        "((sum(rate(caption_request_duration_seconds_count[5m]))) > 0)\n"
    )


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "budgetingMethod: Occurrences\n  timeWindow: [{duration: 28d, isRolling: true}]\n  objectives: [{targetPercent",
            "budgetingMethod: Occurrences\n  timeWindow: [{duration: 1M, isRolling: true}]\n  objectives: [{targetPercent",
            "[2].spec.timeWindow[0].duration: '1M' not supported: months, quarters and years have no fixed length",
        ),
        (
            "[{duration: 28d, isRolling: true}]\n  objectives: [{targetPercent",
            "[{duration: 28d, calendar: {startTime: 2022-01-01 12:00:00, timeZone: UTC}}]\n  objectives: [{targetPercent",
            "[2].spec.timeWindow[0].calendar: not supported: calendar-aligned windows are not read",
        ),
        (
            "objectives: [{targetPercent: 99.9}]",
            "objectives: [{targetPercent: 99.9, target: 0.999}]",
            "[2].spec.objectives[0].target: give either target or targetPercent",
        ),
        (
            "objectives: [{target: 0.99}]",
            "objectives: [{target: 0.99, op: lte}]",
            "[3].spec.objectives[0].op: only for a thresholdMetric SLI",
        ),
        (
            "objectives: [{target: 0.99}]",
            "objectives: [{target: 0.99, tragetPercent: 2}]",
            "[3].spec.objectives[0].tragetPercent: unknown field",
        ),
        ("severity: page", "severity: sev1", "[5].spec.severity: 'sev1' not supported (only page, ticket)"),
        (
            "lookbackWindow: 1h",
            "lookbackWindow: 30d",
            "[5].spec.condition.lookbackWindow: must fit inside the period (30d > 28d)",
        ),
        (
            "alertWhenBreaching: true",
            "alertWhenBreaching: true\n  alertWhenNoData: true",
            "[4].spec.alertWhenNoData: true not supported",
        ),
        ("spec: {target: pagerduty", "spec: {tagret: pagerduty", "[6].spec.tagret: unknown field"),
        (
            "type: Prometheus\n        spec: {query: 'sum(rate(caption_requests_total[",
            "type: Prometheus\n        spec: {dimensions: [a], query: 'sum(rate(caption_requests_total[",
            "[1].spec.ratioMetric.total.metricSource.spec.dimensions: unknown field",
        ),
        (
            'labels: {tier: "1"}',
            'labels: {tier-level: "1"}',
            "[2].metadata.labels.tier-level: not supported as a Prometheus label name",
        ),
        (
            "duration: 28d, isRolling: true}]\n  objectives: [{target: 0.99}]",
            "duration: 1d, isRolling: true}]\n  objectives: [{target: 0.99}]",
            "[3].spec.timeWindow[0].duration: the default alert windows (30d.yaml) reach 3d",
        ),
    ],
)
def test_what_the_harness_does_not_read_is_refused_with_its_path(old, new, message):
    text = SHIPPED.read_text()
    assert old in text
    with pytest.raises(SpecError) as err:
        parse_spec(text.replace(old, new, 1), "f.yaml")
    assert str(err.value).startswith(f"f.yaml: {message}"), str(err.value)
    assert "\n" not in str(err.value)


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (apt-get install prometheus; .ci/run does)")
    return path


FAITHFUL = {
    "shipped": SHIPPED.read_text(),
    "raw": example("pkg--slis.yaml") + slo_on("indicatorRef", "wifi-client-satisfaction"),
    "threshold": example("pkg--slis.yaml")
    + slo_on("indicatorRef", "annotator-throughput", objectives="[{op: lt, value: 1000, target: 0.99}]"),
    "policy": with_policy("high-priority"),
}


def test_promtool_accepts_the_rules_of_every_faithful_case(tmp_path):
    tool = promtool()
    for name, text in FAITHFUL.items():
        out = tmp_path / f"{name}.yml"
        out.write_text(generate_rules(parse_spec(text)).to_yaml())
        done = subprocess.run([tool, "check", "rules", str(out)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (name, done.stdout + done.stderr)


UNIT_TEST = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  # 100,000 requests a minute. 2,000 errors a minute is a 20x burn of the 0.1% budget (page at 13.44x, for 2m).
  - interval: 1m
    input_series:
      - {series: 'caption_requests_total{status="200"}', values: '0+98000x120'}
      - {series: 'caption_requests_total{status="503"}', values: '0+2000x120'}
    alert_rule_test:
      - eval_time: 90m
        alertname: CaptionerAvailabilityPageBurn
        exp_alerts:
          - exp_labels: {severity: page, sloth_severity: page, sli: availability, sloth_id: captioner-availability,
                         sloth_service: captioner, sloth_slo: availability, tier: "1"}
            exp_annotations:
              notification_targets: on-call
              summary: captioner availability SLO error budget burn rate is too fast (13.44x over 1h).
              title: (page) captioner availability SLO error budget burn rate is too fast.
  # 1,000 errors a minute: a 10x burn, below the 13.44x of the page.
  - interval: 1m
    input_series:
      - {series: 'caption_requests_total{status="200"}', values: '0+99000x120'}
      - {series: 'caption_requests_total{status="503"}', values: '0+1000x120'}
    alert_rule_test:
      - {eval_time: 90m, alertname: CaptionerAvailabilityPageBurn, exp_alerts: []}
"""


def test_promtool_unit_test_of_the_shipped_example_pages_at_20x_not_at_10x(tmp_path):
    tool = promtool()
    (tmp_path / "rules.yml").write_text(generate_rules(load_spec(SHIPPED)).to_yaml())
    (tmp_path / "test.yml").write_text(UNIT_TEST)
    done = subprocess.run([tool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    # and it can fail: a page factor of 25x stays silent at 20x
    (tmp_path / "rules.yml").write_text(
        generate_rules(parse_spec(SHIPPED.read_text().replace("threshold: 13.44", "threshold: 25"))).to_yaml()
    )
    done = subprocess.run([tool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
