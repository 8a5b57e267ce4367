"""Identifiers found by pattern and checksum: the entities of Presidio's pattern recognizers
(presidio-analyzer/presidio_analyzer/predefined_recognizers) as plain regexes and validators.

Scoring follows Presidio's PatternRecognizer: each pattern has a base score; a validator that
passes raises a match to 1.0 and one that fails drops it, as does an invalidator; a match inside a
better one of the same recognizer is dropped. Presidio then raises a match to at least 0.4 when one
of its recognizer's context words is near it. A caption has no form labels around a number, so a
match is reported here when its score reaches ``REPORT_SCORE`` (0.4) or when a context word of its
recognizer appears anywhere in the caption (whole words or phrases, any case). Weak patterns
(any 9-digit number as a passport, 8-17 digits as a bank account) therefore count only with context.
"""

# Patterns, context words and validators follow Microsoft Presidio:
#   The MIT License (MIT). Copyright (c) Presidio Contributors.
#   Permission is hereby granted, free of charge, to any person obtaining a copy of this software
#   and associated documentation files (the "Software"), to deal in the Software without
#   restriction, including without limitation the rights to use, copy, modify, merge, publish,
#   distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
#   Software is furnished to do so, subject to the following conditions: The above copyright
#   notice and this permission notice shall be included in all copies or substantial portions of
#   the Software. THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
#   IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A
#   PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE
#   LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
#   OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
#   DEALINGS IN THE SOFTWARE.

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import cache, cached_property
from hashlib import sha256
from typing import Callable

__all__ = ["KINDS", "RECOGNIZERS", "REPORT_SCORE", "Recognizer", "find_identifiers", "iban_valid"]

# The score Presidio's context enhancer gives any match with a context word near it
# (min_score_with_context_similarity); Presidio's AnalyzerEngine itself defaults to 0.
REPORT_SCORE = 0.4
# Presidio compiles pattern recognizers with IGNORECASE | DOTALL | MULTILINE (IBAN without
# IGNORECASE); no pattern here uses ".", "^" or "$".
_I = re.IGNORECASE


@dataclass(frozen=True)
class _Pattern:
    """A scored pattern, compiled on first use (importing the module stays cheap)."""

    source: str
    score: float
    flags: int = _I

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.source, self.flags)


_p = _Pattern


# Digits joined by single separators (a match of a digit pattern lies inside one such group) and
# the words of a caption, for whole-word context look-ups.
_DIGIT_GROUP = re.compile(r"\d+(?:[\s.:-]\d+)*")
_DIGIT = re.compile(r"\d")
_WORD = re.compile(r"\w+#?")


def _words(text: str) -> str:
    return " " + " ".join(_WORD.findall(text.lower())) + " "


class _Scan:
    """A caption as the recognizers see it: its digit groups (start, end, digits), its longest
    whitespace-free run (``token``) and longest one not all letters (``digit_token``, at least
    that of any run holding a digit), and, made on first use, its lower-case words between single
    spaces."""

    __slots__ = ("text", "groups", "largest", "token", "digit_token", "_words")

    def __init__(self, text: str) -> None:
        self.text = text
        self.groups = [(m.start(), m.end(), len(_DIGIT.findall(m.group()))) for m in _DIGIT_GROUP.finditer(text)]
        self.largest = max((n for _, _, n in self.groups), default=0)
        tokens = text.split()
        self.token = max(map(len, tokens), default=0)
        self.digit_token = max((len(t) for t in tokens if not t.isalpha()), default=0) if self.largest else 0
        self._words: str | None = None

    def words(self) -> str:
        if self._words is None:
            self._words = _words(self.text)
        return self._words


