"""Inline SVG primitives of the self-contained HTML reports (``drift.html``, ``review.html``): the
chart element with its accessible title, a colour legend, lines and labels. Every text goes through
``html.escape`` here; numbers are written with at most one decimal (a pixel is enough).

Such a page needs nothing but its inline style: ``PAGE_CSP`` forbids scripts and every load, so
nothing runs and nothing is fetched even if a text ever slipped past the escaping."""

from __future__ import annotations

import html
import math
from typing import Iterable, Sequence

__all__ = ["PAGE_CSP", "svg", "legend", "line", "text", "rect", "polylines", "num"]

PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


def num(v: float) -> str:
    """A coordinate: an int as written, a float to one decimal."""
    return str(v) if isinstance(v, int) else f"{v:.1f}"


def svg(body: str, title: str, width: int, height: int) -> str:
    """An ``<svg>`` chart of ``width`` x ``height`` pixels titled ``title`` (its tooltip and its
    name for a screen reader)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><title>{html.escape(title)}</title>{body}</svg>'
    )


def legend(items: Iterable[tuple[str, str]], x: int | float, y: int | float, spacing: int | float) -> str:
    """A colour square and its label for each ``(label, colour)``, left to right from ``(x, y)``."""
    parts = []
    for i, (label, colour) in enumerate(items):
        at = x + i * spacing
        parts.append(
            f'<rect x="{num(at)}" y="{num(y)}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{num(at + 14)}" y="{num(y + 9)}" font-size="11">{html.escape(label)}</text>'
        )
    return "".join(parts)


def line(x1: float, y1: float, x2: float, y2: float, colour: str, width: float = 1, extra: str = "") -> str:
    """A straight line; ``extra``: further attributes (``stroke-dasharray="4 3"``, a class)."""
    more = f" {extra}" if extra else ""
    return (
        f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" stroke="{colour}" '
        f'stroke-width="{num(width)}"{more}/>'
    )


def text(x: float, y: float, value: str, size: int = 10, anchor: str = "", extra: str = "") -> str:
    """``value`` (escaped) at ``(x, y)``; ``anchor``: ``middle`` or ``end`` (default: start)."""
    at = f' text-anchor="{anchor}"' if anchor else ""
    more = f" {extra}" if extra else ""
    return f'<text x="{num(x)}" y="{num(y)}" font-size="{size}"{at}{more}>{html.escape(value)}</text>'


def rect(x: float, y: float, w: float, h: float, colour: str, extra: str = "") -> str:
    more = f" {extra}" if extra else ""
    return f'<rect x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" fill="{colour}"{more}/>'


def polylines(xs: Sequence[float], ys: Sequence[float], colour: str, width: float = 1.5, extra: str = "") -> str:
    """A line through the points ``(xs[i], ys[i])``, broken where a ``y`` is not finite (a gap in
    the data): one ``<polyline>`` per unbroken run; a lone point is drawn as a short dash."""
    more = f" {extra}" if extra else ""
    out, run = [], []

    def flush() -> None:
        if len(run) == 1:
            (x, y) = run[0]
            run.append((x + 1.0, y))
        if run:
            pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="{num(width)}"{more}/>')
        run.clear()

    for x, y in zip(xs, ys):
        if math.isfinite(y):
            run.append((float(x), float(y)))
        else:
            flush()
    flush()
    return "".join(out)
