"""Tests for rotator.clock: the system clock satisfies the core's Clock protocol in UTC."""

from __future__ import annotations

import datetime as dt

from rotator import clock
from rotator.core import clocks


def test_system_clock_is_aware_utc_and_current() -> None:
    system = clock.SystemClock()
    assert isinstance(system, clocks.Clock)
    before = dt.datetime.now(dt.UTC)
    now = system.now()
    after = dt.datetime.now(dt.UTC)
    assert now.tzinfo == dt.UTC
    assert before <= now <= after
