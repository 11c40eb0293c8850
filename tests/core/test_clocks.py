"""Tests for rotator.core.clocks: the fake clocks tests rely on, and the UTC guard."""

from __future__ import annotations

import datetime as dt

import pytest

from rotator.core import clocks

T0 = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)


def test_frozen_clock_never_moves() -> None:
    clock = clocks.FrozenClock(T0)
    assert clock.now() == T0
    assert clock.now() == T0
    assert isinstance(clock, clocks.Clock)


def test_manual_clock_advances_forward_only() -> None:
    clock = clocks.ManualClock(T0)
    assert clock.advance(dt.timedelta(hours=2)) == T0 + dt.timedelta(hours=2)
    assert clock.now() == T0 + dt.timedelta(hours=2)
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance(dt.timedelta(seconds=-1))
    clock.set(T0)
    assert clock.now() == T0


def test_times_are_normalised_to_utc_and_naive_is_refused() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    local = dt.datetime(2026, 11, 26, 7, 0, tzinfo=plus2)
    assert clocks.FrozenClock(local).now().tzinfo == dt.UTC
    assert clocks.FrozenClock(local).now() == T0
    with pytest.raises(ValueError, match="naive"):
        clocks.FrozenClock(dt.datetime(2026, 11, 26))
