"""What the SLO review pages share: the inputs chosen in the sidebar (spec, source, window, end,
step, decision and drift folders), checked; the ``Review`` built once per (spec, source, window,
end, step) with ``st.cache_data``; and the review's series downsampled for charts. Pages render the
``Review`` (``harness.slo.review``); no figure is computed here but the charts' buckets.

Paths typed in the sidebar stay inside the report root, links resolved (``inside_root``); the
spec that ``harness dashboard --slo-spec`` names (``$HARNESS_SLO_SPEC``) is the one path allowed
outside it. The Prometheus URL defaults to ``$HARNESS_PROMETHEUS`` (``harness dashboard
--prometheus``). ``?window=``, ``?end=`` and ``?step=`` in the page's address seed those boxes.
A fault or bad input stops the page with its one line, as plain text, in place."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from board import report_root
from harness.errors import HarnessError
from harness.report.markdown import inline_text
from harness.report.run import OutsideRoot, inside_root

__all__ = [
    "PROMETHEUS_ENV",
    "SPEC_ENV",
    "PROMETHEUS_TTL_S",
    "MAX_CHART_POINTS",
    "Choice",
    "choose",
    "review",
    "reviewed",
    "coverage",
    "series",
    "times",
    "span",
    "when",
    "TREND_ARROWS",
    "pct",
    "budget_left",
    "sli_text",
    "markers_frame",
    "source_text",
    "objective_text",
]

PROMETHEUS_ENV = "HARNESS_PROMETHEUS"
SPEC_ENV = "HARNESS_SLO_SPEC"
DEFAULT_SPEC = "slo.yaml"  # read against the report root
PROMETHEUS_TTL_S = 60  # a review from Prometheus is asked again after this long
PROMETHEUS_TIMEOUT_S = 10.0
MAX_CHART_POINTS = 1000  # points per line at most
SOURCES = ("Prometheus", "Records")
TREND_ARROWS = {"better": "▲ better", "worse": "▼ worse", "steady": "► steady", "unknown": "– unknown"}
_KEY = "slo_review_"  # session-state keys of the sidebar boxes
_SEEDED = ("window", "end", "step")  # boxes an address's query parameters may fill


@dataclass(frozen=True)
class Choice:
    """The sidebar's inputs, checked: real paths inside the report root, durations in seconds."""

    spec: Path
    kind: str  # "prometheus" or "records"
    url: str | None
    records: Path | None
    window_s: float | None  # None: the spec's longest period
    end: float | None  # None: now (Prometheus), the last answer (records)
    step_s: float | None  # None: 1m up to 28 days (harness.slo.review.choose_step)
    decisions: Path | None
    drift: Path | None


# ---- the sidebar -------------------------------------------------------------------------------


def _keep(name: str, default: Any) -> str:
    """The session-state key of a sidebar box whose value outlives a page change: a widget's id
    differs from page to page and its state is dropped on a page that does not draw it, so its
    value is set again before it is drawn, from a mirror kept under a key of its own."""
    key, kept = _KEY + name, _KEY + name + "_kept"
    if key in st.session_state:
        value = st.session_state[key]
    elif kept in st.session_state:
        value = st.session_state[kept]
    else:
        seeded = st.query_params.get(name) if name in _SEEDED else None
        value = seeded if seeded is not None else default
    st.session_state[key] = st.session_state[kept] = value
    return key


def _box(label: str, name: str, default: str, **kw: Any) -> str:
    """A sidebar text box (see ``_keep``); its value, stripped."""
    key = _keep(name, default)
    value = st.sidebar.text_input(label, key=key, **kw)
    st.session_state[key + "_kept"] = value
    return value.strip()


def _stop(message: Any) -> None:
    """A one-line error in place (plain text), and nothing more on the page."""
    st.error(inline_text(message, 1000))
    st.stop()


def _inside(boundary: Path, text: str, what: str) -> Path:
    try:
        return inside_root(boundary, Path(text).expanduser())
    except OutsideRoot:
        pass
    _stop(f"{what} {text}: outside the report root {boundary}; not read")


def _configured_spec() -> Path | None:
    given = os.environ.get(SPEC_ENV)
    return Path(os.path.realpath(Path(given).expanduser())) if given else None


def _spec_path(boundary: Path, text: str) -> Path:
    configured = _configured_spec()
    p = Path(text).expanduser()
    real = Path(os.path.realpath(p if p.is_absolute() else boundary / p))
    if configured is not None and real == configured:
        return real
    return _inside(boundary, text, "SLO spec")


