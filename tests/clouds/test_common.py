"""Retry-After parsing and header lookup."""

from __future__ import annotations

import datetime

import pytest

from rotator.clouds import common

NOW = datetime.datetime(2026, 11, 26, 5, 0, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("Thu, 26 Nov 2026 05:00:45 GMT", 45.0),
        ("Thu, 26 Nov 2026 04:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert common.parse_retry_after(value, now=lambda: NOW) == seconds


def test_header_is_case_insensitive() -> None:
    assert common.header({"retry-after": "3"}, "Retry-After") == "3"
    assert common.header(None, "Retry-After") is None


def test_detail_is_one_bounded_line() -> None:
    assert common.detail("a\n b\tc") == "a b c"
    assert len(common.detail("x" * 1000)) == 300
