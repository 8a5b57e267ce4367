"""A synthetic month of the captioning service, exact to the request, for tests of the SLO review.

``History()`` is 31 days of the reference server's counters scraped every minute from
2026-10-01T00:00:00Z (``T0``): 28 days of SLO window plus 3 before it, so even the 3-day alert
windows are full when the window opens. Traffic is a constant ``rps`` except in ``Stretch``es (a
share of 500s, a share of slow requests, another rate); every count per scrape interval is a whole
number, so each counter is exact and everything below is computed in exact fractions.

A step ``k`` is the k-th scrape after ``t0`` (minutes at the default 60 s interval); ``at(k)`` is
its unix time, ``step(t)`` the way back. The same data three ways:

- ``series()``: the counters, one ``Series`` each (name, labels, value per step);
- ``to_openmetrics(path)``: OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics``;
- ``to_promtool_series(start, end)``: ``input_series`` for ``promtool test rules`` (expanding
  notation, one segment per constant-rate run, ``interval: 1m``), step ``start`` at time 0;
- ``start_history_prometheus(history)``: a real Prometheus serving it (backfilled blocks).

And what any of them must give, from the counts: ``counts`` (good, total) and ``budget_remaining``
over ``[a, b]``; ``error_ratio`` and ``burn_rate`` over a window ending at an instant;
``window_burns`` (each alert window of an SLO, as ``PrometheusSource.window_burns`` reports them);
``condition`` (per step: both windows of an alert window at or above its threshold, as the
generated rules compare) and ``firing`` / ``firing_spans`` (per step: the generated alert of a
severity fires, its ``for:`` included). Only the availability and latency kinds are known.

The default traffic is 20 rps (1,200 requests a minute: at 2 rps a 5x burn of a 0.1% budget is not
a whole number of requests a minute). ``DEFAULT_STRETCHES`` (offsets from ``T0``; the SLO window
opens on day 3), and where ``SPEC_YAML``'s generated alerts fire per the History (steps):

- ``page``: day 6, 14:00-16:00, 2% of requests are 500s (a 20x burn of a 0.999 objective);
- ``ticket``: day 12, 06:00-22:00, 0.5% 500s (5x: under the 5.6x page, over the ticket's budget);
- ``night``: day 18, 00:00-06:00 at 1 rps, with ``burst``: 03:00-03:10, 10% 500s (pages on 60 errors);
- ``latency``: day 24, 10:00-14:00, 10% of requests slower than 0.3 s (10x of a 0.99 objective).

- ``CaptionerAvailabilityPageBurn``: 9521-9621 (day 6 14:41-16:21; the 1h window reaches 13.44x
  after 41 minutes, the 6h one 5.6x after 101) and 26109-26114 (day 18 03:09-03:14, the burst);
- ``CaptionerAvailabilityTicketBurn``: 18447-18892 (day 12 19:27 - day 13 02:52);
- ``CaptionerLatency300msPageBurn``: 35362-35413 (day 24 13:22-14:13, the 6h/30m window);
- ``CaptionerLatency300msTicketBurn``: never.

An alert here reads its windows' ratios of the same instant (promtool with ``group_eval_order``
does too; a real Prometheus evaluating groups on their own may lag by one evaluation).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

__all__ = [
    "T0",
    "MINUTE",
    "HOUR",
    "DAY",
    "SPEC_YAML",
    "DEFAULT_STRETCHES",
    "DEFAULT_LABELS",
    "Stretch",
    "Series",
    "ExpectedBurn",
    "History",
    "default_spec",
    "threshold",
    "expanded_values",
    "describe",
    "start_history_prometheus",
    "HistoryPrometheus",
]

T0 = 1790812800  # 2026-10-01T00:00:00Z
MINUTE = 60
HOUR = 3600
DAY = 86400

# The spec the default History is made for: the selector's label is on every series.
SPEC_YAML = """\
version: 1
service: captioner
selector: {job: captioner}
slos:
  - name: availability
    sli: availability
    objective: 0.999
    period: 28d
  - name: latency-300ms
    sli: latency
    threshold: 0.3
    objective: 0.99
    period: 28d