@dataclass(frozen=True)
class Recognizer:
    """One Presidio pattern recognizer: the finding ``kind`` it reports, Presidio's ``entity``
    name, its scored patterns, context words, validator (True: score 1.0, False: dropped, None:
    base score) and invalidator (True: dropped).

    What a match needs, so that other captions are not scanned: a group of ``min_digits`` digits
    (one whitespace, ".", ":" or "-" allowed between them); a whitespace-free run of ``min_token``
    characters (holding a digit when ``min_digits`` is set); one of the ``anchor`` characters.
    ``reach`` (before, after): every match lies within that many characters of such a digit group,
    so only there is the caption scanned (None: everywhere)."""

    kind: str
    entity: str
    patterns: tuple[_Pattern, ...]
    context: tuple[str, ...] = ()
    validate: Callable[[str], bool | None] | None = None
    invalidate: Callable[[str], bool] | None = None
    min_digits: int = 1
    min_token: int = 0
    anchor: str = ""
    reach: tuple[int, int] | None = None
    _context: tuple[str, ...] = field(init=False, repr=False, compare=False, default=())
    _strong: tuple[_Pattern, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "_context", tuple(_words(w) for w in self.context))
        # Patterns whose matches count without a context word: validated ones score 1.0 or drop.
        strong = tuple(p for p in self.patterns if self.validate is not None or p.score >= REPORT_SCORE)
        object.__setattr__(self, "_strong", strong)

    def applies(self, scan: _Scan) -> bool:
        """Whether the caption can hold a match at all."""
        if scan.largest < self.min_digits:
            return False
        if self.min_token and (scan.digit_token if self.min_digits else scan.token) < self.min_token:
            return False
        return not self.anchor or any(c in scan.text for c in self.anchor)

    def has_context(self, scan: _Scan) -> bool:
        """Whether one of the context words or phrases is in the caption (whole words, any case)."""
        words = scan.words()
        return any(w in words for w in self._context)

    def find(self, text: str | _Scan) -> list[tuple[int, int]]:
        """Spans of the matches reported in ``text``, by start."""
        scan = text if isinstance(text, _Scan) else _Scan(text)
        text = scan.text
        # Weak patterns score under REPORT_SCORE and count only with a context word: without one
        # they need not be matched, and every match of the others is reported.
        patterns = self._strong
        if len(patterns) < len(self.patterns) and self.has_context(scan):
            patterns = self.patterns
        if not patterns:
            return []
        if self.reach is None:
            windows = [(0, len(text))]
        else:
            # A scan from pos still sees the text before it (\b, lookbehind); endpos is one past
            # the reach, so that \b at the end of a match sees the real next character.
            before, after = self.reach
            n = len(text)
            windows = [(max(a - before, 0), min(b + after + 1, n)) for a, b, d in scan.groups if d >= self.min_digits]
        scored: list[tuple[float, int, int]] = []
        for pattern in patterns:
            for pos, endpos in windows:
                for m in pattern.regex.finditer(text, pos, endpos):
                    start, end = m.span()
                    if start == end:
                        continue
                    score = pattern.score
                    if self.validate is not None:
                        valid = self.validate(m.group())
                        if valid is not None:
                            score = 1.0 if valid else 0.0
                    if self.invalidate is not None and self.invalidate(m.group()):
                        score = 0.0
                    if score > 0:
                        scored.append((score, start, end))
        if len(scored) < 2:
            return [(start, end) for _, start, end in scored]
        return sorted((start, end) for _, start, end in _remove_duplicates(scored))


def _remove_duplicates(results: list[tuple[float, int, int]]) -> list[tuple[float, int, int]]:
    """Presidio's EntityRecognizer.remove_duplicates: best score first, a match inside a kept one
    is dropped."""
    kept: list[tuple[float, int, int]] = []
    for score, start, end in sorted(set(results), key=lambda r: (-r[0], r[1], r[1] - r[2])):
        if not any(s <= start and end <= e for _, s, e in kept):
            kept.append((score, start, end))
    return kept


def _sanitize(text: str, chars: str = "- ") -> str:
    for c in chars:
        text = text.replace(c, "")
    return text


def _digits(text: str) -> list[int]:
    return [int(c) for c in text if c.isdigit()]


# ------------------------------------------------------------------------------ validators


def _ssn_invalid(text: str) -> bool:
    if len({c for c in text if c in ".- "}) > 1:
        return True  # mixed delimiters
    digits = "".join(c for c in text if c.isdigit())
    if all(c == digits[0] for c in digits):
        return True
    if digits[3:5] == "00" or digits[5:] == "0000":
        return True
    return digits.startswith(("000", "666", "123456789", "98765432", "078051120"))


