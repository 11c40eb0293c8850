"""The system clock: the one :class:`rotator.core.clocks.Clock` that reads real time.

It lives outside the pure core on purpose; the handlers build one and pass it down.
"""

from __future__ import annotations

import datetime as dt


class SystemClock:
    """Wall-clock time in UTC, truncated to whole microseconds as ``datetime`` gives it."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)