def _duration(label: str, text: str) -> float | None:
    from harness.duration import parse_duration

    if not text:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        _stop(f"{label} {text!r}: {exc}")


def choose() -> tuple[Choice, Any]:
    """Draw the SLO review's boxes in the sidebar and read them: ``(Choice, SLOSpec)``; stops the
    page with a one-line error (or a note asking for what is missing) when they cannot be read."""
    boundary = report_root()
    board = st.session_state.get("board")
    root = board.root if board is not None and not board.refused else boundary
    st.sidebar.subheader("SLO review")
    configured = _configured_spec()
    spec_text = _box(
        "SLO spec",
        "spec",
        str(configured) if configured is not None else DEFAULT_SPEC,
        help=f"The SLO spec (native YAML or OpenSLO), under the report root {boundary} "
        f"(a relative name is read against it), or the one ${SPEC_ENV} names.",
    )
    env_url = os.environ.get(PROMETHEUS_ENV, "")
    kind_key = _keep("source", SOURCES[0] if env_url else SOURCES[1])
    kind = st.sidebar.radio("Source", SOURCES, key=kind_key, horizontal=True)
    st.session_state[kind_key + "_kept"] = kind
    url = records_text = ""
    if kind == "Prometheus":
        url = _box(
            "Prometheus URL",
            "prometheus",
            env_url,
            help=f"Prometheus' base URL, e.g. http://127.0.0.1:9090 (default ${PROMETHEUS_ENV}, "
            "which harness dashboard --prometheus sets)",
        )
    else:
        records_text = _box(
            "Records",
            "records",
            "",
            help="A records dataset (a folder of parquet), records.parquet / records.jsonl or a run folder, "
            "under the report root",
        )
    window_text = _box("Window", "window", "", placeholder="the spec's longest period", help="e.g. 28d")
    end_text = _box(
        "End",
        "end",
        "",
        placeholder="now" if kind == "Prometheus" else "the last answer",
        help="unix seconds, ISO 8601 (UTC), now or now-1d; rounded down to a whole step",
    )
    step_text = _box("Step", "step", "", placeholder="1m up to 28 days", help="the series' resolution, e.g. 5m")
    decisions_text = _box(
        "Decision records",
        "decisions",
        str(root),
        help="A folder searched for decision.json (deploys drawn as markers), under the report root; empty: none",
    )
    drift_text = _box(
        "Drift reports",
        "drift",
        str(root),
        help="A folder searched for drift.json (drift reports drawn as markers), under the report root; empty: none",
    )

    if not spec_text:
        st.info("Give the SLO spec in the sidebar.")
        st.stop()
    spec_path = _spec_path(boundary, spec_text)
    spec = _spec(spec_path)
    window_s = _duration("Window", window_text)
    step_s = _duration("Step", step_text)
    end = None
    if end_text:
        from harness.slo.prometheus import parse_time

        try:
            end = parse_time(end_text, option="End")
        except HarnessError as exc:
            _stop(exc)
    from harness.slo.review import MAX_POINTS, choose_step

    if step_s is not None:
        steps = (window_s or max(s.period_s for s in spec.slos)) / step_s
        if steps > MAX_POINTS:
            _stop(
                f"Step {step_text}: the window would take {steps:,.0f} steps, more than {MAX_POINTS:,}; give a longer step"
            )
    else:
        step_s = choose_step(window_s or max(s.period_s for s in spec.slos))
    records = None
    if kind == "Prometheus":
        if not url:
            st.info(f"Give Prometheus' URL in the sidebar (or start the dashboard with ${PROMETHEUS_ENV} set).")
            st.stop()
    else:
        if not records_text:
            st.info(
                "Give the records to review in the sidebar: a records dataset or a run folder under the report root."
            )
            st.stop()
        records = _inside(boundary, records_text, "Records")
    decisions = _inside(boundary, decisions_text, "Decision records") if decisions_text else None
    drift = _inside(boundary, drift_text, "Drift reports") if drift_text else None
    choice = Choice(
        spec_path,
        "prometheus" if kind == "Prometheus" else "records",
        url or None,
        records,
        window_s,
        end,
        step_s,
        decisions,
        drift,
    )
    return choice, spec


# ---- the review, cached ------------------------------------------------------------------------


def _stamp(path: Path) -> tuple[str, int, int]:
    s = path.stat()
    return str(path), s.st_mtime_ns, s.st_size


