"""A run's spans file (``spans.jsonl``: one JSON line per finished span, as the reference server's
``--spans-file`` writes them) read for the requests one looks at: the spans of a few traces, each
request's tree of steps with their durations, joined with the records by ``trace_id``.

A line holds ``trace_id``, ``span_id``, ``parent_span_id`` (null at a trace's root), ``name``,
``kind``, ``start`` and ``end`` (unix seconds), ``duration_ms``, ``status``, ``service`` and
``attributes``. Lines that are not such a span (a torn last line, another tool's) are skipped."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

__all__ = ["SPANS_JSONL", "Span", "read_spans", "span_tree", "server_span"]

SPANS_JSONL = "spans.jsonl"
_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEAD = '{"trace_id":"'  # how the server's lines begin: the trace id is read without parsing the line


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start: float
    end: float
    status: str
    attributes: dict[str, Any]

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) * 1000.0


def _span(doc: Any) -> Span | None:
    if not isinstance(doc, dict):
        return None
    try:
        start, end = float(doc["start"]), float(doc["end"])
        attrs = doc.get("attributes")
        parent = doc.get("parent_span_id")
        return Span(
            str(doc["trace_id"]),
            str(doc["span_id"]),
            str(parent) if parent else None,
            str(doc.get("name", "")),
            str(doc.get("kind", "")),
            start,
            max(start, end),
            str(doc.get("status", "")),
            attrs if isinstance(attrs, dict) else {},
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_spans(path: str | Path, trace_ids: Iterable[str]) -> dict[str, list[Span]]:
    """The spans of each of ``trace_ids`` found in the file at ``path`` (trace id -> spans in order
    of start). The file is streamed and only the lines of those traces are parsed, so a spans file
    of a long run costs a scan, not its size in memory."""
    wanted = {t for t in trace_ids if isinstance(t, str) and _HEX32.fullmatch(t)}
    found: dict[str, list[Span]] = {}
    if not wanted:
        return found
    head = len(_HEAD)
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.startswith(_HEAD):
                if line[head : head + 32] not in wanted:
                    continue
            elif not any(t in line for t in wanted):
                continue
            try:
                span = _span(json.loads(line))
            except ValueError:
                continue
            if span is not None and span.trace_id in wanted:
                found.setdefault(span.trace_id, []).append(span)
    for spans in found.values():
        spans.sort(key=lambda s: (s.start, -s.end))
    return found


def server_span(spans: list[Span]) -> Span | None:
    """The trace's server span (the first of kind ``server``), or None."""
    return next((s for s in spans if s.kind == "server"), None)


def span_tree(spans: list[Span]) -> list[dict[str, Any]]:
    """The spans of one trace as rows, parents before their children (depth-first, each level by
    start): ``step`` (the name, indented two spaces a level), ``start_ms`` (from the trace's first
    span), ``duration_ms``, ``status`` and ``detail`` (the batch's size, the tokens, the status code)."""
    if not spans:
        return []
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for s in spans:
        children.setdefault(s.parent_span_id if s.parent_span_id in ids else None, []).append(s)
    t0 = min(s.start for s in spans)
    rows: list[dict[str, Any]] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in children.get(parent, []):
            rows.append(
                {
                    "step": "  " * depth + s.name,
                    "start_ms": round((s.start - t0) * 1000.0, 3),
                    "duration_ms": round(s.duration_ms, 3),
                    "status": s.status,
                    "detail": _detail(s.attributes),
                }
            )
            if depth < 32:
                walk(s.span_id, depth + 1)

    walk(None, 0)
    return rows


_DETAIL = (
    ("http.response.status_code", "status"),
    ("caption.batch.size", "batch of"),
    ("caption.batch.id", "batch #"),
    ("gen_ai.usage.output_tokens", "output tokens"),
    ("caption.image.bytes", "image bytes"),
    ("caption.job.status", "job"),
)


def _detail(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{label} {attrs[key]}" for key, label in _DETAIL if key in attrs)
