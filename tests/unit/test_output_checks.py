"""The harness's own output checks: exact findings on a written corpus, batched == per caption,
Presidio's recognizer test cases, the shapes world left alone, and a leaking canary rolled back."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import generate_shapes
from harness.quality import CHECKS, CaptionFinding, DegenerateLimits, check_caption, check_captions
from harness.quality import pii as identifiers
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
    # identifiers by pattern and checksum (harness.quality.pii)
    ("a red circle 536-90-4399", [_pii("us_ssn", "536-90-4399")]),
    ("ITIN 911-70-1234", [_pii("us_itin", "911-70-1234"), _pii("us_ssn", "911-70-1234")]),
    ("my passport is A12803456", [_pii("us_passport", "A12803456")]),
    ("driver license H12234567", [_pii("us_driver_license", "H12234567")]),
    ("account 945456787654", [_pii("us_bank", "945456787654")]),
    ("NPI 1234567893", [_pii("us_npi", "1234567893")]),
    ("1EG4-TE5-MK73", [_pii("us_mbi", "1EG4-TE5-MK73")]),
    ("DEA BB1388568", [_pii("medical_license", "BB1388568")]),
    ("nhs number 401 023 2137", [_pii("uk_nhs", "401 023 2137")]),
    ("nino AA 12 34 56 B", [_pii("uk_nino", "AA 12 34 56 B")]),
    ("a sign with IBAN DE89 3704 0044 0532 0130 00", [_pii("iban", "DE89 3704 0044 0532 0130 00")]),
    ("wallet 3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", [_pii("crypto", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy")]),
    (
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        [_pii("crypto", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5\u2026")],
    ),
    ("mac 00:1A:2B:3C:4D:5E", [_pii("mac", "00:1A:2B:3C:4D:5E")]),
    ("TFN 876 543 210", [_pii("au_tfn", "876 543 210")]),
    ("ABN 51 824 753 556", [_pii("au_abn", "51 824 753 556")]),
    ("ABCPD1234Z", [_pii("in_pan", "ABCPD1234Z")]),
    ("aadhaar 3123 4567 8909", [_pii("in_aadhaar", "3123 4567 8909")]),
    ("S2740116C", [_pii("sg_nric", "S2740116C")]),
    ("NIF 55555555K", [_pii("es_nif", "55555555K")]),
    ("X9613851N", [_pii("es_nie", "X9613851N")]),
    ("SIN 130 692 544", [_pii("ca_sin", "130 692 544")]),
    # ... and what is not one: an advertised SSN, weak patterns without a context word, numbers
    ("a red circle 078-05-1120", []),
    ("A12803456", []),
    ("H12234567", []),
    ("a bus with 912803456", []),
    ("IBAN DE89 3704 0044 0532 0130 0", []),
    ("3 small triangles", []),
    ("1024 x 768", []),
    ("a 1920 x 1080 photo from 2019 with 12 circles", []),
    ("a red square, 2 blue circles and 10 triangles in 1999", []),
    ("seven shapes at 12:30 on 2024-05-01", []),
    ("room 101, floor 3, 1200 x 800 mm", []),
    ("a frying pan on a countertop in 2019", []),
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


# ------------------------------------------------------------------ Presidio's recognizer tests

PRESIDIO = json.loads((Path(__file__).parent.parent / "data" / "presidio" / "recognizer_cases.json").read_text("utf-8"))
PRESIDIO_CASES = [(g["kind"], i, c) for g in PRESIDIO["groups"] for i, c in enumerate(g["cases"])]


def _cut(text):
    text = text.strip()
    return text if len(text) <= MATCH_CHARS else text[: MATCH_CHARS - 1] + "\u2026"


def _found(text, kind):
    return sorted(f.match for f in check_caption(text) if f.check == "pii" and f.kind == kind)


@pytest.mark.parametrize(
    ("kind", "case"), [(k, c) for k, _, c in PRESIDIO_CASES], ids=[f"{k}-{i}" for k, i, _ in PRESIDIO_CASES]
)
def test_presidio_recognizer_case(kind, case):
    text = case["text"]
    assert len(case["spans"]) == case["expected_len"]
    assert case["matches"] == [text[a:b] for a, b in case["spans"]]
    presidio = sorted(_cut(m) for m in case["matches"])
    own = case.get("harness")
    if own is None:
        assert _found(text, kind) == presidio
    else:
        # A deliberate difference: the harness's own outcome, and Presidio's with a context word.
        assert own["reason"]
        assert _found(text, kind) == sorted(own["matches"]) != presidio
        assert _found(f"{own['context_word']} {text}", kind) == presidio


def test_presidio_cases_cover_every_ported_recognizer():
    assert [g["kind"] for g in PRESIDIO["groups"]] == list(identifiers.KINDS)
    assert KINDS["pii"] == ("email", "phone", "card", "ip", "url", *identifiers.KINDS)
    assert PRESIDIO["report_score"] == identifiers.REPORT_SCORE
    assert len(PRESIDIO_CASES) == 544 and sum("harness" in c for _, _, c in PRESIDIO_CASES) == 18
    assert all(d["reason"] for d in PRESIDIO["pattern_differences"] + PRESIDIO["not_ported"])


def test_scanning_only_where_a_match_can_be_changes_no_finding():
    """The digit-group, token and anchor gates and the scan windows find what a scan of the whole
    text by every recognizer finds, on Presidio's texts glued, cut and mixed with noise."""
    import dataclasses
    import random

    everywhere = [
        dataclasses.replace(r, reach=None, min_digits=0, min_token=0, anchor="") for r in identifiers.RECOGNIZERS
    ]

    def full_scan(text):
        found = []
        for rec in everywhere:
            for a, b in rec.find(text):
                m = text[a:b]
                found.append((a + len(m) - len(m.lstrip()), rec.kind, m.strip()))
        return sorted(found)

    rng = random.Random(3)
    texts = [c["text"] for _, _, c in PRESIDIO_CASES]
    noise = "0123456789" * 4 + "ABCDEFGHJKLMNPRSTUXYZabcdefxyz" + "  -.:/#\n"
    words = ["ssn", "passport", "license", "account", "nric", "pan", "mbi", "sin", "bus", "a red circle", "2019"]
    for _ in range(3000):
        a, b = rng.choice(texts), rng.choice(texts)
        cut = rng.randrange(len(a) + 1)
        junk = "".join(rng.choice(noise) for _ in range(rng.randrange(6)))
        text = rng.choice(
            [
                "".join(rng.choice(noise) for _ in range(rng.randrange(1, 50))),
                f"{rng.choice(words)}{rng.choice(['', ' ', '-', ':'])}{a}{rng.choice(['', ' ', 'x', '1', '-9'])}{b}",
                a[:cut] + junk + a[cut:],
            ]
        )
        assert sorted(identifiers.find_identifiers(text)) == full_scan(text), text


