"""What every dashboard page shares: the report root and run chosen in the sidebar, cached
readers of a run's files, and the formatting of figures. Pages only render what runs wrote.

The report root (``$HARNESS_REPORTS``, which ``harness dashboard --reports`` sets, else
``reports/``) is a boundary: the folder box, every file a page opens and every image shown must
lie inside it once links are resolved (``harness.report.run.inside_root``); a path that leaves it is
refused with a plain message and never opened."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from harness.errors import HarnessError
from harness.report.markdown import inline_text
from harness.report.run import OutsideRoot, RunFolder, inside_root, list_runs

__all__ = [
    "ROOT_ENV",
    "Board",
    "sidebar",
    "board",
    "not_in_run",
    "verdict_banner",
    "figure",
    "fmt",
    "read_json",
    "read_text",
    "read_records",
    "artifact",
    "show_image",
    "IMAGE_UNREADABLE",
    "data_url",
    "history",
    "TARGETS",
]

ROOT_ENV = "HARNESS_REPORTS"
TARGETS = ("baseline", "canary")
_STATE = "board"
_BANNER = {"PROMOTE": st.success, "HOLD": st.warning, "ROLLBACK": st.error}
_ICON = {"PROMOTE": ":material/check_circle:", "HOLD": ":material/pause_circle:", "ROLLBACK": ":material/block:"}


@dataclass(frozen=True)
class Board:
    """The report folder shown, its runs (newest first) and the run being shown; ``refused``: why
    the folder box was refused (then nothing was read)."""

    root: Path
    runs: tuple[RunFolder, ...]
    run: RunFolder | None
    refused: str | None = None

    @property
    def decision(self) -> dict[str, Any]:
        """The run's decision record as the JSON it was read from (``RunFolder.decision``), or {}."""
        return (self.run.decision if self.run else None) or {}


def _label(run: RunFolder) -> str:
    return f"{run.name} · {run.verdict or 'unreadable'}"


def report_root() -> Path:
    """The report root: ``$HARNESS_REPORTS``, else ``reports/`` (a real path, links resolved)."""
    return Path(os.path.realpath(Path(os.environ.get(ROOT_ENV) or "reports").expanduser()))


def sidebar() -> Board:
    """Draw the report folder input, the run selector and the run's verdict; remember the choice."""
    boundary = report_root()
    text = st.sidebar.text_input(
        "Report folder",
        value=str(boundary),
        key="report_root",
        help=f"A folder of run folders inside the report root {boundary} (${ROOT_ENV}, else reports/); "
        "a relative name is read against the root. Nothing outside the root is read.",
    )
    try:
        root = inside_root(boundary, Path(text.strip()).expanduser() if text.strip() else boundary)
    except OutsideRoot:
        refused = (
            f"Report folder {inline_text(text.strip(), 200)} is outside the report root "
            f"{inline_text(boundary, 200)}: not read."
        )
        st.sidebar.error(refused)
        state = Board(boundary, (), None, refused)
        st.session_state[_STATE] = state
        return state
    try:
        runs = list_runs(root)
    except HarnessError as exc:
        st.sidebar.error(str(exc))
        runs = ()
    run = None
    if runs:
        names = [r.name for r in runs]
        chosen = st.sidebar.selectbox(
            "Run", names, index=0, key="run", format_func=lambda n: _label(runs[names.index(n)]), help="Newest first"
        )
        run = runs[names.index(chosen)] if chosen in names else runs[0]
        if run.record is not None:
            score = run.record.score
            st.sidebar.markdown(f"**Verdict: {run.verdict}**" + ("" if score is None else f" (score {score:g})"))
        else:
            st.sidebar.error("Decision record unreadable")
    elif root.is_dir():
        st.sidebar.info(f"No runs in {root} yet: a run folder holds a decision.json.")
    state = Board(root, runs, run)
    st.session_state[_STATE] = state
    return state


def board(need_decision: bool = True, need_run: bool = True) -> Board:
    """The sidebar's choice for a page; stops the page with a note when there is nothing to show
    (without ``need_run``, a folder without runs is shown too: ``run`` is then None)."""
    state: Board | None = st.session_state.get(_STATE)
    if state is not None and state.refused:
        st.info("No run to show: the report folder chosen in the sidebar is outside the report root.")
        st.stop()
    if not need_run and (state is None or state.run is None):
        return state if state is not None else Board(report_root(), (), None)
    if state is None or state.run is None:
        root = state.root if state else os.environ.get(ROOT_ENV, "reports")
        st.info(
            f"No run to show: {root} holds no run folder with a decision.json. "
            "Run `harness gate ... --out reports/<run>` or `harness demo` first."
        )
        st.stop()
    if need_decision and state.run.record is None:  # the reason may quote the file: plain text
        st.error(f"{inline_text(state.run.name)}: {inline_text(state.run.error, 1000)}")
        st.stop()
    return state


def not_in_run(what: str) -> None:
    """The note shown where a run lacks a file or a figure."""
    st.info(f"{what}: not in this run")


def verdict_banner(rec: dict[str, Any], prefix: str = "Verdict") -> None:
    """The verdict as a coloured banner, with the score."""
    v = rec.get("verdict", "")
    score = rec.get("score")
    text = f"{prefix}: **{v}**" + ("" if score is None else f" (score {score:g})")
    _BANNER.get(v, st.info)(text, icon=_ICON.get(v))


