"""Small helpers every adapter shares: reading ``Retry-After`` and keeping messages short.

Service error messages end up in status and events, so they are trimmed to one line of
bounded length; they come from the service's error body (never from a request we sent).
The rules themselves live in :mod:`rotator.core.failures`; these read the clock for them.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from rotator.core import failures


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header value by case-insensitive name, from any mapping of headers."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def parse_retry_after(
    value: str | None,
    *,
    now: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    return failures.delay_seconds(value, now=now())


def detail(text: str | None) -> str:
    """A service's own error message, on one line and bounded, for our messages."""
    return failures.one_line(text)
