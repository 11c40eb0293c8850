"""Guards of one reconcile pass against storms and abuse: the per-object rotation limit and a
``rotator.dev/rotate`` value the operator will not act on.

:mod:`rotator.handlers.reconciling` calls these where a rotation would start and where a pass
ends; the decisions are pure (:mod:`rotator.core.storms`, :mod:`rotator.core.models`), this
module only turns them into the Stalled condition, one Warning event and the next wake-up.

* A storm hold: ``Stalled`` with reason ``RotationStorm``, a Warning event when the hold (or
  its message) is new, no cloud call, and the loop wakes by itself when the window allows a
  start again (``memory.retry_at``): nothing has to change on the object.
* A refused annotation: ``Stalled`` with reason ``InvalidSpec`` and a Warning event naming
  the problem, never the value; scheduled rotations go on, since a typo in an annotation must
  not let a secret expire.
"""

from __future__ import annotations

import datetime as dt

from rotator import metrics
from rotator.core import conditions, models, reasons, storms, triggers
from rotator.handlers import subjects


def refused_annotation(
    subject: subjects.Subject, *, announce: bool = False
) -> conditions.Signal | None:
    """The InvalidSpec signal for a ``rotator.dev/rotate`` value that is ignored, if any.

    With ``announce``, a Warning event is posted unless Stalled already says the same.
    """
    problem = subject.meta.refused_rotate_request
    if problem is None:
        return None
    signal = conditions.Signal(reasons.INVALID_SPEC, problem)
    if announce and not _already(subject, signal):
        subject.event("Warning", signal.reason, signal.message)
    return signal


async def storm_held(subject: subjects.Subject, reason: str, now: dt.datetime) -> bool:
    """Whether the storm limit holds back a rotation (for ``reason``) that would start now.

    When it does: Stalled RotationStorm is kept for the rest of the pass, a Warning event is
    posted once per hold, and the loop is told to wake when the hold ends. No cloud call.
    """
    limit = subject.rt.config.max_rotations_per_hour
    verdict = storms.check(
        subject.status.recent_rotations, now, limit, critical_from=_critical_from(subject)
    )
    if verdict.allowed:
        if verdict.exception:
            subject.event(
                "Warning",
                reasons.ROTATION_STORM,
                f"{verdict.started} rotations started in the last hour (limit {limit}), but "
                "the current secret expires soon: this one rotation is allowed beyond the limit",
            )
        return False
    assert verdict.until is not None
    signal = conditions.Signal(
        reasons.ROTATION_STORM,
        f"{verdict.started} rotations started in the last hour, the most allowed "
        f"(--max-rotations-per-hour={limit}): the {reason} rotation is held without any "
        f"cloud call until {models.format_time(verdict.until)}",
    )
    if not _already(subject, signal):
        metrics.FAILURES.labels(reason=reasons.ROTATION_STORM, kind="permanent").inc()
        subject.event("Warning", signal.reason, signal.message)
    subject.holding = signal
    subject.memory.retry_at = verdict.until
    await subject.save(subject.status)
    return True


def storm_holding(subject: subjects.Subject) -> bool:
    """Whether this pass holds a rotation back for the storm limit (see :func:`storm_held`)."""
    return subject.holding is not None and subject.holding.reason == reasons.ROTATION_STORM


def recorded(
    status: models.ServicePrincipalSecretStatus, limit: int, now: dt.datetime
) -> models.ServicePrincipalSecretStatus:
    """``status`` with a rotation start at ``now`` in ``recentRotations``, for the same write
    that starts the rotation (no extra API call)."""
    history = storms.record(status.recent_rotations, now, limit)
    return status.model_copy(update={"recent_rotations": history})


def _critical_from(subject: subjects.Subject) -> dt.datetime | None:
    # One definition of "close to expiry" for every guard: the trigger chain's margin.
    current = subject.status.current
    if current is None:
        return None
    return triggers.urgent_at(subject.spec, current)


def _already(subject: subjects.Subject, signal: conditions.Signal) -> bool:
    stalled = conditions.find(subject.status.conditions, conditions.STALLED)
    return (
        stalled is not None
        and stalled.status == "True"
        and stalled.reason == signal.reason
        and stalled.message == models.bounded(signal.message)
    )
