"""Small helpers every adapter shares: reading ``Retry-After`` and keeping messages short.

Service error messages end up in status and events, so they are trimmed to one line of
bounded length; they come from the service's error body (never from a request we sent).
"""

from __future__ import annotations

import datetime
import email.utils
from collections.abc import Callable, Mapping
from typing import Any, Final

_MAX_DETAIL: Final = 300


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
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, (moment - now()).total_seconds())


def detail(text: str | None) -> str:
    """A service's own error message, on one line and bounded, for our messages."""
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"
