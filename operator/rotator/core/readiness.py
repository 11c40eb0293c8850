"""Readiness: the Ready condition built from a chain, and the status patch that carries it.

Like cert-manager's ``BuildReadyConditionFromChain``: an ordered list of pure checks, each
named after what it detects and returning ``(reason, message, fired)``; the first that fires
decides Ready's reason, and whether Ready is True then. The checks reuse the trigger chain's
named predicates (:mod:`rotator.core.triggers`), so "at risk" means the same thing to the
trigger that rotates early and to the condition that tells a human. Pure: data in, data out,
the time passed in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, Final

from rotator.core import conditions, models, reasons, triggers


@dataclasses.dataclass(frozen=True)
class Input:
    """What readiness looks at; ``spec`` is None when it could not be parsed."""

    status: models.ServicePrincipalSecretStatus
    spec: models.ServicePrincipalSecretSpec | None
    now: dt.datetime


Check = Callable[[Input], triggers.Result]
_OK: Final[triggers.Result] = ("", "", False)


def never_issued(i: Input) -> triggers.Result:
    """No current secret is recorded (the trigger chain's first entry too)."""
    if i.status.current is None:
        return reasons.NEVER_ISSUED, "no secret has been issued yet", True
    return _OK


def expired(i: Input) -> triggers.Result:
    """The current secret is past its end: consumers hold a secret that no longer works."""
    current = i.status.current
    if current is not None and i.now >= current.expires_at:
        expires = models.format_time(current.expires_at)
        return reasons.EXPIRED, f"secret {current.key_id} expired at {expires}", True
    return _OK


def suspended(i: Input) -> triggers.Result:
    """Rotation is paused; the current secret still works."""
    current = i.status.current
    if current is not None and i.spec is not None and i.spec.suspend:
        expires = models.format_time(current.expires_at)
        return (
            reasons.SUSPENDED,
            f"rotation is suspended; secret {current.key_id} is current, expires {expires}",
            True,
        )
    return _OK


def expiring_without_replacement(i: Input) -> triggers.Result:
    """:func:`triggers.at_risk`: close to expiry and no verified replacement yet."""
    current = i.status.current
    if current is not None and i.spec is not None and triggers.at_risk(i.spec, i.status, i.now):
        expires = models.format_time(current.expires_at)
        return (
            reasons.EXPIRING_WITHOUT_REPLACEMENT,
            f"secret {current.key_id} is current but expires {expires} and no verified "
            f"replacement is ready yet",
            True,
        )
    return _OK


#: The chain, in order: (name, check, whether Ready is True when it fires).
CHAIN: Final[tuple[tuple[str, Check, bool], ...]] = (
    ("never_issued", never_issued, False),  # nothing for consumers to read yet
    ("expired", expired, False),  # what consumers hold no longer works
    ("suspended", suspended, True),  # works; a human paused rotation, say so first
    ("expiring_without_replacement", expiring_without_replacement, True),  # works, for now
)


def ready_signal(
    status: models.ServicePrincipalSecretStatus,
    spec: models.ServicePrincipalSecretSpec | None,
    now: dt.datetime,
    chain: tuple[tuple[str, Check, bool], ...] = CHAIN,
) -> tuple[bool, conditions.Signal]:
    """Whether consumers have a working secret, and why (for the Ready condition)."""
    i = Input(status, spec, now)
    for _name, check, ready in chain:
        reason, message, fired = check(i)
        if fired:
            return ready, conditions.Signal(reason, message)
    current = status.current
    assert current is not None  # never_issued fires otherwise
    expires = models.format_time(current.expires_at)
    return True, conditions.Signal(
        reasons.ISSUED, f"secret {current.key_id} is current, expires {expires}"
    )


def render(
    status: models.ServicePrincipalSecretStatus,
    spec: models.ServicePrincipalSecretSpec | None,
    *,
    generation: int | None,
    now: dt.datetime,
    reconciling: conditions.Signal | None = None,
    stalled: conditions.Signal | None = None,
) -> models.ServicePrincipalSecretStatus:
    """``status`` with Ready/Reconciling/Stalled rendered and observedGeneration set.

    A rotation in flight is always Reconciling (reason Rotating) unless a stall says more.
    """
    ready, signal = ready_signal(status, spec, now)
    if reconciling is None and stalled is None and status.rotation is not None:
        reconciling = conditions.Signal(
            reasons.ROTATING,
            f"rotation {status.rotation.id} ({status.rotation.reason}) is at "
            f"{status.rotation.step}/{status.rotation.phase}",
        )
    if spec is not None and spec.suspend and stalled is None:
        reconciling = None
    rendered = conditions.render(
        status.conditions,
        ready=ready,
        signal=signal,
        generation=generation,
        now=now,
        reconciling=reconciling,
        stalled=stalled,
    )
    return status.model_copy(update={"conditions": rendered, "observed_generation": generation})


def synced(status: models.DatabricksSecretBindingStatus) -> conditions.Signal:
    """A binding's Ready signal once its consumers hold the source's value."""
    return conditions.Signal(
        reasons.SYNCED,
        f"Key Vault version {status.synced_version} is in the scope and every job references it",
    )


def diff_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level keys of a status merge patch that change ``old`` into ``new``.

    ``new`` is a status model's ``to_patch()`` (``None`` for absent fields); unchanged keys are
    left out so an idle pass writes nothing at all.
    """
    patch: dict[str, Any] = {}
    for name, value in new.items():
        if value is None:
            if old.get(name) is not None:
                patch[name] = None
        elif old.get(name) != value:
            patch[name] = value
    return patch
