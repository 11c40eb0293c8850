"""Leader election on a ``coordination.k8s.io/v1`` Lease, as decisions: data in, data out.

The convention of client-go (cert-manager, External Secrets, controller-runtime): the replicas
share one Lease; its holder works, the others stand by. Time is measured on the *observer's*
monotonic clock, from when it first saw the Lease's current record (its resourceVersion),
never from the ``renewTime`` another replica wrote: clocks of two machines never have to
agree. A holder that has not renewed within ``renew_deadline`` stops working before the Lease
(``lease_duration``, longer) can expire for anyone else.

The shell (:mod:`rotator.handlers.leading`) reads the Lease, asks :func:`decide`, and writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt


@dataclasses.dataclass(frozen=True)
class Timing:
    """The three durations of an election (client-go's defaults: 15 s, 10 s, 2 s)."""

    lease_duration: dt.timedelta = dt.timedelta(seconds=15)
    renew_deadline: dt.timedelta = dt.timedelta(seconds=10)
    retry_period: dt.timedelta = dt.timedelta(seconds=2)

    def __post_init__(self) -> None:
        if not dt.timedelta(0) < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration "
                f"(got {self.retry_period}, {self.renew_deadline}, {self.lease_duration})"
            )


@dataclasses.dataclass(frozen=True)
class Lease:
    """What the Lease holds that matters here (``version`` is its resourceVersion)."""

    holder: str | None
    duration: dt.timedelta
    transitions: int
    version: str


@dataclasses.dataclass(frozen=True)
class Seen:
    """A Lease record and when (observer's monotonic seconds) it was first seen as it is."""

    lease: Lease | None
    since: float


@dataclasses.dataclass(frozen=True)
class Create:
    """No Lease exists: create it with us as holder."""


@dataclasses.dataclass(frozen=True)
class Renew:
    """We hold it: write a new renewTime (same transitions)."""


@dataclasses.dataclass(frozen=True)
class Take:
    """Nobody holds it, or its holder let it expire: take it (one more transition)."""

    transitions: int
    previous: str | None


@dataclasses.dataclass(frozen=True)
class Wait:
    """Someone else holds it: look again after ``seconds``."""

    holder: str
    seconds: float


Decision = Create | Renew | Take | Wait


def observe(previous: Seen | None, lease: Lease | None, now: float) -> Seen:
    """The observation after reading ``lease`` at ``now``: a changed record restarts its clock."""
    if previous is not None and previous.lease == lease:
        return previous
    return Seen(lease, now)


def decide(me: str, seen: Seen, now: float, timing: Timing) -> Decision:
    """What replica ``me`` does about the Lease it observed."""
    lease = seen.lease
    if lease is None:
        return Create()
    if lease.holder == me:
        return Renew()
    if not lease.holder:
        return Take(lease.transitions + 1, None)
    # The other holder's own term, or ours if the Lease says nothing sensible.
    duration = lease.duration if lease.duration > dt.timedelta(0) else timing.lease_duration
    expires = seen.since + duration.total_seconds()
    if now >= expires:
        return Take(lease.transitions + 1, lease.holder)
    return Wait(lease.holder, min(expires - now, timing.retry_period.total_seconds()))


def still_leading(last_renewed: float, now: float, timing: Timing) -> bool:
    """Whether a holder whose last successful renewal was at ``last_renewed`` may keep working.

    ``renew_deadline`` is shorter than ``lease_duration``: a holder cut off from the API server
    stops before any other replica may take the Lease, so two never work at once.
    """
    return now - last_renewed < timing.renew_deadline.total_seconds()