def _dea_valid(text: str) -> bool:
    digits = [int(c) for c in _sanitize(text)[2:]]
    check = digits.pop()
    return (2 * sum(digits[-1::-2]) + sum(digits[-2::-2]) - check) % 10 == 0


def _nhs_valid(text: str) -> bool:
    return sum(int(c) * w for c, w in zip(_sanitize(text), range(10, -1, -1))) % 11 == 0


_B58 = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _base58check(text: str) -> bool:
    raw = text.encode()
    stripped = raw.lstrip(_B58[:1])
    n = 0
    for ch in stripped:
        i = _B58.find(ch)
        if i < 0:
            return False
        n = n * 58 + i
    data = n.to_bytes(len(raw) - len(stripped) + (n.bit_length() + 7) // 8, "big")
    return data[-4:] == sha256(sha256(data[:-4]).digest()).digest()[:4]


def _bech32(text: str) -> bool:
    """Bech32 or Bech32m checksum (BIP 173 / BIP 350)."""
    if any(not 33 <= ord(c) <= 126 for c in text) or (text.lower() != text and text.upper() != text):
        return False
    text = text.lower()
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text) or len(text) > 90:
        return False
    if any(c not in _BECH32 for c in text[pos + 1 :]):
        return False
    hrp = text[:pos]
    values = [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + [_BECH32.find(c) for c in text[pos + 1 :]]
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _BECH32_GEN[i] if (top >> i) & 1 else 0
    return chk in (1, 0x2BC830A3)


def _crypto_valid(text: str) -> bool:
    if text[:1] in ("1", "3"):
        return _base58check(text)
    return text.startswith("bc1") and _bech32(text)


def _mac_invalid(text: str) -> bool:
    cleaned = re.sub(r"[:\-.]", "", text).upper()
    return re.fullmatch(r"[0-9A-F]{12}", cleaned) is None or cleaned in ("FFFFFFFFFFFF", "000000000000")


def _weighted(text: str, weights: tuple[int, ...]) -> int:
    return sum(d * w for d, w in zip(_digits(text), weights))


def _tfn_valid(text: str) -> bool:
    return _weighted(text, (1, 4, 3, 7, 5, 8, 6, 9, 10)) % 11 == 0


def _abn_valid(text: str) -> bool:
    digits = _digits(text)
    digits[0] -= 1
    return sum(d * w for d, w in zip(digits, (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19))) % 89 == 0


def _medicare_valid(text: str) -> bool:
    return _weighted(text, (1, 3, 7, 9, 1, 3, 7, 9)) % 10 == _digits(text)[8]


_VERHOEFF_D = tuple(
    tuple(int(c) for c in row)
    for row in (
        "0123456789",
        "1234067895",
        "2340178956",
        "3401289567",
        "4012395678",
        "5987604321",
        "6598710432",
        "7659821043",
        "8765932104",
        "9876543210",
    )
)
_VERHOEFF_P = tuple(
    tuple(int(c) for c in row)
    for row in (
        "0123456789",
        "1576283094",
        "5803796142",
        "8916043527",
        "9453126870",
        "4286573901",
        "2793806415",
        "7046913258",
    )
)


def _verhoeff(digits: str) -> bool:
    c = 0
    for i, d in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(d)]]
    return c == 0


def _aadhaar_valid(text: str) -> bool:
    s = _sanitize(text, "- :")
    return len(s) == 12 and s.isdigit() and int(s[0]) >= 2 and _verhoeff(s) and s != s[::-1]


_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _nif_valid(text: str) -> bool:
    s = _sanitize(text).upper()
    return s[-1] == _NIF_LETTERS[int("".join(c for c in s if c.isdigit())) % 23]


def _nie_valid(text: str) -> bool:
    s = _sanitize(text).upper()
    if s[:1] not in ("X", "Y", "Z") or not 8 <= len(s) <= 9:
        return False
    return s[-1] == _NIF_LETTERS[int(str("XYZ".index(s[0])) + s[1:-1]) % 23]


def _luhn(digits: list[int]) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d > 4 else d * 2) if i % 2 else d
    return total % 10 == 0


def _npi_valid(text: str) -> bool:
    return _luhn([8, 0, 8, 4, 0] + _digits(text))


