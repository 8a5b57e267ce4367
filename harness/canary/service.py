"""The judge as a service (``harness judge serve``), without a web framework: the config file, the
analyses kept on disk, the requests rollout controllers send, the worker that judges each look on
time, the status documents they read back, and Flagger's webhooks. ``harness.canary.api`` puts it
behind HTTP.

An analysis is a live analysis of ``harness.canary.analysis`` over two sources the operator listed
in the config (a request names them, never a path or a URL), in ``STATE/analyses/NAME/``:
``request.json`` (its definition), ``analysis.json`` (plan and looks done), ``look-NN/`` and the
latest look's ``decision.json`` and ``summary.md``; ``stopped.json`` once it was stopped. Everything
is read back at start, so an analysis survives a restart (a SIGKILL included) with its plan, and
goes on at its next look. Looks are judged by ``judge_due``: by the worker when they are due, and
by every call that answers a status (a controller's call at the look's time sees it)."""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Callable, Literal

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from harness.canary.analysis import AnalysisPlan, AnalysisState, judge_due, read_analysis, start_analysis
from harness.canary.judgement import Settings, Source, source_inputs
from harness.errors import DataError, HarnessError, InputMissingError
from harness.text import one_line, short_repr
from harness.validation import STRICT, Strict, error_message, first_error, join_path

__all__ = [
    "NAME_PATTERN",
    "MAX_BODY_BYTES",
    "MAX_JSON_DEPTH",
    "FLAGGER_HOOKS",
    "ServiceError",
    "SourceConfig",
    "ServeConfig",
    "SideRequest",
    "AnalysisRequest",
    "FlaggerPayload",
    "load_serve_config",
    "parse_body",
    "JudgeService",
]

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[a-z0-9]([a-z0-9.-]{0,126}[a-z0-9])?$"  # an analysis (DNS-1123-like, at most 128)
SOURCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"  # a source of the config
COLUMN_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"  # a records column of a where
_NAME = re.compile(NAME_PATTERN)
MAX_BODY_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16  # objects and arrays inside each other in a body (the requests have 3)
MAX_WHERE = 16  # column values a side may match
MAX_LOOKS = 1000  # looks of one analysis at most (lifetime / interval)
MIN_INTERVAL_S = 1.0
WAIT_S = 20.0  # a call waits this long at most for a look being judged
GRACE_S = 30.0  # a look is judged up to this long before its time (at most a tenth of the interval)
RETRY_S = 30.0  # an analysis whose look failed unexpectedly is tried again after this long
IDLE_INTERVALS = 3  # an analysis no controller asked about for this many intervals (and at least
IDLE_MIN_S = 1800.0  # this long) was abandoned (an aborted Rollout, a replaced Flagger revision): it is stopped
REQUEST_JSON = "request.json"
STOPPED_JSON = "stopped.json"
FLAGGER_HOOKS = ("pre-rollout", "rollout", "confirm-promotion", "post-rollout", "rollback")
SPENDINGS = ("pocock", "obrien_fleming")


