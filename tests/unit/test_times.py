"""The one reader of a point in time (harness.times): the forms every --since/--until, an imported
log's ISO 8601 times and the feedback log's times are read in."""

import pytest

from harness.times import parse_instant


@pytest.mark.parametrize(
    "value, expected",
    [
        (1718000000, 1718000000.0),
        (1718000000.5, 1718000000.5),
        ("1718000000", 1718000000.0),
        (" 1.7e9 ", 1.7e9),
        ("2024-06-10T06:13:20Z", 1718000000.0),
        ("2024-06-10T06:13:20", 1718000000.0),  # no zone: UTC
        ("2024-06-10T08:13:20+02:00", 1718000000.0),
    ],
)
def test_the_forms_of_a_time(value, expected):
    assert parse_instant(value) == expected


def test_now_and_now_minus_a_duration_read_the_clock_given():
    clock = lambda: 1718000000.0  # noqa: E731
    assert parse_instant("now", now=clock) == 1718000000.0
    assert parse_instant("now-15m", now=clock) == 1718000000.0 - 900
    assert parse_instant("now - 1h30m", now=clock) == 1718000000.0 - 5400
    with pytest.raises(ValueError, match="after now- comes a duration"):
        parse_instant("now-soon", now=clock)
    with pytest.raises(ValueError):
        parse_instant("now")  # without a clock, now is no time


@pytest.mark.parametrize("value", [True, "nan", float("inf"), "-inf", "yesterday", "", "2024-13-40"])
def test_what_is_no_time(value):
    with pytest.raises(ValueError):
        parse_instant(value)


def test_iso_only_refuses_numbers():
    assert parse_instant("2024-06-10T06:13:20Z", numbers=False) == 1718000000.0
    for value in ("1718000000", 1718000000):
        with pytest.raises(ValueError):
            parse_instant(value, numbers=False)