def _npi_invalid(text: str) -> bool:
    body = _sanitize(text)[:-1]
    return bool(body) and len(set(body)) == 1


# ------------------------------------------------------------------------------ IBAN

# Presidio's iban_patterns.regex_per_country after the country code and check digits, as runs of
# n (digit), a (capital letter), c (letter or digit) and z (a literal 0).
_IBAN_FORMATS = {
    "AL": "8n16c", "AD": "8n12c", "AT": "16n", "AZ": "4c20n", "BH": "4a14c", "BY": "4c4n16c",
    "BE": "12n", "BA": "16n", "BR": "23n1a1c", "BG": "4a6n8c", "CR": "1z17n", "HR": "17n",
    "CY": "8n16c", "CZ": "20n", "DK": "14n", "DO": "4a20n", "TL": "19n", "EE": "16n", "FO": "14n",
    "FI": "14n", "FR": "10n11c2n", "GE": "2c16n", "DE": "18n", "GI": "4a15c", "GR": "7n16c",
    "GL": "14n", "GT": "24c", "HU": "24n", "IS": "22n", "IE": "4c14n", "IL": "19n", "IT": "1a10n12c",
    "JO": "4a22n", "KZ": "3n13c", "XK": "16n", "KW": "4a22c", "LV": "4a13c", "LB": "4n20c",
    "LI": "5n12c", "LT": "16n", "LU": "3n13c", "MT": "4a5n18c", "MR": "23n", "MU": "4a19n1a",
    "MD": "20c", "MC": "10n11c2n", "ME": "18n", "NL": "4a10n", "MK": "3n10c2n", "NO": "11n",
    "PK": "4c16n", "PS": "4c17n", "PL": "24n", "PT": "17n", "QA": "4a17c", "RO": "4a16c",
    "SM": "1a10n12c", "SA": "2n18c", "RS": "18n", "SK": "20n", "SI": "15n", "ES": "20n", "SE": "20n",
    "CH": "5n12c", "TN": "20n", "TR": "5n17c", "AE": "19n", "GB": "4a14n", "VA": "18n", "VG": "4c16n",
    "EG": "25n", "IQ": "4a15n", "LY": "21n", "LC": "4a24c", "SC": "4a20n3a", "UA": "6n19c",
}  # fmt: skip
_IBAN_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[a-zA-Z0-9]", "z": "0"}


@cache
def _iban_country(cc: str) -> re.Pattern[str] | None:
    """The format of a country's IBANs; like Presidio's (exact_match off) it is matched at the
    start of the IBAN only."""
    spec = _IBAN_FORMATS.get(cc)
    if spec is None:
        return None
    classes = "".join(f"{_IBAN_CLASS[c]}{{{n}}}" for n, c in re.findall(r"(\d+)([nacz])", spec))
    return re.compile(cc + "[0-9]{2}" + classes)


# Country, check digits, 2-6 groups of four, then an optional group of four and of one to three:
# a match that fails is tried again without the last of these (Presidio's group fallback).
_IBAN = re.compile(
    r"(?<![A-Z0-9])([A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]{4}){2,6})"
    r"((?:[ -]?[A-Z0-9]{4})?)((?:[ -]?[A-Z0-9]{1,3})?)(?![A-Z0-9])"
)
_IBAN_LETTERS = {ord(d): str(i) for i, d in enumerate(string.digits + string.ascii_uppercase)}


def iban_valid(text: str) -> bool:
    """Mod-97 check digits and the country's format (spaces and hyphens ignored)."""
    s = _sanitize(text)
    try:
        number = int((s[4:] + s[:2] + "00").upper().translate(_IBAN_LETTERS))
    except ValueError:
        return False
    country = _iban_country(s[:2])
    return f"{98 - number % 97:02d}" == s[2:4] and country is not None and country.match(s) is not None


@dataclass(frozen=True)
class _IbanRecognizer(Recognizer):
    """IBAN_CODE: every match validates (mod 97 and country format) or is dropped."""

    def find(self, text: str | _Scan) -> list[tuple[int, int]]:
        text = text.text if isinstance(text, _Scan) else text
        spans = []
        for m in _IBAN.finditer(text):
            for group in (3, 2, 1):
                end = m.end(group) if m.end(group) > 0 else m.end()
                if end > m.start() and iban_valid(text[m.start() : end]):
                    spans.append((m.start(), end))
                    break
        return spans


