"""SLI kinds: one module each, found by name in one registry (Sloth's SLI plugins are the model).

A kind declares the fields an SLO of its kind takes (a pydantic model), its good and total events
from the records (or from its own input), its PromQL over the reference server's metrics, and the
figures it adds to the report. The spec, ``sli``, ``promql``, ``rules`` and ``report`` only ask the
registry, so a new kind is one new module in this package that defines ``KIND``.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol

from harness.validation import Strict

__all__ = ["SLOView", "SLIKind", "RecordsKind", "SLIInputs", "NoFields", "registry", "get", "kind_names"]


class SLOView(Protocol):
    """What a kind reads of an SLO (``harness.slo.spec.SLO``, which asks the kinds about its own
    fields: a kind sees it through this interface and never imports the spec)."""

    name: str
    sli: str
    objective: float
    threshold: float | None
    blocklist: tuple[str, ...]
    metric: str | None
    promql: Mapping[str, str] | None
    options: Mapping[str, Any]
    segment: str | None


class NoFields(Strict):
    """A kind that takes no fields of its own."""


@dataclass(frozen=True)
class SLIInputs:
    """What the SLIs are computed from: the request records, a per-image quality table, and the folder
    of the run (where a kind's own input, such as the feedback log, is looked for)."""

    records: Any = None
    quality: Any = None
    folder: Path | None = None


class SLIKind:
    """One SLI kind. Subclasses set ``name`` and ``fields`` and override what their kind can give."""

    name: ClassVar[str]
    # What the SLO reference says of the kind (``harness.refdocs``): which events it counts, which are good.
    events_doc: ClassVar[str] = ""
    good_doc: ClassVar[str] = ""
    # The SLO fields of this kind (``threshold``, ``blocklist`` ...): a pydantic model, extra fields refused.
    fields: ClassVar[type[Strict]] = NoFields
    # Events timed by an input of their own (the feedback log), not by the requests: their alert
    # windows end at their own last event.
    own_clock: ClassVar[bool] = False

    @property
    def needs_threshold(self) -> bool:
        f = self.fields.model_fields.get("threshold")
        return f is not None and f.is_required()

    def options(self, fields: Strict, path: str) -> dict[str, Any]:
        """The ``SLO`` attributes from the validated fields: ``threshold``, ``blocklist``, ``metric`` or ``options``."""
        return {}

    def check(self, slo: SLOView, path: str) -> None:
        """Raise ``SpecError`` (message after ``path``) when the SLO as a whole cannot be of this kind."""

    def describe(self, slo: SLOView) -> dict[str, Any]:
        """This kind's fields of ``slo`` as the report and ``SLO.to_dict`` show them."""
        return {}

    def events(self, inputs: SLIInputs, slo: SLOView) -> tuple[Any, str]:
        """The SLI's events as a DataFrame with columns ``t`` (seconds) and ``good`` (bool), and a note
        that says why there is no data (empty when there is)."""
        import pandas as pd

        return pd.DataFrame(
            {"t": pd.Series(dtype=float), "good": pd.Series(dtype=bool)}
        ), "no data: the records do not show this SLI"

    def figures(self, inputs: SLIInputs, slo: SLOView, events: Any) -> dict[str, Any]:
        """Figures this kind adds beside its SLI (counts by class, percentiles ...)."""
        return {}

    def columns(self, slo: SLOView) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(columns, optional)``: the record columns this kind reads, and those it reads only
        where the records have them (a score column); a reader loads no others."""
        return (), ()

    def rates(self, slo: SLOView, base: Mapping[str, str], window: str) -> tuple[str, str] | None:
        """``(errors, total)`` per-second PromQL rates over ``window``; None when no metric shows the SLI."""
        return None

    def counters(self, slo: SLOView, base: Mapping[str, str]) -> tuple[str, str] | None:
        """``(errors, total)`` as instant sums of counters, for exact counts between two instants."""
        return None


class RecordsKind(SLIKind):
    """A kind computed from the request records: ``select`` says which records are events and which
    are good. Its events and figures can be taken chunk by chunk of a window (``figure_part`` of each
    chunk, ``merge_figures`` of the parts), so a window of millions of records is never whole in memory."""

    def columns(self, slo: SLOView) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return ("t_start", "latency_s", "status", "outcome"), ()

    def figure_part(self, records: Any, slo: SLOView) -> Any:
        """What ``figures`` needs of some of the records (None: this kind adds no figures)."""
        return None

    def merge_figures(self, parts: list[Any], slo: SLOView) -> dict[str, Any]:
        """The figures of the records whose ``figure_part`` each part is."""
        return {}

    def figures(self, inputs: SLIInputs, slo: SLOView, events: Any) -> dict[str, Any]:
        if inputs.records is None or not len(inputs.records):
            return {}
        return self.merge_figures([self.figure_part(inputs.records, slo)], slo)

    def select(self, df: Any, slo: SLOView, inputs: SLIInputs) -> tuple[Any, Any, str]:
        """``(events mask, good mask, note)`` over the records' index."""
        raise NotImplementedError

    def events(self, inputs: SLIInputs, slo: SLOView) -> tuple[Any, str]:
        import pandas as pd

        from harness.slo.columns import event_time

        df = inputs.records
        mask, good, note = self.select(df, slo, inputs)
        t = event_time(df)
        events = pd.DataFrame({"t": t[mask].astype(float), "good": good[mask].astype(bool)})
        return events, note


@lru_cache(maxsize=1)
def registry() -> dict[str, SLIKind]:
    """Every kind of this package, by name: each module's ``KIND``."""
    out: dict[str, SLIKind] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        kind = importlib.import_module(f"{__name__}.{info.name}").KIND
        out[kind.name] = kind
    return dict(sorted(out.items()))


def kind_names() -> tuple[str, ...]:
    return tuple(registry())


def get(name: str) -> SLIKind:
    """The kind called ``name`` (``KeyError`` when there is none)."""
    return registry()[name]
