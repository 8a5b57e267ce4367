"""OpenSLO v1 documents read faithfully, or refused with the path of what is not supported.

What is read: ``SLO`` with its SLI inline or by ``indicatorRef`` to a ``kind: SLI`` document of the
same file; ``ratioMetric`` (good/total, bad/total, or ``raw`` with ``rawType``) and
``thresholdMetric`` (with the objective's ``op`` and ``value``, in the metric's own unit) over
Prometheus queries, used as written; ``target`` or ``targetPercent``; a rolling ``timeWindow``;
``budgetingMethod: Occurrences``; ``alertPolicies`` (inline or by ref) with one burn-rate
condition each (inline or by ref); ``metadata.labels``; the ``Service``, ``AlertPolicy``,
``AlertCondition`` and ``AlertNotificationTarget`` kinds. A file may hold one object per YAML
document or a YAML list of objects (as OpenSLO's SDK writes them).

A ``metricSourceRef`` (or a ``DataSource``) only names the source: the Prometheus asked is the one
given to ``harness slo --prometheus`` or loading the rules. A multi-valued label is written as one
comma-separated value. Refused, each in one line naming its path: other metric sources, calendar
windows, ``Timeslices`` and ``RatioTimeslices``, composite objectives, month, quarter and year
durations, alerts on a burn rate falling below a threshold, no-data and
resolved alerts, and any field the specification does not define.

A Prometheus query of a ratio gives a rate over a window and so carries ``{{window}}`` (or
Sloth's ``{{.window}}``) where the range goes, e.g. ``sum(rate(http_requests_total[{{window}}]))``;
a threshold metric's query is an instant value, sampled over each window as a subquery.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Annotated, Any, Literal, Mapping

from pydantic import Field, StringConstraints, ValidationError

from harness.duration import format_duration, parse_duration
from harness.slo.alert_windows import SEVERITIES, AlertWindow, windows_for_period
from harness.slo.spec import (
    _LABEL_RE,
    _WINDOW_MARKS,
    DEFAULT_PERIOD_S,
    RESERVED_LABELS,
    SLO,
    Alerting,
    AlertRule,
    SLOSpec,
    SpecError,
    check_windows,
)
from harness.text import short_repr
from harness.validation import Strict, first_error

__all__ = ["API_VERSION", "KIND_ANNOTATION", "read_openslo", "is_openslo"]

API_VERSION = "openslo/v1"
# A records-based SLI kind for an SLO whose queries show one of the harness's own SLIs.
KIND_ANNOTATION = "harness/sli"

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Text = Annotated[str, StringConstraints(max_length=1050)]
Op = Literal["lte", "gte", "lt", "gt"]


class Metadata(Strict):
    name: Name
    displayName: str | None = None
    labels: dict[str, Any] | None = None
    annotations: dict[str, Any] | None = None


class MetricSource(Strict):
    metricSourceRef: str | None = None
    type: str | None = None
    spec: dict[str, Any] | None = None


class Metric(Strict):
    metricSource: MetricSource


class PrometheusQuery(Strict):
    query: Annotated[str, StringConstraints(min_length=1)]


class RatioMetric(Strict):
    counter: bool | None = None
    good: Metric | None = None
    bad: Metric | None = None
    total: Metric | None = None
    rawType: Literal["success", "failure"] | None = None
    raw: Metric | None = None


class SLISpec(Strict):
    description: Text | None = None
    thresholdMetric: Metric | None = None
    ratioMetric: RatioMetric | None = None


class Indicator(Strict):
    metadata: Metadata
    spec: SLISpec


class TimeWindow(Strict):
    duration: Any
    isRolling: bool | None = None
    calendar: Any = None


class Objective(Strict):
    displayName: str | None = None
    op: Op | None = None
    value: float | None = None
    target: float | None = None
    targetPercent: float | None = None
    timeSliceTarget: float | None = None
    timeSliceWindow: Any = None
    indicator: Any = None
    indicatorRef: Any = None
    compositeWeight: float | None = None


class SLOBody(Strict):
    description: Text | None = None
    service: Name
    indicator: Indicator | None = None
    indicatorRef: str | None = None
    timeWindow: list[TimeWindow] | None = Field(None, min_length=1, max_length=1)
    budgetingMethod: Literal["Occurrences", "Timeslices", "RatioTimeslices"]
    objectives: list[Objective] = Field(min_length=1)
    alertPolicies: list[dict[str, Any]] | None = None


class BurnRate(Strict):
    kind: Literal["burnrate"] = "burnrate"
    op: Op
    threshold: float
    lookbackWindow: Any
    alertAfter: Any = None


class ConditionBody(Strict):
    description: Text | None = None
    severity: str
    condition: BurnRate


class PolicyBody(Strict):
    description: Text | None = None
    alertWhenNoData: bool | None = None
    alertWhenResolved: bool | None = None
    alertWhenBreaching: bool | None = None
    conditions: list[dict[str, Any]] = Field(min_length=1, max_length=1)
    notificationTargets: list[dict[str, Any]] = Field(min_length=1)


class TargetBody(Strict):
    description: Text | None = None
    target: str


class ServiceBody(Strict):
    description: Text | None = None


class DataSourceBody(Strict):
    description: Text | None = None
    type: str
    connectionDetails: Any = None


class _Document(Strict):
    apiVersion: str
    kind: str
    metadata: Metadata


class ServiceDoc(_Document):
    spec: ServiceBody | None = None


class DataSourceDoc(_Document):
    spec: DataSourceBody


class SLIDoc(_Document):
    spec: SLISpec


class SLODoc(_Document):
    spec: SLOBody


class PolicyDoc(_Document):
    spec: PolicyBody


class ConditionDoc(_Document):
    spec: ConditionBody


class TargetDoc(_Document):
    spec: TargetBody


class _Ref(Strict):
    pass


class PolicyRef(_Ref):
    alertPolicyRef: Name


class ConditionRef(_Ref):
    conditionRef: Name


class TargetRef(_Ref):
    targetRef: Name


_KINDS: dict[str, type[_Document]] = {
    "Service": ServiceDoc,
    "SLI": SLIDoc,
    "SLO": SLODoc,
    "AlertPolicy": PolicyDoc,
    "AlertCondition": ConditionDoc,
    "AlertNotificationTarget": TargetDoc,
    "DataSource": DataSourceDoc,
}


def _fail(path: str, message: str) -> SpecError:
    path = path.lstrip(".")  # the objects of a one-object file have no [i] before their path
    return SpecError(f"{path}: {message}" if path else message)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _model(cls, value: Any, path: str):
    try:
        return cls.model_validate(value)
    except ValidationError as exc:
        raise SpecError(first_error(exc, path).lstrip(".")) from None


def is_openslo(doc: Any) -> bool:
    """Whether a YAML document is an OpenSLO object, or a list of them."""
    if isinstance(doc, list):
        return bool(doc) and all(is_openslo(d) for d in doc)
    return isinstance(doc, Mapping) and str(doc.get("apiVersion", "")).startswith("openslo/")


# ---- durations, numbers, labels --------------------------------------------------------------

_SHORTHAND = re.compile(r"^(\d+)([mhdwMQY])$")


def _shorthand(value: Any, path: str, allow_zero: bool = False) -> float:
    """OpenSLO's duration shorthand (``5m``, ``1h``, ``28d``, ``4w``) in seconds, at most ten years."""
    m = _SHORTHAND.match(value) if isinstance(value, str) else None
    if m is None:
        raise _fail(path, f"must be a duration such as 5m, 1h, 28d or 4w (got {short_repr(value)})")
    if m.group(2) in "MQY":
        raise _fail(
            path,
            f"{short_repr(value)} not supported: months, quarters and years have no fixed length; "
            "give days or weeks (e.g. 30d, 4w)",
        )
    if not m.group(1).strip("0") and allow_zero:
        return 0.0
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise _fail(path, str(exc)) from None


