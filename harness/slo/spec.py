"""The SLO spec: frozen declarations of a service's SLOs, read from YAML (native or OpenSLO v1).

A spec declares; ``sli``, ``budget``, ``burn_rate``, ``prometheus`` and ``rules`` compute.
Every invalid field is reported with its path, e.g. ``slos[1].objective: must be between 0 and 1``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.errors import DataError, InputMissingError
from harness.slo.alert_windows import SEVERITIES, AlertWindow, table_for_period, windows_for_period
from harness.slo.duration import format_duration, parse_duration

__all__ = [
    "SLI_KINDS",
    "SEVERITIES",
    "RESERVED_LABELS",
    "SpecError",
    "AlertWindow",
    "AlertRule",
    "Alerting",
    "SLO",
    "SLOSpec",
    "DEFAULT_WINDOWS",
    "DEFAULT_PERIOD_S",
    "DEFAULT_BLOCKLIST",
    "DEFAULT_QUALITY_METRIC",
    "parse_duration",
    "format_duration",
    "check_windows",
    "load_spec",
    "parse_spec",
]

SLI_KINDS = ("latency", "availability", "quality", "safety", "coverage")
_NEEDS_THRESHOLD = ("latency", "quality")
DEFAULT_PERIOD_S = 30 * 86400
# Words no caption may contain: a safety SLI counts a caption that carries one as unsafe even when
# the service did not flag it (the reference server's filter blocks the same words).
DEFAULT_BLOCKLIST: tuple[str, ...] = ("blood", "corpse", "gore", "gun", "kill", "naked", "nude", "weapon")
# Labels the generated rules set themselves; a spec's own labels may not take these names.
RESERVED_LABELS = ("sloth_id", "sloth_service", "sloth_slo", "sloth_window", "sloth_severity")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALERT_NAME_RE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_WINDOW_MARKS = ("{{window}}", "{{.window}}")


class SpecError(DataError):
    """An invalid SLO spec; the message starts with the path of the bad field."""


# The workbook's alerts for the default 30-day period: 14.4x (1h, 5m) and 6x (6h, 30m) page,
# 3x (1d, 2h) and 1x (3d, 6h) ticket. Other periods derive their factors from their own period.
DEFAULT_WINDOWS: tuple[AlertWindow, ...] = windows_for_period(DEFAULT_PERIOD_S)


def check_windows(windows: tuple[AlertWindow, ...], period_s: float, path: str, period_path: str | None = None,
                  skip: tuple[str, ...] = ()) -> None:
    """Raise ``SpecError`` unless every alert window fits inside the SLO's period.

    A window longer than the period would read a series the rules never record, so its alert could
    never fire. ``period_path``: the windows are the period's defaults, so the period (at that path)
    is what to change. ``skip``: severities switched off, whose windows are dropped.
    """
    for i, w in enumerate(windows):
        if w.long_s > period_s and w.severity not in skip:
            if period_path is not None:
                table = table_for_period(period_s)
                raise _fail(period_path, f"the default alert windows ({table.source}) reach {w.long} "
                            f"({w.severity} over {w.long} and {w.short}), longer than the {format_duration(period_s)} "
                            "period; give a longer period or windows that fit")
            raise _fail(f"{path}.windows[{i}].long",
                        f"must fit inside the period ({w.long} > {format_duration(period_s)})")


@dataclass(frozen=True)
class AlertRule:
    """What the generated alert of one severity carries besides its condition."""

    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"labels": dict(self.labels), "annotations": dict(self.annotations)}


@dataclass(frozen=True)
class Alerting:
    """Name, labels and annotations of an SLO's alerts (Sloth's ``alerting``); page and ticket add their own.

    ``name``: the alert name of both severities, as in Sloth (None: ``<Service><Slo><Severity>Burn``).
    A severity switched off has no windows in the SLO, so no alert.
    """

    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    annotations: Mapping[str, str] = field(default_factory=dict, hash=False)
    page: AlertRule = AlertRule()
    ticket: AlertRule = AlertRule()

    def rule(self, severity: str) -> AlertRule:
        return self.page if severity == "page" else self.ticket

    def is_default(self) -> bool:
        return self.name is None and not self.labels and not self.annotations and \
            self.page == AlertRule() and self.ticket == AlertRule()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "labels": dict(self.labels), "annotations": dict(self.annotations),
                "page_alert": self.page.to_dict(), "ticket_alert": self.ticket.to_dict()}


@dataclass(frozen=True)
class SLO:
    """One objective over one SLI kind. ``threshold``: seconds (latency) or quality floor.

    ``windows``: the alerts; None takes the period's table (``alert_windows``), factors derived from
    the period. Windows that do not fit inside the period are refused here, whatever built the SLO.
    ``labels``: added to every recording rule of the SLO (the spec's own labels come first).
    """

    name: str
    sli: str
    objective: float
    period_s: float = float(DEFAULT_PERIOD_S)
    threshold: float | None = None
    windows: tuple[AlertWindow, ...] = None  # type: ignore[assignment]  # None: the period's defaults
    description: str = ""
    promql: Mapping[str, str] | None = field(default=None, hash=False)
    blocklist: tuple[str, ...] = ()
    metric: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    alerting: Alerting = Alerting()

    def __post_init__(self) -> None:
        defaulted = self.windows is None
        if defaulted:
            object.__setattr__(self, "windows", windows_for_period(self.period_s))
        path = f"slos[{self.name}]"
        check_windows(self.windows, self.period_s, path, f"{path}.period" if defaulted else None)

    @property
    def error_budget(self) -> float:
        """The allowed share of bad events, ``1 - objective``, without float noise."""
        return round(1.0 - self.objective, 12)

    @property
    def period(self) -> str:
        return format_duration(self.period_s)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "sli": self.sli, "objective": self.objective, "period": self.period}
        if self.threshold is not None:
            d["threshold"] = self.threshold
        if self.description:
            d["description"] = self.description
        d["windows"] = [w.to_dict() for w in self.windows]
        if self.promql:
            d["promql"] = dict(self.promql)
        if self.sli == "safety":
            d["blocklist"] = list(self.blocklist)
        if self.metric is not None:
            d["metric"] = self.metric
        if self.labels:
            d["labels"] = dict(self.labels)
        if not self.alerting.is_default():
            d["alerting"] = self.alerting.to_dict()
        return d


@dataclass(frozen=True)
class SLOSpec:
    """A service and its SLOs; ``selector`` adds label matchers to every PromQL selector.

    ``labels``: added to every recording rule of every SLO (Sloth's top-level ``labels``).
    """

    service: str
    slos: tuple[SLO, ...]
    selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    price_per_hour: float | None = None
    traffic_rps: float | None = None
    source: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    def slo(self, name: str) -> SLO:
        for s in self.slos:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "service": self.service,
            "selector": dict(self.selector),
            "price_per_hour": self.price_per_hour,
            "traffic_rps": self.traffic_rps,
            "slos": [s.to_dict() for s in self.slos],
        }
        if self.labels:
            d["labels"] = dict(self.labels)
        return d


# ---- validation helpers: each raises SpecError with the field's path -------------------------


def _fail(path: str, message: str) -> SpecError:
    return SpecError(f"{path}: {message}" if path else message)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"must be a mapping (got {type(value).__name__})")
    return value


def _known(value: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            raise _fail(where, f"unknown field; expected one of {', '.join(allowed)}")


def _string(value: Any, path: str, pattern: re.Pattern | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, "must be a non-empty string")
    if pattern is not None and not pattern.match(value):
        raise _fail(path, f"must match {pattern.pattern} (got {value!r})")
    return value


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, f"must be a number (got {value!r})")
    if not math.isfinite(value):
        raise _fail(path, f"must be a finite number (got {value!r})")
    return float(value)


def _objective(value: Any, path: str) -> float:
    v = _number(value, path)
    if not 0.0 < v < 1.0:
        raise _fail(path, f"must be between 0 and 1 (exclusive; got {value!r}); write 99.9% as 0.999")
    return v


def _duration(value: Any, path: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _fail(path, str(exc)) from None


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(path, f"must be true or false (got {value!r})")
    return value


_WINDOW_FIELDS = ("severity", "budget_percent", "burn_rate", "long", "short")


def _windows(value: Any, path: str, period_s: float) -> tuple[AlertWindow, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "must be a non-empty list of {severity, budget_percent (or burn_rate), long, short}")
    out = []
    for i, raw in enumerate(value):
        p = f"{path}[{i}]"
        w = _mapping(raw, p)
        _known(w, p, _WINDOW_FIELDS)
        for key in ("severity", "long", "short"):
            if key not in w:
                raise _fail(f"{p}.{key}", "is required")
        sev = w["severity"]
        if sev not in SEVERITIES:
            raise _fail(f"{p}.severity", f"must be one of {', '.join(SEVERITIES)} (got {sev!r})")
        long_s, short_s = _duration(w["long"], f"{p}.long"), _duration(w["short"], f"{p}.short")
        if short_s >= long_s:
            raise _fail(f"{p}.short", f"must be shorter than long ({w['short']} >= {w['long']})")
        if ("budget_percent" in w) == ("burn_rate" in w):
            raise _fail(p, "give either budget_percent (the share of the period's budget the alert stands for) "
                        "or burn_rate (its factor), not both or neither")
        if "budget_percent" in w:
            pct = _number(w["budget_percent"], f"{p}.budget_percent")
            if not 0 < pct <= 100:
                raise _fail(f"{p}.budget_percent", f"must be above 0 and at most 100 (got {w['budget_percent']!r})")
            out.append(AlertWindow.from_budget(sev, pct, long_s, short_s, period_s))
        else:
            rate = _number(w["burn_rate"], f"{p}.burn_rate")
            if rate <= 0:
                raise _fail(f"{p}.burn_rate", f"must be above 0 (got {w['burn_rate']!r})")
            out.append(AlertWindow(sev, rate, long_s, short_s))
    return tuple(out)


def _query(value: Any, path: str) -> str:
    q = _string(value, path)
    if not any(mark in q for mark in _WINDOW_MARKS):
        raise _fail(path, "must contain {{window}} where the range goes, e.g. [{{window}}]")
    return q


def _promql(value: Any, path: str) -> dict[str, str]:
    m = _mapping(value, path)
    _known(m, path, ("errors", "total", "error_ratio"))
    if "error_ratio" in m:
        if "errors" in m or "total" in m:
            raise _fail(f"{path}.error_ratio", "give either error_ratio or errors and total, not both")
        return {"error_ratio": _query(m["error_ratio"], f"{path}.error_ratio")}
    out = {}
    for key in ("errors", "total"):
        if key not in m:
            raise _fail(f"{path}.{key}", "is required (or give error_ratio alone)")
        out[key] = _query(m[key], f"{path}.{key}")
    return out


def _labels(value: Any, path: str, reserved: tuple[str, ...] = RESERVED_LABELS) -> dict[str, str]:
    """Prometheus labels: valid names, string values (numbers are written as text), none reserved."""
    m = _mapping(value, path)
    out = {}
    for k, v in m.items():
        if not isinstance(k, str) or not _LABEL_RE.match(k) or k.startswith("__"):
            raise _fail(f"{path}.{k}", "is not a valid Prometheus label name")
        if k in reserved:
            raise _fail(f"{path}.{k}", "is set by the generated rules; choose another label name")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise _fail(f"{path}.{k}", "must be a string")
        if isinstance(v, float) and not math.isfinite(v):
            raise _fail(f"{path}.{k}", f"must be a string (got {v!r})")
        out[k] = str(v)
    return out


def _annotations(value: Any, path: str) -> dict[str, str]:
    m = _mapping(value, path)
    out = {}
    for k, v in m.items():
        if not isinstance(k, str) or not _LABEL_RE.match(k):
            raise _fail(f"{path}.{k}", "is not a valid annotation name")
        if not isinstance(v, str):
            raise _fail(f"{path}.{k}", "must be a string")
        out[k] = v
    return out


_SEVERITY_KEYS = {"page": "page_alert", "ticket": "ticket_alert"}


def _alerting(value: Any, path: str) -> tuple[Alerting, tuple[str, ...]]:
    """Sloth's ``alerting`` block, and the severities it switches off."""
    m = _mapping(value, path)
    _known(m, path, ("name", "labels", "annotations", "page_alert", "ticket_alert"))
    name = _string(m["name"], f"{path}.name", _ALERT_NAME_RE) if m.get("name") is not None else None
    labels = _labels(m.get("labels") or {}, f"{path}.labels")
    annotations = _annotations(m.get("annotations") or {}, f"{path}.annotations")
    rules, off = {}, []
    for sev, key in _SEVERITY_KEYS.items():
        p = f"{path}.{key}"
        r = _mapping(m.get(key) or {}, p)
        _known(r, p, ("disable", "labels", "annotations"))
        if r.get("disable") is not None and _bool(r["disable"], f"{p}.disable"):
            off.append(sev)
        rules[sev] = AlertRule(_labels(r.get("labels") or {}, f"{p}.labels"),
                               _annotations(r.get("annotations") or {}, f"{p}.annotations"))
    return Alerting(name, labels, annotations, rules["page"], rules["ticket"]), tuple(off)


_SLO_FIELDS = (
    "name", "sli", "objective", "period", "threshold", "windows", "description", "promql", "blocklist", "metric",
    "labels", "alerting",
)
DEFAULT_QUALITY_METRIC = "CIDEr-D"


def _blocklist(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
        raise _fail(path, "must be a list of words")
    return tuple(sorted({w.strip().lower() for w in value}))


def _slo(raw: Any, path: str) -> SLO:
    m = _mapping(raw, path)
    _known(m, path, _SLO_FIELDS)
    for key in ("name", "sli", "objective"):
        if key not in m:
            raise _fail(f"{path}.{key}", "is required")
    name = _string(m["name"], f"{path}.name", _NAME_RE)
    kind = m["sli"]
    if kind not in SLI_KINDS:
        raise _fail(f"{path}.sli", f"must be one of {', '.join(SLI_KINDS)} (got {kind!r})")
    objective = _objective(m["objective"], f"{path}.objective")
    threshold = None
    if kind in _NEEDS_THRESHOLD:
        if m.get("threshold") is None:
            what = "seconds" if kind == "latency" else "the per-image quality floor"
            raise _fail(f"{path}.threshold", f"is required for a {kind} SLO ({what})")
        threshold = _number(m["threshold"], f"{path}.threshold")
        if kind == "latency" and threshold <= 0:
            raise _fail(f"{path}.threshold", f"must be above 0 seconds (got {m['threshold']!r})")
    elif m.get("threshold") is not None:
        raise _fail(f"{path}.threshold", f"is only for latency and quality SLOs, not {kind}")
    period = _duration(m.get("period", DEFAULT_PERIOD_S), f"{path}.period")
    defaulted = "windows" not in m
    windows = windows_for_period(period) if defaulted else _windows(m["windows"], f"{path}.windows", period)
    alerting, off = _alerting(m["alerting"], f"{path}.alerting") if m.get("alerting") is not None else (Alerting(), ())
    check_windows(windows, period, path, f"{path}.period" if defaulted else None, off)
    windows = tuple(w for w in windows if w.severity not in off)
    desc = m.get("description") or ""
    if not isinstance(desc, str):
        raise _fail(f"{path}.description", "must be a string")
    promql = _promql(m["promql"], f"{path}.promql") if m.get("promql") is not None else None
    blocklist: tuple[str, ...] = ()
    if kind == "safety":
        blocklist = _blocklist(m["blocklist"], f"{path}.blocklist") if "blocklist" in m else DEFAULT_BLOCKLIST
    elif "blocklist" in m:
        raise _fail(f"{path}.blocklist", f"is only for safety SLOs, not {kind}")
    metric = None
    if kind == "quality":
        metric = _string(m["metric"], f"{path}.metric") if "metric" in m else DEFAULT_QUALITY_METRIC
    elif "metric" in m:
        raise _fail(f"{path}.metric", f"is only for quality SLOs, not {kind}")
    labels = _labels(m["labels"], f"{path}.labels") if m.get("labels") is not None else {}
    return SLO(name, kind, objective, period, threshold, windows, desc, promql, blocklist, metric, labels, alerting)


def _optional_positive(m: Mapping[str, Any], key: str, allow_zero: bool) -> float | None:
    if m.get(key) is None:
        return None
    v = _number(m[key], key)
    if v < 0 or (v == 0 and not allow_zero):
        raise _fail(key, f"must be {'0 or more' if allow_zero else 'above 0'} (got {m[key]!r})")
    return v


def _native(doc: Mapping[str, Any], source: str) -> SLOSpec:
    _known(doc, "", ("version", "service", "selector", "labels", "price_per_hour", "traffic_rps", "slos"))
    if doc.get("version", 1) != 1:
        raise _fail("version", f"must be 1 (got {doc['version']!r})")
    if "service" not in doc:
        raise _fail("service", "is required")
    service = _string(doc["service"], "service", _NAME_RE)
    selector = _labels(doc["selector"], "selector", ()) if doc.get("selector") is not None else {}
    labels = _labels(doc["labels"], "labels") if doc.get("labels") is not None else {}
    raw_slos = doc.get("slos")
    if not isinstance(raw_slos, list) or not raw_slos:
        raise _fail("slos", "must be a non-empty list")
    slos = tuple(_slo(raw, f"slos[{i}]") for i, raw in enumerate(raw_slos))
    _unique(slos, lambda i: f"slos[{i}].name")
    return SLOSpec(
        service,
        slos,
        selector,
        _optional_positive(doc, "price_per_hour", allow_zero=True),
        _optional_positive(doc, "traffic_rps", allow_zero=False),
        source,
        labels,
    )


def _unique(slos: tuple[SLO, ...], where) -> None:
    seen: set[str] = set()
    for i, s in enumerate(slos):
        if s.name in seen:
            raise _fail(where(i), f"duplicate SLO name {s.name!r}")
        seen.add(s.name)


# ---- OpenSLO v1 ------------------------------------------------------------------------------

_OPENSLO_KIND_HINTS = (
    ("caption_request_duration_seconds", "latency"),
    ("caption_safety_flags_total", "safety"),
)
_KIND_KEY = "harness/sli"


def _openslo_queries(indicator: Mapping[str, Any]) -> str:
    """All query text inside an indicator spec, to recognise the metric it is about."""
    texts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str):
            texts.append(v)

    walk(indicator)
    return "\n".join(texts)


def _openslo_slo(doc: Mapping[str, Any], path: str,
                 slis: Mapping[str, tuple[str, Mapping[str, Any]]]) -> tuple[str, list[SLO]]:
    meta = _mapping(doc.get("metadata"), f"{path}.metadata")
    name = _string(meta.get("name"), f"{path}.metadata.name", _NAME_RE)
    spec = _mapping(doc.get("spec"), f"{path}.spec")
    service = _string(spec.get("service"), f"{path}.spec.service", _NAME_RE)
    if "indicator" in spec:
        ind_path = f"{path}.spec.indicator"
        indicator = _mapping(spec["indicator"], ind_path)
    elif "indicatorRef" in spec:
        ref = _string(spec["indicatorRef"], f"{path}.spec.indicatorRef")
        if ref not in slis:
            raise _fail(f"{path}.spec.indicatorRef", f"no SLI document named {ref!r}")
        ind_path, indicator = slis[ref]
    else:
        raise _fail(f"{path}.spec.indicator", "is required (or indicatorRef)")
    ind_meta = _mapping(indicator.get("metadata") or {}, f"{ind_path}.metadata")
    annotations: dict[str, Any] = {}
    for where, m in ((ind_path, ind_meta), (path, meta)):
        for key in ("labels", "annotations"):
            annotations.update(_mapping(m.get(key) or {}, f"{where}.metadata.{key}"))
    kind = annotations.get(_KIND_KEY)
    if kind is None:
        text = _openslo_queries(indicator.get("spec") or {})
        kind = next((k for hint, k in _OPENSLO_KIND_HINTS if hint in text), None)
        if kind is None and "caption_requests_total" in text:
            kind = "availability"
    if kind not in SLI_KINDS:
        raise _fail(
            f"{path}.metadata.annotations.{_KIND_KEY}",
            f"must name the SLI kind, one of {', '.join(SLI_KINDS)} (got {kind!r})",
        )
    period = DEFAULT_PERIOD_S
    tw = spec.get("timeWindow")
    if tw is not None:
        if not isinstance(tw, list) or not tw:
            raise _fail(f"{path}.spec.timeWindow", "must be a non-empty list")
        period = _duration(_mapping(tw[0], f"{path}.spec.timeWindow[0]").get("duration"), f"{path}.spec.timeWindow[0].duration")
    windows = windows_for_period(period)
    check_windows(windows, period, path, f"{path}.spec.timeWindow[0].duration" if tw is not None else f"{path}.spec")
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise _fail(f"{path}.spec.objectives", "must be a non-empty list")
    out = []
    for i, raw in enumerate(objectives):
        p = f"{path}.spec.objectives[{i}]"
        o = _mapping(raw, p)
        if "target" not in o:
            raise _fail(f"{p}.target", "is required (only ratio targets are supported)")
        target = _objective(o["target"], f"{p}.target")
        threshold = None
        if kind in _NEEDS_THRESHOLD:
            if o.get("value") is None:
                raise _fail(f"{p}.value", f"is required for a {kind} SLO (the threshold)")
            threshold = _number(o["value"], f"{p}.value")
        slo_name = name if len(objectives) == 1 else f"{name}.{o.get('displayName') or i}"
        out.append(SLO(_string(slo_name, f"{p}.displayName", _NAME_RE), kind, target, period, threshold,
                       windows, str(spec.get("description") or meta.get("displayName") or ""),
                       None, DEFAULT_BLOCKLIST if kind == "safety" else (),
                       DEFAULT_QUALITY_METRIC if kind == "quality" else None))
    return service, out


def _openslo(docs: list[Any], source: str) -> SLOSpec:
    slis: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for i, d in enumerate(docs):
        if isinstance(d, Mapping) and d.get("kind") == "SLI":
            meta = _mapping(d.get("metadata"), f"[{i}].metadata")
            slis[_string(meta.get("name"), f"[{i}].metadata.name")] = (f"[{i}]", d)
    services: list[str] = []
    slos: list[tuple[int, SLO]] = []
    for i, d in enumerate(docs):
        path = f"[{i}]"
        d = _mapping(d, path)
        if d.get("apiVersion") != "openslo/v1":
            raise _fail(f"{path}.apiVersion", f"must be openslo/v1 (got {d.get('apiVersion')!r})")
        if d.get("kind") == "Service":
            meta = _mapping(d.get("metadata"), f"{path}.metadata")
            services.append(_string(meta.get("name"), f"{path}.metadata.name", _NAME_RE))
        elif d.get("kind") == "SLO":
            svc, items = _openslo_slo(d, path, slis)
            services.append(svc)
            slos.extend((i, s) for s in items)
    if not slos:
        raise _fail("", "no OpenSLO document of kind SLO found")
    if len(set(services)) != 1:
        raise _fail("", f"all OpenSLO documents must be about one service (found {', '.join(sorted(set(services)))})")
    seen: set[str] = set()
    for i, s in slos:
        if s.name in seen:
            raise _fail(f"[{i}].metadata.name", f"duplicate SLO name {s.name!r}")
        seen.add(s.name)
    return SLOSpec(services[0], tuple(s for _, s in slos), {}, None, None, source)


def parse_spec(text: str, source: str = "<spec>") -> SLOSpec:
    """Parse a native spec or a stream of OpenSLO v1 documents; raise ``SpecError`` with a path."""
    import yaml

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(f"{source}: not valid YAML{where}") from None
    if not docs:
        raise SpecError(f"{source}: the spec is empty")
    try:
        if any(isinstance(d, Mapping) and str(d.get("apiVersion", "")).startswith("openslo/") for d in docs):
            return _openslo(docs, source)
        if len(docs) != 1:
            raise _fail("", "a native spec is one YAML document")
        return _native(_mapping(docs[0], ""), source)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


def load_spec(path: str | Path) -> SLOSpec:
    """Read and validate the spec at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise InputMissingError(f"{p}: SLO spec not found")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        "save the spec as UTF-8") from None
    return parse_spec(text, str(p))