@st.cache_data(show_spinner=False, max_entries=16)
def _load_spec(path: str, mtime: int, size: int) -> Any:
    from harness.slo import load_spec

    return load_spec(path)


def _spec(path: Path) -> Any:
    from harness.slo import load_spec

    try:
        return _load_spec(*_stamp(path)) if path.is_file() else load_spec(path)
    except (HarnessError, OSError) as exc:
        _stop(exc)


def _tree(path: Path, boundary: Path, names: tuple[str, ...] | None) -> tuple:
    """A stamp of ``path`` (a file, or the files under a folder; only ``names`` when given) that
    changes when they do; ``OutsideRoot`` when anything under it resolves outside ``boundary``."""
    if not path.is_dir():
        return (_stamp(path),) if path.exists() else ()
    out = []
    for here, dirs, files in os.walk(path):
        for entry in (*dirs, *files):
            inside_root(boundary, Path(here) / entry)
        for f in files:
            if names is None or f in names:
                out.append(_stamp(Path(here) / f))
    return tuple(sorted(out))


def _markers(decisions: str | None, drift: str | None) -> tuple[list, list]:
    from harness.slo.history import load_markers

    return load_markers(None if decisions is None else Path(decisions), None if drift is None else Path(drift))


@st.cache_data(show_spinner="Asking Prometheus for the SLO history…", ttl=PROMETHEUS_TTL_S, max_entries=4)
def _from_prometheus(
    spec: tuple,
    url: str,
    window_s: float,
    end: float,
    step_s: float,
    decisions: str | None,
    drift: str | None,
    marks: tuple,
) -> Any:
    from harness.slo.history import prometheus_review
    from harness.slo.prometheus import PrometheusSource

    s = _load_spec(*spec)
    source = PrometheusSource(url, timeout_s=PROMETHEUS_TIMEOUT_S)
    markers, warnings = _markers(decisions, drift)
    return prometheus_review(s, source, window_s, end, step_s, markers, warnings)


@st.cache_data(show_spinner="Reading the records…", max_entries=4)
def _from_records(
    spec: tuple,
    records: str,
    stamp: tuple,
    window_s: float,
    end: float | None,
    step_s: float,
    decisions: str | None,
    drift: str | None,
    marks: tuple,
) -> Any:
    from harness.slo.history import records_review

    s = _load_spec(*spec)
    markers, warnings = _markers(decisions, drift)
    return records_review(s, Path(records), window_s, end, step_s, None, markers, warnings)


def review(choice: Choice, spec: Any) -> tuple[Any, list[str]]:
    """The ``Review`` the choice asks for, computed once per (spec, source, window, end, step) and
    the decision records and drift reports it marks, and warnings of its own: a marker folder
    with a link out of the report root is left out (never read). Raises ``HarnessError``."""
    boundary = report_root()
    window_s = choice.window_s if choice.window_s is not None else max(s.period_s for s in spec.slos)
    spec_key = _stamp(choice.spec)
    folders: list[str | None] = []
    marks = []
    said = []
    for label, p, name in (
        ("Decision records", choice.decisions, "decision.json"),
        ("Drift reports", choice.drift, "drift.json"),
    ):
        try:
            marks.append(_tree(p, boundary, (name,)) if p is not None else ())
            folders.append(None if p is None else str(p))
        except OutsideRoot as exc:
            said.append(f"{label}: {exc}; markers from {p} left out (nothing there read)")
            marks.append(())
            folders.append(None)
    decisions, drift = folders
    if choice.kind == "prometheus":
        step = choice.step_s
        end = choice.end if choice.end is not None else math.floor(time.time() / step) * step
        return _from_prometheus(spec_key, choice.url, window_s, end, step, decisions, drift, tuple(marks)), said
    stamp = _tree(choice.records, boundary, None)
    if not stamp:
        from harness.errors import InputMissingError

        raise InputMissingError(f"{choice.records}: no records found")
    r = _from_records(
        spec_key, str(choice.records), stamp, window_s, choice.end, choice.step_s, decisions, drift, tuple(marks)
    )
    return r, said


def reviewed() -> Any:
    """The sidebar's inputs and their ``Review``; the page stops with a one-line error in place
    when they cannot be read or the source fails, and shows the review's warnings."""
    choice, spec = choose()
    try:
        r, said = review(choice, spec)
    except (HarnessError, ValueError, OSError) as exc:
        _stop(exc)
    for w in (*said, *r.warnings):
        st.warning(inline_text(w, 1000))
    return r


