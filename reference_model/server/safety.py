"""The safety postprocessor run on every caption: a word blocklist and PII patterns (e-mail
addresses, phone numbers). Whatever it flags is redacted and named in the reasons."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

__all__ = ["DEFAULT_BLOCKLIST", "REDACTION", "SAFETY_REASONS", "SafetyVerdict", "SafetyFilter"]

# Words a caption of this service must never contain. The harness's safety SLI scans captions
# for the same words, which is how it catches an unsafe caption the filter let through.
DEFAULT_BLOCKLIST: tuple[str, ...] = (
    "blood",
    "corpse",
    "gore",
    "gun",
    "kill",
    "naked",
    "nude",
    "weapon",
)
REDACTION = "[redacted]"
SAFETY_REASONS: tuple[str, ...] = ("blocklist", "email", "phone")

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# A run of digits with the usual separators; it counts as a phone number with 7 to 15 digits.
_PHONE_CANDIDATE = re.compile(r"(?<![\w+])\+?\(?\d(?:[\d\s().-]*\d)?(?!\w)")


@dataclass(frozen=True)
class SafetyVerdict:
    """The caption as it may be shown, whether it was flagged, and why (in a fixed order)."""

    text: str
    flagged: bool
    reasons: tuple[str, ...]


class SafetyFilter:
    """Flags and redacts blocklisted words (whole words, any case), e-mail addresses and phone
    numbers. Reasons are ``blocklist``, ``email``, ``phone``."""

    def __init__(self, blocklist: Iterable[str] = DEFAULT_BLOCKLIST, redaction: str = REDACTION):
        words = sorted({w.strip().lower() for w in blocklist if w.strip()})
        self.blocklist: tuple[str, ...] = tuple(words)
        self.redaction = redaction
        self._block = (
            re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE) if words else None
        )

    def _phones(self, text: str) -> list[tuple[int, int]]:
        spans = []
        for m in _PHONE_CANDIDATE.finditer(text):
            digits = sum(c.isdigit() for c in m.group())
            if 7 <= digits <= 15:
                spans.append(m.span())
        return spans

    def check(self, text: str) -> SafetyVerdict:
        """Return the redacted caption and the reasons it was flagged (none: unchanged)."""
        reasons: list[str] = []
        spans: list[tuple[int, int]] = []
        for reason, found in (
            ("blocklist", [m.span() for m in self._block.finditer(text)] if self._block else []),
            ("email", [m.span() for m in _EMAIL.finditer(text)]),
        ):
            if found:
                reasons.append(reason)
                spans.extend(found)
        phones = [s for s in self._phones(text) if not any(a <= s[0] < b for a, b in spans)]
        if phones:
            reasons.append("phone")
            spans.extend(phones)
        if not reasons:
            return SafetyVerdict(text, False, ())
        out, pos = [], 0
        for a, b in sorted(spans):
            if a < pos:
                continue
            out.append(text[pos:a])
            out.append(self.redaction)
            pos = b
        out.append(text[pos:])
        return SafetyVerdict("".join(out), True, tuple(reasons))
