"""Tests for rotator.core.durations: the grammar, precise errors, and the canonical round trip."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.core import durations

D, H, M, S = (
    dt.timedelta(days=1),
    dt.timedelta(hours=1),
    dt.timedelta(minutes=1),
    dt.timedelta(seconds=1),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90d", 90 * D),
        ("24h", 24 * H),
        ("1h30m", H + 30 * M),
        ("45m", 45 * M),
        ("30s", 30 * S),
        ("1d2h3m4s", D + 2 * H + 3 * M + 4 * S),
        ("0d1s", S),
        ("90m", 90 * M),
        ("007h", 7 * H),
    ],
)
def test_parse_valid(text: str, expected: dt.timedelta) -> None:
    assert durations.parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must not be empty"),
        ("0s", "longer than zero"),
        ("0d0h", "longer than zero"),
        ("90", "has no unit"),
        ("1h30", "has no unit"),
        ("5w", "unknown unit 'w'"),
        ("5H", "unknown unit 'H'"),
        ("1h1h", "more than once"),
        ("30m1h", "order d, h, m, s"),
        ("-5m", "expected a number at position 1"),
        ("1h 30m", "spaces are not allowed"),
        ("1.5h", "fractions are not allowed"),
        ("h", "expected a number at position 1"),
        ("1d-", "expected a number at position 3, found '-'"),
        (" 1d", "spaces are not allowed"),
        ("1d2", "has no unit"),
        ("36501d", "too long"),
        ("9999999999999d", "too long"),
    ],
)
def test_parse_invalid_says_why(text: str, message: str) -> None:
    with pytest.raises(durations.DurationError, match=message.replace(".", r"\.")):
        durations.parse_duration(text)


def test_parse_refuses_non_strings() -> None:
    with pytest.raises(durations.DurationError, match="must be a string"):
        durations.parse_duration(90)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [(24 * H, "1d"), (90 * M, "1h30m"), (D + S, "1d1s"), (30 * S, "30s"), (90 * D, "90d")],
)
def test_format_is_canonical(value: dt.timedelta, text: str) -> None:
    assert durations.format_duration(value) == text


@pytest.mark.parametrize("value", [dt.timedelta(0), -S, dt.timedelta(milliseconds=1500)])
def test_format_refuses_what_cannot_be_written(value: dt.timedelta) -> None:
    with pytest.raises(durations.DurationError):
        durations.format_duration(value)


_seconds = st.integers(min_value=1, max_value=int(durations.MAX.total_seconds()))


@given(_seconds)
def test_round_trip_from_timedelta(seconds: int) -> None:
    value = dt.timedelta(seconds=seconds)
    text = durations.format_duration(value)
    assert durations.parse_duration(text) == value
    # The canonical text is a fixed point.
    assert durations.format_duration(durations.parse_duration(text)) == text


@given(
    st.tuples(
        st.integers(0, 400), st.integers(0, 99), st.integers(0, 99), st.integers(0, 99)
    ).filter(lambda t: any(t))
)
def test_round_trip_from_any_valid_text(parts: tuple[int, int, int, int]) -> None:
    text = "".join(f"{n}{u}" for n, (u, _) in zip(parts, durations.UNITS, strict=True) if n)
    value = durations.parse_duration(text)
    assert value == sum(
        (n * length for n, (_, length) in zip(parts, durations.UNITS, strict=True)),
        dt.timedelta(0),
    )
    assert durations.parse_duration(durations.format_duration(value)) == value


@given(_seconds, _seconds)
def test_ordering_is_preserved(a: int, b: int) -> None:
    ta = durations.parse_duration(durations.format_duration(dt.timedelta(seconds=a)))
    tb = durations.parse_duration(durations.format_duration(dt.timedelta(seconds=b)))
    assert (ta < tb) == (a < b)
    assert (ta == tb) == (a == b)


@pytest.mark.parametrize("text", ["1000000000d", "999999999999d", "36501d", "36500d1s"])
def test_huge_values_are_a_duration_error_not_an_overflow(text: str) -> None:
    with pytest.raises(durations.DurationError, match="too long"):
        durations.parse_duration(text)
