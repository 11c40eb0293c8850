"""Durations as users write them in specs: ``90d``, ``24h``, ``1h30m``, ``45m``, ``30s``.

Grammar: one or more ``<digits><unit>`` parts, units ``d`` ``h`` ``m`` ``s``, each at most once
and in that order, no spaces, no signs, no fractions, a non-zero total. The canonical form
(what :func:`format_duration` returns) carries every unit into the largest one that holds it
and omits zero parts, so ``24h`` formats as ``1d`` and ``90m`` as ``1h30m``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Final

#: Units in the only order the grammar accepts, with their length.
UNITS: Final[tuple[tuple[str, dt.timedelta], ...]] = (
    ("d", dt.timedelta(days=1)),
    ("h", dt.timedelta(hours=1)),
    ("m", dt.timedelta(minutes=1)),
    ("s", dt.timedelta(seconds=1)),
)
#: Longest duration accepted: far beyond any secret lifetime, well inside ``timedelta``.
MAX: Final = dt.timedelta(days=36500)

_PART = re.compile(r"(\d+)(.?)", re.DOTALL)
_ORDER: Final = {unit: i for i, (unit, _) in enumerate(UNITS)}


class DurationError(ValueError):
    """A duration string is malformed; the message says exactly what is wrong."""


def parse_duration(text: str) -> dt.timedelta:
    """Parse ``text`` to a positive ``timedelta`` or raise :class:`DurationError`."""
    if not isinstance(text, str):
        raise DurationError(f"must be a string like 90d or 1h30m, got {type(text).__name__}")
    if text == "":
        raise DurationError("must not be empty; write e.g. 90d, 24h, 1h30m, 45m or 30s")
    pos = 0
    last = -1
    total = dt.timedelta(0)
    while pos < len(text):
        match = _PART.match(text, pos)
        if match is None:
            if text[pos].isspace():
                raise DurationError(f"{text!r}: spaces are not allowed; write 1h30m")
            raise DurationError(
                f"{text!r}: expected a number at position {pos + 1}, found {text[pos]!r}"
            )
        digits, unit = match.group(1), match.group(2)
        if unit == "":
            raise DurationError(f"{text!r}: number {digits} has no unit; use d, h, m or s")
        if unit in ".,":
            raise DurationError(f"{text!r}: fractions are not allowed; write 1h30m, not 1.5h")
        if unit.isspace():
            raise DurationError(f"{text!r}: spaces are not allowed; write 1h30m")
        if unit not in _ORDER:
            raise DurationError(f"{text!r}: unknown unit {unit!r}; use d, h, m or s")
        index = _ORDER[unit]
        if index == last:
            raise DurationError(f"{text!r}: unit {unit!r} appears more than once")
        if index < last:
            raise DurationError(f"{text!r}: units must be in the order d, h, m, s")
        last = index
        if len(digits) > 12:
            raise DurationError(f"{text!r}: too long; the maximum is {format_duration(MAX)}")
        # Compare in whole seconds first: a timedelta of 10**9 days would overflow.
        seconds = int(digits) * int(UNITS[index][1].total_seconds())
        if seconds > MAX.total_seconds() or total + dt.timedelta(seconds=seconds) > MAX:
            raise DurationError(f"{text!r}: too long; the maximum is {format_duration(MAX)}")
        total += dt.timedelta(seconds=seconds)
        if total > MAX:
            raise DurationError(f"{text!r}: too long; the maximum is {format_duration(MAX)}")
        pos = match.end()
    if total == dt.timedelta(0):
        raise DurationError(f"{text!r}: must be longer than zero")
    return total


def format_duration(value: dt.timedelta) -> str:
    """Canonical text of a positive whole-second ``value``; inverse of :func:`parse_duration`."""
    if value <= dt.timedelta(0):
        raise DurationError("only positive durations can be written")
    if value.microseconds:
        raise DurationError("durations are whole seconds")
    remaining = int(value.total_seconds())
    parts: list[str] = []
    for unit, length in UNITS:
        size = int(length.total_seconds())
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
