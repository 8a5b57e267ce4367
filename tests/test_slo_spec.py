"""The SLO spec: defaults, OpenSLO input, and errors that name the bad field's path."""

from pathlib import Path

import pytest

from harness.errors import EXIT_DATA, EXIT_MISSING, InputMissingError
from harness.slo.spec import (
    DEFAULT_BLOCKLIST,
    DEFAULT_WINDOWS,
    AlertWindow,
    SpecError,
    format_duration,
    load_spec,
    parse_duration,
    parse_spec,
)

ROOT = Path(__file__).resolve().parents[1]

MINIMAL = """
service: captioner
slos:
  - {name: availability, sli: availability, objective: 0.999}
  - {name: fast, sli: latency, threshold: 0.3, objective: 0.99, period: 28d}
"""


def test_example_spec_loads_with_every_sli_kind():
    spec = load_spec(ROOT / "examples" / "slo.yaml")
    assert spec.service == "captioner"
    assert [s.sli for s in spec.slos] == ["availability", "latency", "coverage", "safety", "quality"]
    assert spec.price_per_hour == 1.2 and spec.traffic_rps == 20


def test_defaults_are_the_workbook_table():
    spec = parse_spec(MINIMAL)
    a, fast = spec.slos
    assert a.period_s == 30 * 86400 and a.period == "30d"
    assert fast.period_s == 28 * 86400 and fast.threshold == 0.3
    assert a.windows == DEFAULT_WINDOWS == (
        AlertWindow("page", 14.4, 3600, 300),
        AlertWindow("page", 6.0, 21600, 1800),
        AlertWindow("ticket", 1.0, 259200, 21600),
    )
    assert [(w.long, w.short) for w in a.windows] == [("1h", "5m"), ("6h", "30m"), ("3d", "6h")]
    assert a.error_budget == 0.001


def test_custom_windows_and_blocklist():
    spec = parse_spec("""
service: s
slos:
  - name: safe
    sli: safety
    objective: 0.99
    blocklist: [Knife, gun]
    windows:
      - {severity: page, burn_rate: 10, long: 2h, short: 10m}
""")
    (slo,) = spec.slos
    assert slo.windows == (AlertWindow("page", 10.0, 7200, 600),)
    assert slo.blocklist == ("gun", "knife")
    assert parse_spec("service: s\nslos: [{name: x, sli: safety, objective: 0.9}]").slos[0].blocklist == DEFAULT_BLOCKLIST


def test_default_blocklist_is_the_reference_servers():
    safety = pytest.importorskip("reference_model.server.safety")
    assert DEFAULT_BLOCKLIST == safety.DEFAULT_BLOCKLIST