# ------------------------------------------------------------------------------ recognizers

_DL_ALNUM = (
    r"\b([A-Z][0-9]{3,6}|[A-Z][0-9]{5,9}|[A-Z][0-9]{6,8}|[A-Z][0-9]{4,8}|[A-Z][0-9]{9,11}|"
    r"[A-Z]{1,2}[0-9]{5,6}|H[0-9]{8}|V[0-9]{6}|X[0-9]{8}|A-Z]{2}[0-9]{2,5}|[A-Z]{2}[0-9]{3,7}|"
    r"[0-9]{2}[A-Z]{3}[0-9]{5,6}|[A-Z][0-9]{13,14}|[A-Z][0-9]{18}|[A-Z][0-9]{6}R|[A-Z][0-9]{9}|"
    r"[A-Z][0-9]{1,12}|[0-9]{9}[A-Z]|[A-Z]{2}[0-9]{6}[A-Z]|[0-9]{8}[A-Z]{2}|[0-9]{3}[A-Z]{2}[0-9]{4}|"
    r"[A-Z][0-9][A-Z][0-9][A-Z]|[0-9]{7,8}[A-Z])\b"
)
_ITIN_MID = r"(5\d|6[0-5]|7\d|8[0-8]|9([0-2]|[4-9]))"
_MBI_A = "[ACDEFGHJKMNPQRTUVWXY]"
_MBI_AN = "[0-9ACDEFGHJKMNPQRTUVWXY]"

