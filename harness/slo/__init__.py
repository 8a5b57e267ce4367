"""SLOs: spec, SLIs, error budgets, burn rates and their projection, Prometheus source, rules."""

from harness.slo.alert_windows import burn_factor, windows_for_period
from harness.slo.budget import ErrorBudget, error_budget
from harness.slo.burn_rate import BurnProjection, WindowBurn, burn_rate, project, window_burns
from harness.slo.figures import Figures, record_figures
from harness.slo.prometheus import PrometheusSource, parse_time
from harness.slo.report import SLOReport, SLOResult, evaluate_records, render_markdown
from harness.slo.rules import RuleSet, generate_rules
from harness.slo.sli import SLIValue, load_quality, records_sli, sli_events
from harness.slo.spec import (
    DEFAULT_WINDOWS,
    SLI_KINDS,
    SLO,
    Alerting,
    AlertRule,
    AlertWindow,
    SLOSpec,
    SpecError,
)
from harness.slo.specfile import load_spec, parse_spec

__all__ = [
    "SLI_KINDS",
    "AlertWindow",
    "Alerting",
    "AlertRule",
    "DEFAULT_WINDOWS",
    "burn_factor",
    "windows_for_period",
    "SLO",
    "SLOSpec",
    "SpecError",
    "load_spec",
    "parse_spec",
    "SLIValue",
    "sli_events",
    "records_sli",
    "load_quality",
    "ErrorBudget",
    "error_budget",
    "burn_rate",
    "WindowBurn",
    "window_burns",
    "BurnProjection",
    "project",
    "Figures",
    "record_figures",
    "SLOResult",
    "SLOReport",
    "evaluate_records",
    "render_markdown",
    "RuleSet",
    "generate_rules",
    "PrometheusSource",
    "parse_time",
]
