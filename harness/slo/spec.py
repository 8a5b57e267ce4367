"""The SLO spec: frozen declarations of a service's SLOs, read from YAML (native or OpenSLO v1).

A spec declares; ``sli``, ``budget``, ``burn_rate``, ``prometheus`` and ``rules`` compute.
The native format is validated by pydantic models (unknown fields, text for numbers, NaN and
infinities refused); each SLO's kind (``harness.slo.kinds``) validates the fields of its own.
Every invalid field is reported with its path, e.g. ``slos[1].objective: must be between 0 and 1``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Mapping

from pydantic import AfterValidator, Field, StringConstraints, ValidationError

from harness.duration import format_duration, parse_duration
from harness.slo.alert_windows import SEVERITIES, AlertWindow, table_for_period, windows_for_period
from harness.slo.errors import SpecError
from harness.slo.kinds import get as get_kind
from harness.slo.kinds import kind_names
from harness.slo.kinds.quality import DEFAULT_QUALITY_METRIC
from harness.slo.kinds.safety import DEFAULT_BLOCKLIST
from harness.validation import Strict, first_error

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
    "native_spec",
]

# Every SLI kind, one module each in ``harness.slo.kinds``. ``promql``: an SLI that only the SLO's
# own Prometheus queries show (records give no data).
SLI_KINDS: tuple[str, ...] = kind_names()
QUERY_KIND = "promql"
DEFAULT_PERIOD_S = 30 * 86400
# Labels the generated rules set themselves; a spec's own labels may not take these names.
RESERVED_LABELS = ("sloth_id", "sloth_service", "sloth_slo", "sloth_window", "sloth_severity")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALERT_NAME_RE = re.compile(r"^[A-Za-z_:][A-Za-z0-9_:]*$")
_WINDOW_MARKS = ("{{window}}", "{{.window}}")


# The workbook's alerts for the default 30-day period: 14.4x (1h, 5m) and 6x (6h, 30m) page,
# 3x (1d, 2h) and 1x (3d, 6h) ticket. Other periods derive their factors from their own period.
DEFAULT_WINDOWS: tuple[AlertWindow, ...] = windows_for_period(DEFAULT_PERIOD_S)


def check_windows(
    windows: tuple[AlertWindow, ...],
    period_s: float,
    path: str,
    period_path: str | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """Raise ``SpecError`` unless every alert window fits inside the SLO's period.

    A window longer than the period would read a series the rules never record, so its alert could
    never fire. ``period_path``: the windows are the period's defaults, so the period (at that path)
    is what to change. ``skip``: severities switched off, whose windows are dropped.
    """
    for i, w in enumerate(windows):
        if w.long_s > period_s and w.severity not in skip:
            if period_path is not None:
                table = table_for_period(period_s)
                raise _fail(
                    period_path,
                    f"the default alert windows ({table.source}) reach {w.long} "
                    f"({w.severity} over {w.long} and {w.short}), longer than the {format_duration(period_s)} "
                    "period; give a longer period or windows that fit",
                )
            raise _fail(
                f"{path}.windows[{i}].long", f"must fit inside the period ({w.long} > {format_duration(period_s)})"
            )


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
        return (
            self.name is None
            and not self.labels
            and not self.annotations
            and self.page == AlertRule()
            and self.ticket == AlertRule()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "page_alert": self.page.to_dict(),
            "ticket_alert": self.ticket.to_dict(),
        }


@dataclass(frozen=True)
class SLO:
    """One objective over one SLI kind. ``threshold``: seconds (latency) or quality floor.

    ``windows``: the alerts; None takes the period's table (``alert_windows``), factors derived from
    the period. Windows that do not fit inside the period are refused here, whatever built the SLO.
    ``labels``: added to every recording rule of the SLO (the spec's own labels come first).
    ``options``: settings of the SLO's kind beyond threshold, blocklist and metric (a feedback log).
    ``segment``: the SLO counts only the events of this segment of the data set: the records whose
    ``segment`` column holds it, the series whose ``segment`` label does (None: every event).
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
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)  # a kind's own settings
    segment: str | None = None

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
        if self.segment is not None:
            d["segment"] = self.segment
        d["windows"] = [w.to_dict() for w in self.windows]
        if self.promql:
            d["promql"] = dict(self.promql)
        d.update(get_kind(self.sli).describe(self))
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


# ---- validation: declarative models, then the rules that join fields, each error with its path ----


def _fail(path: str, message: str) -> SpecError:
    return SpecError(f"{path}: {message}" if path else message)


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, f"must be a mapping (got {type(value).__name__})")
    return value


def _validate(model: type[Strict], value: Any, path: str):
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise SpecError(first_error(exc, path)) from None


def _duration(value: Any) -> float:
    return parse_duration(value)


def _objective(v: float) -> float:
    if not 0.0 < v < 1.0:
        raise ValueError(f"must be between 0 and 1 (exclusive; got {v!r}); write 99.9% as 0.999")
    return v


def _windowed(q: str) -> str:
    if not any(mark in q for mark in _WINDOW_MARKS):
        raise ValueError("must contain {{window}} where the range goes, e.g. [{{window}}]")
    return q