# ---- figures as text ---------------------------------------------------------------------------


def pct(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or x != x else f"{x:.{digits}%}"


def budget_left(s: Any) -> str:
    """An SLO review's budget left over the window, as the list and the page show it."""
    return "no data" if s.budget.remaining is None else pct(s.budget.remaining)


def sli_text(s: Any) -> str:
    return "no data" if s.sli.ratio is None else pct(s.sli.ratio, 3)


def span(seconds: float) -> str:
    """A length of time for a person: ``3d 4h``, ``2h 5m``, ``45s``."""
    s = int(round(max(0.0, seconds)))
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (sec, "s")) if v]
    return " ".join(parts[:2]) or "0s"


def when(t: float | None) -> str:
    """A time in UTC to the minute (``2026-12-07 03:47 UTC``)."""
    if t is None:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(t))


def coverage(r: Any) -> str | None:
    """A note when the events cover less of the window than the window (more than one step and
    1% of it lacks data at either end), or None."""
    seen = np.zeros(r.grid.n - r.grid.lead, dtype=bool)
    for s in r.slos:
        seen |= s.total > 0
    if not seen.any():
        return None
    ends = r.grid.ends()[r.grid.lead :]
    step = r.grid.step_s
    first, last = float(ends[np.argmax(seen)] - step), float(ends[len(seen) - 1 - np.argmax(seen[::-1])])
    window = r.end - r.start
    missing = (first - r.start) + (r.end - last)
    if missing <= max(step, 0.01 * window):
        return None
    return (
        f"The data covers {span(last - first)} of the {span(window)} window: events from {when(first)} to {when(last)}."
    )


# ---- series for charts -------------------------------------------------------------------------


def times(seconds: Any) -> pd.DatetimeIndex:
    """Unix seconds as times for a chart: naive, in UTC (what the charts' ``utc`` scale reads;
    a zone-aware column reaches Vega-Lite in another unit)."""
    return pd.to_datetime(np.asarray(seconds, dtype=float), unit="s")


def _starts(n: int, most: int) -> np.ndarray:
    k = max(1, math.ceil(n / most))
    return np.arange(0, n, k)


def series(r: Any, s: Any, most: int = MAX_CHART_POINTS) -> dict[str, pd.DataFrame]:
    """One SLO review's series in at most ``most`` buckets per line, each at its bucket's end (UTC):
    ``budget`` (the burn-down: the last value of each bucket), ``events`` (good and total events
    per step, averaged over the bucket, and their ratio: the SLI), and per alert ``burn/<severity>/<i>`` (long and short burn rates:
    the most of each bucket, so peaks survive)."""
    ends = r.grid.ends()[r.grid.lead :]
    n = len(ends)
    starts = _starts(n, most)
    last = np.append(starts[1:], n) - 1
    t = times(ends[last])
    good = np.add.reduceat(s.good, starts)
    total = np.add.reduceat(s.total, starts)
    steps = np.diff(np.append(starts, n))  # the last bucket may be shorter
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(total > 0, good / total, np.nan)
    out = {
        "budget": pd.DataFrame({"time": t, "remaining": s.remaining[last]}),
        "events": pd.DataFrame({"time": t, "good": good / steps, "total": total / steps, "sli": ratio}),
    }
    for i, a in enumerate(s.alerts):
        long_max = np.fmax.reduceat(a.long_burn, starts)
        short_max = np.fmax.reduceat(a.short_burn, starts)
        out[f"burn/{a.window.severity}/{i}"] = pd.DataFrame(
            {
                "time": np.concatenate([t, t]),
                "burn rate": np.concatenate([long_max, short_max]),
                "window": [f"long ({a.window.long})"] * len(t) + [f"short ({a.window.short})"] * len(t),
            }
        )
    return out


def markers_frame(r: Any) -> pd.DataFrame:
    """The review's markers, one row each (``time`` UTC, ``kind``, ``label``, ``detail``, ``file``)."""
    return pd.DataFrame(
        {
            "time": times([m.t for m in r.markers]),
            "kind": [m.kind for m in r.markers],
            "label": [m.label for m in r.markers],
            "detail": [m.detail for m in r.markers],
            "file": [m.path for m in r.markers],
        }
    )


def source_text(r: Any) -> str:
    src = r.source
    return f"Prometheus at {src.get('url')}" if src.get("kind") == "prometheus" else f"records at {src.get('path')}"


def objective_text(objective: float) -> str:
    return f"{objective * 100:.6g}%"
