"""SLIs, burn rates and figures from a real Prometheus, over a time range, with prometheus-api-client.

An SLI over ``[start, end]`` counts the counters' growth between the two instants (exact while
no counter resets; else ``increase`` over the range, which extrapolates to the range's edges).
Burn rates over the alert windows use ``rate`` as the generated rules do.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any, Callable

import harness.slo.promql as promql
import harness.slo.queries as queries
from harness.errors import DataError, MissingExtraError, ServiceUnavailableError, UsageError
from harness.slo.budget import exact
from harness.slo.burn_rate import WindowBurn
from harness.slo.figures import Figures, cost_per_1000
from harness.slo.report import SLOReport, result_for
from harness.slo.sli import SLIValue
from harness.slo.spec import SLO, SLOSpec

__all__ = ["PrometheusSource", "parse_time"]


def parse_time(text: str, now: Callable[[], float] = time.time, option: str | None = None) -> float:
    """Unix seconds from ``1718000000``, ISO 8601 (``2024-06-10T08:00:00Z``; no zone = UTC), ``now`` or
    ``now-15m`` (``harness.times``): a finite time from 1970 to 9999 (``harness.records.is_time``), else
    a one-line ``UsageError`` that names ``option``, the command-line flag the text came from."""
    from harness.records import is_time
    from harness.times import FORMS, NotFinite, parse_instant

    said = f"{option}: " if option else ""
    shown = repr(str(text) if len(str(text)) <= 60 else str(text)[:60] + "...")
    try:
        t = parse_instant(str(text), now=now)
    except NotFinite:
        t = math.nan  # refused below with the range
    except ValueError as exc:
        raise UsageError(f"{said}bad time {shown}: {exc}") from None
    if not is_time(t):
        raise UsageError(f"{option or 'a time'} must be a finite time from 1970 to 9999 ({FORMS}; got {shown})")
    return t


RANGE_POINTS = 10_000


def _range(seconds: float) -> str:
    return f"{max(1, int(round(seconds)))}s"


class PrometheusSource:
    """Reads SLIs from the Prometheus at ``url``; a ``client`` (``PrometheusConnect``) may be passed in."""

    def __init__(self, url: str, client: Any = None, timeout_s: float = 10.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        if client is None:
            client = self._connect()
        self.client = client

    def _connect(self) -> Any:
        try:
            from prometheus_api_client import PrometheusConnect
        except ImportError:
            raise MissingExtraError("slo", "reading SLIs from Prometheus", "prometheus-api-client") from None
        from urllib3.util.retry import Retry

        if not re.match(r"^https?://[^/\s]+", self.url):
            raise UsageError(f"--prometheus {self.url!r}: give a URL such as http://127.0.0.1:9090")
        return PrometheusConnect(url=self.url, retry=Retry(total=0, read=False), timeout=self.timeout_s)

    def _unavailable(self, why: str) -> ServiceUnavailableError:
        return ServiceUnavailableError(f"Prometheus at {self.url} is unavailable ({why}); start it, or use --records")

    def _ask(self, call: Callable[[], Any]) -> Any:
        """``call()`` against Prometheus, its failures as one-line errors: unavailable (69), or a
        query Prometheus rejected (65)."""
        import requests
        from prometheus_api_client import PrometheusApiClientException

        try:
            return call()
        except requests.exceptions.Timeout:
            raise self._unavailable(f"no answer within {self.timeout_s:g} s") from None
        except requests.exceptions.ConnectionError:
            raise self._unavailable("cannot connect") from None
        except requests.exceptions.RequestException as exc:
            raise self._unavailable(type(exc).__name__) from None
        except PrometheusApiClientException as exc:
            text = " ".join(str(exc).split())[:200]
            if "HTTP Status Code 400" in text or "HTTP Status Code 422" in text:
                raise DataError(f"Prometheus rejected a query: {text}") from None
            raise self._unavailable(text) from None
        except (ValueError, KeyError, TypeError):
            raise self._unavailable("the answer is not the Prometheus HTTP API's JSON") from None

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        """An instant query at unix time ``at``; a one-line error when Prometheus cannot answer."""
        return self._ask(lambda: self.client.custom_query(expr, params={"time": f"{at:.3f}"}))

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[dict[str, Any]]:
        """A range query from ``start`` to ``end`` (whole seconds) every ``step_s``, asked in pieces
        of at most ``RANGE_POINTS`` points (Prometheus refuses more than 11,000) and joined per series."""
        from datetime import datetime, timezone

        step = f"{step_s:g}s"
        pieces = []
        t = start
        while t <= end:
            last = min(end, t + (RANGE_POINTS - 1) * step_s)
            pieces.append((t, last))
            t = last + step_s

        def piece(a: float, b: float) -> list[dict[str, Any]]:
            at = lambda x: datetime.fromtimestamp(x, tz=timezone.utc)  # noqa: E731
            return self._ask(lambda: self.client.custom_query_range(expr, at(a), at(b), step))

        series: dict[tuple, dict[str, Any]] = {}
        for part in self._map(lambda ab: piece(*ab), pieces):
            for row in part:
                key = tuple(sorted(row["metric"].items()))
                series.setdefault(key, {"metric": row["metric"], "values": []})["values"] += row["values"]
        return list(series.values())

    def _map(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """``fn`` over ``items``, a few at a time (Prometheus answers range queries in parallel)."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(4, len(items))) as pool:
            return list(pool.map(fn, items))

    def scalar(self, expr: str, at: float) -> float | None:
        """The value of a query that gives one series (None: no series, or NaN)."""
        result = self.query(expr, at)
        if not result:
            return None
        value = float(result[0]["value"][1])
        return None if math.isnan(value) or math.isinf(value) else value

    def check(self) -> None:
        """Raise ``ServiceUnavailableError`` unless Prometheus answers a query."""
        self.query("vector(1)", time.time())

    # ---- SLIs ---------------------------------------------------------------------------

    def _counts(self, slo: SLO, spec: SLOSpec, at: float, seconds: float) -> tuple[float, float] | None:
        rates = queries.sli_rates(slo, spec.selector, _range(seconds))
        if rates is None:
            return None
        errors, total = (self.scalar(q, at) for q in rates)
        if total is None or total <= 0:
            return 0.0, 0.0
        n = total * round(seconds)
        bad = min(n, max(0.0, (errors or 0.0) * round(seconds)))
        return n, bad

    def _resets(self, spec: SLOSpec, start: float, end: float) -> bool:
        expr = f"sum(resets({promql.selector(promql.REQUESTS, spec.selector)}[{_range(end - start)}]))"
        return (self.scalar(expr, end) or 0.0) > 0

    def _exact_counts(self, slo: SLO, spec: SLOSpec, start: float, end: float) -> tuple[float, float] | None:
        counters = queries.sli_counters(slo, spec.selector)
        if counters is None or self._resets(spec, start, end):
            return None
        e1, t1 = (self.scalar(q, end) or 0.0 for q in counters)
        e0, t0 = (self.scalar(q, start) or 0.0 for q in counters)
        n = max(0.0, t1 - t0)
        return n, min(n, max(0.0, e1 - e0))

    def sli(self, slo: SLO, spec: SLOSpec, start: float, end: float) -> SLIValue:
        """Good and total events of ``slo`` in ``[start, end]``.

        Counts are the counters' growth between the two instants when no counter reset in between
        (exact), else ``increase`` over the range (extrapolated to its edges).
        """
        counts = self._exact_counts(slo, spec, start, end) or self._counts(slo, spec, end, end - start)
        if counts is None and queries.raw_error_ratio(slo, "5m") is not None:
            return SLIValue(slo.name, slo.sli, 0, 0, "no data: a raw error_ratio query gives a ratio, not event counts")
        if counts is None:
            return SLIValue(slo.name, slo.sli, 0, 0, f"no data: Prometheus has no metric for a {slo.sli} SLI")
        n, bad = counts
        note = "" if n > 0 else "no data: no requests in the range"
        return SLIValue(slo.name, slo.sli, n - bad, n, note)

    def window_burns(self, slo: SLO, spec: SLOSpec, at: float, since: float | None = None) -> tuple[WindowBurn, ...]:
        """Each alert window of ``slo`` evaluated at ``at``, as the generated rules would see it."""
        out = []
        for w in slo.windows:
            burns, events = [], []
            for seconds in (w.long_s, w.short_s):
                raw = queries.raw_error_ratio(slo, _range(seconds))
                if raw is not None:
                    ratio = self.scalar(raw, at)
                    events.append(0)
                    burns.append(None if ratio is None else float(exact(ratio) / (1 - exact(slo.objective))))
                    continue
                counts = self._counts(slo, spec, at, seconds)
                n, bad = counts if counts else (0.0, 0.0)
                events.append(int(round(n)))
                burns.append(None if n <= 0 else float(exact(bad) / (exact(n) * (1 - exact(slo.objective)))))
            fires = all(b is not None and w.fires(b) for b in burns)
            covered = 1.0 if since is None else min(1.0, max(0.0, (at - since) / w.long_s))
            out.append(
                WindowBurn(
                    w.severity, w.burn_rate, w.long, w.short, burns[0], burns[1], events[0], events[1], covered, fires
                )
            )
        return tuple(out)

    def _by_status(self, expr: str, at: float) -> dict[str, float]:
        out = {}
        for row in self.query(expr, at):
            v = float(row["value"][1])
            if not math.isnan(v):
                out[row["metric"].get("status", "")] = v
        return out

    def figures(self, spec: SLOSpec, start: float, end: float, price_per_hour: float | None = None) -> Figures:
        """Throughput, latency percentiles (every answered request, from the histogram), coverage, cost."""
        seconds = round(end - start)
        w = _range(end - start)
        base = spec.selector
        requests_sel = promql.selector(promql.REQUESTS, base)
        statuses: dict[str, int] = {}
        if self._resets(spec, start, end):
            for status, v in self._by_status(f"sum by (status) (rate({requests_sel}[{w}]))", end).items():
                statuses[status] = int(round(v * seconds))
        else:
            before = self._by_status(f"sum by (status) ({requests_sel})", start)
            for status, v in self._by_status(f"sum by (status) ({requests_sel})", end).items():
                statuses[status] = int(round(v - before.get(status, 0.0)))
        statuses = {k: v for k, v in statuses.items() if v > 0}
        requests = sum(statuses.values())
        captions = statuses.get("200", 0)
        buckets = f"sum by (le) (rate({promql.selector(promql.DURATION + '_bucket', base)}[{w}]))"
        p = [self.scalar(f"histogram_quantile({q}, {buckets})", end) for q in (0.5, 0.95, 0.99)]
        duration = float(end - start)
        return Figures(
            requests=requests,
            captions=captions,
            duration_s=duration,
            throughput_rps=requests / duration if duration > 0 else None,
            captions_per_s=captions / duration if duration > 0 else None,
            p50_s=p[0],
            p95_s=p[1],
            p99_s=p[2],
            coverage=captions / requests if requests else None,
            price_per_hour=price_per_hour,
            cost_per_1000=cost_per_1000(price_per_hour, duration, captions),
            statuses=dict(sorted(statuses.items())),
        )

    def evaluate(
        self,
        spec: SLOSpec,
        start: float,
        end: float,
        traffic_rps: float | None = None,
        price_per_hour: float | None = None,
    ) -> SLOReport:
        """Every SLO of ``spec`` over ``[start, end]``; window burn rates end at ``end``."""
        if end <= start:
            raise UsageError("--end must be after --start")
        self.check()
        traffic = traffic_rps if traffic_rps is not None else spec.traffic_rps
        price = price_per_hour if price_per_hour is not None else spec.price_per_hour
        results = []
        for slo in spec.slos:
            sli = self.sli(slo, spec, start, end)
            results.append(result_for(slo, sli, self.window_burns(slo, spec, end, start), traffic))
        return SLOReport(
            service=spec.service,
            source={"kind": "prometheus", "url": self.url},
            start=float(start),
            end=float(end),
            traffic_rps=traffic,
            results=tuple(results),
            figures=self.figures(spec, start, end, price),
            spec=spec.to_dict(),
        )

    # ---- the SLO review's histories ------------------------------------------------------

    def _values(self, expr: str, points: Any, step_s: float) -> Any:
        """One series' values at ``points`` (NaN where Prometheus has none); the series are summed
        when the query gives several."""
        import numpy as np

        out = np.full(len(points), np.nan)
        index = {int(round(t)): i for i, t in enumerate(points)}
        for row in self.query_range(expr, float(points[0]), float(points[-1]), step_s):
            for t, v in row["values"]:
                i = index.get(int(round(float(t))))
                x = float(v)
                if i is not None and math.isfinite(x):
                    out[i] = x if math.isnan(out[i]) else out[i] + x
        return out

    @staticmethod
    def _growth(values: Any) -> Any:
        """Per step, how much a counter read at each point grew since the point before: across a
        gap, since the last point read; after a reset (a fall), its value since the reset."""
        import numpy as np

        grown = np.zeros(len(values) - 1)
        last = values[0] if math.isfinite(values[0]) else None
        for i in range(1, len(values)):
            v = values[i]
            if not math.isfinite(v):
                continue
            if last is not None:
                grown[i - 1] = v - last if v >= last else v
            last = v
        return grown

    def _alert_rules(self, spec: SLOSpec) -> dict[str, dict[str, bool]] | None:
        """Per SLO (``sloth_id``), its alerting rules loaded in Prometheus by severity and whether each
        fires now; None when the rules API does not answer (an old Prometheus, a proxy)."""
        import requests

        def ask() -> Any:
            r = self.client._session.get(f"{self.url}/api/v1/rules", params={"type": "alert"}, timeout=self.timeout_s)
            if r.status_code != 200:
                return None
            return r.json()["data"]["groups"]

        try:
            groups = self._ask(ask)
        except ServiceUnavailableError:
            raise
        except (DataError, requests.exceptions.RequestException):
            return None
        if groups is None:
            return None
        out: dict[str, dict[str, bool]] = {}
        for g in groups:
            for rule in g.get("rules") or ():
                labels = rule.get("labels") or {}
                sid, sev = labels.get("sloth_id"), labels.get("sloth_severity")
                if sid and sev:
                    out.setdefault(sid, {})[sev] = rule.get("state") == "firing"
        return out

    def _fired(self, sid: str, points: Any, step_s: float) -> Any:
        """Episodes of the ``ALERTS`` series of one SLO (firing state), per severity."""
        import numpy as np

        from harness.slo.review import Episode

        expr = promql.selector("ALERTS", {"sloth_id": sid}, 'alertstate="firing"')
        out = []
        for row in self.query_range(expr, float(points[0]), float(points[-1]), step_s):
            sev = row["metric"].get("sloth_severity", "")
            seen = np.zeros(len(points), dtype=bool)
            index = {int(round(t)): i for i, t in enumerate(points)}
            for t, _v in row["values"]:
                i = index.get(int(round(float(t))))
                if i is not None:
                    seen[i] = True
            edges = np.diff(np.concatenate([[0], seen.astype(np.int8), [0]]))
            for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1):
                end = None if b == len(points) - 1 else float(points[b] + step_s)
                out.append(Episode(sev, float(points[a]), end, source="prometheus"))
        return tuple(sorted(out, key=lambda e: (e.start, e.severity)))

    def history(self, spec: SLOSpec, grid: Any) -> list[Any]:
        """Each SLO's good and total events per step of ``grid`` (``harness.slo.review``): the
        growth of its counters between the steps' ends (exact while no counter resets), or, for an
        SLO's own ``promql``, its rates over one step times the step; the episodes of its alerts in
        ``ALERTS`` and whether each fires now, where the generated rules are loaded."""
        import numpy as np

        from harness.slo.review import SLOHistory
        from harness.slo.rules import rule_labels

        self.check()
        points = grid.start + grid.step_s * np.arange(grid.n + 1, dtype=float)
        rules = self._alert_rules(spec)
        # the rules API says what fires now: the window's state only when the window ends about now
        recent = time.time() - grid.end <= 2 * grid.step_s + 60
        out = []
        for slo in spec.slos:
            counters = queries.sli_counters(slo, spec.selector)
            rates = None if counters else queries.sli_rates(slo, spec.selector, _range(grid.step_s))
            zero = np.zeros(grid.n)
            if counters is None and rates is None:
                why = (
                    "a raw error_ratio query gives a ratio, not event counts"
                    if queries.raw_error_ratio(slo, "5m") is not None
                    else f"Prometheus has no metric for a {slo.sli} SLI"
                )
                out.append(SLOHistory(slo, zero, zero.copy(), f"no data: {why}"))
                continue
            if counters is not None:
                errors, total = (self._growth(self._values(q, points, grid.step_s)) for q in counters)
            else:
                errors, total = (np.nan_to_num(self._values(q, points[1:], grid.step_s)) * grid.step_s for q in rates)
            total = np.clip(total, 0.0, None)
            bad = np.clip(errors, 0.0, total)
            sid = rule_labels(spec, slo)["sloth_id"]
            loaded = None if rules is None else rules.get(sid)
            fired = self._fired(sid, points[1:], grid.step_s) if loaded else None
            firing = frozenset(s for s, on in loaded.items() if on) if loaded and recent else None
            note = "" if total.sum() > 0 else "no data: no events in the window"
            out.append(SLOHistory(slo, total - bad, total, note, fired, firing))
        return out
