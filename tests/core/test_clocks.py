"""Tests for rotator.core.clocks: the system clock, the fake clocks tests rely on, the UTC guard,
and that nothing else in the core reads real time."""

from __future__ import annotations

import datetime as dt
import pathlib
import re

import pytest

from rotator.core import clocks

T0 = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)
CORE = pathlib.Path(clocks.__file__).parent


def test_system_clock_is_aware_utc_and_current() -> None:
    system = clocks.SystemClock()
    assert isinstance(system, clocks.Clock)
    before = dt.datetime.now(dt.UTC)
    now = system.now()
    after = dt.datetime.now(dt.UTC)
    assert now.tzinfo == dt.UTC
    assert before <= now <= after


def test_nothing_else_in_the_core_reads_real_time() -> None:
    reads = re.compile(
        r"\b(datetime\.now|datetime\.utcnow|dt\.datetime\.now|time\.time|"
        r"time\.monotonic|date\.today)\("
    )
    found = [
        f"{path.name}:{number}"
        for path in sorted(CORE.glob("*.py"))
        if path.name != "clocks.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert found == []


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
