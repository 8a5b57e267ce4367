"""Prometheus recording and alerting rules for an SLO spec, named and written as Sloth writes them.

Per SLO: ``slo:sli_error:ratio_rate<window>`` for each window (5m ... 3d and the period, named as
Prometheus prints durations: ``4w`` for 28 days), ``slo:objective:ratio``, ``slo:error_budget:ratio``,
``slo:time_period:days``, ``slo:current_burn_rate:ratio``, ``slo:period_burn_rate:ratio``,
``slo:period_error_budget_remaining:ratio`` and ``sloth_slo_info``, all labelled ``sloth_id``,
``sloth_service``, ``sloth_slo`` and the spec's and SLO's own labels; then one page and one ticket
alert, each the OR of its multiwindow conditions (both windows at or above ``factor x error budget``),
with the ``alerting`` block's name, labels and annotations. docs/reference/slo.md lists where the output
differs from Sloth's on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import harness.slo.queries as queries
from harness.duration import prometheus_duration
from harness.slo.spec import SLO, SLOSpec

__all__ = ["RuleSet", "generate_rules", "STANDARD_WINDOWS_S", "rule_labels", "alert_name"]

# Sloth's windows: every window of the workbook's alerts plus 2h and 1d for dashboards.
STANDARD_WINDOWS_S: tuple[float, ...] = (300, 1800, 3600, 7200, 21600, 86400, 259200)


def _decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))


def _num(d: Decimal) -> str:
    text = format(d.normalize(), "f")
    return text


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace(".", "-").replace("_", "-").split("-") if part)


def alert_name(spec: SLOSpec, slo: SLO, severity: str) -> str:
    """``CaptionerAvailabilityPageBurn`` for service captioner, SLO availability, severity page."""
    return f"{_camel(spec.service)}{_camel(slo.name)}{severity.capitalize()}Burn"


def rule_labels(spec: SLOSpec, slo: SLO) -> dict[str, str]:
    """The Sloth labels that identify an SLO's series."""
    return {"sloth_id": f"{spec.service}-{slo.name}", "sloth_service": spec.service, "sloth_slo": slo.name}


def _series_labels(spec: SLOSpec, slo: SLO) -> dict[str, str]:
    """Labels of every recording rule of ``slo``: the spec's, the SLO's, then Sloth's."""
    return {**spec.labels, **slo.labels, **rule_labels(spec, slo)}


def _factor(x: float) -> str:
    """A burn factor for people: ``14.4``, ``6``, ``0.9333``."""
    return format(float(x), ".4g")


def _match(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@dataclass(frozen=True)
class RuleSet:
    """Rule groups in Prometheus's format and the SLOs no metric could express (name, why)."""

    groups: tuple[dict[str, Any], ...]
    skipped: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [dict(g) for g in self.groups]}

    def to_yaml(self) -> str:
        import yaml

        class _Dumper(yaml.SafeDumper):
            def ignore_aliases(self, data: Any) -> bool:
                return True

        def _str(dumper: yaml.SafeDumper, value: str):
            style = "|" if "\n" in value else None
            return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

        _Dumper.add_representer(str, _str)
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, width=1000)


def _windows(slo: SLO) -> list[float]:
    used = set(STANDARD_WINDOWS_S)
    for w in slo.windows:
        used.update((w.long_s, w.short_s))
    return sorted(s for s in used if s < slo.period_s)


def _recordings(spec: SLOSpec, slo: SLO) -> list[dict[str, Any]]:
    labels = _series_labels(spec, slo)
    rules = []
    for seconds in _windows(slo):
        window = prometheus_duration(seconds)
        rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{window}",
                "expr": queries.error_ratio(slo, spec.selector, window),
                "labels": {**labels, "sloth_window": window},
            }
        )
    period = prometheus_duration(slo.period_s)
    base = f"slo:sli_error:ratio_rate5m{_match(rule_labels(spec, slo))}"
    rules.append(
        {
            "record": f"slo:sli_error:ratio_rate{period}",
            "expr": f"sum_over_time({base}[{period}])\n/ ignoring (sloth_window)\ncount_over_time({base}[{period}])\n",
            "labels": {**labels, "sloth_window": period},
        }
    )
    return rules


