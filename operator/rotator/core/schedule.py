"""When to rotate and when to look again: the rotation schedule and requeue delays.

``nextRotationTime = expiresAt - renewBefore + jitter``. The jitter is a deterministic function
of the object's identity (its uid, or ``namespace/name``), so thousands of secrets created by
one ``kubectl apply`` do not all rotate in the same minute, and a restarted operator computes
the same time again. The jitter window is ``min(10% of renewBefore, 1h)``: it only ever delays
rotation a little, and the result is never later than ``expiresAt - SAFETY_MARGIN`` (nor
earlier than ``expiresAt - renewBefore``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from typing import Final

#: Upper bound of the jitter window.
MAX_JITTER: Final = dt.timedelta(hours=1)
#: Fraction of renewBefore the jitter may use.
JITTER_FRACTION: Final = 0.1
#: A rotation is always scheduled at least this long before the secret expires.
SAFETY_MARGIN: Final = dt.timedelta(minutes=5)
#: The longest a handler sleeps before re-checking an idle resource (a pure check, no I/O).
MAX_REQUEUE: Final = dt.timedelta(hours=6)
#: Failure backoff: first delay and cap.
BACKOFF_BASE: Final = dt.timedelta(seconds=5)
BACKOFF_CAP: Final = dt.timedelta(minutes=10)


def _fraction(key: str) -> float:
    """A stable number in [0, 1) from ``key`` (not ``hash()``: that is salted per process)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def jitter_window(renew_before: dt.timedelta) -> dt.timedelta:
    """How far past ``expiresAt - renewBefore`` a rotation may be spread, whole seconds."""
    window = min(renew_before * JITTER_FRACTION, MAX_JITTER)
    return dt.timedelta(seconds=int(window.total_seconds()))


def jitter(key: str, renew_before: dt.timedelta) -> dt.timedelta:
    """The deterministic offset of the object ``key`` within :func:`jitter_window`."""
    seconds = int(jitter_window(renew_before).total_seconds())
    return dt.timedelta(seconds=int(_fraction(key) * (seconds + 1)))


def spread(key: str, span: dt.timedelta) -> dt.timedelta:
    """The deterministic offset of the object ``key`` within ``[0, span)``, whole seconds when
    ``span`` is at least a second (e.g. where in the drift-check interval its first check falls).

    Unlike :func:`jitter`, the whole ``span`` is used: no 10% / 1h window applies.
    """
    offset = span * _fraction(key)
    if span >= dt.timedelta(seconds=1):
        offset = dt.timedelta(seconds=int(offset.total_seconds()))
    return offset


def identity_key(uid: str, namespace: str | None, name: str) -> str:
    """What the jitter hashes: the uid when known, else ``namespace/name``."""
    return uid or f"{namespace or ''}/{name}"


def next_rotation_time(
    expires_at: dt.datetime, renew_before: dt.timedelta, key: str
) -> dt.datetime:
    """When to start rotating a secret that expires at ``expires_at``.

    Always within ``[expiresAt - renewBefore, expiresAt)``, and at most
    ``expiresAt - SAFETY_MARGIN`` whenever renewBefore allows it.
    """
    earliest = expires_at - renew_before
    latest = expires_at - min(SAFETY_MARGIN, renew_before)
    return max(earliest, min(earliest + jitter(key, renew_before), latest))


def requeue_after(
    now: dt.datetime, when: dt.datetime | None, cap: dt.timedelta = MAX_REQUEUE
) -> float:
    """Seconds to wait before looking again for something due at ``when`` (0 when due).

    Capped at ``cap`` so a changed clock or a missed event is noticed within that bound;
    the look itself decides from status, it does not call any cloud API.
    """
    if when is None:
        return cap.total_seconds()
    remaining = (when - now).total_seconds()
    return max(0.0, min(remaining, cap.total_seconds()))


@dataclasses.dataclass(frozen=True)
class Due:
    """What a ServicePrincipalSecret may have to act on next, and when (None: nothing).

    next_rotation   status.nextRotationTime (skipped when ``gated``: a stall or a guard holds
                    rotation back, so its time passing changes nothing)
    retire_at       the earliest retireAt of a retiring secret
    retry_at        when a failure is retried
    drift_check     when Graph and Key Vault are next compared with status
    expires_at      when the current secret expires (Ready turns False exactly then)
    urgent_at       from when expiry wins over a stall or a stuck rotation
    """

    next_rotation: dt.datetime | None = None
    retire_at: dt.datetime | None = None
    retry_at: dt.datetime | None = None
    drift_check: dt.datetime | None = None
    expires_at: dt.datetime | None = None
    urgent_at: dt.datetime | None = None


def next_wake(
    due: Due, *, now: dt.datetime, since: dt.datetime, suspended: bool, gated: bool
) -> float:
    """Seconds until something in ``due`` is, after a pass that started at ``since``.

    Suspended, only expiry counts. Something that fell due while the pass ran (a drift check or
    a short overlap's retireAt, behind a slow rotation) is due now: 0. Something that was
    already due when the pass started and is still pending was not handled (a stall, suspend)
    and is skipped, so the loop cannot spin on it.
    """
    since = min(since, now)
    times: list[dt.datetime | None] = [due.expires_at, due.urgent_at]
    if not suspended:
        times += [due.retire_at, due.retry_at, due.drift_check]
        if not gated:
            times.append(due.next_rotation)
    upcoming = [when for when in times if when is not None and when > since]
    return requeue_after(now, min(upcoming) if upcoming else None)


def backoff_delay(
    failures: int,
    retry_after: float | None = None,
    key: str = "",
    base: dt.timedelta = BACKOFF_BASE,
    cap: dt.timedelta = BACKOFF_CAP,
) -> float:
    """Seconds before retry number ``failures`` (1-based): exponential, capped, jittered.

    Up to 20% deterministic jitter (from ``key`` and ``failures``) spreads retries of many
    objects; a service's ``Retry-After`` is a floor, never shortened.
    """
    exponent = max(0, min(failures - 1, 32))
    delay: float = min(base.total_seconds() * float(2**exponent), cap.total_seconds())
    delay *= 1.0 + 0.2 * _fraction(f"{key}#{failures}")
    delay = min(delay, cap.total_seconds())
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay
