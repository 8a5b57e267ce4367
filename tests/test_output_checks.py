"""The harness's own output checks: exact findings on a written corpus, batched == per caption."""

import itertools
import subprocess
import sys

import numpy as np
import pytest

from harness.quality import CHECKS, CaptionFinding, DegenerateLimits, check_caption, check_captions
from harness.quality.checks import KINDS, MATCH_CHARS, CaptionChecker, luhn_valid

BLOCKLIST = ("ass", "gun", "dead body")

# 61 and 60 distinct alphabetic words (numbers do not count as words).
_WORDS = ["".join(p) for p in itertools.product("bcdfghjk", repeat=2)]
LONG_61 = " ".join(_WORDS[:61])
LONG_60 = " ".join(_WORDS[:60])


def _pii(kind, match):
    return ("pii", kind, match)


# (caption, expected findings as (check, kind, match)), with the default blocklist BLOCKLIST,
# phone region US and default limits.
CORPUS = [
    # e-mail
    ("a sign reading john.doe@example.com", [_pii("email", "john.doe@example.com")]),
    ("Mail: First_Last+tag@mail.example.co.uk.", [_pii("email", "First_Last+tag@mail.example.co.uk")]),
    ("contact x@sub-domain.example.org, please", [_pii("email", "x@sub-domain.example.org")]),
    # phone numbers, international and US national
    ("call +1 650 253 0000", [_pii("phone", "+1 650 253 0000")]),
    ("+1-650-253-0000", [_pii("phone", "+1-650-253-0000")]),
    ("a card saying +44 20 7946 0958", [_pii("phone", "+44 20 7946 0958")]),
    ("+49 30 901820", [_pii("phone", "+49 30 901820")]),
    ("phone: +33 1 42 68 53 00", [_pii("phone", "+33 1 42 68 53 00")]),
    ("(650) 253-0000", [_pii("phone", "(650) 253-0000")]),
    ("call 650-253-0000 or 6502530000", [_pii("phone", "650-253-0000"), _pii("phone", "6502530000")]),
    # payment cards passing Luhn
    ("card 4111 1111 1111 1111", [_pii("card", "4111 1111 1111 1111")]),
    ("4111-1111-1111-1111", [_pii("card", "4111-1111-1111-1111")]),
    ("5500005555555559", [_pii("card", "5500005555555559")]),
    ("amex 3782 822463 10005", [_pii("card", "3782 822463 10005")]),
    ("4111 1111 1111 1111 3 objects", [_pii("card", "4111 1111 1111 1111")]),
    # IP addresses
    ("ip 192.168.1.1", [_pii("ip", "192.168.1.1")]),
    ("server 8.8.8.8.", [_pii("ip", "8.8.8.8")]),
    ("2001:db8::1", [_pii("ip", "2001:db8::1")]),
    ("loopback ::1", [_pii("ip", "::1")]),
    ("fe80::1ff:fe23:4567:890a", [_pii("ip", "fe80::1ff:fe23:4567:890a")]),
    ("::ffff:192.0.2.1", [_pii("ip", "::ffff:192.0.2.1")]),
    # URLs
    ("visit https://example.com/x.", [_pii("url", "https://example.com/x")]),
    ("HTTP://localhost:8080/path", [_pii("url", "HTTP://localhost:8080/path")]),
    ("www.example.com", [_pii("url", "www.example.com")]),
    ("(see www.example.org/about)", [_pii("url", "www.example.org/about")]),
    ("https://10.0.0.1/x", [_pii("url", "https://10.0.0.1/x"), _pii("ip", "10.0.0.1")]),
    # things that are not personal data
    ("a large red circle to the left of a small blue square", []),
    ("three shapes: a small red circle, a large green square and a small blue triangle", []),
    ("3 objects", []),
    ("16 digits 1234 5678 9012 3456", []),
    ("0000 0000 0000 0000", []),
    ("999.1.1.1", []),
    ("10.0.0.256", []),
    ("v1.2.3", []),
    ("version 2.0.1", []),
    ("1.2.3.4.5", []),
    ("at 12:30:45", []),
    ("ratio 16:9", []),
    ("in 2019", []),
    ("a 3x3 grid of 9 squares", []),
    ("call 555-0100", []),
    ("user@localhost", []),
    ("email@ me", []),
    ("e.g. a small circle", []),
    ("https://", []),
    ("www.", []),
    # blocklist: whole words, any case
    ("a Gun on a table", [("blocklist", "word", "Gun")]),
    ("gun-shaped", [("blocklist", "word", "gun")]),
    ("ASS", [("blocklist", "word", "ASS")]),
    ("a dead  body", [("blocklist", "word", "dead  body")]),
    ("a class of students", []),
    ("passage", []),
    ("guns", []),
    ("a dead leaf on a body of water", []),
    # blank
    (None, [("blank", "none", "")]),
    ("", [("blank", "empty", "")]),
    ("   \n\t", [("blank", "whitespace", "")]),
    # degenerate text
    ("square square square", [("degenerate", "repeat", "square square square")]),
    ("a Red red RED square", [("degenerate", "repeat", "red red red")]),
    ("a red square a red square a red square", [("degenerate", "loop", "a red square a red square a red square")]),
    (
        "a red square and a red square and a red square",
        [("degenerate", "loop", "a red square and a red square and a red\u2026")],
    ),
    ("one two one two one two three", [("degenerate", "loop", "one two one two one two")]),
    (LONG_61, [("degenerate", "length", "61 words")]),
    # near misses
    ("a small small square", []),
    ("a red square and a red square", []),
    ("a small red circle, a small red square and a small red triangle", []),
    ("a red circle, a red square and a red triangle", []),
    ("a b a b", []),
    ("1111 1111 1111", []),
    (LONG_60, []),
    # several checks at once, listed in CHECKS order
    (
        "a gun and john@example.com repeated repeated repeated",
        [
            _pii("email", "john@example.com"),
            ("blocklist", "word", "gun"),
            ("degenerate", "repeat", "repeated repeated repeated"),
        ],
    ),
]