def _meta(spec: SLOSpec, slo: SLO) -> list[dict[str, Any]]:
    labels = _series_labels(spec, slo)
    m = _match(rule_labels(spec, slo))
    period = prometheus_duration(slo.period_s)
    on = "/ on(sloth_id, sloth_slo, sloth_service) group_left"
    budget = 1 - _decimal(slo.objective)
    info = {
        **labels,
        "sloth_objective": _num(_decimal(slo.objective) * 100),
        "sloth_sli": slo.sli,
        "sloth_mode": "cli-gen-prom",
        "sloth_spec": "harness/v1",
    }
    return [
        {"record": "slo:objective:ratio", "expr": f"vector({_num(_decimal(slo.objective))})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector({_num(budget)})", "labels": labels},
        {
            "record": "slo:time_period:days",
            "expr": f"vector({_num(Decimal(int(slo.period_s)) / 86400)})",
            "labels": labels,
        },
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate5m{m}\n{on}\nslo:error_budget:ratio{m}\n",
            "labels": labels,
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": f"slo:sli_error:ratio_rate{period}{m}\n{on}\nslo:error_budget:ratio{m}\n",
            "labels": labels,
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": f"1 - slo:period_burn_rate:ratio{m}",
            "labels": labels,
        },
        {"record": "sloth_slo_info", "expr": "vector(1)", "labels": info},
    ]


def _alerts(spec: SLOSpec, slo: SLO) -> list[dict[str, Any]]:
    ids = rule_labels(spec, slo)
    m = _match(ids)
    budget = 1 - _decimal(slo.objective)
    rules = []
    for severity in ("page", "ticket"):
        windows = [w for w in slo.windows if w.severity == severity]
        if not windows:
            continue
        terms = []
        for w in windows:
            limit = _num(_decimal(w.burn_rate) * budget)
            short, long = prometheus_duration(w.short_s), prometheus_duration(w.long_s)
            op = ">" if w.strict else ">="
            checks = [
                f"    max(slo:sli_error:ratio_rate{d}{m} {op} {limit}) without (sloth_window)\n"
                for d in ((short, long) if short != long else (long,))
            ]
            terms.append("(\n" + "    and\n".join(checks) + ")")
        rates = ", ".join(
            f"{_factor(w.burn_rate)}x over {w.long}" + (f" and {w.short}" if w.short != w.long else "") for w in windows
        )
        own = slo.alerting.rule(severity)
        annotations = {**slo.alerting.annotations, **own.annotations}
        annotations.setdefault(
            "summary", f"{spec.service} {slo.name} SLO error budget burn rate is too fast ({rates})."
        )
        annotations.setdefault(
            "title", f"({severity}) {spec.service} {slo.name} SLO error budget burn rate is too fast."
        )
        wait = max(w.alert_after_s for w in windows)
        rules.append(
            {
                "alert": slo.alerting.name or alert_name(spec, slo, severity),
                "expr": "\nor\n".join(terms) + "\n",
                **({"for": prometheus_duration(wait)} if wait else {}),
                # the spec's labels may replace severity and sli, never the sloth_* ones (refused when parsed)
                "labels": {
                    "severity": severity,
                    "sloth_severity": severity,
                    "sli": slo.sli,
                    **ids,
                    **slo.alerting.labels,
                    **own.labels,
                },
                "annotations": annotations,
            }
        )
    return rules


def generate_rules(spec: SLOSpec) -> RuleSet:
    """Recording and alerting rule groups for every SLO that a metric expresses."""
    groups: list[dict[str, Any]] = []
    skipped: list[tuple[str, str]] = []
    for slo in spec.slos:
        if queries.error_ratio(slo, spec.selector, "5m") is None:
            skipped.append((slo.name, f"no metric shows a {slo.sli} SLI; give the SLO promql: {{errors, total}}"))
            continue
        sid = f"{spec.service}-{slo.name}"
        groups.append({"name": f"sloth-slo-sli-recordings-{sid}", "rules": _recordings(spec, slo)})
        groups.append({"name": f"sloth-slo-meta-recordings-{sid}", "rules": _meta(spec, slo)})
        alerts = _alerts(spec, slo)
        if alerts:
            groups.append({"name": f"sloth-slo-alerts-{sid}", "rules": alerts})
    return RuleSet(tuple(groups), tuple(skipped))
