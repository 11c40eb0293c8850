"""The rotation storm limit: at most ``limit`` rotations of one object per hour, whatever asks.

A schedule too short for its own good, an annotation changed in a loop, or drift that keeps
coming back must not mint an unbounded number of Graph credentials. The start times of the
last rotations live in ``status.recentRotations`` (newest last), so the limit survives an
operator restart; :func:`check` decides from them whether a new rotation may start now and,
if not, until when it is held. The hold is time-based: nothing needs to change for the object
to resume, the handler simply wakes at ``until``.

Expiry still wins, once: from ``critical_from`` on (the trigger chain's
:func:`rotator.core.triggers.urgent_at`: the current secret expires within the time a fresh
rotation needs) one rotation beyond the limit is allowed per window. A secret therefore
never expires because of the limit when its validity is longer than the window plus that
margin; a storm still mints at most ``limit + 1`` credentials per window. That extra start is
recorded like any other, which is why the history keeps ``limit + 1`` entries.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Final

#: The window the limit counts rotations in.
WINDOW: Final = dt.timedelta(hours=1)
#: Rotations per object per window unless the operator is told otherwise.
DEFAULT_LIMIT: Final = 6
#: The highest limit the operator accepts (the CRD's ``recentRotations`` holds limit + 1).
MAX_LIMIT: Final = 100


@dataclasses.dataclass(frozen=True)
class Verdict:
    """Whether a rotation may start now; if not, the earliest moment one may (``until``).

    ``started`` is how many rotations started within the window before now; ``exception``
    says an allowed start is the once-per-window expiry-critical one beyond the limit.
    """

    allowed: bool
    started: int
    until: dt.datetime | None = None
    exception: bool = False


def check(
    history: Sequence[dt.datetime],
    now: dt.datetime,
    limit: int,
    *,
    critical_from: dt.datetime | None = None,
    window: dt.timedelta = WINDOW,
) -> Verdict:
    """May a rotation start at ``now``, given the start times ``history`` (any order)?

    Up to ``limit`` starts within ``(now - window, now]`` are allowed; a start recorded in the
    future (a clock moved back) counts as recent. From ``critical_from`` on, one more is
    allowed per window. When held, ``until`` is the first moment at which a start would be
    allowed: when enough starts have left the window, or ``critical_from``, whichever comes
    first.
    """
    if limit < 1:
        raise ValueError("the storm limit must allow at least one rotation")
    inside = sorted(t for t in history if t > now - window)
    started = len(inside)
    critical = critical_from is not None and now >= critical_from
    if started < limit:
        return Verdict(allowed=True, started=started)
    if critical and started == limit:
        return Verdict(allowed=True, started=started, exception=True)
    # Held. A normal start needs started < limit: the (started - limit + 1) oldest must leave.
    frees = inside[started - limit] + window
    if critical_from is not None:
        # The exception needs started <= limit: the (started - limit) oldest must leave, and
        # the secret must be close enough to expiry.
        exception = critical_from
        if started > limit:
            exception = max(exception, inside[started - limit - 1] + window)
        frees = min(frees, exception)
    return Verdict(allowed=False, started=started, until=frees)


def record(history: Sequence[dt.datetime], now: dt.datetime, limit: int) -> tuple[dt.datetime, ...]:
    """``history`` with a start at ``now`` appended: the newest ``limit + 1`` starts, in order.

    ``limit + 1`` and not ``limit``: the expiry-critical start beyond the limit must be
    remembered too, or the exception could be taken again within the same window.
    """
    return tuple(sorted((*history, now))[-(limit + 1) :])
