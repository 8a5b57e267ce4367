"""A Prometheus scope as a judged target (Kayenta's scope): the reference server's counters under a
label selector, over a window, turned into one row per request that the judge's metrics can test.

What a scope gives, from the server's own metrics over ``[since, until)``:

- **requests** (``caption_requests_total``, by ``status`` and ``model_version``): one row per
  request counted, with its status; ``outcome`` is ``ok`` for a 2xx, ``http_error`` otherwise. A 499
  (the client gave up before the answer) is a row with status 0 and outcome ``timeout``, as the
  client's own record of it would be. Errors (``error_rate``) are therefore as exact as the counts.
- **latency** (``caption_request_duration_seconds``): every row, answered or not, gets a duration
  of the histogram, each request placed at its bucket's upper bound (the ``+Inf`` bucket at the
  largest finite bound): latency is known to bucket resolution only. The histogram counts every
  status without saying which request took how long, so its durations are dealt to the rows in a
  fixed pseudo-random order; the answered rows' latencies are a share of the histogram.
- **confidence** (``caption_confidence``): the answered (2xx) rows get the histogram's values in
  bucket order, each at its bucket's upper bound.
- **time**: a request's start is not in the counters; the rows are spread evenly over the window.

Counts are each series' growth between the two instants (the value at ``until`` less the value at
``since``: exact), or, for a series whose counter reset in the window (a restarted server),
Prometheus' ``increase`` over the window, which extrapolates to the window's edges and is rounded
to whole requests.

What a scope cannot give is NoData, never a pass: there are no captions (blank, personal data,
degenerate, unusable answers, unsafe captions, caption length, the paired quality metrics and the
drift of the outputs), and no client timeouts (a request the server never answered is not counted;
``timeout_rate`` is NoData). Of the SLO spec only availability and latency SLIs are evaluated on
these rows (``SCOPE_SLIS``); the latency SLI is exact when its threshold is a bucket bound, and
counts a request of the bucket above it as slow otherwise. Records are the fuller source."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any

from harness.canary.side import Side
from harness.errors import DataError, ServiceUnavailableError, UsageError

__all__ = ["PREFIX", "SCOPE_SLIS", "PromScope", "is_scope", "check_selector", "check_url", "read_prom_side"]

PREFIX = "prometheus:"
# The SLIs of a spec evaluated on a scope's rows: the others need captions (coverage, safety) or
# references (quality).
SCOPE_SLIS = ("availability", "latency")

REQUESTS = "caption_requests_total"
DURATION = "caption_request_duration_seconds_bucket"
CONFIDENCE = "caption_confidence_bucket"
GAVE_UP = "499"  # the reference server's count of a request the client gave up on
SEED = 0  # the order the duration histogram is dealt to the rows in

_VALUE = r'"(?:[^"\\]|\\.)*"'
_MATCHER = rf"\s*[A-Za-z_][A-Za-z0-9_]*\s*(?:=~|!~|!=|=)\s*{_VALUE}\s*"
_SELECTOR = re.compile(rf"^\{{{_MATCHER}(?:,{_MATCHER})*,?\s*\}}$")
_URL = re.compile(r"^https?://[^/\s]+\S*$")


def is_scope(path: Any) -> bool:
    """Whether a source names a Prometheus scope (``prometheus:http://HOST:9090``)."""
    return str(path).startswith(PREFIX)


def check_selector(selector: str | None, option: str = "--selector") -> str:
    """The selector, stripped; a one-line ``UsageError`` naming ``option`` unless it is label
    matchers in braces, such as ``{app="captioner",track="canary"}``."""
    s = (selector or "").strip()
    if not _SELECTOR.match(s):
        raise UsageError(f'{option}: expected label matchers in braces, such as {{track="canary"}} (got {selector!r})')
    if re.search(r"[{,]\s*__name__\s*(?:=~|!~|!=|=)", s):
        raise UsageError(f"{option}: the metric name is the harness's to choose; match labels only")
    return s


def check_url(url: str, option: str = "--prometheus") -> str:
    u = url.strip()
    if not _URL.match(u):
        raise UsageError(f"{option}: give {PREFIX}http://HOST:9090 (got {PREFIX}{url})")
    return u.rstrip("/")


@dataclass(frozen=True)
class PromScope:
    """The series of one target: the Prometheus at ``url`` and the label ``selector`` that picks
    the target's series (``{app="captioner",track="canary"}``)."""

    url: str
    selector: str

    @classmethod
    def parse(cls, source: str, selector: str | None, option: str = "--scope") -> "PromScope":
        """A scope from ``prometheus:URL`` and a selector (one-line ``UsageError`` naming ``option``)."""
        if not is_scope(source):
            raise UsageError(f"{option}: a Prometheus scope is {PREFIX}http://HOST:9090 (got {source})")
        if selector is None:
            raise UsageError(f'{option}-selector: a Prometheus scope needs one, e.g. {{track="canary"}}')
        return cls(check_url(str(source)[len(PREFIX) :], option), check_selector(selector, f"{option}-selector"))

    def describe(self) -> str:
        return f"{PREFIX}{self.url} {self.selector}"


def _key(row: dict) -> tuple:
    return tuple(sorted((k, v) for k, v in row["metric"].items() if k != "__name__"))


def _values(rows: list[dict]) -> dict[tuple, float]:
    out = {}
    for r in rows:
        v = float(r["value"][1])
        if math.isfinite(v):
            out[_key(r)] = v
    return out


def _growth(src, name: str, selector: str, since: float, until: float, by: tuple[str, ...]) -> dict[tuple, int]:
    """Growth of the counter ``name`` under ``selector`` over the window, summed by the labels ``by``
    and rounded to whole counts: each series' value at ``until`` less its value at ``since`` (a
    series that appeared in the window from 0), or Prometheus' ``increase`` (extrapolated) for a
    series whose counter reset in the window."""
    w = f"{max(1, int(round(until - since)))}s"
    m = f"{name}{selector}"
    end = _values(src.query(f"last_over_time({m}[{w}])", until))
    if not end:
        return {}
    start = _values(src.query(m, since))
    reset = set(_values(src.query(f"resets({m}[{w}]) > 0", until)))
    increase = _values(src.query(f"increase({m}[{w}])", until)) if reset else {}
    sums: dict[tuple, float] = {}
    for key, v in end.items():
        grown = increase.get(key, 0.0) if key in reset else v - start.get(key, 0.0)
        labels = dict(key)
        group = tuple(labels.get(b, "") for b in by)
        sums[group] = sums.get(group, 0.0) + max(0.0, grown)
    return {k: int(round(v)) for k, v in sums.items()}


def _histogram(buckets: dict[tuple, int]):
    """The observations of a histogram's cumulative buckets (``le`` -> count), ascending, each at
    its bucket's upper bound; the ``+Inf`` bucket at the largest finite bound."""
    import numpy as np

    bounds = sorted((float(k[0]), v) for k, v in buckets.items() if k[0])
    finite = [b for b, _ in bounds if math.isfinite(b)]
    if not bounds or not finite:
        return np.empty(0)
    cum = np.maximum.accumulate(np.array([v for _, v in bounds], dtype=np.int64))
    counts = np.diff(np.concatenate([[0], cum]))
    at = np.array([b if math.isfinite(b) else max(finite) for b, _ in bounds], dtype=float)
    return np.repeat(at, counts)


def _spread(values, n: int):
    """``n`` values at evenly spaced quantiles of the ascending ``values`` (``values`` itself when
    there are ``n``): the counters and the histogram are read at slightly different instants."""
    import numpy as np

    if n == 0 or not len(values):
        return np.full(n, np.nan)
    return values[np.floor((np.arange(n) + 0.5) * len(values) / n).astype(int)]


def read_prom_side(scope: PromScope, since: float | None, until: float | None, source: Any = None):
    """One target's data from its Prometheus scope over ``[since, until)`` (``until`` default now):
    a ``Side`` whose load records are synthesized from the server's counters (see the module's
    docstring for what they can and cannot say). No series in the window: a side with no records
    (the judgement makes it a missing input or, at a look of an analysis, a HOLD). ``source``: a
    ``harness.slo.prometheus.PrometheusSource`` (default: one for ``scope.url``)."""
    if since is None:
        raise UsageError("a Prometheus scope needs --since (and --until, default now) or --interval")
    until = time.time() if until is None else float(until)
    if until <= since:
        raise UsageError("--until must be after --since")
    if source is None:
        from harness.slo.prometheus import PrometheusSource

        source = PrometheusSource(scope.url)
    try:
        requests = _growth(source, REQUESTS, scope.selector, since, until, ("status", "model_version"))
        requests = {k: v for k, v in requests.items() if v > 0}
        if not requests:
            return Side(None, None, {}, captions=False, timeouts=False)
        duration = _growth(source, DURATION, scope.selector, since, until, ("le",))
        confidence = _growth(source, CONFIDENCE, scope.selector, since, until, ("le",))
    except ServiceUnavailableError as exc:
        why = str(exc).removesuffix("; start it, or use --records")
        raise ServiceUnavailableError(f"{why}: cannot read the series of {scope.selector}") from None
    return Side(None, _rows(scope, requests, duration, confidence, since, until), {}, captions=False, timeouts=False)


def _rows(scope: PromScope, requests: dict[tuple, int], duration, confidence, since: float, until: float):
    import numpy as np
    import pandas as pd

    from harness.records import COLUMNS

    status, version = [], []
    for (st, mv), n in sorted(requests.items()):
        status += [st] * n
        version += [mv or None] * n
    n = len(status)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(n)  # the statuses interleaved over the window
    status_arr = np.array(status, dtype=object)[order]
    version_arr = np.array(version, dtype=object)[order]
    code = np.array([int(s) if s.isdigit() else 0 for s in status_arr], dtype=np.int64)
    gave_up = status_arr == GAVE_UP
    code[gave_up] = 0
    ok = (code >= 200) & (code < 300)
    outcome = np.where(ok, "ok", np.where(gave_up, "timeout", "http_error"))
    lat = _histogram(duration)
    if not len(lat):
        raise DataError(
            f"{scope.describe()}: {n} requests but no {DURATION.removesuffix('_bucket')} observations in the window"
        )
    latency = _spread(lat, n)[rng.permutation(n)]
    conf = np.full(n, np.nan)
    conf[ok] = _spread(_histogram(confidence), int(ok.sum()))
    df = pd.DataFrame({c: pd.Series([None] * n, dtype=object) for c in COLUMNS})
    df["run_id"] = "prometheus"
    df["target"] = scope.selector
    df["scenario"] = "prometheus"
    df["request_id"] = [f"prom-{i}" for i in range(n)]
    df["t_start"] = since + (np.arange(n) + 0.5) * (until - since) / n
    df["latency_s"] = latency
    df["status"] = code
    df["outcome"] = outcome
    df["confidence"] = conf
    df["model_version"] = version_arr
    return df