MAX_SEGMENT = 200  # characters of a segment's name (as a data set's image entries allow)


def _segment(v: str) -> str:
    if not v.strip() or not v.isprintable() or len(v) > MAX_SEGMENT:
        raise ValueError(f"must be a segment's name: printable text, not blank, at most {MAX_SEGMENT} characters")
    return v


def _not_negative(v: float) -> float:
    if v < 0:
        raise ValueError(f"must be 0 or more (got {v!r})")
    return v


def _positive(v: float) -> float:
    if v <= 0:
        raise ValueError(f"must be above 0 (got {v!r})")
    return v


def _budget_percent(v: float) -> float:
    if not 0 < v <= 100:
        raise ValueError(f"must be above 0 and at most 100 (got {v!r})")
    return v


Duration = Annotated[Any, AfterValidator(_duration)]
Name = Annotated[str, StringConstraints(pattern=_NAME_RE.pattern)]
Query = Annotated[str, StringConstraints(min_length=1)]


class WindowIn(Strict):
    severity: Literal["page", "ticket"]
    budget_percent: Annotated[float, AfterValidator(_budget_percent)] | None = None
    burn_rate: Annotated[float, AfterValidator(_positive)] | None = None
    long: Duration
    short: Duration


class PromQLIn(Strict):
    errors: Query | None = None
    total: Query | None = None
    error_ratio: Query | None = None


class AlertRuleIn(Strict):
    disable: bool | None = None
    labels: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


class AlertingIn(Strict):
    name: Annotated[str, StringConstraints(pattern=_ALERT_NAME_RE.pattern)] | None = None
    labels: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None
    page_alert: AlertRuleIn | None = None
    ticket_alert: AlertRuleIn | None = None


class SLOIn(Strict):
    """The fields every SLO takes; its kind's own fields are validated by the kind's model."""

    name: Name
    sli: str
    objective: Annotated[float, AfterValidator(_objective)]
    period: Duration = float(DEFAULT_PERIOD_S)
    windows: list[WindowIn] | None = Field(None, min_length=1)
    description: str | None = None
    promql: PromQLIn | None = None
    labels: dict[str, Any] | None = None
    alerting: AlertingIn | None = None
    segment: Annotated[str, AfterValidator(_segment)] | None = None


class SpecIn(Strict):
    version: Literal[1] = 1
    service: Name
    selector: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None
    price_per_hour: Annotated[float, AfterValidator(_not_negative)] | None = None
    traffic_rps: Annotated[float, AfterValidator(_positive)] | None = None
    slos: list[dict[str, Any]] = Field(min_length=1)


def _windows(ws: list[WindowIn], path: str, period_s: float) -> tuple[AlertWindow, ...]:
    out = []
    for i, w in enumerate(ws):
        p = f"{path}[{i}]"
        if w.short >= w.long:
            raise _fail(
                f"{p}.short", f"must be shorter than long ({format_duration(w.short)} >= {format_duration(w.long)})"
            )
        if (w.budget_percent is None) == (w.burn_rate is None):
            raise _fail(
                p,
                "give either budget_percent (the share of the period's budget the alert stands for) "
                "or burn_rate (its factor), not both or neither",
            )
        if w.budget_percent is not None:
            out.append(AlertWindow.from_budget(w.severity, w.budget_percent, w.long, w.short, period_s))
        else:
            out.append(AlertWindow(w.severity, float(w.burn_rate), w.long, w.short))
    return tuple(out)


def _promql(m: PromQLIn, path: str) -> dict[str, str]:
    if m.error_ratio is not None:
        if m.errors is not None or m.total is not None:
            raise _fail(f"{path}.error_ratio", "give either error_ratio or errors and total, not both")
        keys = ("error_ratio",)
    else:
        keys = ("errors", "total")
    out = {}
    for key in keys:
        if getattr(m, key) is None:
            raise _fail(f"{path}.{key}", "is required (or give error_ratio alone)")
        try:
            out[key] = _windowed(getattr(m, key))
        except ValueError as exc:
            raise _fail(f"{path}.{key}", str(exc)) from None
    return out


def _labels(value: Mapping[str, Any] | None, path: str, reserved: tuple[str, ...] = RESERVED_LABELS) -> dict[str, str]:
    """Prometheus labels: valid names, string values (numbers are written as text), none reserved."""
    out = {}
    for k, v in (value or {}).items():
        if not _LABEL_RE.match(k) or k.startswith("__"):
            raise _fail(f"{path}.{k}", "is not a valid Prometheus label name")
        if k in reserved:
            raise _fail(f"{path}.{k}", "is set by the generated rules; choose another label name")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise _fail(f"{path}.{k}", "must be a string")
        if isinstance(v, float) and not math.isfinite(v):
            raise _fail(f"{path}.{k}", f"must be a string (got {v!r})")
        out[k] = str(v)
    return out


def _annotations(value: Mapping[str, Any] | None, path: str) -> dict[str, str]:
    out = {}
    for k, v in (value or {}).items():
        if not _LABEL_RE.match(k):
            raise _fail(f"{path}.{k}", "is not a valid annotation name")
        if not isinstance(v, str):
            raise _fail(f"{path}.{k}", "must be a string")
        out[k] = v
    return out


