"""The SLO spec: defaults, burn factors from the period, OpenSLO input, and errors that name the bad field's path."""

import copy
import dataclasses
import re
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import EXIT_DATA, EXIT_MISSING, InputMissingError
from harness.slo.alert_windows import burn_factor, parse_alert_windows, shipped_tables, windows_for_period
from harness.slo.spec import (
    DEFAULT_BLOCKLIST,
    DEFAULT_WINDOWS,
    SLO,
    AlertWindow,
    SpecError,
    format_duration,
    parse_duration,
)
from harness.slo.specfile import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]

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
    # 2% of the budget in 1h, 5% in 6h, 10% in 1d and in 3d: factor = share x 720h / long window
    assert (
        a.windows
        == DEFAULT_WINDOWS
        == (
            AlertWindow("page", 14.4, 3600, 300, 2),
            AlertWindow("page", 6.0, 21600, 1800, 5),
            AlertWindow("ticket", 3.0, 86400, 7200, 10),
            AlertWindow("ticket", 1.0, 259200, 21600, 10),
        )
    )
    assert [(w.long, w.short) for w in a.windows] == [("1h", "5m"), ("6h", "30m"), ("1d", "2h"), ("3d", "6h")]
    assert a.error_budget == 0.001
    # the same shares over 28 days (672h) give Sloth's factors
    assert [w.burn_rate for w in fast.windows] == [13.44, 5.6, 2.8, 0.9333333333333333]


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
    assert slo.windows[0].budget_percent is None
    assert slo.blocklist == ("gun", "knife")
    assert (
        parse_spec("service: s\nslos: [{name: x, sli: safety, objective: 0.9}]").slos[0].blocklist == DEFAULT_BLOCKLIST
    )


def test_default_blocklist_is_the_reference_servers():
    safety = pytest.importorskip("reference_model.server.safety")
    assert DEFAULT_BLOCKLIST == safety.DEFAULT_BLOCKLIST


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "service: s\nslos:\n  - {name: a, sli: availability, objective: 0.9}\n  - {name: b, sli: availability, objective: 1.5}",
            "slos[1].objective: must be between 0 and 1",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0}]",
            "slos[0].objective: must be between 0 and 1",
        ),
        ("service: s\nslos: [{name: a, sli: availability, objective: '0.9'}]", "slos[0].objective: must be a number"),
        (
            "service: s\nslos: [{name: a, sli: speed, objective: 0.9}]",
            "slos[0].sli: must be one of availability, correction, coverage, hallucination, itl, lag, latency, promql, quality, "
            "safety, ttft",
        ),
        (
            "service: s\nslos: [{name: a, sli: latency, objective: 0.9}]",
            "slos[0].threshold: is required for a latency SLO",
        ),
        (
            "service: s\nslos: [{name: a, sli: latency, threshold: -1, objective: 0.9}]",
            "slos[0].threshold: must be above 0",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, threshold: 1, objective: 0.9}]",
            "slos[0].threshold: is only for",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 30 days}]",
            "slos[0].period: must be a duration",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, objectiv: 1}]",
            "slos[0].objectiv: unknown field",
        ),
        ("service: s\nslos: [{sli: availability, objective: 0.9}]", "slos[0].name: is required"),
        ("service: s\nslos: [{name: 'a b', sli: availability, objective: 0.9}]", "slos[0].name: must match"),
        (
            "service: s\nslos:\n  - {name: a, sli: availability, objective: 0.9}\n  - {name: a, sli: coverage, objective: 0.9}",
            "slos[1].name: duplicate SLO name 'a'",
        ),
        ("service: s\nslos: []", "slos: must be a non-empty list"),
        ("slos: [{name: a, sli: availability, objective: 0.9}]", "service: is required"),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, burn_rate: 14.4, long: 5m, short: 1h}]}]",
            "slos[0].windows[0].short: must be shorter than long",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: sms, burn_rate: 1, long: 1h, short: 5m}]}]",
            "slos[0].windows[0].severity: must be one of page, ticket",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 1d, windows: [{severity: ticket, burn_rate: 1, long: 3d, short: 6h}]}]",
            "slos[0].windows[0].long: must fit inside the period (3d > 1d)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 1d}]",
            "slos[0].period: the default alert windows (30d.yaml) reach 3d (ticket over 3d and 6h), longer than the 1d",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, promql: {errors: 'sum(rate(x[5m]))', total: 'y'}}]",
            "slos[0].promql.errors: must contain {{window}}",
        ),
        (
            "service: s\nprice_per_hour: -2\nslos: [{name: a, sli: availability, objective: 0.9}]",
            "price_per_hour: must be 0 or more",
        ),
        (
            "service: s\nslos: [{name: a, sli: coverage, objective: 0.9, blocklist: [x]}]",
            "slos[0].blocklist: is only for safety",
        ),
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
metadata: {name: good-requests, labels: {team: vision}}
spec:
  ratioMetric:
    counter: true
    good:
      metricSource: {type: Prometheus, spec: {query: 'sum(rate(caption_requests_total{job="prod",status!~"5.."}[{{window}}]))'}}
    total:
      metricSource: {type: Prometheus, spec: {query: 'sum(rate(caption_requests_total{job="prod"}[{{window}}]))'}}
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
        metricSource:
          type: Prometheus
          spec: {query: 'histogram_quantile(0.99, sum by (le) (rate(caption_request_duration_seconds_bucket[5m])))'}
  timeWindow: [{duration: 1w, isRolling: true}]
  budgetingMethod: Occurrences
  objectives: [{op: lte, value: 0.5, target: 0.99}]
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: covered
  annotations: {harness/sli: coverage}
