"""Reading an SLO spec: a native spec (``harness.slo.spec``) or a stream of OpenSLO v1 documents
(``harness.slo.openslo``), told apart by their documents, through the one YAML loader."""

from __future__ import annotations

from pathlib import Path

from harness.errors import InputMissingError
from harness.slo.errors import SpecError
from harness.slo.openslo import is_openslo, read_openslo
from harness.slo.spec import SLOSpec, native_spec
from harness.text import utf8_text

__all__ = ["parse_spec", "load_spec"]


def parse_spec(text: str, source: str = "<spec>") -> SLOSpec:
    """Parse a native spec or a stream of OpenSLO v1 documents; raise ``SpecError`` with a path."""
    from harness.safe_yaml import load_yaml_all

    docs = [d for d in load_yaml_all(text, source, SpecError) if d is not None]
    if not docs:
        raise SpecError(f"{source}: the spec is empty")
    try:
        if any(is_openslo(d) for d in docs):
            return read_openslo(docs, source)
        return native_spec(docs, source)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


def load_spec(path: str | Path) -> SLOSpec:
    """Read and validate the spec at ``path``."""
    p = Path(path)
    if not p.is_file():
        raise InputMissingError(f"{p}: SLO spec not found")
    return parse_spec(utf8_text(p.read_bytes(), str(p), SpecError, "save the spec as UTF-8"), str(p))