def figure(rec: dict[str, Any], target: str, name: str) -> Any:
    """One figure of one target from the record's ``figures``, or ``None``."""
    return ((rec.get("figures") or {}).get(target) or {}).get(name)


def fmt(value: Any, unit: str = "") -> str:
    """A figure for a person: seconds in ms, rates in percent, money with two to four decimals."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if unit == "s":
        return f"{value * 1000:.1f} ms"
    if unit == "%":
        return f"{value * 100:.2f}%"
    if unit == "$":
        return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"
    if unit == "rps":
        return f"{value:.2f}/s"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.4g}"


def _stamp(path: Path) -> tuple[str, int, int]:
    s = path.stat()
    return str(path), s.st_mtime_ns, s.st_size


@st.cache_data(show_spinner=False, max_entries=32)
def _read_json(path: str, mtime: int, size: int) -> Any:
    """The file's document, cached by path and stamp: a file rewritten since is read again
    (Streamlit leaves arguments named with a leading underscore out of the cache key)."""
    return json.loads(Path(path).read_text())


def read_json(path: Path) -> tuple[Any, str | None]:
    """A JSON file of a run: (document, None), or (None, one-line error)."""
    try:
        return _read_json(*_stamp(path)), None
    except (OSError, ValueError) as exc:
        return None, f"{path}: unreadable JSON ({type(exc).__name__}: {exc})"


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def data_url(page: bytes, mime: str = "text/html") -> str:
    """``page`` as a ``data:`` URL: a frame loaded from it has an opaque origin of its own."""
    import base64

    return f"data:{mime};charset=utf-8;base64,{base64.b64encode(page).decode('ascii')}"


# Most records a page charts: a run's records in full, a long-lived dataset as a seeded sample of this
# many (drawn in the scan, so a week of records does not fill the app's memory).
RECORDS_SHOWN = 200_000


@st.cache_data(show_spinner=False, max_entries=8)
def _read_records(path: str, mtime: int, size: int) -> pd.DataFrame:
    from harness.records import load_records

    return load_records(path, embeddings="skip", sample=RECORDS_SHOWN)


def _refusal(what: str, exc: OutsideRoot) -> str:
    """A refused path as plain text for ``st.warning`` / ``st.error`` (the path came from a record)."""
    return f"{what}: {inline_text(exc, 400)} (not opened)"


def artifact(run: RunFolder, key: str) -> Path | None:
    """The run's file of kind ``key`` (``RunFolder.artifact``), or None; one that lies outside the
    report root is not opened: a warning says so and the page goes on without it."""
    try:
        return run.artifact(key)
    except OutsideRoot as exc:
        st.warning(_refusal(key, exc))
        return None


IMAGE_UNREADABLE = "image could not be read"


def show_image(where: Any, run: RunFolder, name: Any, width: int) -> bool:
    """Show in ``where`` (a column, a form, ``st``) the image a record names; or say plainly why not:
    not in this run, outside the report root (never opened), or not a whole image (a truncated or
    damaged file, or one too large to decode). True when it was shown."""
    from harness.datasets.coco import read_image_file

    try:
        path = run.resolve(name)
    except OutsideRoot as exc:
        where.warning(_refusal("image", exc))
        return False
    if path is None:
        where.info("image: not in this run")
        return False
    data = read_image_file(path, run.boundary)  # a regular file of at most 20 MB, opened without a link
    if data is None or not _whole_image(data):
        where.warning(IMAGE_UNREADABLE)
        return False
    where.image(data, width=width)
    return True


def _whole_image(data: bytes) -> bool:
    """Whether ``data`` decodes to a whole image of a size PIL will decode without a bomb warning."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if Image.MAX_IMAGE_PIXELS and w * h > Image.MAX_IMAGE_PIXELS:
                return False
            im.load()
    except Exception:  # PIL raises many kinds (OSError, SyntaxError, ValueError...) for a damaged file
        return False
    return True


def read_records(run: RunFolder) -> tuple[pd.DataFrame | None, str | None]:
    """The run's request records (parquet, JSONL or a partitioned dataset; at most ``RECORDS_SHOWN``
    of them), or (None, why not)."""
    try:
        path = run.artifact("records")
    except OutsideRoot as exc:
        return None, _refusal("records", exc)
    if path is None:
        return None, None
    try:
        return _read_records(*_stamp(path)), None
    except HarnessError as exc:
        return None, str(exc)


def history(runs: tuple[RunFolder, ...]) -> pd.DataFrame:
    """One row per run and target with the figures each decision record holds (oldest first)."""
    rows = []
    for r in runs:
        rec = r.record
        if rec is None:
            continue
        targets = rec.inputs.targets
        for target in sorted(rec.figures) or ["–"]:
            info = targets[target] if target in targets else None
            row = {
                "run": r.name,
                "created": pd.Timestamp(r.created_unix, unit="s"),
                "verdict": r.verdict,
                "score": rec.score,
                "target": target,
                "model_version": None if info is None else info.model_version,
            }
            # the documented figures, then any added beside them (a model iterates as name, value)
            for k, v in rec.figures[target] if target in rec.figures else ():
                if k == "cider_d_ci":
                    row["cider_d_low"], row["cider_d_high"] = (None, None) if v is None else (v.low, v.high)
                elif isinstance(v, (int, float)) and not isinstance(v, bool):
                    row[k] = v
            rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["created", "run"]).reset_index(drop=True) if len(df) else df
