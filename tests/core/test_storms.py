"""Tests for rotator.core.storms: the per-object rotation limit, table-driven, no clock."""

from __future__ import annotations

import datetime as dt

import pytest

from rotator.core import storms

T0 = dt.datetime(2026, 11, 26, 5, 0, 0, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)
H = dt.timedelta(hours=1)


def at(*minutes: int) -> tuple[dt.datetime, ...]:
    """Start times ``minutes`` after T0."""
    return tuple(T0 + m * M for m in minutes)


@pytest.mark.parametrize(
    ("name", "history", "now", "limit", "critical_from", "expected"),
    [
        ("nothing yet", (), T0, 6, None, storms.Verdict(True, 0)),
        ("five of six", at(0, 1, 2, 3, 4), T0 + 5 * M, 6, None, storms.Verdict(True, 5)),
        # The seventh within an hour is held until the first leaves the window.
        (
            "seventh held",
            at(0, 1, 2, 3, 4, 5),
            T0 + 6 * M,
            6,
            None,
            storms.Verdict(False, 6, until=T0 + H),
        ),
        # Exactly one window after the oldest start, that start no longer counts.
        ("window frees", at(0, 1, 2, 3, 4, 5), T0 + H, 6, None, storms.Verdict(True, 5)),
        (
            "one second early",
            at(0, 1, 2, 3, 4, 5),
            T0 + H - dt.timedelta(seconds=1),
            6,
            None,
            storms.Verdict(False, 6, until=T0 + H),
        ),
        # Old starts do not count, in any order.
        (
            "old ones ignored",
            at(5, -120, 4, -61),
            T0 + 6 * M,
            2,
            None,
            storms.Verdict(False, 2, until=T0 + 4 * M + H),
        ),
        # A start recorded in the future (the clock moved back) counts as recent.
        ("future counts", at(30), T0, 1, None, storms.Verdict(False, 1, until=T0 + 30 * M + H)),
        ("limit one", at(0), T0 + 59 * M, 1, None, storms.Verdict(False, 1, until=T0 + H)),
        # Expiry-critical: one start beyond the limit, once per window.
        (
            "critical exception",
            at(0, 1, 2),
            T0 + 10 * M,
            3,
            T0 + 10 * M,
            storms.Verdict(True, 3, exception=True),
        ),
        (
            "critical not yet: held until it is",
            at(0, 1, 2),
            T0 + 10 * M,
            3,
            T0 + 20 * M,
            storms.Verdict(False, 3, until=T0 + 20 * M),
        ),
        (
            "critical later than the window: the window wins",
            at(0, 1, 2),
            T0 + 10 * M,
            3,
            T0 + 2 * H,
            storms.Verdict(False, 3, until=T0 + H),
        ),
        (
            "exception used: held until the oldest leaves",
            at(0, 1, 2, 10),
            T0 + 11 * M,
            3,
            T0 + 10 * M,
            storms.Verdict(False, 4, until=T0 + H),
        ),
        (
            "exception free again once the oldest left, still critical",
            at(0, 1, 2, 10),
            T0 + H,
            3,
            T0 + 10 * M,
            storms.Verdict(True, 3, exception=True),
        ),
        # Two over the limit (a lower limit after a restart): the exception needs one to leave,
        # a normal start two.
        (
            "over the limit",
            at(0, 1, 2, 3),
            T0 + 10 * M,
            2,
            T0,
            storms.Verdict(False, 4, until=T0 + M + H),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_check(
    name: str,
    history: tuple[dt.datetime, ...],
    now: dt.datetime,
    limit: int,
    critical_from: dt.datetime | None,
    expected: storms.Verdict,
) -> None:
    assert storms.check(history, now, limit, critical_from=critical_from) == expected


def test_the_wake_up_time_is_allowed_and_a_moment_before_is_not() -> None:
    # Whatever the history, ``until`` is the first moment a start is allowed.
    cases = [
        (at(0, 7, 9, 30), 3, None),
        (at(0, 7, 9, 30), 3, T0 + 40 * M),
        (at(0, 7, 9, 30, 31), 3, T0 + 32 * M),
        (at(0, 0, 0), 2, None),
    ]
    for history, limit, critical in cases:
        held = storms.check(history, T0 + 32 * M, limit, critical_from=critical)
        assert not held.allowed and held.until is not None
        assert storms.check(history, held.until, limit, critical_from=critical).allowed
        before = held.until - dt.timedelta(seconds=1)
        assert not storms.check(history, before, limit, critical_from=critical).allowed


def test_a_storm_mints_at_most_limit_plus_one_per_window_even_when_always_critical() -> None:
    # A pass every second for three hours, always expiry-critical, starting whenever allowed.
    history: tuple[dt.datetime, ...] = ()
    now, starts = T0, []
    while now < T0 + 3 * H:
        if storms.check(history, now, 6, critical_from=T0).allowed:
            history = storms.record(history, now, 6)
            starts.append(now)
        now += dt.timedelta(seconds=1)
    for start in starts:
        in_window = [s for s in starts if start <= s < start + H]
        assert len(in_window) <= 7
    assert len(starts) >= 3 * 7 - 1  # and the limit does give way every window


def test_record_keeps_the_newest_limit_plus_one_in_order() -> None:
    history = storms.record(at(3, 1, 2), T0 + 10 * M, 2)
    assert history == at(1, 2, 3, 10)[-3:]
    assert storms.record((), T0, 6) == (T0,)
    assert len(storms.record(at(*range(200)), T0 + 300 * M, 100)) == 101


def test_limit_must_allow_something() -> None:
    with pytest.raises(ValueError, match="at least one"):
        storms.check((), T0, 0)