spec:
  service: captioner
  indicator:
    metadata: {name: uncovered}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: prometheus, spec: {query: 'sum(rate(caption_requests_total{status!~"2.."}[{{window}}]))'}}}
        total: {metricSource: {type: prometheus, spec: {query: 'sum(rate(caption_requests_total[{{window}}]))'}}}
  budgetingMethod: Occurrences
  objectives: [{targetPercent: 99.5}]
"""


def test_openslo_documents_are_accepted():
    spec = parse_spec(OPENSLO)
    assert spec.service == "captioner"
    avail, fast, covered = spec.slos
    assert (avail.name, avail.sli, avail.objective, avail.period) == ("availability", "promql", 0.995, "28d")
    assert avail.promql == {
        "good": 'sum(rate(caption_requests_total{job="prod",status!~"5.."}[{{window}}]))',
        "total": 'sum(rate(caption_requests_total{job="prod"}[{{window}}]))',
    }
    assert dict(avail.labels) == {"team": "vision"}
    assert (fast.sli, fast.threshold, fast.objective, fast.period) == ("promql", None, 0.99, "7d")
    assert "(rate(caption_request_duration_seconds_bucket[5m])))\n) <= bool 0.5" in fast.promql["error_ratio"]
    assert (covered.sli, covered.objective, covered.period) == ("coverage", 0.995, "30d")
    assert [w.burn_rate for w in avail.windows] == [13.44, 5.6, 2.8, 0.9333333333333333]
    assert [w.burn_rate for w in fast.windows] == [13.44, 3.5, 1.4, 0.98]
    assert covered.windows == DEFAULT_WINDOWS


def test_openslo_errors_have_document_paths():
    bad = OPENSLO.replace("target: 0.995", "target: 99.5")
    with pytest.raises(SpecError, match=r"\[2\]\.spec\.objectives\[0\]\.target: must be between 0 and 1"):
        parse_spec(bad)
    unknown = OPENSLO.replace("annotations: {harness/sli: coverage}", "annotations: {harness/sli: speed}")
    with pytest.raises(SpecError, match=r"\[4\]\.metadata\.annotations\.harness/sli: must name an SLI kind"):
        parse_spec(unknown)


@pytest.mark.parametrize(
    "text, seconds, back",
    [("5m", 300, "5m"), ("1h30m", 5400, "90m"), ("3d", 259200, "3d"), ("1w", 604800, "7d"), (45, 45, "45s")],
)
def test_durations(text, seconds, back):
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == back


# ---- burn factors from the period ----------------------------------------------------------------


@pytest.mark.parametrize(
    "period, factors",
    [
        ("30d", [14.4, 6.0, 3.0, 1.0]),
        ("28d", [13.44, 5.6, 2.8, 0.9333333333333333]),  # Sloth's google-28d windows
        ("7d", [13.44, 3.5, 1.4, 0.98]),  # Sloth's 7-day windows: 8%, 12.5%, 20%, 42%
        ("14d", [6.72, 2.8, 1.4, 0.4666666666666667]),  # no file: the 30-day shares over 336h
        ("90d", [43.2, 18.0, 9.0, 3.0]),
    ],
)
def test_factors_are_budget_share_times_period_over_long_window(period, factors):
    (slo,) = parse_spec(f"service: s\nslos: [{{name: a, sli: availability, objective: 0.999, period: {period}}}]").slos
    assert [w.burn_rate for w in slo.windows] == factors
    assert [(w.severity, w.long, w.short) for w in slo.windows] == [
        ("page", "1h", "5m"),
        ("page", "6h", "30m"),
        ("ticket", "1d", "2h"),
        ("ticket", "3d", "6h"),
    ]
    hours = parse_duration(period) / 3600
    for w in slo.windows:
        assert w.burn_rate == pytest.approx(w.budget_percent / 100 * hours / (w.long_s / 3600), rel=1e-15)
    assert windows_for_period(parse_duration(period)) == slo.windows
    assert SLO("a", "availability", 0.999, parse_duration(period)).windows == slo.windows


def test_burn_factor_is_exact():
    assert burn_factor(2, 30 * 86400, 3600) == 14.4
    assert burn_factor(10, 28 * 86400, 86400) == 2.8
    assert burn_factor(12.5, 7 * 86400, 21600) == 3.5


def test_windows_given_as_budget_shares_scale_with_the_period():
    spec = parse_spec("""