RECOGNIZERS: tuple[Recognizer, ...] = (
    Recognizer(
        "us_ssn",
        "US_SSN",
        (
            _p(r"\b([0-9]{5})-([0-9]{4})\b", 0.05),
            _p(r"\b([0-9]{3})-([0-9]{6})\b", 0.05),
            _p(r"\b(([0-9]{3})-([0-9]{2})-([0-9]{4}))\b", 0.05),
            _p(r"\b[0-9]{9}\b", 0.05),
            _p(r"\b([0-9]{3})[- .]([0-9]{2})[- .]([0-9]{4})\b", 0.5),
        ),
        ("social", "security", "ssn", "ssns", "ssid"),
        invalidate=_ssn_invalid,
        min_digits=9,
        reach=(0, 0),
    ),
    Recognizer(
        "us_itin",
        "US_ITIN",
        (
            _p(rf"\b9\d{{2}}[- ]{_ITIN_MID}\d{{4}}\b|\b9\d{{2}}{_ITIN_MID}[- ]\d{{4}}\b", 0.05),
            _p(rf"\b9\d{{2}}{_ITIN_MID}\d{{4}}\b", 0.3),
            _p(rf"\b9\d{{2}}[- ]{_ITIN_MID}[- ]\d{{4}}\b", 0.5),
        ),
        ("individual", "taxpayer", "itin", "tax", "payer", "taxid", "tin"),
        min_digits=9,
        reach=(0, 0),
    ),
    Recognizer(
        "us_passport",
        "US_PASSPORT",
        (_p(r"(\b[0-9]{9}\b)", 0.05), _p(r"(\b[A-Z][0-9]{8}\b)", 0.1)),
        ("us", "united", "states", "passport", "passport#", "travel", "document"),
        min_digits=8,
        reach=(1, 0),
        min_token=9,
    ),
    Recognizer(
        "us_driver_license",
        "US_DRIVER_LICENSE",
        (_p(_DL_ALNUM, 0.3), _p(r"\b([0-9]{6,14}|[0-9]{16})\b", 0.01)),
        ("driver", "license", "permit", "lic", "identification", "dls", "cdls", "lic#", "driving"),
    ),
    Recognizer(
        "us_bank",
        "US_BANK_NUMBER",
        (_p(r"\b[0-9]{8,17}\b", 0.05),),
        ("check", "account", "account#", "acct", "bank", "save", "debit"),
        min_digits=8,
        min_token=8,
        reach=(0, 0),
    ),
    Recognizer(
        "us_npi",
        "US_NPI",
        (_p(r"\b[12]\d{9}\b", 0.1), _p(r"\b[12]\d{3}[ -]\d{3}[ -]\d{3}\b", 0.4)),
        ("npi", "national provider", "provider", "npi number", "provider id", "provider identifier", "taxonomy"),
        validate=_npi_valid,
        invalidate=_npi_invalid,
        min_digits=10,
        reach=(0, 0),
    ),
    Recognizer(
        "us_mbi",
        "US_MBI",
        (
            _p(rf"\b[0-9]{_MBI_A}{_MBI_AN}[0-9]{_MBI_A}{_MBI_AN}[0-9]{_MBI_A}{_MBI_A}[0-9][0-9]\b", 0.3),
            _p(rf"\b[0-9]{_MBI_A}{_MBI_AN}[0-9]-{_MBI_A}{_MBI_AN}[0-9]-{_MBI_A}{_MBI_A}[0-9][0-9]\b", 0.5),
        ),
        ("medicare", "mbi", "beneficiary", "cms", "medicaid", "hic", "hicn"),
        min_digits=2,
        min_token=11,
    ),
    Recognizer(
        "medical_license",
        "MEDICAL_LICENSE",
        (
            _p(
                r"[abcdefghjklmprstuxABCDEFGHJKLMPRSTUX]{1}[a-zA-Z]{1}\d{7}|"
                r"[abcdefghjklmprstuxABCDEFGHJKLMPRSTUX]{1}9\d{7}",
                0.4,
            ),
        ),
        ("medical", "certificate", "DEA"),
        validate=_dea_valid,
        min_digits=7,
        reach=(2, 0),
        min_token=9,
    ),
    Recognizer(
        "uk_nhs",
        "UK_NHS",
        (_p(r"\b([0-9]{3})[- ]?([0-9]{3})[- ]?([0-9]{4})\b", 0.5),),
        ("national health service", "nhs", "health services authority", "health authority"),
        validate=_nhs_valid,
        min_digits=10,
        reach=(0, 0),
    ),
    Recognizer(
        "uk_nino",
        "UK_NINO",
        (
            _p(
                r"\b(?!bg|gb|nk|kn|nt|tn|zz|BG|GB|NK|KN|NT|TN|ZZ) ?([a-ceghj-pr-tw-zA-CEGHJ-PR-TW-Z]{1}"
                r"[a-ceghj-npr-tw-zA-CEGHJ-NPR-TW-Z]{1}) ?([0-9]{2}) ?([0-9]{2}) ?([0-9]{2}) ?([a-dA-D]{1})\b",
                0.5,
            ),
        ),
        ("national insurance", "ni number", "nino"),
        min_digits=6,
        reach=(4, 2),
    ),
    _IbanRecognizer("iban", "IBAN_CODE", (), ("iban", "bank", "transaction"), min_digits=2),
    Recognizer(
        "crypto",
        "CRYPTO",
        (_p(r"(bc1|[13])[a-zA-HJ-NP-Z0-9]{25,59}", 0.5),),
        ("wallet", "btc", "bitcoin", "crypto"),
        validate=_crypto_valid,
        min_token=26,
    ),
    Recognizer(
        "mac",
        "MAC_ADDRESS",
        (
            _p(r"\b[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}\b", 0.6),
            _p(r"\b[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\b", 0.6),
        ),
        ("mac", "mac address", "hardware address", "physical address", "ethernet"),
        invalidate=_mac_invalid,
        min_digits=0,
        min_token=14,
        anchor=":-.",
    ),
    Recognizer(
        "au_tfn",
        "AU_TFN",
        (_p(r"\b\d{3}\s\d{3}\s\d{3}\b", 0.1), _p(r"\b\d{9}\b", 0.01)),
        ("tax file number", "tfn"),
        validate=_tfn_valid,
        min_digits=9,
        reach=(0, 0),
    ),
    Recognizer(
        "au_abn",
        "AU_ABN",
        (_p(r"\b\d{2}\s\d{3}\s\d{3}\s\d{3}\b", 0.1), _p(r"\b\d{11}\b", 0.01)),
        ("australian business number", "abn"),
        validate=_abn_valid,
        min_digits=11,
        reach=(0, 0),
    ),
    Recognizer(
        "au_medicare",
        "AU_MEDICARE",
        (_p(r"\b[2-6]\d{3}\s\d{5}\s\d\b", 0.1), _p(r"\b[2-6]\d{9}\b", 0.01)),
        ("medicare",),
        validate=_medicare_valid,
        min_digits=10,
        reach=(0, 0),
    ),
    Recognizer(
        "in_pan",
        "IN_PAN",
        (
            _p(r"\b([A-Za-z]{3}[AaBbCcFfGgHhJjLlPpTt]{1}[A-Za-z]{1}[0-9]{4}[A-Za-z]{1})\b", 0.5),
            _p(r"\b([A-Za-z]{5}[0-9]{4}[A-Za-z]{1})\b", 0.1),
            # Presidio's lookaheads scan the rest of the text; here they stay inside the token.
            _p(r"\b((?=[\w@#$%^?~-]{0,9}[a-zA-Z])(?=[\w@#$%^?~-]{0,6}[0-9]{4})[\w@#$%^?~-]{10})\b", 0.01),
        ),
        ("permanent account number", "pan"),
        min_digits=4,
        min_token=10,
    ),
    Recognizer(
        "in_aadhaar",
        "IN_AADHAAR",
        (_p(r"\b[0-9]{12}\b", 0.01), _p(r"\b[0-9]{4}[- :][0-9]{4}[- :][0-9]{4}\b", 0.01)),
        ("aadhaar", "uidai"),
        validate=_aadhaar_valid,
        min_digits=12,
        reach=(0, 0),
    ),
    Recognizer(
        "sg_nric",
        "SG_NRIC_FIN",
        (_p(r"(\b[A-Z][0-9]{7}[A-Z]\b)", 0.3), _p(r"(\b[STFGM][0-9]{7}[A-Z]\b)", 0.5)),
        ("fin", "fin#", "nric", "nric#"),
        min_digits=7,
        reach=(1, 1),
        min_token=9,
    ),
    Recognizer(
        "es_nif",
        "ES_NIF",
        (_p(r"\b[0-9]?[0-9]{7}[-]?[A-Z]\b", 0.5),),
        ("documento nacional de identidad", "DNI", "NIF", "identificación"),
        validate=_nif_valid,
        min_digits=7,
        reach=(0, 2),
        min_token=8,
    ),
    Recognizer(
        "es_nie",
        "ES_NIE",
        (_p(r"\b[X-Z]?[0-9]?[0-9]{7}[-]?[A-Z]\b", 0.5),),
        ("número de identificación de extranjero", "NIE"),
        validate=_nie_valid,
        min_digits=7,
        reach=(1, 2),
        min_token=8,
    ),
    Recognizer(
        "ca_sin",
        "CA_SIN",
        (_p(r"\b[1-79]\d{8}\b", 0.05), _p(r"\b[1-79]\d{2}([- ])\d{3}\1\d{3}\b", 0.5)),
        (
            "sin",
            "sin number",
            "social insurance",
            "social insurance number",
            "canada",
            "nas",
            "numéro nas",
            "numéro d'assurance sociale",
            "assurance sociale",
        ),
        invalidate=lambda text: not _luhn(_digits(text)),
        min_digits=9,
        reach=(0, 0),
    ),
)
# Only a MAC address can be written without a digit ("aabb.ccdd.eeff").
_MAC_TOKEN = next(r.min_token for r in RECOGNIZERS if r.kind == "mac")
# The finding kinds, in the order of RECOGNIZERS.
KINDS: tuple[str, ...] = tuple(r.kind for r in RECOGNIZERS)


def find_identifiers(text: str) -> list[tuple[int, str, str]]:
    """(start, kind, matched text) of every identifier found in ``text``, without the whitespace
    a pattern may take in at either end (UK_NINO's optional leading space)."""
    scan = _Scan(text)
    if not scan.largest and scan.token < _MAC_TOKEN:
        return []
    hits = []
    for rec in RECOGNIZERS:
        if rec.applies(scan):
            for start, end in rec.find(scan):
                match = text[start:end]
                stripped = match.lstrip()
                hits.append((start + len(match) - len(stripped), rec.kind, stripped.rstrip()))
    return hits
