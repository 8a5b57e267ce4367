"""The security page states the limits the code has: each figure it names is the constant's value."""

from pathlib import Path

import pytest

from harness import safe_yaml
from harness.canary.service import MAX_BODY_BYTES, MAX_JSON_DEPTH
from harness.datasets.coco import MAX_IMAGE_BYTES
from harness.duration import MAX_DURATION_S
from harness.records import CLOCK_SKEW_S, EARLIEST_TIME, LATEST_TIME
from harness.redaction import MIN_SECRET_CHARS, REDACTED
from harness.text import short_repr

PAGE = (Path(__file__).resolve().parents[2] / "docs" / "reference" / "security.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "words, value, expected",
    [
        ("nesting deeper than 100 levels", safe_yaml.MAX_DEPTH, 100),
        ("more than 100,000 nodes", safe_yaml.MAX_ALIAS_NODES, 100_000),
        ("or 1,000,000 characters", safe_yaml.MAX_ALIAS_CHARS, 1_000_000),
        ("integers of more than 100 digits", safe_yaml.MAX_INT_DIGITS, 100),
        ("at most 10 years", MAX_DURATION_S, 10 * 365 * 86400),
        ("of at most 20 MB", MAX_IMAGE_BYTES, 20 * 1024 * 1024),
        ("at most 5 minutes after the reader's clock", CLOCK_SKEW_S, 300),
        ("shorter than 4 characters", MIN_SECRET_CHARS, 4),
        ("by `[REDACTED]`", REDACTED, "[REDACTED]"),
        ("from 1970 to 9999", (EARLIEST_TIME, LATEST_TIME), (0.0, 253_402_300_800.0)),
        ("a body over 64 KiB", MAX_BODY_BYTES, 64 * 1024),
        ("nested more than 16 levels", MAX_JSON_DEPTH, 16),
    ],
)
def test_the_page_names_each_limit_the_code_has(words, value, expected) -> None:
    assert words in " ".join(PAGE.split()), words
    assert value == expected


def test_error_messages_quote_at_most_80_characters() -> None:
    assert "at most 80 characters of a value" in " ".join(PAGE.split())
    assert len(short_repr("x" * 10_000)) <= 80


def test_the_servers_header_limit_is_the_pages() -> None:
    pytest.importorskip("uvicorn")
    from reference_model.server.guards import MAX_HEADER_BYTES

    assert "headers over 64 KiB" in PAGE and MAX_HEADER_BYTES == 64 * 1024