def _decimal_text(x: float) -> str:
    return format(Decimal(repr(float(x))).normalize(), "f") if x != int(x) else str(int(x))


def _labels(meta: Metadata, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (meta.labels or {}).items():
        p = f"{path}.{key}"
        if not _LABEL_RE.match(key) or key.startswith("__"):
            raise _fail(p, "not supported as a Prometheus label name (letters, digits and _ only)")
        if key in RESERVED_LABELS:
            raise _fail(p, "is set by the generated rules; choose another label name")
        values = value if isinstance(value, list) else [value]
        if not values or any(isinstance(v, bool) or not isinstance(v, (str, int)) for v in values):
            raise _fail(p, f"must be a string or a list of strings (got {short_repr(value)})")
        # A Prometheus label has one value: several are written as one, comma-separated.
        out[key] = ",".join(str(v) for v in values)
    return out


# ---- the objects of one file ------------------------------------------------------------------


@dataclass
class _Objects:
    """Every object of the file by kind and name, with the path of each."""

    by_kind: dict[str, dict[str, tuple[str, Any]]]
    slos: list[tuple[str, SLODoc]]

    def find(self, kind: str, name: str, path: str) -> tuple[str, Any]:
        found = self.by_kind.get(kind, {}).get(name)
        if found is None:
            raise _fail(path, f"no {kind} named {name!r} in this file")
        return found


def _objects(docs: list[Any]) -> _Objects:
    flat: list[tuple[str, Any]] = []
    for i, d in enumerate(docs):
        if isinstance(d, list):
            flat.extend((f"[{i}][{j}]", item) for j, item in enumerate(d))
        else:
            flat.append((f"[{i}]", d))
    if len(flat) == 1:
        flat = [("", flat[0][1])]
    by_kind: dict[str, dict[str, tuple[str, Any]]] = {}
    slos: list[tuple[str, SLODoc]] = []
    for path, raw in flat:
        if not isinstance(raw, Mapping):
            raise _fail(path, f"must be a mapping (got {type(raw).__name__})")
        version = raw.get("apiVersion")
        if version != API_VERSION:
            raise _fail(_join(path, "apiVersion"), f"{version!r} not supported (only {API_VERSION})")
        kind = raw.get("kind")
        if not isinstance(kind, str) or kind not in _KINDS:
            known = ", ".join(_KINDS)
            raise _fail(_join(path, "kind"), f"{kind!r} not supported (only {known})")
        doc = _model(_KINDS[kind], raw, path)
        name = doc.metadata.name
        if name in by_kind.setdefault(kind, {}):
            raise _fail(_join(path, "metadata.name"), f"a second {kind} named {name!r}")
        by_kind[kind][name] = (path, doc)
        if kind == "SLO":
            slos.append((path, doc))
    if not slos:
        raise _fail("", "no OpenSLO object of kind SLO found")
    return _Objects(by_kind, slos)


# ---- SLIs: the document's queries, used as written ---------------------------------------------


def _query(objects: _Objects, metric: Metric, path: str, windowed: bool) -> str:
    """The metric's Prometheus query. A ``metricSourceRef`` only names the source: the Prometheus asked is
    ``harness slo --prometheus URL`` (or the one that loads the rules)."""
    src = metric.metricSource
    p = f"{path}.metricSource"
    kind = src.type
    if kind is None and src.metricSourceRef is not None:
        kind = objects.find("DataSource", src.metricSourceRef, f"{p}.metricSourceRef")[1].spec.type
    if kind is None:
        raise _fail(f"{p}.type", "is required (Prometheus), or a metricSourceRef to a DataSource in this file")
    if kind.lower() != "prometheus":
        raise _fail(f"{p}.type", f"{kind!r} not supported (only Prometheus)")
    query = _model(PrometheusQuery, src.spec if src.spec is not None else {}, f"{p}.spec").query
    marked = any(mark in query for mark in _WINDOW_MARKS)
    if windowed and not marked:
        raise _fail(
            f"{p}.spec.query",
            "must contain {{window}} (or {{.window}}) where the range goes, "
            "e.g. sum(rate(http_requests_total[{{window}}])): the rules evaluate it over each alert window",
        )
    if not windowed and marked:
        raise _fail(
            f"{p}.spec.query",
            "a threshold metric is an instant value and takes no {{window}}; it is sampled over each window",
        )
    return query


_OPS = {"lte": "<=", "gte": ">=", "lt": "<", "gt": ">"}


def _ratio_promql(
    objects: _Objects, ratio: RatioMetric, path: str, objectives: list[Objective], obj_path: str
) -> dict[str, str]:
    for i, o in enumerate(objectives):
        for key in ("op", "value"):
            if getattr(o, key) is not None:
                raise _fail(
                    f"{obj_path}[{i}].{key}", "only for a thresholdMetric SLI (a ratioMetric's objective is its target)"
                )
    if ratio.raw is not None:
        for key in ("good", "bad", "total"):
            if getattr(ratio, key) is not None:
                raise _fail(f"{path}.{key}", "cannot be used together with raw")
        if ratio.rawType is None:
            raise _fail(f"{path}.rawType", "is required with raw (success or failure)")
        q = _query(objects, ratio.raw, f"{path}.raw", windowed=True)
        return {"error_ratio": q if ratio.rawType == "failure" else f"1 - (\n{q}\n)"}
    if ratio.rawType is not None:
        raise _fail(f"{path}.rawType", "only with raw")
    if ratio.total is None:
        raise _fail(f"{path}.total", "is required (with good or bad), or give raw")
    if (ratio.good is None) == (ratio.bad is None):
        raise _fail(f"{path}.good", "give either good or bad with total, not both or neither")
    if ratio.good is not None:
        good = _query(objects, ratio.good, f"{path}.good", windowed=True)
        return {"good": good, "total": _query(objects, ratio.total, f"{path}.total", windowed=True)}
    bad = _query(objects, ratio.bad, f"{path}.bad", windowed=True)
    return {"errors": bad, "total": _query(objects, ratio.total, f"{path}.total", windowed=True)}


def _threshold_promql(
    objects: _Objects, metric: Metric, path: str, objectives: list[Objective], obj_path: str
) -> dict[str, str]:
    if len(objectives) != 1:
        raise _fail(f"{obj_path}[1]", "a thresholdMetric SLI has one objective")
    o = objectives[0]
    for key in ("op", "value"):
        if getattr(o, key) is None:
            raise _fail(f"{obj_path}[0].{key}", "is required for a thresholdMetric SLI")
    q = _query(objects, metric, path, windowed=False)
    good = f"(\n{q}\n) {_OPS[o.op]} bool {_decimal_text(o.value)}"
    # The share of the window's samples (one per rule evaluation) that miss the threshold.
    return {"error_ratio": f"1 - avg(avg_over_time((\n{good}\n)[{{{{window}}}}:]))"}


# ---- objectives, windows, alerts -----------------------------------------------------------------


def _objective(o: Objective, path: str) -> float:
    for key in ("indicator", "indicatorRef", "compositeWeight"):
        if getattr(o, key) is not None:
            raise _fail(f"{path}.{key}", "not supported: composite SLOs are not read")
    for key in ("timeSliceTarget", "timeSliceWindow"):
        if getattr(o, key) is not None:
            raise _fail(f"{path}.{key}", "only with budgetingMethod Timeslices, which is not supported")
    if (o.target is None) == (o.targetPercent is None):
        raise _fail(f"{path}.target", "give either target or targetPercent, not both or neither")
    if o.target is not None:
        if not 0.0 < o.target < 1.0:
            raise _fail(f"{path}.target", f"must be between 0 and 1 (exclusive; got {o.target!r})")
        return float(o.target)
    if not 0.0 < o.targetPercent < 100.0:
        raise _fail(f"{path}.targetPercent", f"must be between 0 and 100 (exclusive; got {o.targetPercent!r})")
    return float(Fraction(repr(float(o.targetPercent))) / 100)


def _period(body: SLOBody, path: str) -> tuple[float, str | None]:
    """The SLO's period in seconds, and the path of its duration (None: the default 30 days)."""
    if body.timeWindow is None:
        return float(DEFAULT_PERIOD_S), None
    tw, p = body.timeWindow[0], f"{path}.spec.timeWindow[0]"
    if tw.calendar is not None:
        raise _fail(f"{p}.calendar", "not supported: calendar-aligned windows are not read (only rolling ones)")
    if tw.isRolling is False:
        raise _fail(f"{p}.isRolling", "false not supported: calendar-aligned windows are not read (only rolling ones)")
    return _shorthand(tw.duration, f"{p}.duration"), f"{p}.duration"


def _resolve(objects: _Objects, item: Any, path: str, ref_cls, ref_key: str, kind: str, doc_cls) -> tuple[str, Any]:
    """An object given inline (``kind: X``) or by reference (``xRef: name``): its path and document."""
    if isinstance(item, Mapping) and ref_key in item:
        ref = _model(ref_cls, item, path)
        return objects.find(kind, getattr(ref, ref_key), f"{path}.{ref_key}")
    if isinstance(item, Mapping) and item.get("kind") != kind:
        raise _fail(f"{path}.kind", f"must be {kind} for an inline {kind} (or give {ref_key})")
    return path, _model(doc_cls, {"apiVersion": API_VERSION, **item} if isinstance(item, Mapping) else item, path)


def _alerts(objects: _Objects, body: SLOBody, path: str, period_s: float) -> tuple[tuple[AlertWindow, ...], Alerting]:
    windows: list[AlertWindow] = []
    after: dict[str, tuple[float, str]] = {}
    targets: dict[str, list[str]] = {s: [] for s in SEVERITIES}
    for i, item in enumerate(body.alertPolicies or []):
        p_path, policy = _resolve(
            objects, item, f"{path}.spec.alertPolicies[{i}]", PolicyRef, "alertPolicyRef", "AlertPolicy", PolicyDoc
        )
        sp = f"{p_path}.spec"
        if policy.spec.alertWhenBreaching is False:
            raise _fail(f"{sp}.alertWhenBreaching", "false not supported: the policy would give no alert")
        for key in ("alertWhenNoData", "alertWhenResolved"):
            if getattr(policy.spec, key):
                raise _fail(
                    f"{sp}.{key}",
                    "true not supported: the rules alert on burn rates only "
                    "(resolved notices are Alertmanager's send_resolved)",
                )
        c_path, cond = _resolve(
            objects,
            policy.spec.conditions[0],
            f"{sp}.conditions[0]",
            ConditionRef,
            "conditionRef",
            "AlertCondition",
            ConditionDoc,
        )
        cp = f"{c_path}.spec"
        severity = cond.spec.severity
        if severity not in SEVERITIES:
            raise _fail(f"{cp}.severity", f"{severity!r} not supported (only {', '.join(SEVERITIES)})")
        c = cond.spec.condition
        if c.op in ("lt", "lte"):
            raise _fail(
                f"{cp}.condition.op",
                f"{c.op!r} not supported: a burn-rate alert fires when the burn rate reaches its threshold (gt or gte)",
            )
        if c.threshold <= 0:
            raise _fail(f"{cp}.condition.threshold", f"must be above 0 (got {c.threshold!r})")
        lookback = _shorthand(c.lookbackWindow, f"{cp}.condition.lookbackWindow")
        if lookback > period_s:
            raise _fail(
                f"{cp}.condition.lookbackWindow",
                f"must fit inside the period ({c.lookbackWindow} > {format_duration(period_s)})",
            )
        wait = 0.0 if c.alertAfter is None else _shorthand(c.alertAfter, f"{cp}.condition.alertAfter", True)
        if severity in after and after[severity][0] != wait:
            raise _fail(
                f"{cp}.condition.alertAfter",
                f"differs from the other {severity} condition's "
                f"({after[severity][1]}): one {severity} alert has one alertAfter",
            )
        after[severity] = (wait, str(c.alertAfter or "0m"))
        windows.append(
            AlertWindow(severity, float(c.threshold), lookback, lookback, None, strict=c.op == "gt", alert_after_s=wait)
        )
        for j, t in enumerate(policy.spec.notificationTargets):
            _, target = (
                (f"{sp}.notificationTargets[{j}]", _model(TargetRef, t, f"{sp}.notificationTargets[{j}]"))
                if isinstance(t, Mapping) and "targetRef" in t
                else _resolve(
                    objects,
                    t,
                    f"{sp}.notificationTargets[{j}]",
                    TargetRef,
                    "targetRef",
                    "AlertNotificationTarget",
                    TargetDoc,
                )
            )
            name = target.targetRef if isinstance(target, TargetRef) else target.metadata.name
            if name not in targets[severity]:
                targets[severity].append(name)
    rules = {s: AlertRule(annotations={"notification_targets": ", ".join(t)} if t else {}) for s, t in targets.items()}
    return tuple(windows), Alerting(page=rules["page"], ticket=rules["ticket"])


# ---- SLOs -------------------------------------------------------------------------------------------


def _kind(annotations: Mapping[str, Any], path: str) -> str:
    from harness.slo.kinds import RecordsKind, registry
    from harness.slo.spec import QUERY_KIND

    kind = annotations.get(KIND_ANNOTATION)
    if kind is None:
        return QUERY_KIND
    # the kinds the records give with their fields' defaults (an OpenSLO file has no place for them)
    usable = [
        k
        for k, v in registry().items()
        if isinstance(v, RecordsKind) and not any(f.is_required() for f in v.fields.model_fields.values())
    ]
    if kind not in usable:
        raise _fail(
            f"{path}.{KIND_ANNOTATION}",
            f"must name an SLI kind the records can give without fields of its own (a threshold), "
            f"one of {', '.join(usable)} (got {kind!r}); write latency and quality SLOs in the native spec",
        )
    return kind


def _slo(objects: _Objects, path: str, doc: SLODoc) -> list[SLO]:
    body = doc.spec
    if body.budgetingMethod != "Occurrences":
        raise _fail(
            f"{path}.spec.budgetingMethod",
            f"{body.budgetingMethod!r} not supported (only Occurrences: good events over all events)",
        )
    period, period_path = _period(body, path)
    if (body.indicator is None) == (body.indicatorRef is None):
        raise _fail(f"{path}.spec.indicator", "give either indicator or indicatorRef, not both or neither")
    if body.indicator is not None:
        ind_path, indicator = f"{path}.spec.indicator", body.indicator
    else:
        ind_path, indicator = objects.find("SLI", body.indicatorRef, f"{path}.spec.indicatorRef")
    sli = indicator.spec
    sp, obj_path = f"{ind_path}.spec", f"{path}.spec.objectives"
    if (sli.ratioMetric is None) == (sli.thresholdMetric is None):
        raise _fail(f"{sp}.ratioMetric", "give either ratioMetric or thresholdMetric, not both or neither")
    if sli.ratioMetric is not None:
        promql = _ratio_promql(objects, sli.ratioMetric, f"{sp}.ratioMetric", body.objectives, obj_path)
    else:
        promql = _threshold_promql(objects, sli.thresholdMetric, f"{sp}.thresholdMetric", body.objectives, obj_path)
    labels = {
        **_labels(indicator.metadata, f"{ind_path}.metadata.labels"),
        **_labels(doc.metadata, f"{path}.metadata.labels"),
    }
    annotations = {**(indicator.metadata.annotations or {}), **(doc.metadata.annotations or {})}
    kind = _kind(annotations, f"{path}.metadata.annotations")
    from harness.slo.kinds import get

    options = get(kind).options(get(kind).fields.model_validate({}), path)  # the kind's defaults
    if body.alertPolicies:
        windows, alerting = _alerts(objects, body, path, period)
    else:
        windows, alerting = windows_for_period(period), Alerting()
        check_windows(windows, period, path, period_path or f"{path}.spec")
    description = body.description or doc.metadata.displayName or ""
    out = []
    for i, o in enumerate(body.objectives):
        target = _objective(o, f"{obj_path}[{i}]")
        name = doc.metadata.name if len(body.objectives) == 1 else f"{doc.metadata.name}-{i}"
        out.append(
            SLO(
                name,
                kind,
                target,
                period,
                windows=windows,
                description=description,
                promql=promql,
                labels=labels,
                alerting=alerting,
                **options,
            )
        )
    return out


def read_openslo(docs: list[Any], source: str) -> SLOSpec:
    """The SLOs of a file of OpenSLO v1 objects; ``SpecError`` names the path of what cannot be read."""
    objects = _objects(docs)
    services = {doc.spec.service for _, doc in objects.slos}
    if len(services) != 1:
        raise _fail("", f"all OpenSLO SLOs must be about one service (found {', '.join(sorted(services))})")
    slos: list[SLO] = []
    seen: set[str] = set()
    for path, doc in objects.slos:
        for s in _slo(objects, path, doc):
            if s.name in seen:
                raise _fail(_join(path, "metadata.name"), f"duplicate SLO name {s.name!r}")
            seen.add(s.name)
            slos.append(s)
    return SLOSpec(services.pop(), tuple(slos), {}, None, None, source)