service: s
slos:
  - name: a
    sli: availability
    objective: 0.99
    period: 28d
    windows:
      - {severity: page, budget_percent: 2, long: 1h, short: 5m}
      - {severity: ticket, burn_rate: 1, long: 3d, short: 6h}
""")
    page, ticket = spec.slos[0].windows
    assert (page.burn_rate, page.budget_percent) == (13.44, 2.0)
    assert (ticket.burn_rate, ticket.budget_percent) == (1.0, None)
    assert page.to_dict() == {
        "severity": "page",
        "burn_rate": 13.44,
        "long": "1h",
        "short": "5m",
        "budget_percent": 2.0,
    }


def test_the_shipped_window_files_load():
    tables = shipped_tables()
    assert sorted(format_duration(p) for p in tables) == ["28d", "30d", "7d"]
    assert {t.source for t in tables.values()} == {"28d.yaml", "30d.yaml", "7d.yaml"}
    with pytest.raises(ValueError, match=r"spec\.page\.quick\.errorBudgetPercent"):
        parse_alert_windows(
            {
                "apiVersion": "sloth.slok.dev/v1",
                "kind": "AlertWindows",
                "spec": {
                    "sloPeriod": "30d",
                    "page": {"quick": {"errorBudgetPercent": float("nan"), "shortWindow": "5m", "longWindow": "1h"}},
                },
            }
        )


WINDOW_MISFITS = [
    (
        "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 2d}]",
        "slos[0].period: the default alert windows (30d.yaml) reach 3d",
    ),
    (
        "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 1d,"
        " windows: [{severity: page, burn_rate: 14.4, long: 1h, short: 5m}, {severity: ticket, budget_percent: 10, long: 2d, short: 6h}]}]",
        "slos[0].windows[1].long: must fit inside the period (2d > 1d)",
    ),
    (OPENSLO.replace("duration: 28d", "duration: 1d"), "[2].spec.timeWindow[0].duration: the default alert windows"),
]


@pytest.mark.parametrize("text, message", WINDOW_MISFITS)
def test_windows_that_do_not_fit_the_period_are_refused(text, message):
    with pytest.raises(SpecError) as err:
        parse_spec(text, "slo.yaml")
    assert f"slo.yaml: {message}" in str(err.value) and "\n" not in str(err.value)


def test_a_switched_off_severity_need_not_fit():
    (slo,) = parse_spec(
        "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 2d,"
        " alerting: {ticket_alert: {disable: true}}}]"
    ).slos
    assert [w.severity for w in slo.windows] == ["page", "page"]


def test_no_slo_object_can_hold_windows_outside_its_period():
    """The check is in the SLO itself, so rules and records evaluation never see such an SLO."""
    with pytest.raises(SpecError, match=r"^slos\[a\]\.period: the default alert windows \(30d\.yaml\) reach 3d"):
        SLO("a", "availability", 0.9, 86400.0)
    with pytest.raises(SpecError, match=r"^slos\[a\]\.windows\[0\]\.long: must fit inside the period \(3d > 1d\)"):
        SLO("a", "availability", 0.9, 86400.0, windows=(AlertWindow("ticket", 1.0, 259200, 21600),))
    ok = SLO("a", "availability", 0.9, 86400.0, windows=(AlertWindow("page", 14.4, 3600, 300),))
    with pytest.raises(SpecError, match="must fit inside the period"):
        dataclasses.replace(ok, period_s=1800.0)


@pytest.mark.parametrize("command", ["rules", "slo"])
def test_every_command_refuses_windows_outside_the_period(command, tmp_path, capsys):
    spec = tmp_path / "slo.yaml"
    spec.write_text("service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: 1d}]\n")
    (tmp_path / "run").mkdir()
    argv = (
        ["rules", "--spec", str(spec), "--out", str(tmp_path / "r.yml")]
        if command == "rules"
        else ["slo", "--spec", str(spec), "--records", str(tmp_path / "run"), "--out", str(tmp_path / "o")]
    )
    assert main(argv) == EXIT_DATA
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "slos[0].period: the default alert windows" in err


# ---- labels, alerting, raw ratios ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "service: s\nlabels: {sloth_id: x}\nslos: [{name: a, sli: availability, objective: 0.9}]",
            "labels.sloth_id: is set by the generated rules",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, labels: {'a-b': x}}]",
            "slos[0].labels.a-b: is not a valid Prometheus label name",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, labels: [x]}]",
            "slos[0].labels: must be a mapping (got list)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, alerting: {name: 'my alert'}}]",
            "slos[0].alerting.name: must match",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, alerting: {page_alert: {disable: 'yes'}}}]",
            "slos[0].alerting.page_alert.disable: must be true or false",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, alerting: {page: {}}}]",
            "slos[0].alerting.page: unknown field",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, alerting: {labels: {sloth_severity: x}}}]",
            "slos[0].alerting.labels.sloth_severity: is set by the generated rules",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, promql: {error_ratio: 'x[{{window}}]', total: y}}]",
            "slos[0].promql.error_ratio: give either error_ratio or errors and total",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, long: 1h, short: 5m}]}]",
            "slos[0].windows[0]: give either budget_percent",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, budget_percent: 0, long: 1h, short: 5m}]}]",
            "slos[0].windows[0].budget_percent: must be above 0 and at most 100",
        ),
    ],
)
def test_labels_and_alerting_errors_name_the_path(text, message):
    with pytest.raises(SpecError, match=re.escape(message)):
        parse_spec(text)


# ---- NaN, infinities, bytes that are not text, shapes that are not mappings -------------------------


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "service: s\nslos: [{name: a, sli: availability, objective: .nan}]",
            "slos[0].objective: must be a finite number (got nan)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: .inf}]",
            "slos[0].objective: must be a finite number (got inf)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: -.inf}]",
            "slos[0].objective: must be a finite number",
        ),
        (
            "service: s\nslos: [{name: a, sli: latency, threshold: .nan, objective: 0.9}]",
            "slos[0].threshold: must be a finite number (got nan)",
        ),
        (
            "service: s\nslos: [{name: a, sli: quality, threshold: .inf, objective: 0.9}]",
            "slos[0].threshold: must be a finite number (got inf)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, burn_rate: .nan, long: 1h, short: 5m}]}]",
            "slos[0].windows[0].burn_rate: must be a finite number (got nan)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, budget_percent: .nan, long: 1h, short: 5m}]}]",
            "slos[0].windows[0].budget_percent: must be a finite number (got nan)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, burn_rate: .inf, long: 1h, short: 5m}]}]",
            "slos[0].windows[0].burn_rate: must be a finite number (got inf)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: .nan}]",
            "slos[0].period: must be a positive duration (got nan)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, period: .inf}]",
            "slos[0].period: must be a positive duration (got inf)",
        ),
        (
            "service: s\nslos: [{name: a, sli: availability, objective: 0.9, windows: [{severity: page, burn_rate: 2, long: .nan, short: 5m}]}]",
            "slos[0].windows[0].long: must be a positive duration (got nan)",
        ),
        (
            "service: s\ntraffic_rps: .nan\nslos: [{name: a, sli: availability, objective: 0.9}]",
            "traffic_rps: must be a finite number (got nan)",
        ),
        (
            "service: s\nprice_per_hour: .inf\nslos: [{name: a, sli: availability, objective: 0.9}]",
            "price_per_hour: must be a finite number (got inf)",
        ),
        (
            "service: s\nselector: {job: .nan}\nslos: [{name: a, sli: availability, objective: 0.9}]",
            "selector.job: must be a string (got nan)",
        ),
        (
            OPENSLO.replace("target: 0.995", "target: .nan"),
            "[2].spec.objectives[0].target: must be a finite number (got nan)",
        ),
        (
            OPENSLO.replace("value: 0.5", "value: .nan"),
            "[3].spec.objectives[0].value: must be a finite number (got nan)",
        ),
        (
            OPENSLO.replace("duration: 1w", "duration: .inf"),
            "[3].spec.timeWindow[0].duration: must be a duration such as 5m",
        ),
    ],
)
def test_nan_and_infinities_are_refused(text, message):
    with pytest.raises(SpecError) as err:
        parse_spec(text, "slo.yaml")
    assert str(err.value) == f"slo.yaml: {message}" or str(err.value).startswith(f"slo.yaml: {message}")
    assert "\n" not in str(err.value) and err.value.exit_code == EXIT_DATA


@pytest.mark.parametrize("data", [b"service: caf\xe9\n", b"\xff\xfes\x00e\x00", "service: s\n".encode("utf-16")])
def test_a_spec_that_is_not_utf8_is_one_line_and_exit_65(data, tmp_path, capsys):
    path = tmp_path / "slo.yaml"
    path.write_bytes(data)
    with pytest.raises(
        SpecError, match=r"slo\.yaml: not UTF-8 text \(byte 0x[0-9a-f]{2} at offset \d+\); save the spec as UTF-8"
    ):
        load_spec(path)
    assert main(["rules", "--spec", str(path), "--out", str(tmp_path / "r.yml")]) == EXIT_DATA
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "not UTF-8 text" in err


def test_a_utf8_spec_with_a_byte_order_mark_loads(tmp_path):
    path = tmp_path / "slo.yaml"
    path.write_bytes(b"\xef\xbb\xbfservice: s\nslos: [{name: a, sli: availability, objective: 0.9}]\n")
    assert load_spec(path).service == "s"


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "metadata: {name: availability}",
            "metadata: {name: availability, labels: [a, b]}",
            "[2].metadata.labels: must be a mapping (got list)",
        ),
        (
            "indicator:\n    metadata: {name: fast-requests}",
            "indicator:\n    metadata: [fast-requests]",
            "[3].spec.indicator.metadata: must be a mapping (got list)",
        ),
        (
            "metadata: {name: good-requests, labels: {team: vision}}",
            "metadata: {name: good-requests, annotations: [x]}",
            "[1].metadata.annotations: must be a mapping (got list)",
        ),
        ("metadata: {name: captioner}", "metadata: [captioner]", "[0].metadata: must be a mapping (got list)"),
    ],
)
def test_openslo_shapes_that_are_not_mappings_are_one_line(old, new, message):
    assert old in OPENSLO
    with pytest.raises(SpecError) as err:
        parse_spec(OPENSLO.replace(old, new), "slo.yaml")
    assert str(err.value).startswith(f"slo.yaml: {message}") and "\n" not in str(err.value)


ODD_VALUES = [None, [], {}, "x", -1, float("nan"), True, [{"a": None}]]


def _mutations(doc, path=()):
    """Every document made by replacing one node of ``doc`` with each odd value."""
    for odd in ODD_VALUES:
        yield path, odd
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _mutations(v, (*path, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _mutations(v, (*path, i))


def _replaced(doc, path, value):
    if not path:
        return value
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


RICH = """
service: s
selector: {job: j}
labels: {team: t}
traffic_rps: 5
slos:
  - name: a
    sli: latency
    threshold: 0.5
    objective: 0.99
    period: 28d
    labels: {tier: "1"}
    windows: [{severity: page, budget_percent: 2, long: 1h, short: 5m}, {severity: ticket, burn_rate: 1, long: 3d, short: 6h}]
    alerting: {name: A, labels: {x: y}, annotations: {r: s}, page_alert: {disable: false, labels: {p: q}}, ticket_alert: {annotations: {u: v}}}
  - {name: b, sli: safety, objective: 0.9, blocklist: [gun], promql: {error_ratio: "x[{{window}}]"}}