_SEVERITY_KEYS = {"page": "page_alert", "ticket": "ticket_alert"}


def _alerting(m: AlertingIn, path: str) -> tuple[Alerting, tuple[str, ...]]:
    """Sloth's ``alerting`` block, and the severities it switches off."""
    rules, off = {}, []
    for sev, key in _SEVERITY_KEYS.items():
        r = getattr(m, key) or AlertRuleIn()
        if r.disable:
            off.append(sev)
        rules[sev] = AlertRule(
            _labels(r.labels, f"{path}.{key}.labels"), _annotations(r.annotations, f"{path}.{key}.annotations")
        )
    return (
        Alerting(
            m.name,
            _labels(m.labels, f"{path}.labels"),
            _annotations(m.annotations, f"{path}.annotations"),
            rules["page"],
            rules["ticket"],
        ),
        tuple(off),
    )


def _kind_fields(raw: Mapping[str, Any], kind: str, path: str) -> dict[str, Any]:
    """The SLO's fields that belong to its kind; a field of another kind (or of none) is refused."""
    from harness.slo.kinds import registry

    own = get_kind(kind).fields.model_fields
    out = {}
    for key, value in raw.items():
        if key in SLOIn.model_fields:
            continue
        if key not in own:
            others = [k for k, v in registry().items() if key in v.fields.model_fields]
            if others:
                raise _fail(f"{path}.{key}", f"is only for {', '.join(others)} SLOs, not {kind}")
            known = [*SLOIn.model_fields, *own]
            raise _fail(f"{path}.{key}", f"unknown field; expected one of {', '.join(known)}")
        out[key] = value
    return out


def _slo(raw: Any, path: str) -> SLO:
    m = _mapping(raw, path)
    base = _validate(SLOIn, {k: v for k, v in m.items() if k in SLOIn.model_fields}, path)
    if base.sli not in SLI_KINDS:
        raise _fail(f"{path}.sli", f"must be one of {', '.join(SLI_KINDS)} (got {base.sli!r})")
    kind = get_kind(base.sli)
    try:
        fields = kind.fields.model_validate(_kind_fields(m, base.sli, path))
    except ValidationError as exc:
        message = first_error(exc, path)
        if message.endswith(": is required"):
            message = f"{message} for a {base.sli} SLO"
        raise SpecError(message) from None
    period = base.period
    defaulted = base.windows is None
    windows = windows_for_period(period) if defaulted else _windows(base.windows, f"{path}.windows", period)
    alerting, off = _alerting(base.alerting, f"{path}.alerting") if base.alerting is not None else (Alerting(), ())
    check_windows(windows, period, path, f"{path}.period" if defaulted else None, off)
    windows = tuple(w for w in windows if w.severity not in off)
    promql = _promql(base.promql, f"{path}.promql") if base.promql is not None else None
    if base.segment is not None:
        _check_segment(base.sli, promql, f"{path}.segment")
    labels = _labels(base.labels, f"{path}.labels")
    slo = SLO(
        base.name,
        base.sli,
        base.objective,
        period,
        windows=windows,
        description=base.description or "",
        promql=promql,
        labels=labels,
        alerting=alerting,
        **kind.options(fields, path),
        segment=base.segment,
    )
    kind.check(slo, path)
    return slo


def _check_segment(sli: str, promql: Mapping[str, str] | None, path: str) -> None:
    """A segment selects records by their ``segment`` column and series by their ``segment`` label:
    an SLO whose events come from elsewhere (a feedback log, its own queries) cannot be narrowed so."""
    from harness.slo.kinds import RecordsKind

    if not isinstance(get_kind(sli), RecordsKind):
        raise _fail(path, f"is only for SLOs counted from the request records, not {sli}")
    if promql is not None:
        raise _fail(path, "cannot narrow the SLO's own promql queries: put the segment's label matcher in them")


def _native(doc: Mapping[str, Any], source: str) -> SLOSpec:
    spec = _validate(SpecIn, doc, "")
    slos = tuple(_slo(raw, f"slos[{i}]") for i, raw in enumerate(spec.slos))
    _unique(slos, lambda i: f"slos[{i}].name")
    return SLOSpec(
        spec.service,
        slos,
        _labels(spec.selector, "selector", ()),
        spec.price_per_hour,
        spec.traffic_rps,
        source,
        _labels(spec.labels, "labels"),
    )


def _unique(slos: tuple[SLO, ...], where) -> None:
    seen: set[str] = set()
    for i, s in enumerate(slos):
        if s.name in seen:
            raise _fail(where(i), f"duplicate SLO name {s.name!r}")
        seen.add(s.name)


def native_spec(docs: list[Any], source: str) -> SLOSpec:
    """The spec of the YAML documents of a native spec (one document); ``SpecError`` with the
    path of the bad field (``harness.slo.specfile`` reads the file and adds its name)."""
    if len(docs) != 1:
        raise _fail("", "a native spec is one YAML document")
    return _native(_mapping(docs[0], ""), source)