def _expected(rows):
    return tuple(CaptionFinding(*r) for r in rows)


@pytest.mark.parametrize(("caption", "expected"), CORPUS, ids=[repr(c)[:40] for c, _ in CORPUS])
def test_check_caption_exact(caption, expected):
    assert check_caption(caption, BLOCKLIST) == _expected(expected)


def test_corpus_findings_use_declared_checks_and_kinds():
    for _, expected in CORPUS:
        for check, kind, match in expected:
            assert check in CHECKS and kind in KINDS[check]
            assert len(match) <= MATCH_CHARS
    assert CHECKS == ("pii", "blocklist", "blank", "degenerate")


def test_batched_equals_per_caption_on_the_corpus():
    captions = [c for c, _ in CORPUS]
    rng = np.random.default_rng(7)
    many = [captions[i] for i in rng.integers(0, len(captions), 2000)] + captions
    for median in (None, 5.0):
        table = check_captions(many, BLOCKLIST, length_median=median)
        assert len(table) == len(many)
        for i, caption in enumerate(many):
            single = check_caption(caption, BLOCKLIST, length_median=median)
            assert table.findings[i] == single
            for check in CHECKS:
                assert table.flags(check)[i] == any(f.check == check for f in single)
        assert table.flagged.tolist() == [bool(fs) for fs in table.findings]


def test_table_flags_counts_matches_and_frame():
    table = check_captions([None, "a red circle", "mail a@example.com", "a gun", "a red circle"], ["gun"])
    assert table.pii.tolist() == [False, False, True, False, False]
    assert table.blocklist.tolist() == [False, False, False, True, False]
    assert table.blank.tolist() == [True, False, False, False, False]
    assert table.degenerate.tolist() == [False] * 5
    assert table.counts() == {"pii": 1, "blocklist": 1, "blank": 1, "degenerate": 0}
    assert table.matches("pii") == ((), (), ("email: a@example.com",), (), ())
    assert not table.pii.flags.writeable
    frame = table.to_frame()
    assert list(frame.columns) == [c for check in CHECKS for c in (check, f"{check}_matches")]
    assert frame["blocklist_matches"].tolist() == [[], [], [], ["word: gun"], []]
    with pytest.raises(KeyError, match="unknown check"):
        table.flags("toxicity")


def test_length_relative_to_reference_median():
    assert check_caption(" ".join(_WORDS[:16]), length_median=5) == (
        CaptionFinding("degenerate", "length", "16 words"),
    )
    assert check_caption(" ".join(_WORDS[:15]), length_median=5) == ()
    # the absolute cap still holds when the median is large
    assert check_caption(LONG_61, length_median=100) == (CaptionFinding("degenerate", "length", "61 words"),)


def test_limits_are_parameters():
    strict = DegenerateLimits(repeat_run=2, max_words=3)
    assert check_caption("a small small square", limits=strict) == (
        CaptionFinding("degenerate", "repeat", "small small"),
        CaptionFinding("degenerate", "length", "4 words"),
    )
    assert check_caption("a red square and a red square", limits=DegenerateLimits(ngram_repeats=2)) == (
        CaptionFinding("degenerate", "loop", "a red square and a red square"),
    )
    no_filler = DegenerateLimits(max_filler=0)
    assert check_caption("a red square and a red square and a red square", limits=no_filler) == ()
    with pytest.raises(ValueError):
        DegenerateLimits(ngram_min=3, ngram_max=2)


def test_phone_region():
    assert check_caption("tel 020 7946 0958") == ()
    assert check_caption("tel 020 7946 0958", region="GB") == (CaptionFinding("pii", "phone", "020 7946 0958"),)
    assert check_caption("(650) 253-0000", region=None) == ()
    assert check_caption("+1 650 253 0000", region=None) == (CaptionFinding("pii", "phone", "+1 650 253 0000"),)


def test_luhn():
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("1234567890123456")
    assert not luhn_valid("4111111111111112")


def test_long_matches_are_cut():
    url = "https://example.com/" + "a" * 100
    (finding,) = check_caption(url)
    assert finding.kind == "url" and len(finding.match) == MATCH_CHARS and finding.match.endswith("\u2026")


def test_checker_checks_each_text_once():
    checker = CaptionChecker(["gun"])
    table = checker.check_many(["a gun"] * 20000 + ["a red square"] * 20000)
    assert table.counts()["blocklist"] == 20000
    assert table.findings[0] is table.findings[19999]


def test_non_text_caption_is_rejected_but_nan_is_blank():
    assert check_caption(float("nan")) == (CaptionFinding("blank", "none", ""),)
    with pytest.raises(TypeError, match="str or None"):
        check_caption(5)


def test_importing_harness_and_quality_stays_light():
    code = (
        "import sys, harness, harness.quality, harness.quality.checks\n"
        "heavy = ('phonenumbers', 'presidio_analyzer', 'spacy', 'tldextract', 'torch', 'transformers')\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