"""


@pytest.mark.parametrize("source", ["native", pytest.param("openslo", marks=pytest.mark.slow)])
def test_no_malformed_spec_gives_a_traceback(source):
    """Each node of a full spec replaced by each odd value: a valid spec or one SpecError line, never another error."""
    import yaml

    docs = [yaml.safe_load(RICH)] if source == "native" else list(yaml.safe_load_all(OPENSLO))
    refused = 0
    for d, doc in enumerate(docs):
        for path, odd in _mutations(doc):
            changed = [*docs[:d], _replaced(doc, path, odd), *docs[d + 1 :]]
            dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            text = (
                yaml.dump_all(changed, Dumper=dumper) if source == "openslo" else yaml.dump(changed[0], Dumper=dumper)
            )
            try:
                parse_spec(text, "slo.yaml")
            except SpecError as exc:
                assert "\n" not in str(exc), (path, odd)
                refused += 1
    assert refused > 100


def test_an_openslo_file_cannot_name_a_kind_that_needs_a_field_it_has_no_place_for(monkeypatch):
    """A kind with a required field of its own (any name, not only threshold) is refused with the
    annotation's path; an OpenSLO file has no place for the field."""
    from typing import Annotated

    from pydantic import StringConstraints

    import harness.slo.kinds as kinds
    from harness.slo.kinds.coverage import Coverage
    from harness.validation import Strict

    class NeedsModel(Strict):
        model: Annotated[str, StringConstraints(min_length=1)]

    class NeedsModelKind(Coverage):
        name = "needs_model"
        fields = NeedsModel

    real = kinds.registry()
    monkeypatch.setattr(kinds, "registry", lambda: {**real, "needs_model": NeedsModelKind()})
    text = OPENSLO.replace("annotations: {harness/sli: coverage}", "annotations: {harness/sli: needs_model}")
    with pytest.raises(
        SpecError, match=r"\[4\]\.metadata\.annotations\.harness/sli: must name an SLI kind .*needs_model"
    ):
        parse_spec(text)
