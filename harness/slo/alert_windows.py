"""Alert windows per SLO period, kept as data: one YAML file per period under ``harness/slo/windows/``.

Each alert stands for a share of the period's error budget spent within its long window (the SRE
workbook pages when 2% of a 30-day budget goes in an hour). Its burn factor follows from that share
and the period: ``factor = share x period / long window`` (2% x 720h / 1h = 14.4; 13.44 for 28
days). The files use Sloth's ``AlertWindows`` format, so a Sloth windows file reads the same here.
A period without its own file gets the 30-day file's budget shares, scaled to that period.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Mapping

from harness.duration import format_duration, parse_duration

__all__ = [
    "SEVERITIES",
    "AlertWindow",
    "WindowTable",
    "burn_factor",
    "parse_alert_windows",
    "shipped_tables",
    "table_for_period",
    "windows_for_period",
]

SEVERITIES = ("page", "ticket")
_SPEEDS = ("quick", "slow")
_REFERENCE_PERIOD_S = 30 * 86400.0


def burn_factor(budget_percent: float, period_s: float, long_s: float) -> float:
    """The burn rate that spends ``budget_percent`` of the period's budget in ``long_s`` seconds."""
    share = Fraction(repr(float(budget_percent))) / 100
    return float(share * Fraction(repr(float(period_s))) / Fraction(repr(float(long_s))))


@dataclass(frozen=True)
class AlertWindow:
    """A multiwindow burn-rate alert: fires when both windows burn at ``burn_rate`` or faster.

    ``budget_percent``: the share of the period's budget the alert stands for, when the factor was
    derived from it (None when a spec gave ``burn_rate`` itself). ``strict``: fires only above the
    factor (OpenSLO's ``op: gt``). ``alert_after_s``: how long the condition must hold (the rule's
    ``for``). A window whose short equals its long is a single-window condition.
    """

    severity: str
    burn_rate: float
    long_s: float
    short_s: float
    budget_percent: float | None = None
    strict: bool = False
    alert_after_s: float = 0.0

    def fires(self, burn: Any) -> bool:
        """Whether a burn rate (a float, or an exact fraction compared with the factor as written) meets it."""
        factor = float(self.burn_rate) if isinstance(burn, float) else Fraction(repr(float(self.burn_rate)))
        return burn > factor if self.strict else burn >= factor

    @property
    def long(self) -> str:
        return format_duration(self.long_s)

    @property
    def short(self) -> str:
        return format_duration(self.short_s)

    @classmethod
    def from_budget(
        cls, severity: str, budget_percent: float, long_s: float, short_s: float, period_s: float
    ) -> AlertWindow:
        """The alert that fires when ``budget_percent`` of a ``period_s`` budget goes within ``long_s``."""
        return cls(
            severity,
            burn_factor(budget_percent, period_s, long_s),
            float(long_s),
            float(short_s),
            float(budget_percent),
        )

    def to_dict(self) -> dict[str, Any]:
        d = {
            "severity": self.severity,
            "burn_rate": self.burn_rate,
            "long": self.long,
            "short": self.short,
            "budget_percent": self.budget_percent,
        }
        if self.strict:
            d["op"] = ">"
        if self.alert_after_s:
            d["alert_after"] = format_duration(self.alert_after_s)
        return d


@dataclass(frozen=True)
class WindowTable:
    """One windows file: the period it was written for and, per alert, (severity, budget %, long, short)."""

    source: str
    period_s: float
    alerts: tuple[tuple[str, float, float, float], ...]

    def windows(self, period_s: float | None = None) -> tuple[AlertWindow, ...]:
        """The alerts with their factors for ``period_s`` (default: the table's own period)."""
        period = self.period_s if period_s is None else period_s
        return tuple(
            AlertWindow.from_budget(sev, pct, long_s, short_s, period) for sev, pct, long_s, short_s in self.alerts
        )


def _get(m: Any, key: str, path: str) -> Any:
    if not isinstance(m, Mapping):
        raise ValueError(f"{path}: must be a mapping")
    if key not in m:
        raise ValueError(f"{path}.{key}: is required")
    return m[key]


def parse_alert_windows(doc: Any, source: str = "<windows>") -> WindowTable:
    """A Sloth ``AlertWindows`` document (``sloth.slok.dev/v1``) as a table; ``ValueError`` names the path."""
    if _get(doc, "apiVersion", "") != "sloth.slok.dev/v1" or _get(doc, "kind", "") != "AlertWindows":
        raise ValueError(f"{source}: must be apiVersion sloth.slok.dev/v1, kind AlertWindows")
    spec = _get(doc, "spec", "")
    period = parse_duration(_get(spec, "sloPeriod", "spec"))
    alerts = []
    for sev in SEVERITIES:
        for speed in _SPEEDS:
            path = f"spec.{sev}.{speed}"
            w = _get(_get(spec, sev, "spec"), speed, f"spec.{sev}")
            pct = _get(w, "errorBudgetPercent", path)
            number = isinstance(pct, (int, float)) and not isinstance(pct, bool) and math.isfinite(pct)
            if not number or not 0 < pct <= 100:
                raise ValueError(f"{source}: {path}.errorBudgetPercent: must be a number above 0 and at most 100")
            long_s = parse_duration(_get(w, "longWindow", path))
            short_s = parse_duration(_get(w, "shortWindow", path))
            if not short_s < long_s <= period:
                raise ValueError(f"{source}: {path}: needs shortWindow < longWindow <= sloPeriod")
            alerts.append((sev, float(pct), long_s, short_s))
    return WindowTable(source, period, tuple(alerts))


@lru_cache(maxsize=1)
def shipped_tables() -> dict[float, WindowTable]:
    """The windows files that ship with the harness, by period in seconds."""
    from importlib import resources

    from harness.safe_yaml import load_yaml

    out: dict[float, WindowTable] = {}
    for entry in sorted(resources.files("harness.slo").joinpath("windows").iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            table = parse_alert_windows(load_yaml(entry.read_text(encoding="utf-8"), entry.name), entry.name)
            if table.period_s in out:
                raise ValueError(f"{entry.name}: a second windows file for {format_duration(table.period_s)}")
            out[table.period_s] = table
    return out


def table_for_period(period_s: float) -> WindowTable:
    """The windows file written for ``period_s``, else the 30-day one (its budget shares apply to any period)."""
    tables = shipped_tables()
    return tables.get(float(period_s)) or tables[_REFERENCE_PERIOD_S]


def windows_for_period(period_s: float) -> tuple[AlertWindow, ...]:
    """The default alerts of an SLO over ``period_s``, with factors derived from the period."""
    return table_for_period(period_s).windows(period_s)