@pytest.mark.parametrize(
    "text, message",
    [
        ("service: s\nslos:\n  - {name: a, sli: availability, objective: 0.9}\n  - {name: b, sli: availability, objective: 1.5}",
         "slos[1].objective: must be between 0 and 1"),
        ("service: s\nslos: [{name: a, sli: availability, objective: 0}]", "slos[0].objective: must be between 0 and 1"),
        ("service: s\nslos: [{name: a, sli: availability, objective: '0.9'}]", "slos[0].objective: must be a number"),
        ("service: s\nslos: [{name: a, sli: speed, objective: 0.9}]", "slos[0].sli: must be one of latency, availability"),
        ("service: s\nslos: [{name: a, sli: latency, objective: 0.9}]", "slos[0].threshold: is required for a latency SLO"),
        ("service: s\nslos: [{name: a, sli: latency, threshold: -1, objective: 0.9}]", "slos[0].threshold: must be above 0"),
        ("service: s\nslos: [{name: a, sli: availability, threshold: 1, objective: 0.9}]", "slos[0].threshold: is only for"),
        ("service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 30 days}]", "slos[0].period: must be a duration"),
        ("service: s\nslos: [{name: a, sli: availability, objective: 0.9, objectiv: 1}]", "slos[0].objectiv: unknown field"),
        ("service: s\nslos: [{sli: availability, objective: 0.9}]", "slos[0].name: is required"),
        ("service: s\nslos: [{name: 'a b', sli: availability, objective: 0.9}]", "slos[0].name: must match"),
        ("service: s\nslos:\n  - {name: a, sli: availability, objective: 0.9}\n  - {name: a, sli: coverage, objective: 0.9}",
         "slos[1].name: duplicate SLO name 'a'"),
        ("service: s\nslos: []", "slos: must be a non-empty list"),
        ("slos: [{name: a, sli: availability, objective: 0.9}]", "service: is required"),
        ("service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, burn_rate: 14.4, long: 5m, short: 1h}]}]",
         "slos[0].windows[0].short: must be shorter than long"),
        ("service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: sms, burn_rate: 1, long: 1h, short: 5m}]}]",
         "slos[0].windows[0].severity: must be one of page, ticket"),
        ("service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 1d, windows: [{severity: ticket, burn_rate: 1, long: 3d, short: 6h}]}]",
         "slos[0].windows[0].long: must not exceed the period"),
        ("service: s\nslos: [{name: a, sli: availability, objective: 0.9, promql: {errors: 'sum(rate(x[5m]))', total: 'y'}}]",
         "slos[0].promql.errors: must contain {{window}}"),
        ("service: s\nprice_per_hour: -2\nslos: [{name: a, sli: availability, objective: 0.9}]", "price_per_hour: must be 0 or more"),
        ("service: s\nslos: [{name: a, sli: coverage, objective: 0.9, blocklist: [x]}]", "slos[0].blocklist: is only for safety"),
        ("service: [s", "not valid YAML at line"),
    ],
)
def test_invalid_specs_name_the_bad_field(text, message):
    with pytest.raises(SpecError) as err:
        parse_spec(text, "slo.yaml")
    assert str(err.value).startswith("slo.yaml: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert err.value.exit_code == EXIT_DATA


def test_missing_spec_file(tmp_path):
    with pytest.raises(InputMissingError) as err:
        load_spec(tmp_path / "nope.yaml")
    assert err.value.exit_code == EXIT_MISSING


OPENSLO = """
apiVersion: openslo/v1
kind: Service
metadata: {name: captioner}
spec: {description: the captioning service}
---
apiVersion: openslo/v1
kind: SLI
metadata: {name: good-requests}
spec:
  ratioMetric:
    counter: true
    good:
      metricSource: {type: Prometheus, spec: {query: 'sum(caption_requests_total{status!~"5.."})'}}
    total:
      metricSource: {type: Prometheus, spec: {query: 'sum(caption_requests_total)'}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: availability}
spec:
  service: captioner
  indicatorRef: good-requests
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{displayName: good, target: 0.995}]
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: fast}
spec:
  service: captioner
  indicator:
    metadata: {name: fast-requests}
    spec:
      thresholdMetric:
        metricSource: {type: Prometheus, spec: {query: 'caption_request_duration_seconds_bucket'}}
  timeWindow: [{duration: 1w, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{op: lte, value: 0.5, target: 0.99}]
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: good-captions
  annotations: {harness/sli: quality}
spec:
  service: captioner
  indicator: {metadata: {name: q}, spec: {ratioMetric: {counter: true}}}
  budgetingMethod: Occurrences
  objectives: [{op: gte, value: 0.4, target: 0.9}]
"""


def test_openslo_documents_are_accepted():
    spec = parse_spec(OPENSLO)
    assert spec.service == "captioner"
    avail, fast, quality = spec.slos
    assert (avail.name, avail.sli, avail.objective, avail.period) == ("availability", "availability", 0.995, "28d")
    assert (fast.sli, fast.threshold, fast.objective, fast.period) == ("latency", 0.5, 0.99, "7d")
    assert (quality.sli, quality.threshold, quality.period) == ("quality", 0.4, "30d")
    assert avail.windows == DEFAULT_WINDOWS


def test_openslo_errors_have_document_paths():
    bad = OPENSLO.replace("target: 0.995", "target: 99.5")
    with pytest.raises(SpecError, match=r"\[2\]\.spec\.objectives\[0\]\.target: must be between 0 and 1"):
        parse_spec(bad)
    unknown = OPENSLO.replace("annotations: {harness/sli: quality}", "annotations: {}")
    with pytest.raises(SpecError, match=r"\[4\]\.metadata\.annotations\.harness/sli: must name the SLI kind"):
        parse_spec(unknown)


@pytest.mark.parametrize("text, seconds, back", [("5m", 300, "5m"), ("1h30m", 5400, "90m"), ("3d", 259200, "3d"),
                                                   ("1w", 604800, "7d"), (45, 45, "45s")])
def test_durations(text, seconds, back):
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == back
