"""The SLO spec: frozen declarations of a service's SLOs, read from YAML (native or OpenSLO v1).

A spec declares; ``sli``, ``budget``, ``burn_rate``, ``prometheus`` and ``rules`` compute.
Every invalid field is reported with its path, e.g. ``slos[1].objective: must be between 0 and 1``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from harness.errors import DataError, InputMissingError

__all__ = [
    "SLI_KINDS",
    "SEVERITIES",
    "SpecError",
    "AlertWindow",
    "SLO",
    "SLOSpec",
    "DEFAULT_WINDOWS",
    "DEFAULT_PERIOD_S",
    "DEFAULT_BLOCKLIST",
    "DEFAULT_QUALITY_METRIC",
    "parse_duration",
    "format_duration",
    "load_spec",
    "parse_spec",
]

SLI_KINDS = ("latency", "availability", "quality", "safety", "coverage")
SEVERITIES = ("page", "ticket")
_NEEDS_THRESHOLD = ("latency", "quality")
DEFAULT_PERIOD_S = 30 * 86400
# Words no caption may contain: a safety SLI counts a caption that carries one as unsafe even when
# the service did not flag it (the reference server's filter blocks the same words).
DEFAULT_BLOCKLIST: tuple[str, ...] = ("blood", "corpse", "gore", "gun", "kill", "naked", "nude", "weapon")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_LABEL_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")


class SpecError(DataError):
    """An invalid SLO spec; the message starts with the path of the bad field."""


def parse_duration(value: Any) -> float:
    """Seconds in a Prometheus-style duration (``5m``, ``1h30m``, ``30d``) or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 5m, 1h or 30d")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError("must be a positive duration")
        return float(value)
    text = str(value).strip()
    if not text or _DURATION_RE.sub("", text) != "":
        raise ValueError(f"must be a duration such as 5m, 1h or 30d (got {value!r})")
    seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION_RE.findall(text))
    if seconds <= 0:
        raise ValueError(f"must be a positive duration (got {value!r})")
    return float(seconds)


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for ``seconds`` using d, h, m or s (``300`` -> ``5m``)."""
    s = int(round(seconds))
    if s <= 0 or abs(seconds - s) > 1e-9:
        return f"{int(round(seconds * 1000))}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0:
            return f"{s // size}{unit}"
    return f"{s}s"


@dataclass(frozen=True)
class AlertWindow:
    """A multiwindow burn-rate alert: fires when both windows burn at ``burn_rate`` or faster."""

    severity: str
    burn_rate: float
    long_s: float
    short_s: float

    @property
    def long(self) -> str:
        return format_duration(self.long_s)

    @property
    def short(self) -> str:
        return format_duration(self.short_s)

    def to_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "burn_rate": self.burn_rate, "long": self.long, "short": self.short}


DEFAULT_WINDOWS: tuple[AlertWindow, ...] = (
    AlertWindow("page", 14.4, 3600.0, 300.0),
    AlertWindow("page", 6.0, 6 * 3600.0, 1800.0),
    AlertWindow("ticket", 1.0, 3 * 86400.0, 6 * 3600.0),
)


@dataclass(frozen=True)
class SLO:
    """One objective over one SLI kind. ``threshold``: seconds (latency) or quality floor."""

    name: str
    sli: str
    objective: float
    period_s: float = float(DEFAULT_PERIOD_S)
    threshold: float | None = None
    windows: tuple[AlertWindow, ...] = DEFAULT_WINDOWS
    description: str = ""
    promql: Mapping[str, str] | None = field(default=None, hash=False)
    blocklist: tuple[str, ...] = ()
    metric: str | None = None

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
        return d


@dataclass(frozen=True)
class SLOSpec:
    """A service and its SLOs; ``selector`` adds label matchers to every PromQL selector."""

    service: str
    slos: tuple[SLO, ...]
    selector: Mapping[str, str] = field(default_factory=dict, hash=False)
    price_per_hour: float | None = None
    traffic_rps: float | None = None
    source: str = ""

    def slo(self, name: str) -> SLO:
        for s in self.slos:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "selector": dict(self.selector),
            "price_per_hour": self.price_per_hour,
            "traffic_rps": self.traffic_rps,
            "slos": [s.to_dict() for s in self.slos],
        }


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


def _windows(value: Any, path: str) -> tuple[AlertWindow, ...]:
    if not isinstance(value, list) or not value:
        raise _fail(path, "must be a non-empty list of {severity, burn_rate, long, short}")
    out = []
    for i, raw in enumerate(value):
        p = f"{path}[{i}]"
        w = _mapping(raw, p)
        _known(w, p, ("severity", "burn_rate", "long", "short"))
        for key in ("severity", "burn_rate", "long", "short"):
            if key not in w:
                raise _fail(f"{p}.{key}", "is required")
        sev = w["severity"]
        if sev not in SEVERITIES:
            raise _fail(f"{p}.severity", f"must be one of {', '.join(SEVERITIES)} (got {sev!r})")
        rate = _number(w["burn_rate"], f"{p}.burn_rate")
        if rate <= 0:
            raise _fail(f"{p}.burn_rate", f"must be above 0 (got {w['burn_rate']!r})")
        long_s, short_s = _duration(w["long"], f"{p}.long"), _duration(w["short"], f"{p}.short")
        if short_s >= long_s:
            raise _fail(f"{p}.short", f"must be shorter than long ({w['short']} >= {w['long']})")
        out.append(AlertWindow(sev, rate, long_s, short_s))
    return tuple(out)


def _promql(value: Any, path: str) -> dict[str, str]:
    m = _mapping(value, path)
    _known(m, path, ("errors", "total"))
    out = {}
    for key in ("errors", "total"):
        if key not in m:
            raise _fail(f"{path}.{key}", "is required")
        q = _string(m[key], f"{path}.{key}")
        if "{{window}}" not in q:
            raise _fail(f"{path}.{key}", "must contain {{window}} where the range goes, e.g. [{{window}}]")
        out[key] = q
    return out


_SLO_FIELDS = (
    "name", "sli", "objective", "period", "threshold", "windows", "description", "promql", "blocklist", "metric",
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
    windows = _windows(m["windows"], f"{path}.windows") if "windows" in m else DEFAULT_WINDOWS
    for i, w in enumerate(windows):
        if w.long_s > period:
            raise _fail(f"{path}.windows[{i}].long", f"must not exceed the period ({w.long} > {format_duration(period)})")
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
    return SLO(name, kind, objective, period, threshold, windows, desc, promql, blocklist, metric)


def _selector(value: Any, path: str) -> dict[str, str]:
    m = _mapping(value, path)
    out = {}
    for k, v in m.items():
        if not isinstance(k, str) or not _LABEL_RE.match(k):
            raise _fail(f"{path}.{k}", "is not a valid Prometheus label name")
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise _fail(f"{path}.{k}", "must be a string")
        out[k] = str(v)
    return out


def _optional_positive(m: Mapping[str, Any], key: str, allow_zero: bool) -> float | None:
    if m.get(key) is None:
        return None
    v = _number(m[key], key)
    if v < 0 or (v == 0 and not allow_zero):
        raise _fail(key, f"must be {'0 or more' if allow_zero else 'above 0'} (got {m[key]!r})")
    return v


def _native(doc: Mapping[str, Any], source: str) -> SLOSpec:
    _known(doc, "", ("version", "service", "selector", "price_per_hour", "traffic_rps", "slos"))
    if doc.get("version", 1) != 1:
        raise _fail("version", f"must be 1 (got {doc['version']!r})")
    if "service" not in doc:
        raise _fail("service", "is required")
    service = _string(doc["service"], "service", _NAME_RE)
    selector = _selector(doc["selector"], "selector") if doc.get("selector") is not None else {}
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


def _openslo_slo(doc: Mapping[str, Any], path: str, slis: Mapping[str, Mapping[str, Any]]) -> tuple[str, list[SLO]]:
    meta = _mapping(doc.get("metadata"), f"{path}.metadata")
    name = _string(meta.get("name"), f"{path}.metadata.name", _NAME_RE)
    spec = _mapping(doc.get("spec"), f"{path}.spec")
    service = _string(spec.get("service"), f"{path}.spec.service", _NAME_RE)
    if "indicator" in spec:
        indicator = _mapping(spec["indicator"], f"{path}.spec.indicator")
    elif "indicatorRef" in spec:
        ref = _string(spec["indicatorRef"], f"{path}.spec.indicatorRef")
        if ref not in slis:
            raise _fail(f"{path}.spec.indicatorRef", f"no SLI document named {ref!r}")
        indicator = slis[ref]
    else:
        raise _fail(f"{path}.spec.indicator", "is required (or indicatorRef)")
    annotations = {**(meta.get("labels") or {}), **(meta.get("annotations") or {})}
    ind_meta = indicator.get("metadata") or {}
    annotations = {**(ind_meta.get("labels") or {}), **(ind_meta.get("annotations") or {}), **annotations}
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
                       DEFAULT_WINDOWS, str(spec.get("description") or meta.get("displayName") or ""),
                       None, DEFAULT_BLOCKLIST if kind == "safety" else (),
                       DEFAULT_QUALITY_METRIC if kind == "quality" else None))
    return service, out


def _openslo(docs: list[Any], source: str) -> SLOSpec:
    slis: dict[str, Mapping[str, Any]] = {}
    for i, d in enumerate(docs):
        if isinstance(d, Mapping) and d.get("kind") == "SLI":
            meta = _mapping(d.get("metadata"), f"[{i}].metadata")
            slis[_string(meta.get("name"), f"[{i}].metadata.name")] = d
    services: list[str] = []
    slos: list[tuple[int, SLO]] = []
    for i, d in enumerate(docs):
        path = f"[{i}]"
        d = _mapping(d, path)
        if d.get("apiVersion") != "openslo/v1":
            raise _fail(f"{path}.apiVersion", f"must be openslo/v1 (got {d.get('apiVersion')!r})")
        if d.get("kind") == "Service":
            services.append(_string((d.get("metadata") or {}).get("name"), f"{path}.metadata.name", _NAME_RE))
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
    return parse_spec(p.read_text(encoding="utf-8"), str(p))