"""

REQUESTS = "caption_requests_total"
DURATION = "caption_request_duration_seconds"
DEFAULT_LABELS: Mapping[str, str] = {"job": "captioner", "instance": "captioner:8000"}


def default_spec():
    """``SPEC_YAML`` parsed (``harness.slo.parse_spec``)."""
    from harness.slo import parse_spec

    return parse_spec(SPEC_YAML)


def _exact(x: float | int | Fraction) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


def threshold(slo, window) -> Fraction:
    """The error ratio an alert window compares with, exactly as ``harness.slo.rules`` writes it
    (``burn factor x error budget`` in decimals: 13.44 x 0.001 = 0.01344)."""
    d = Decimal(repr(float(window.burn_rate))) * (1 - Decimal(repr(float(slo.objective))))
    return Fraction(d)


@dataclass(frozen=True)
class Stretch:
    """A run of steady traffic from ``start_s`` (seconds after ``t0``) for ``duration_s``: a share
    ``error_ratio`` of requests answered 500, a share ``slow_ratio`` slower than every bucket bound
    (so above the latency SLO's threshold), at ``rps`` (None: the History's). A later stretch in
    the list wins where two overlap (a burst inside a quiet night)."""

    name: str
    start_s: int
    duration_s: int
    error_ratio: float = 0.0
    slow_ratio: float = 0.0
    rps: float | None = None

    @property
    def end_s(self) -> int:
        return self.start_s + self.duration_s


DEFAULT_STRETCHES: tuple[Stretch, ...] = (
    Stretch("page", 6 * DAY + 14 * HOUR, 2 * HOUR, error_ratio=0.02),
    Stretch("ticket", 12 * DAY + 6 * HOUR, 16 * HOUR, error_ratio=0.005),
    Stretch("night", 18 * DAY, 6 * HOUR, rps=1),
    Stretch("burst", 18 * DAY + 3 * HOUR, 10 * MINUTE, error_ratio=0.1, rps=1),
    Stretch("latency", 24 * DAY + 10 * HOUR, 4 * HOUR, slow_ratio=0.1),
)


@dataclass(frozen=True)
class Series:
    """One counter: its metric name, labels, and its value at every step (``int64``, 0 at step 0)."""

    name: str
    labels: Mapping[str, str]
    values: np.ndarray = field(repr=False)

    def selector(self) -> str:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()))
        return f"{self.name}{{{inner}}}"

    def increments(self) -> np.ndarray:
        return np.diff(self.values)


@dataclass(frozen=True)
class ExpectedBurn:
    """An alert window of an SLO at an instant: burn rates (bad / (total x budget)) of its long and
    short windows, exact, None where the window saw no request; events in each; and whether both
    meet the factor (the generated rule's condition)."""

    severity: str
    factor: float
    long_s: float
    short_s: float
    long_burn: Fraction | None
    short_burn: Fraction | None
    long_events: int
    short_events: int
    fires: bool


@dataclass(frozen=True)
class History:
    """A service's history: ``days`` of scrapes every ``interval_s`` from ``t0`` (unix seconds, a
    whole minute), ``rps`` requests a second outside ``stretches``. Histogram buckets are written at
    ``buckets`` and +Inf; ``labels`` are on every series (the requests counter adds ``status`` and
    ``model_version``). Every count per interval must be a whole number (checked)."""

    t0: int = T0
    days: int = 31
    interval_s: int = MINUTE
    rps: float = 20.0
    stretches: tuple[Stretch, ...] = DEFAULT_STRETCHES
    buckets: tuple[float, ...] = (0.3,)
    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_LABELS), hash=False)
    model_version: str = "v1"

    def __post_init__(self) -> None:
        if self.t0 % 60 or self.interval_s <= 0 or (self.days * DAY) % self.interval_s:
            raise ValueError("t0 must be a whole minute and the days a whole number of intervals")
        for s in self.stretches:
            if s.start_s % self.interval_s or s.duration_s % self.interval_s or s.duration_s <= 0:
                raise ValueError(f"stretch {s.name!r}: start and duration must be whole intervals")
            if s.start_s < 0 or s.end_s > self.days * DAY:
                raise ValueError(f"stretch {s.name!r} lies outside the history")

    # ---- time ------------------------------------------------------------------------------

    @property
    def steps(self) -> int:
        """Scrape intervals in the history; steps run 0 .. steps."""
        return self.days * DAY // self.interval_s

    @property
    def end(self) -> int:
        """Unix time of the last scrape."""
        return self.t0 + self.steps * self.interval_s

    def at(self, k: int) -> int:
        """Unix time of step ``k``."""
        return self.t0 + int(k) * self.interval_s

    def step(self, t: float) -> int:
        """The step at unix time ``t``, which must be a scrape instant of the history."""
        k, rem = divmod(round(t - self.t0), self.interval_s)
        if rem or abs(t - self.at(k)) > 1e-6 or not 0 <= k <= self.steps:
            raise ValueError(f"{t!r} is not a scrape instant of the history")
        return int(k)

    def window(self, period_s: float = 28 * DAY) -> tuple[int, int]:
        """``(start, end)`` unix times of the SLO window that ends at the last scrape."""
        return self.end - int(period_s), self.end

    def stretch(self, name: str) -> Stretch:
        for s in self.stretches:
            if s.name == name:
                return s
        raise KeyError(name)

    def step_of(self, name: str, offset_s: float = 0.0, edge: str = "start") -> int:
        """The step ``offset_s`` seconds after stretch ``name``'s start (or ``edge="end"``)."""
        s = self.stretch(name)
        return self.step(self.t0 + (s.start_s if edge == "start" else s.end_s) + offset_s)

    # ---- counts ----------------------------------------------------------------------------

    def _whole(self, x: Fraction, what: str) -> int:
        if x.denominator != 1:
            raise ValueError(f"{what}: {x} per interval is not a whole number")
        return int(x)

    @cached_property
    def per_interval(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(requests, errors, slow)`` in each interval: entry ``i`` is the interval ending at step ``i + 1``."""
        n = np.full(self.steps, self._whole(_exact(self.rps) * self.interval_s, "rps"), dtype=np.int64)
        e = np.zeros(self.steps, dtype=np.int64)
        s = np.zeros(self.steps, dtype=np.int64)
        for st in self.stretches:
            a, b = st.start_s // self.interval_s, st.end_s // self.interval_s
            requests = _exact(self.rps if st.rps is None else st.rps) * self.interval_s
            n[a:b] = self._whole(requests, f"stretch {st.name!r} requests")
            e[a:b] = self._whole(requests * _exact(st.error_ratio), f"stretch {st.name!r} errors")
            s[a:b] = self._whole(requests * _exact(st.slow_ratio), f"stretch {st.name!r} slow requests")
        return n, e, s

    @cached_property
    def cumulative(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(requests, errors, slow)`` counted from ``t0`` to each step (0 at step 0)."""
        return tuple(np.concatenate(([0], np.cumsum(x))) for x in self.per_interval)  # type: ignore[return-value]

    def series(self) -> list[Series]:
        """The reference server's counters that the availability and latency SLIs read."""
        from harness.slo.promql import le_label

        n, e, s = self.cumulative
        req = {**self.labels, "model_version": self.model_version}
        out = [
            Series(REQUESTS, {**req, "status": "200"}, n - e),
            Series(REQUESTS, {**req, "status": "500"}, e),
        ]
        for b in sorted(self.buckets):
            out.append(Series(f"{DURATION}_bucket", {**self.labels, "le": le_label(b)}, n - s))
        out.append(Series(f"{DURATION}_bucket", {**self.labels, "le": "+Inf"}, n))
        out.append(Series(f"{DURATION}_count", dict(self.labels), n))
        return out

    def _bad_total(self, slo) -> tuple[np.ndarray, np.ndarray]:
        n, e, s = self.cumulative
        if slo.sli == "availability":
            return e, n
        if slo.sli == "latency":
            if not any(math.isclose(slo.threshold, b) for b in self.buckets):
                raise ValueError(f"SLO {slo.name!r}: no bucket at its threshold {slo.threshold}")
            return s, n
        raise ValueError(f"SLO {slo.name!r}: the history has no {slo.sli} SLI")

    def counts(self, slo, start: float, end: float) -> tuple[int, int]:
        """``(good, total)`` events of ``slo`` between the scrapes at ``start`` and ``end``."""
        bad, total = self._bad_total(slo)
        a, b = self.step(start), self.step(end)
        n = int(total[b] - total[a])
        return n - int(bad[b] - bad[a]), n

    def budget_remaining(self, slo, start: float, end: float) -> Fraction | None:
        """``1 - bad / ((1 - objective) x total)`` over ``[start, end]``, exact."""
        good, total = self.counts(slo, start, end)
        if total == 0:
            return None
        return 1 - Fraction(total - good) / ((1 - _exact(slo.objective)) * total)

    def _window_counts(self, slo, k: int, window_s: float) -> tuple[int, int]:
        """``(bad, total)`` over the ``window_s`` ending at step ``k`` (clipped at ``t0``)."""
        bad, total = self._bad_total(slo)
        a = max(0, k - int(window_s) // self.interval_s)
        return int(bad[k] - bad[a]), int(total[k] - total[a])

    def error_ratio(self, slo, at: float, window_s: float) -> Fraction | None:
        """Bad over total in the ``window_s`` seconds ending at ``at``; None without requests."""
        bad, total = self._window_counts(slo, self.step(at), window_s)
        return Fraction(bad, total) if total else None

    def burn_rate(self, slo, at: float, window_s: float) -> Fraction | None:
        """``error_ratio / (1 - objective)`` over the window ending at ``at``."""
        r = self.error_ratio(slo, at, window_s)
        return None if r is None else r / (1 - _exact(slo.objective))

    def window_burns(self, slo, at: float) -> tuple[ExpectedBurn, ...]:
        """Each alert window of ``slo`` at ``at``, in ``slo.windows``' order."""
        k = self.step(at)
        budget = 1 - _exact(slo.objective)
        out = []
        for w in slo.windows:
            (lb, ln), (sb, sn) = self._window_counts(slo, k, w.long_s), self._window_counts(slo, k, w.short_s)
            long_burn = Fraction(lb, ln) / budget if ln else None
            short_burn = Fraction(sb, sn) / budget if sn else None
            fires = bool(self.condition(slo, w)[k])
            out.append(ExpectedBurn(w.severity, w.burn_rate, w.long_s, w.short_s, long_burn, short_burn, ln, sn, fires))
        return tuple(out)

    # ---- alerts ----------------------------------------------------------------------------

    def _meets(self, slo, window_s: float, limit: Fraction, strict: bool) -> np.ndarray:
        """Per step: the error ratio over ``window_s`` is at (or above) ``limit``, compared exactly."""
        bad, total = self._bad_total(slo)
        w = int(window_s) // self.interval_s
        idx = np.arange(self.steps + 1)
        lo = np.maximum(idx - w, 0)
        b, t = bad - bad[lo], total - total[lo]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(t > 0, b / np.where(t > 0, t, 1), np.nan)
        lim = float(limit)
        out = (ratio > lim) if strict else (ratio >= lim)
        # the float comparison is right away from the limit; near it, decide in exact fractions
        near = np.nonzero((t > 0) & (np.abs(ratio - lim) <= 1e-9 * lim))[0]
        for i in near:
            r = Fraction(int(b[i]), int(t[i]))
            out[i] = r > limit if strict else r >= limit
        return out & (t > 0)

    def near_limit(self, slo, window) -> list[int]:
        """Steps where a window's error ratio lies within 1e-9 (relative) of the alert's limit:
        where Prometheus's float arithmetic could decide otherwise than the exact comparison."""
        limit = float(threshold(slo, window))
        bad, total = self._bad_total(slo)
        out: set[int] = set()
        for ws in (window.long_s, window.short_s):
            w = int(ws) // self.interval_s
            idx = np.arange(self.steps + 1)
            lo = np.maximum(idx - w, 0)
            b, t = bad - bad[lo], total - total[lo]
            ratio = b / np.where(t > 0, t, 1)
            out.update(int(i) for i in np.nonzero((t > 0) & (np.abs(ratio - limit) <= 1e-9 * limit))[0])
        return sorted(out)

    def condition(self, slo, window) -> np.ndarray:
        """Per step (``bool``, ``steps + 1``): both windows of alert window ``window`` at or above its
        threshold (above, when ``strict``). Windows reaching before ``t0`` are clipped there, which
        is right only for steps at least ``window.long_s`` after ``t0``."""
        key = (slo.name, slo.sli, slo.objective, slo.threshold, window)
        cache = self.__dict__.setdefault("_conditions", {})
        if key not in cache:
            limit = threshold(slo, window)
            ok = self._meets(slo, window.long_s, limit, window.strict)
            if window.short_s != window.long_s:
                ok &= self._meets(slo, window.short_s, limit, window.strict)
            cache[key] = ok
        return cache[key]

    def firing(self, slo, severity: str) -> np.ndarray:
        """Per step: the generated ``severity`` alert of ``slo`` fires (any of its windows' conditions,
        held for the rule's ``for:``, the longest ``alert_after_s`` of its windows)."""
        windows = [w for w in slo.windows if w.severity == severity]
        cond = np.zeros(self.steps + 1, dtype=bool)
        for w in windows:
            cond |= self.condition(slo, w)
        hold = int(max((w.alert_after_s for w in windows), default=0)) // self.interval_s
        if hold:
            # fires at k when the condition held at every evaluation from k - hold to k
            run = np.zeros(self.steps + 1, dtype=np.int64)
            count = 0
            for i, c in enumerate(cond):
                count = count + 1 if c else 0
                run[i] = count
            cond = run > hold
        return cond

    def firing_spans(self, slo, severity: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
        """``[(first, last), ...]``: the steps (inclusive) at which the alert fires, within ``[start, end]``."""
        f = self.firing(slo, severity)[start : (self.steps if end is None else end) + 1]
        edges = np.diff(np.concatenate(([0], f.astype(np.int8), [0])))
        firsts, lasts = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0] - 1
        return [(int(a) + start, int(b) + start) for a, b in zip(firsts, lasts)]

    def alert_spans(self, spec, start: int | None = None) -> dict[str, list[tuple[int, int]]]:
        """Every generated alert of ``spec`` (by its name) and its firing spans from ``start``
        (default: the longest alert window after ``t0``, where no window is clipped)."""
        from harness.slo.rules import alert_name

        longest = max(w.long_s for slo in spec.slos for w in slo.windows)
        first = int(longest) // self.interval_s if start is None else start
        out = {}
        for slo in spec.slos:
            for severity in ("page", "ticket"):
                if any(w.severity == severity for w in slo.windows):
                    name = slo.alerting.name or alert_name(spec, slo, severity)
                    out[name] = self.firing_spans(slo, severity, first)
        return out

    # ---- the data, written -----------------------------------------------------------------

    def to_openmetrics(self, path: str | Path) -> Path:
        """Write every series as OpenMetrics text (timestamps in seconds, ``# EOF`` at the end)."""
        path = Path(path)
        times = [str(self.at(k)) for k in range(self.steps + 1)]
        families: dict[str, list[Series]] = {}
        for s in self.series():
            family = s.name.removesuffix("_total") if s.name == REQUESTS else DURATION
            families.setdefault(family, []).append(s)
        with open(path, "w") as f:
            for family, members in families.items():
                f.write(f"# TYPE {family} {'counter' if family + '_total' == REQUESTS else 'histogram'}\n")
                for s in members:
                    prefix = s.selector() + " "
                    f.write("".join(f"{prefix}{v} {t}\n" for v, t in zip(s.values.tolist(), times)))
            f.write("# EOF\n")
        return path

    def to_promtool_series(self, start: int = 0, end: int | None = None) -> list[dict[str, str]]:
        """``input_series`` for ``promtool test rules`` (``interval`` the History's): steps ``start``
        to ``end`` (default: the last), step ``start`` at time 0, counters keeping their values."""
        end = self.steps if end is None else end
        if not 0 <= start < end <= self.steps:
            raise ValueError(f"bad step range {start}..{end}")
        return [{"series": s.selector(), "values": _expanding(s.values[start : end + 1])} for s in self.series()]


def _runs(increments: Iterable[int]) -> list[tuple[int, int]]:
    """``[(increment, how many intervals), ...]``."""
    out: list[list[int]] = []
    for inc in increments:
        if out and out[-1][0] == inc:
            out[-1][1] += 1
        else:
            out.append([inc, 1])
    return [(a, b) for a, b in out]


def _expanding(values: np.ndarray) -> str:
    """Promtool's expanding notation of ``values``: ``'0+120x1440 172801+6x960 ...'``."""
    values = [int(v) for v in values]
    incs = np.diff(values).tolist()
    runs = _runs(incs)
    if not runs:
        return str(values[0])
    parts = []
    v = values[0]
    for i, (inc, n) in enumerate(runs):
        if i == 0:
            parts.append(f"{v}+{inc}x{n}")
        else:
            first = v + inc
            parts.append(f"{first}+{inc}x{n - 1}" if n > 1 else str(first))
        v += inc * n
    return " ".join(parts)


def expanded_values(text: str) -> list[int]:
    """The values an expanding-notation string of ``to_promtool_series`` stands for."""
    out: list[int] = []
    for part in text.split():
        if "+" in part:
            base, rest = part.split("+")
            inc, n = rest.split("x")
            out.extend(int(base) + int(inc) * i for i in range(int(n) + 1))
        else:
            out.append(int(part))
    return out


def describe(history: History, spec) -> dict[str, Any]:
    """A summary for people: each stretch and each alert's firing spans as day hh:mm offsets."""

    def when(k: int) -> str:
        s = k * history.interval_s
        return f"day {s // DAY} {s % DAY // HOUR:02d}:{s % HOUR // MINUTE:02d}"

    return {
        "stretches": {
            s.name: (when(s.start_s // history.interval_s), when(s.end_s // history.interval_s))
            for s in history.stretches
        },
        "alerts": {
            name: [(k0, k1, when(k0), when(k1)) for k0, k1 in spans]
            for name, spans in history.alert_spans(spec).items()
        },
    }


@contextlib.contextmanager
def start_history_prometheus(
    history: History, workdir: str | Path | None = None, rule_files=(), timeout: float = 30.0
) -> Iterator[Any]:
    """A real Prometheus serving ``history`` (``to_openmetrics``, ``prom_fixture.backfill``, then
    ``prom_fixture.start_prometheus(tsdb=...)``): yields a ``HistoryPrometheus`` (``.url``,
    ``.handle``, ``.timings``). ``workdir`` keeps the files (else a temporary folder, removed);
    skipped where ``promtool`` or ``prometheus`` is absent."""
    import shutil
    import tempfile
    import time

    from prom_fixture import backfill, start_prometheus

    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="slo-history-")) if own else Path(workdir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        openmetrics = history.to_openmetrics(folder / "history.om")
        timings = {"write_s": time.monotonic() - started}
        timings["backfill_s"] = backfill(openmetrics, folder / "tsdb")
        started = time.monotonic()
        with start_prometheus(rule_files=rule_files, timeout=timeout, tsdb=folder / "tsdb") as prom:
            timings["start_s"] = time.monotonic() - started
            yield HistoryPrometheus(prom, timings)
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class HistoryPrometheus:
    """A ``PrometheusHandle`` (``.handle``; ``.url``) serving a History, and how long writing the
    OpenMetrics file, backfilling and starting took (``timings``: write_s, backfill_s, start_s)."""

    handle: Any
    timings: Mapping[str, float]

    @property
    def url(self) -> str:
        return self.handle.url