class ServiceError(Exception):
    """An answer other than 2xx: the HTTP status, a code and a one-line message (which never
    quotes a credential)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def document(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}


def _bad(message: str) -> ServiceError:
    return ServiceError(400, "bad_request", one_line(message, 500))


# ---------------------------------------------------------------------------- durations


def _duration(text: str) -> str:
    from harness.duration import parse_duration

    seconds = parse_duration(text)  # ValueError: pydantic reports it with the field's path
    if seconds < MIN_INTERVAL_S:
        raise ValueError(f"must be at least {MIN_INTERVAL_S:g}s (got {short_repr(text)})")
    return text.strip()


def _seconds(text: str) -> float:
    from harness.duration import parse_duration

    return parse_duration(text)


Duration = Annotated[str, StringConstraints(max_length=32), AfterValidator(_duration)]


def _plan_error(interval: str, lifetime: str) -> str | None:
    """What is wrong with a lifetime for its interval (None: nothing)."""
    i, life = _seconds(interval), _seconds(lifetime)
    if life < i:
        return f"must be at least one interval ({interval}) (got {lifetime})"
    if life / i > MAX_LOOKS:
        return f"makes {life / i:.0f} looks of {interval}; at most {MAX_LOOKS}"
    return None


# ---------------------------------------------------------------------------- the config file

SourceName = Annotated[str, StringConstraints(pattern=SOURCE_PATTERN)]


class SourceConfig(Strict):
    """One source an analysis may read: records (a file, a run folder or a Hive-partitioned
    dataset) or a Prometheus (``http://HOST:9090``); exactly one of the two."""

    records: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    prometheus: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None

    @model_validator(mode="after")
    def _one(self) -> SourceConfig:
        if (self.records is None) == (self.prometheus is None):
            raise ValueError("give exactly one of records (a path) or prometheus (a URL)")
        if self.prometheus is not None:
            from harness.canary.prom_scope import check_url
            from harness.errors import UsageError

            try:
                check_url(self.prometheus, "prometheus")
            except UsageError:
                raise ValueError("prometheus: must be an http(s) URL such as http://prometheus:9090") from None
        return self


class ServeConfig(Strict):
    """``harness judge serve --config FILE``."""

    sources: Annotated[dict[SourceName, SourceConfig], Field(min_length=1, max_length=256)]
    spec: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    judge_config: Annotated[str, StringConstraints(min_length=1, max_length=4096)] | None = None
    max_analyses: Annotated[int, Field(ge=1, le=1000)] = 4
    # An analysis nobody asked about for this long is stopped (files kept), so that analyses their
    # controller abandoned do not hold a place of max_analyses; default: 3 intervals, at least 30m.
    idle_stop: Duration | None = None
    interval: Duration = "5m"
    lifetime: Duration = "1h"

    @model_validator(mode="after")
    def _plan(self) -> ServeConfig:
        why = _plan_error(self.interval, self.lifetime)
        if why:
            raise ValueError(f"lifetime: {why}")
        return self


def load_serve_config(path: str | Path) -> tuple[ServeConfig, Settings, dict[str, Source]]:
    """The config at ``path``, the judge's settings (the SLO spec and judge config it names, read
    now) and its sources by name; relative paths are taken from the config's folder. A bad file is
    a ``DataError`` (exit 65) naming the file and the field; a file that is not there, 66."""
    from harness.canary.config import load_judge_config
    from harness.canary.metric import JudgeConfig
    from harness.resources import example_path
    from harness.safe_yaml import load_yaml
    from harness.slo import load_spec
    from harness.text import utf8_text

    p = Path(path)
    if not p.exists():
        raise InputMissingError(f"{p}: judge serve config not found")
    if not p.is_file():
        raise DataError(f"{p}: the config must be a file")
    doc = load_yaml(utf8_text(p.read_bytes(), str(p), DataError, "save the config as UTF-8"), str(p))
    if not isinstance(doc, dict):
        raise DataError(f"{p}: the config must be a mapping with sources (got {type(doc).__name__})")
    try:
        cfg = ServeConfig.model_validate(doc)
    except ValidationError as exc:
        raise DataError(f"{p}: {first_error(exc)}") from None
    base = p.resolve().parent

    def local(text: str) -> Path:
        q = Path(text).expanduser()
        return q if q.is_absolute() else base / q

    spec = local(cfg.spec) if cfg.spec is not None else example_path("slo.yaml")
    load_spec(spec)  # a bad spec stops the server now, not at its first look
    judge_cfg = load_judge_config(local(cfg.judge_config)) if cfg.judge_config is not None else JudgeConfig()
    settings = Settings(spec, judge_cfg, seed=judge_cfg.seed)
    sources: dict[str, Source] = {}
    for name, s in cfg.sources.items():
        if s.prometheus is not None:
            sources[name] = Source(f"prometheus:{s.prometheus.strip()}")
        else:
            sources[name] = Source(local(s.records or ""))
            if not sources[name].path.exists():  # type: ignore[union-attr]
                log.warning("source %s: %s does not exist (yet): its looks hold until it does", name, s.records)
    return cfg, settings, sources


# ---------------------------------------------------------------------------- requests

Column = Annotated[str, StringConstraints(pattern=COLUMN_PATTERN)]


class SideRequest(Strict):
    """One side of an analysis: a source of the config by name, and which of its records (``where``:
    column values, as text) or, for a Prometheus source, which series (``selector``)."""

    source: SourceName
    where: Annotated[dict[Column, Annotated[str, StringConstraints(max_length=256)]], Field(max_length=MAX_WHERE)] = (
        Field(default_factory=dict)
    )
    selector: Annotated[str, StringConstraints(min_length=1, max_length=1024)] | None = None


class AnalysisRequest(Strict):
    """The body of ``POST /api/v1/analyses/{name}``; ``interval`` and ``lifetime`` default to the
    config's."""

    baseline: SideRequest
    canary: SideRequest
    interval: Duration | None = None
    lifetime: Duration | None = None
    spending: Literal["pocock", "obrien_fleming"] = "pocock"


K8sName = Annotated[str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9]([A-Za-z0-9._-]*)$")]


class FlaggerPayload(Strict):
    """A Flagger webhook's payload. Fields Flagger may add in a later version are ignored; the
    metadata's own keys are checked (a misspelt key is refused, not ignored)."""

    model_config = ConfigDict(**{**STRICT, "extra": "ignore"})

    name: K8sName
    namespace: K8sName
    phase: Annotated[str, StringConstraints(max_length=64)] = ""
    checksum: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")]
    metadata: Annotated[dict[str, Annotated[str, StringConstraints(max_length=1024)]], Field(max_length=32)] = Field(
        default_factory=dict
    )


_METADATA = (
    "baseline",
    "canary",
    "baseline_where",
    "canary_where",
    "baseline_selector",
    "canary_selector",
    "interval",
    "lifetime",
    "spending",
)


def _no_twice(pairs: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _bad(f"body: key {short_repr(k, 60)} given twice")
        out[k] = v
    return out


def _depth(text: str) -> int:
    """How deeply the objects and arrays of a JSON text nest (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_body(body: bytes) -> dict:
    """A request's body as a JSON object; ``ServiceError`` 400 (413 past ``MAX_BODY_BYTES``) when
    it is not UTF-8, not JSON, nested too deeply, gives a key twice, holds NaN or is no object."""
    if len(body) > MAX_BODY_BYTES:
        raise ServiceError(413, "too_large", f"body of {len(body)} bytes is over the limit of {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad("body: not UTF-8 text") from None
    if not text.strip():
        raise _bad("body: empty; send a JSON object")
    if _depth(text) > MAX_JSON_DEPTH:
        raise _bad(f"body: nested more than {MAX_JSON_DEPTH} levels deep")

    def constant(name: str) -> Any:
        raise _bad(f"body: {name} is not a JSON number")

    try:
        doc = json.loads(text, object_pairs_hook=_no_twice, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise _bad(f"body: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise _bad(f"body: nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:  # an integer of more digits than Python converts
        raise _bad("body: not valid JSON (a number too long)") from None
    if not isinstance(doc, dict):
        raise _bad(f"body: must be a JSON object (got {type(doc).__name__})")
    return doc


def _validate(model: type, doc: Any, prefix: str = "", rename: Callable[[tuple], tuple] | None = None):
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = rename(tuple(err["loc"])) if rename else tuple(err["loc"])
        raise _bad(f"{join_path(prefix, loc)}: {error_message(err)}") from None


@dataclass(frozen=True)
class Definition:
    """An analysis as asked for, its defaults filled in: what ``request.json`` holds and what two
    requests for one name must agree on."""

    baseline: SideRequest
    canary: SideRequest
    interval: str
    lifetime: str
    spending: str

    def to_dict(self) -> dict:
        def side(s: SideRequest) -> dict:
            d: dict[str, Any] = {"source": s.source, "where": dict(s.where)}
            if s.selector is not None:
                d["selector"] = s.selector
            return d

        return {
            "baseline": side(self.baseline),
            "canary": side(self.canary),
            "interval": self.interval,
            "lifetime": self.lifetime,
            "spending": self.spending,
        }

    def key(self) -> tuple:
        """What makes two definitions the same: durations compared in seconds."""
        sides = tuple(
            (s.source, tuple(sorted(s.where.items())), (s.selector or "").strip()) for s in (self.baseline, self.canary)
        )
        return sides, _seconds(self.interval), _seconds(self.lifetime), self.spending


def _where_text(text: str, path: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        col, eq, value = item.partition("=")
        if not eq or not col.strip():
            raise _bad(f"{path}: expected col=value,col=value (got {short_repr(item.strip(), 60)})")
        out[col.strip()] = value.strip()
    return out


def _from_metadata(md: dict[str, str]) -> dict:
    """The analysis request that a Flagger pre-rollout hook's metadata describes."""
    unknown = sorted(set(md) - set(_METADATA))
    if unknown:
        raise _bad(f"metadata.{one_line(unknown[0], 60)}: unknown key (known: token, {', '.join(_METADATA)})")
    doc: dict[str, Any] = {}
    for role in ("baseline", "canary"):
        if role not in md:
            raise _bad(f"metadata.{role}: is required (a source name of the config)")
        side: dict[str, Any] = {"source": md[role]}
        if f"{role}_where" in md:
            side["where"] = _where_text(md[f"{role}_where"], f"metadata.{role}_where")
        if f"{role}_selector" in md:
            side["selector"] = md[f"{role}_selector"]
        doc[role] = side
    for k in ("interval", "lifetime", "spending"):
        if k in md:
            doc[k] = md[k]
    return doc


def _metadata_path(loc: tuple) -> tuple:
    """A request field's path as the metadata key it came from."""
    if loc and loc[0] in ("baseline", "canary"):
        role = loc[0]
        if len(loc) >= 2 and loc[1] in ("where", "selector"):
            return (f"{role}_{loc[1]}", *loc[2:])
        return (role,)
    return loc


# ---------------------------------------------------------------------------- analyses


@dataclass
class Analysis:
    """One analysis as the service holds it; ``state`` is the last one read or judged."""

    name: str
    folder: Path
    definition: Definition
    sources: tuple[Source, Source] | None  # None: a source the config no longer lists
    state: AnalysisState
    stopped: bool = False
    retry_at: float = 0.0
    seen: float = 0.0  # when a request last named it (a controller still cares)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def grace(self) -> float:
        return min(GRACE_S, 0.1 * self.state.plan.interval_s)

    @property
    def running(self) -> bool:
        return not self.stopped and not self.state.done and self.sources is not None

    def due_at(self) -> float | None:
        """When its next look is due (None when it judges no more)."""
        k = self.state.next_look
        if not self.running or k is None:
            return None
        return max(self.state.plan.at(k) - self.grace, self.retry_at)

    def status(self) -> dict:
        st, rec = self.state, self.state.record
        k = st.next_look
        return {
            "name": self.name,
            "state": "done" if st.done else "stopped" if not self.running else "running",
            "verdict": st.verdict or "HOLD",
            "final": st.done,
            "look": len(st.looks),
            "looks": st.plan.looks,
            "score": rec.get("score") if rec else None,
            "reasons": list(rec.get("reasons") or []) if rec else [],
            "started_unix": st.plan.started_unix,
            "next_look_unix": st.plan.at(k) if self.running and k is not None else None,
            "decision": f"/api/v1/analyses/{self.name}/decision",
        }


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    os.replace(tmp, path)


class JudgeService:
    """The analyses of one state folder, judged over the sources of one config. Thread-safe: the
    HTTP app calls it from its worker threads while ``start``'s thread judges looks on time."""

    def __init__(
        self,
        config: ServeConfig,
        settings: Settings,
        sources: dict[str, Source],
        state_dir: Path,
        key: str | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.config, self.settings, self.sources = config, settings, sources
        self.root = Path(state_dir) / "analyses"
        self._key = key.encode("utf-8") if key is not None else None
        self.clock = clock
        self._analyses: dict[str, Analysis] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ keys

    @property
    def key_required(self) -> bool:
        return self._key is not None

    def authorized(self, given: bytes | None) -> bool:
        """Whether ``given`` (a header's bytes, or a token's UTF-8) is the key; always with no key."""
        if self._key is None:
            return True
        return given is not None and hmac.compare_digest(given, self._key)

    # ------------------------------------------------------------------ state on disk

    def load(self) -> None:
        """Read every analysis of the state folder; those still running go on."""
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in sorted(self.root.iterdir()):
            if folder.name.startswith(".") and folder.is_dir() and ".creating-" in folder.name:
                shutil.rmtree(folder, ignore_errors=True)  # a creation cut short: never answered 201
                continue
            if not folder.is_dir() or not _NAME.match(folder.name):
                continue
            try:
                a = self._read(folder)
            except (HarnessError, OSError, ValueError, ServiceError) as exc:
                why = exc.message if isinstance(exc, ServiceError) else str(exc)
                log.warning("analysis %s not loaded: %s", folder.name, one_line(why, 300))
                continue
            self._analyses[a.name] = a
        running = sum(a.running for a in self._analyses.values())
        log.info("%d analyses in %s, %d running", len(self._analyses), self.root, running)

    def _read(self, folder: Path) -> Analysis:
        try:
            doc = json.loads((folder / REQUEST_JSON).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{folder / REQUEST_JSON}: unreadable ({type(exc).__name__})") from None
        req = _validate(AnalysisRequest, doc, REQUEST_JSON)
        definition = self._definition(req)
        sources: tuple[Source, Source] | None
        try:
            sources = self._resolve(definition)
        except ServiceError as exc:
            log.warning("analysis %s is not judged: %s", folder.name, exc.message)
            sources = None
        state = read_analysis(folder, self._plan(definition, self.clock()))
        stopped = (folder / STOPPED_JSON).exists()
        # seen now: a controller that still cares asks again within the idle time
        return Analysis(folder.name, folder, definition, sources, state, stopped=stopped, seen=self.clock())

    # ------------------------------------------------------------------ requests

    def _definition(self, req: AnalysisRequest, prefix: str = "") -> Definition:
        interval = req.interval or self.config.interval
        lifetime = req.lifetime or self.config.lifetime
        why = _plan_error(interval, lifetime)
        if why:
            raise _bad(f"{join_path(prefix, ('lifetime',))}: {why}")
        return Definition(req.baseline, req.canary, interval, lifetime, req.spending)

    def _plan(self, d: Definition, started: float) -> AnalysisPlan:
        return AnalysisPlan(_seconds(d.interval), _seconds(d.lifetime), started, self.settings.judge.alpha, d.spending)  # type: ignore[arg-type]

    def _resolve(self, d: Definition) -> tuple[Source, Source]:
        """The two sides as sources of the config: 403 for a name it does not list (nothing is read),
        400 for a side that does not fit its source's kind."""
        from harness.canary.prom_scope import PromScope
        from harness.errors import UsageError

        out = []
        for role, side in (("baseline", d.baseline), ("canary", d.canary)):
            src = self.sources.get(side.source)
            if src is None:
                raise ServiceError(
                    403, "source_not_allowed", f"{role}.source: {side.source!r} is not a source of this server's config"
                )
            if src.is_scope:
                if side.where:
                    raise _bad(f"{role}.where: a Prometheus source is scoped by selector, not where")
                try:
                    scope = PromScope.parse(str(src.path), side.selector, role)
                except UsageError as exc:
                    raise _bad(str(exc).replace(f"{role}-selector", f"{role}.selector", 1)) from None
                out.append(Source(src.path, {}, selector=scope.selector))
            else:
                if side.selector is not None:
                    raise _bad(f"{role}.selector: goes with a Prometheus source only (use where)")
                out.append(Source(src.path, dict(side.where)))
        return out[0], out[1]

    def parse_request(self, doc: Any, *, prefix: str = "", rename=None) -> tuple[Definition, tuple[Source, Source]]:
        req = _validate(AnalysisRequest, doc, prefix, rename)
        d = self._definition(req, prefix)
        return d, self._resolve(d)

    def _get(self, name: str) -> Analysis:
        _check_name(name)
        with self._lock:
            a = self._analyses.get(name)
        if a is None:
            raise ServiceError(404, "not_found", f"no analysis named {name}")
        a.seen = self.clock()
        return a

    def create(self, name: str, doc: Any, *, rename=None, prefix: str = "") -> tuple[int, dict]:
        """Create the analysis ``name`` from a request body (201), or answer the status of the one
        of that name and definition (200); 409 for another definition, 429 past ``max_analyses``."""
        _check_name(name)
        d, sources = self.parse_request(doc, prefix=prefix, rename=rename)
        with self._lock:
            a = self._analyses.get(name)
            if a is None:
                running = sum(x.running for x in self._analyses.values())
                if running >= self.config.max_analyses:
                    raise ServiceError(
                        429,
                        "too_many_analyses",
                        f"{running} analyses are running, the most this server runs at once "
                        f"(max_analyses {self.config.max_analyses}); stop one or wait for one to end",
                    )
                a = self._create(name, d, sources)
                created = True
            else:
                if a.definition.key() != d.key():
                    raise ServiceError(409, "conflict", f"analysis {name} exists with another definition")
                a.seen = self.clock()
                created = False
        if created:
            log.info(
                "analysis %s: created, %d looks every %s from %s",
                name,
                a.state.plan.looks,
                d.interval,
                _when(a.state.plan.started_unix),
            )
            self._wake.set()
            return 201, a.status()
        return 200, self.status(name)

    def _create(self, name: str, d: Definition, sources: tuple[Source, Source]) -> Analysis:
        final = self.root / name
        if final.exists():
            raise ServiceError(
                409, "conflict", f"analysis {name} exists on disk but could not be read; remove it first"
            )
        tmp = self.root / f".{name}.creating-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _write_json(tmp / REQUEST_JSON, d.to_dict())
            plan = start_analysis(tmp, self._plan(d, self.clock()))
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        a = Analysis(name, final, d, sources, AnalysisState(plan, (), None), seen=self.clock())
        self._analyses[name] = a
        return a

    # ------------------------------------------------------------------ judging

    def _judge(self, a: Analysis, wait: float) -> None:
        """Judge the looks of ``a`` that are due, waiting up to ``wait`` seconds for a look being
        judged elsewhere (0: not at all)."""
        due = a.due_at()
        if due is None or self.clock() < due:
            return
        got = a.lock.acquire(timeout=wait) if wait > 0 else a.lock.acquire(blocking=False)
        if not got:
            return
        try:
            due = a.due_at()
            if due is None or self.clock() < due or a.sources is None:
                return
            a.state = judge_due(
                *a.sources,
                a.folder,
                self.settings,
                a.state.plan,
                run_id=a.name,
                inputs=source_inputs(*a.sources),
                now=self.clock(),
                grace=a.grace,
                clock=self.clock,
            )
            a.retry_at = 0.0
            if a.state.done:
                log.info(
                    "analysis %s: done at look %d of %d, %s",
                    a.name,
                    len(a.state.looks),
                    a.state.plan.looks,
                    a.state.verdict,
                )
        except Exception as exc:  # noqa: BLE001 - one analysis failing must not stop the others
            a.retry_at = self.clock() + min(RETRY_S, a.state.plan.interval_s)
            log.error(
                "analysis %s: a look could not be judged (%s: %s); tried again later",
                a.name,
                type(exc).__name__,
                one_line(exc, 300),
            )
            log.debug("analysis %s: the look's failure", a.name, exc_info=True)
        finally:
            a.lock.release()

    def status(self, name: str) -> dict:
        """The status of ``name`` once its due looks are judged (waiting at most ``WAIT_S``)."""
        a = self._get(name)
        self._judge(a, WAIT_S)
        return a.status()

    def decision(self, name: str) -> bytes:
        a = self._get(name)
        self._judge(a, WAIT_S)
        if not a.state.looks:
            raise ServiceError(404, "not_found", f"analysis {name} has judged no look yet")
        try:
            return (a.folder / "decision.json").read_bytes()
        except FileNotFoundError:
            raise ServiceError(404, "not_found", f"analysis {name} has no decision record") from None

    def list(self) -> dict:
        with self._lock:
            analyses = [self._analyses[n] for n in sorted(self._analyses)]
        out = []
        for a in analyses:  # a listing is not a controller asking: it leaves ``seen`` as it was
            self._judge(a, WAIT_S)
            out.append(a.status())
        return {"analyses": out}

    def stop(self, name: str) -> dict:
        """Stop ``name`` (files kept) once the looks due are judged: no look is judged after. An
        analysis already done stays done."""
        a = self._get(name)
        self._judge(a, WAIT_S)
        self._halt(a, "asked to stop")
        return a.status()

    def _halt(self, a: Analysis, why: str) -> None:
        with self._lock:
            if a.running:
                _write_json(a.folder / STOPPED_JSON, {"stopped_unix": self.clock(), "why": why})
                a.stopped = True
                log.info(
                    "analysis %s: stopped after look %d of %d: %s", a.name, len(a.state.looks), a.state.plan.looks, why
                )

    def idle_after(self, a: Analysis) -> float:
        """How long ``a`` may go without a request before it counts as abandoned."""
        if self.config.idle_stop is not None:
            return _seconds(self.config.idle_stop)
        return max(IDLE_MIN_S, IDLE_INTERVALS * a.state.plan.interval_s)

    def healthz(self) -> dict:
        with self._lock:
            running = sum(a.running for a in self._analyses.values())
        return {"status": "ok", "analyses_running": running}

    # ------------------------------------------------------------------ Flagger

    def flagger(self, hook: str, doc: Any) -> tuple[int, dict]:
        """A Flagger webhook (``doc`` without its token): the HTTP status and the status document."""
        if hook not in FLAGGER_HOOKS:
            raise ServiceError(
                404, "not_found", f"no Flagger hook {short_repr(hook, 40)} (hooks: {', '.join(FLAGGER_HOOKS)})"
            )
        payload = _validate(FlaggerPayload, doc)
        name = flagger_name(payload.namespace, payload.name, payload.checksum)
        if not _NAME.match(name):
            raise _bad(
                f"name: the analysis name {short_repr(name)} (namespace.name.checksum) must match {NAME_PATTERN}"
            )
        if hook == "pre-rollout":
            md = dict(payload.metadata)
            md.pop("token", None)  # the key: never part of the analysis
            _, status = self.create(name, _from_metadata(md), rename=_metadata_path, prefix="metadata")
            return 200, status
        if hook == "post-rollout":
            return 200, self.stop(name)
        status = self.status(name)
        if hook == "rollout":
            ok = status["verdict"] != "ROLLBACK"
        elif hook == "confirm-promotion":
            ok = status["final"] and status["verdict"] == "PROMOTE"
        else:  # rollback
            ok = status["verdict"] == "ROLLBACK"
        return (200 if ok else 409), status

    # ------------------------------------------------------------------ the worker

    def start(self) -> None:
        """Start the worker that judges each running analysis's looks when they are due."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="judge-worker", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the worker, letting a look being judged end (at most ``timeout`` seconds)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                analyses = [a for a in self._analyses.values() if a.running]
            for a in analyses:
                if self._stopping.is_set():
                    return
                idle = self.clock() - a.seen
                if idle > self.idle_after(a):
                    self._halt(a, f"no request named it for {idle:.0f} s: its controller let it go")
                    continue
                due = a.due_at()
                if due is not None and self.clock() >= due:
                    self._judge(a, 0)
            dues = [d for d in (a.due_at() for a in analyses) if d is not None]
            wait = min([1.0] + [d - self.clock() for d in dues])
            self._wake.wait(max(0.05, wait))
            self._wake.clear()


def flagger_name(namespace: str, name: str, checksum: str) -> str:
    """The analysis of a Flagger canary revision: ``namespace.name.checksum``, lower case; past the
    128 characters a name may have (a Canary's name may have 253), cut to 117 and ended by ten hex
    digits of its SHA-256, so two long names stay two analyses."""
    full = f"{namespace}.{name}.{checksum}".lower()
    if len(full) <= 128:
        return full
    import hashlib

    digest = hashlib.sha256(full.encode("utf-8")).hexdigest()[:10]
    return f"{full[:117].rstrip('.-')}-{digest}"


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise _bad(f"name: must match {NAME_PATTERN} (got {short_repr(name)})")


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