def test_iban_checksum():
    assert identifiers.iban_valid("GB29 NWBK 6016 1331 9268 19")
    assert not identifiers.iban_valid("GB29 NWBK 6016 1331 9268 10")  # mod 97
    assert not identifiers.iban_valid("GB32 1WBK 6016 1331 9268 19")  # right check digits, but GB banks are letters


# ------------------------------------------------------------------ the shapes world


def test_shapes_world_captions_carry_no_personal_data():
    captions = [c for s in generate_shapes(400, seed=11) for c in s.captions]
    assert len(captions) == 2000
    table = check_captions(captions)
    assert table.counts()["pii"] == 0, [m for m in table.matches("pii") if m][:5]
    # ... nor with counts, sizes and years in them
    sizes = ((640, 480), (800, 600), (1024, 768), (1280, 720), (1920, 1080), (3840, 2160))
    numbered = [
        f"{i % 12 + 1} of {c}, {sizes[i % 6][0]} x {sizes[i % 6][1]} pixels, taken in {1900 + i % 130}"
        for i, c in enumerate(captions)
    ]
    table = check_captions(numbered)
    assert table.counts()["pii"] == 0, [m for m in table.matches("pii") if m][:5]


# ------------------------------------------------------------------ the canary, end to end


def _records(captions, target):
    import pandas as pd

    from harness.records import RequestRecord

    rows = [
        RequestRecord(
            "run", target, "evaluate", f"{target}-{i}", str(i), 1.0 + i, 0.1, 200, "ok", caption=c, confidence=0.9
        ).to_dict()
        for i, c in enumerate(captions)
    ]
    return pd.DataFrame(rows)


def test_a_canary_writing_an_ssn_into_5_percent_of_captions_is_rolled_back():
    from harness.canary import ROLLBACK, JudgeConfig, classify, judge
    from harness.canary.observations import TargetData, metric_samples

    captions = [c for s in generate_shapes(80, seed=5) for c in s.captions]
    leaked = [f"{c} 536-90-{4399 + i}" if i % 20 == 0 else c for i, c in enumerate(captions)]
    assert len(leaked) == 400 and sum(a != b for a, b in zip(captions, leaked)) == 20
    baseline = TargetData(evaluation=_records(captions, "baseline"))
    canary = TargetData(evaluation=_records(leaked, "canary"))
    assert canary.checks.matches("pii")[0] == ("us_ssn: 536-90-4399",)

    cfg = JudgeConfig()
    samples = metric_samples(cfg.metrics, baseline, canary)
    r = classify(cfg.metric("pii_rate"), samples["pii_rate"], cfg)
    assert (r.baseline, r.canary) == (0.0, 0.05) and r.classification == "High" and r.critical
    v = judge(samples, cfg)
    assert v.verdict == ROLLBACK and v.exit_code == 1
    assert any("pii_rate" in reason for reason in v.reasons), v.reasons
