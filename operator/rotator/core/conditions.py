"""kstatus-compatible conditions: Ready, plus Reconciling and Stalled when they are true.

kstatus (what Argo CD, Flux and ``kubectl wait`` understand) reads ``Ready`` for health and
treats ``Reconciling`` / ``Stalled`` as "abnormal-true": present with status True while work
is in progress or the object is stuck, absent otherwise. Every condition carries
``observedGeneration`` so a reader can tell it describes the current spec.
``lastTransitionTime`` changes only when a condition's status changes, not when its reason or
message do (Kubernetes API conventions).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Final, Literal

from rotator.core import models

READY: Final = "Ready"
RECONCILING: Final = "Reconciling"
STALLED: Final = "Stalled"

ConditionStatus = Literal["True", "False", "Unknown"]


@dataclasses.dataclass(frozen=True)
class Signal:
    """A reason (from :mod:`rotator.core.reasons`) and a human message, never a secret."""

    reason: str
    message: str


def find(conditions: Iterable[models.Condition], type_: str) -> models.Condition | None:
    """The condition of ``type_``, if present."""
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[models.Condition], type_: str) -> bool:
    """Whether the condition of ``type_`` is present with status True."""
    found = find(conditions, type_)
    return found is not None and found.status == "True"


def set_condition(
    conditions: Iterable[models.Condition],
    type_: str,
    status: ConditionStatus,
    signal: Signal,
    *,
    generation: int | None,
    now: dt.datetime,
) -> tuple[models.Condition, ...]:
    """``conditions`` with ``type_`` set; its transition time kept if the status is unchanged."""
    conditions = tuple(conditions)
    old = find(conditions, type_)
    changed = old is None or old.status != status
    new = models.Condition(
        type=type_,
        status=status,
        reason=signal.reason,
        message=signal.message,
        last_transition_time=now if changed or old is None else old.last_transition_time,
        observed_generation=generation,
    )
    if old is None:
        return (*conditions, new)
    return tuple(new if c.type == type_ else c for c in conditions)


def remove(conditions: Iterable[models.Condition], type_: str) -> tuple[models.Condition, ...]:
    """``conditions`` without ``type_``."""
    return tuple(c for c in conditions if c.type != type_)


def render(
    conditions: Iterable[models.Condition],
    *,
    ready: bool,
    signal: Signal,
    generation: int | None,
    now: dt.datetime,
    reconciling: Signal | None = None,
    stalled: Signal | None = None,
) -> tuple[models.Condition, ...]:
    """The full condition set: Ready (True/False with ``signal``), Reconciling and Stalled.

    Ready says whether consumers have a working secret (it stays True during a rotation);
    Reconciling is present while work is in progress; Stalled while retrying cannot help.
    Order is stable: Ready, Reconciling, Stalled, then any other types kept as they were.
    """
    previous = tuple(conditions)
    result = set_condition(
        previous, READY, "True" if ready else "False", signal, generation=generation, now=now
    )
    for type_, value in ((RECONCILING, reconciling), (STALLED, stalled)):
        if value is None:
            result = remove(result, type_)
        else:
            result = set_condition(result, type_, "True", value, generation=generation, now=now)
    order = {READY: 0, RECONCILING: 1, STALLED: 2}
    return tuple(sorted(result, key=lambda c: order.get(c.type, 3)))


# --- the event policy: when a failure is worth a Warning event (the same for every kind) ------


def newly_stalled(conditions: Iterable[models.Condition], reason: str, message: str) -> bool:
    """Whether Stalled is not already True with this reason and message: a permanent failure
    is worth one Warning event, not one per retry of the same failure."""
    found = find(tuple(conditions), STALLED)
    return not (
        found is not None
        and found.status == "True"
        and found.reason == reason
        and found.message == message
    )


def streak_begins(failures: int) -> bool:
    """Whether a transient failure, the ``failures``-th in a row, is worth a Warning event:
    the first of a streak is; its retries are not (status and the metric count them)."""
    return failures == 1
