"""Credentials kept out of everything the harness stores.

A target under test may echo what it was sent (an API key in an error message, a token in a
caption). ``Redactor`` holds the secret values a run sends and replaces each occurrence of one in
a text with ``[REDACTED]``; the record writer (``harness.records.RecordWriter`` and
``record_line``) applies it to every text field of every request record, so the reports, decision
records and markdown made from the records never see the value either.

The rule: a secret is the exact value sent (an ``--api-key``, or the token an ``--auth-env`` or an
adapter's ``auth`` names, without its ``Bearer`` scheme); values shorter than
``MIN_SECRET_CHARS`` are not redacted (they would match ordinary text); an encoded form of the
value (base64, URL escaping, a different case) is not recognised."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable

__all__ = ["REDACTED", "MIN_SECRET_CHARS", "Redactor", "credential_values"]

REDACTED = "[REDACTED]"
MIN_SECRET_CHARS = 4
_BEARER = "bearer "


class Redactor:
    """Replaces the secret values it holds with ``[REDACTED]``; an empty one changes nothing (and
    is false, so a hot path can skip it)."""

    __slots__ = ("secrets", "_pattern", "_spellings")

    def __init__(self, secrets: Iterable[str | None] = ()):
        kept = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
        # Longest first, in one pass: a secret inside another goes with it, and nothing is matched
        # inside a replacement already made.
        self.secrets: tuple[str, ...] = tuple(sorted(kept, key=lambda s: (-len(s), s)))
        self._pattern = re.compile("|".join(map(re.escape, self.secrets))) if self.secrets else None
        # How each secret is spelt inside a JSON string (either encoder: ASCII escapes or UTF-8).
        self._spellings = tuple(
            {f for s in self.secrets for f in (json.dumps(s)[1:-1], json.dumps(s, ensure_ascii=False)[1:-1])}
        )

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def __repr__(self) -> str:  # never the values themselves
        return f"Redactor({len(self.secrets)} secrets)"

    def text(self, s: str) -> str:
        """``s`` with every secret in it replaced."""
        if self._pattern is None or not any(secret in s for secret in self.secrets):
            return s
        return self._pattern.sub(REDACTED, s)

    def row(self, row: dict[str, Any]) -> dict[str, Any]:
        """A flat row (a request record) with every text value redacted; the row itself when none
        holds a secret."""
        if self._pattern is None:
            return row
        out = None
        for k, v in row.items():
            if isinstance(v, str):
                r = self.text(v)
                if r is not v:
                    if out is None:
                        out = dict(row)
                    out[k] = r
        return row if out is None else out

    def value(self, v: Any) -> Any:
        """Any JSON-like value (texts inside dicts, lists and tuples, dict keys too) redacted."""
        if self._pattern is None:
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.value(k): self.value(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(self.value(x) for x in v)
        return v

    def in_json(self, encoded: str) -> bool:
        """Whether a secret may be in this JSON text (as one of its strings): a cheap test before
        the text is decoded and redacted."""
        return any(f in encoded for f in self._spellings)

    def json_text(self, encoded: str) -> str:
        """JSON text that cannot be decoded, with each secret's JSON spellings replaced as text."""
        for f in sorted(self._spellings, key=len, reverse=True):
            encoded = encoded.replace(f, REDACTED)
        return encoded


def credential_values(adapter: Any = None, api_key: str | None = None) -> tuple[str, ...]:
    """The secret values a client sends: ``api_key`` and the credentials ``adapter`` sends with
    every request (read from the environment when it was built), each without a ``Bearer``
    scheme."""
    out = [api_key] if api_key else []
    if adapter is not None:
        for value in adapter.auth_headers(None).values():
            out.append(value[len(_BEARER) :] if value[: len(_BEARER)].lower() == _BEARER else value)
    return tuple(out)
