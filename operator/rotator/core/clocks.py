"""The clock seam: the core asks a :class:`Clock` for "now" instead of reading the system clock.

The one place real time is read is :class:`SystemClock`, which only the shell builds (the
start-up handler) and passes down; nothing else in the core calls ``datetime.now`` (a test
checks). Tests pass :class:`FrozenClock` or :class:`ManualClock` so time-dependent decisions
are tested without sleeping. Every time is an
aware ``datetime`` in UTC: naive datetimes are refused early because comparing them with the
aware times parsed from status raises deep inside a decision.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Something that knows the current time."""

    def now(self) -> dt.datetime:
        """The current time, timezone-aware, in UTC."""
        ...


def ensure_utc(when: dt.datetime) -> dt.datetime:
    """``when`` converted to UTC; a naive datetime is an error (we cannot guess its zone)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("naive datetime: every time in rotator is timezone-aware UTC")
    return when.astimezone(dt.UTC)


class SystemClock:
    """Wall-clock time in UTC, truncated to whole microseconds as ``datetime`` gives it."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class FrozenClock:
    """A clock that always says the same time."""

    def __init__(self, when: dt.datetime) -> None:
        self._when = ensure_utc(when)

    def now(self) -> dt.datetime:
        return self._when


class ManualClock:
    """A clock a test moves forward explicitly."""

    def __init__(self, when: dt.datetime) -> None:
        self._when = ensure_utc(when)

    def now(self) -> dt.datetime:
        return self._when

    def advance(self, delta: dt.timedelta) -> dt.datetime:
        """Move forward by ``delta`` (never backwards) and return the new time."""
        if delta < dt.timedelta(0):
            raise ValueError("a ManualClock only moves forward")
        self._when += delta
        return self._when

    def set(self, when: dt.datetime) -> None:
        """Jump to ``when`` (tests of clock skew may move backwards on purpose)."""
        self._when = ensure_utc(when)
