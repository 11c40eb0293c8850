"""The trigger chain: whether a ServicePrincipalSecret needs a new secret now, and why.

Like cert-manager's renewal policy chain: an ordered list of pure predicates, each named after
the violation it detects and returning ``(reason, message, violated)``. The first violated
entry wins; its reason (a :mod:`rotator.core.reasons` constant) becomes the rotation's reason,
the event reason and the Reconciling condition's reason. Inputs are gathered first by the
handler (:class:`rotator.core.facts.Facts`): a fact that was not gathered (``None``) makes its
check pass, so an idle resource needs no cloud call to be evaluated.

A second, shorter chain (:data:`SUPERSEDE_CHAIN`, :func:`supersede`) decides whether a rotation
already in flight must give way to a fresh one: a new manual request, or a current secret
close to expiry while the rotation is stuck. Expiry always wins: near expiry neither a stuck
journal nor a stall may keep the only working secret from being replaced.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Final

from rotator.core import facts, models, reasons, rotation, schedule


@dataclasses.dataclass(frozen=True)
class Input:
    """Everything a trigger may look at."""

    spec: models.ServicePrincipalSecretSpec
    status: models.ServicePrincipalSecretStatus
    meta: models.ResourceMeta
    facts: facts.Facts
    now: dt.datetime


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The chain's answer: rotate (``violated``) with ``reason``, or why not."""

    reason: str
    message: str
    violated: bool


Result = tuple[str, str, bool]
Trigger = Callable[[Input], Result]
_OK: Final[Result] = ("", "", False)


def next_rotation_time(i: Input) -> dt.datetime | None:
    """When the current secret is due: status, or recomputed if status lacks it."""
    if i.status.next_rotation_time is not None:
        return i.status.next_rotation_time
    current = i.status.current
    if current is None:
        return None
    key = schedule.identity_key(i.meta.uid, i.meta.namespace, i.meta.name)
    return schedule.next_rotation_time(current.expires_at, i.spec.rotation.renew_before, key)


def never_issued(i: Input) -> Result:
    """No current secret is recorded."""
    if i.status.current is None:
        return reasons.NEVER_ISSUED, "no secret has been issued yet", True
    return _OK


def expiring(i: Input) -> Result:
    """Now is at or past nextRotationTime."""
    due = next_rotation_time(i)
    if due is not None and i.now >= due:
        assert i.status.current is not None
        expires = models.format_time(i.status.current.expires_at)
        return (
            reasons.EXPIRING,
            f"secret expires at {expires}; rotation was due at {models.format_time(due)}",
            True,
        )
    return _OK


def manual_request(i: Input) -> Result:
    """The rotator.dev/rotate annotation has a value not handled yet."""
    requested = i.meta.rotate_request
    if requested is not None and requested != i.status.rotate_request:
        return (
            reasons.MANUAL_REQUEST,
            f"annotation {models.ROTATE_ANNOTATION}={requested!r} requests a rotation",
            True,
        )
    return _OK


def spec_changed(i: Input) -> Result:
    """Tenant, application, owner, vault or secret name differ from what current was issued for."""
    current = i.status.current
    if current is not None and current.target is not None and current.target != i.spec.target:
        return (
            reasons.SPEC_CHANGED,
            "the spec now names a different tenant, application, owner, vault or secret name",
            True,
        )
    return _OK


def gone_from_graph(i: Input) -> Result:
    """Graph no longer lists the current secret's keyId."""
    ids = i.facts.graph_key_ids
    current = i.status.current
    if ids is not None and current is not None and current.key_id not in ids:
        return (
            reasons.DRIFT_DETECTED,
            f"the current secret {current.key_id} no longer exists in Graph",
            True,
        )
    return _OK


def key_vault_not_current(i: Input) -> Result:
    """Key Vault's latest version is not the one holding the current secret."""
    latest = i.facts.key_vault_latest
    current = i.status.current
    if latest is None or current is None or current.key_vault_version is None:
        return _OK
    if not latest.exists:
        return reasons.DRIFT_DETECTED, "the Key Vault secret has no versions any more", True
    if latest.version != current.key_vault_version or latest.key_id not in (None, current.key_id):
        return (
            reasons.DRIFT_DETECTED,
            f"the Key Vault latest version is {latest.version}, not {current.key_vault_version}",
            True,
        )
    if not latest.enabled:
        return reasons.DRIFT_DETECTED, "the Key Vault latest version is disabled", True
    return _OK


def expiry_margin(spec: models.ServicePrincipalSecretSpec) -> dt.timedelta:
    """How long before ``current`` expires a rotation is urgent (expiry must win from then on).

    A fresh rotation needs at most ``verify.timeout`` to prove its secret, plus a couple of
    retries at the backoff cap for its writes: that much time must be left when a stuck one
    is abandoned. Never more than half of ``renewBefore``, so the scheduled rotation always
    has the first half of its window to itself.
    """
    verify = spec.verify.timeout if spec.verify.enabled else dt.timedelta(0)
    needed = verify + 2 * schedule.BACKOFF_CAP
    return min(needed, spec.rotation.renew_before / 2)


def urgent_at(
    spec: models.ServicePrincipalSecretSpec, current: models.CurrentSecret
) -> dt.datetime:
    """From when the current secret is at risk of expiring without a replacement."""
    return current.expires_at - expiry_margin(spec)


def at_risk(
    spec: models.ServicePrincipalSecretSpec,
    status: models.ServicePrincipalSecretStatus,
    now: dt.datetime,
) -> bool:
    """Whether the current secret is within its expiry margin (or past it) unreplaced."""
    current = status.current
    return current is not None and now >= urgent_at(spec, current)


def stuck_near_expiry(i: Input) -> Result:
    """Near expiry, the rotation in flight is stuck: it began before the margin, or has used
    half of it without promoting. Abandon it (safely) and start a fresh one."""
    journal, current = i.status.rotation, i.status.current
    if journal is None or current is None or not at_risk(i.spec, i.status, i.now):
        return _OK
    urgent = urgent_at(i.spec, current)
    budget = expiry_margin(i.spec) / 2
    if journal.started_at < urgent or i.now - journal.started_at >= budget:
        expires = models.format_time(current.expires_at)
        return (
            reasons.EXPIRING_WITHOUT_REPLACEMENT,
            f"secret {current.key_id} expires at {expires} and rotation {journal.id} "
            f"(started {models.format_time(journal.started_at)}) has not replaced it",
            True,
        )
    return _OK


#: The chain, in order; the first violated entry decides the reason.
CHAIN: Final[tuple[tuple[str, Trigger], ...]] = (
    ("never_issued", never_issued),  # nothing to keep fresh yet: issue the first secret
    ("manual_request", manual_request),  # a human asked: their reason beats the schedule's
    ("spec_changed", spec_changed),  # the current secret is for another target: re-issue
    ("gone_from_graph", gone_from_graph),  # someone removed it: consumers will break
    ("key_vault_not_current", key_vault_not_current),  # consumers read something else
    ("expiring", expiring),  # the scheduled renewal
)


#: What makes a rotation in flight give way to a fresh one; first violated entry wins.
SUPERSEDE_CHAIN: Final[tuple[tuple[str, Trigger], ...]] = (
    ("manual_request", manual_request),  # a human asked again: like cmctl renew, start afresh
    ("stuck_near_expiry", stuck_near_expiry),  # expiry always wins over a stuck journal
)


def supersede(i: Input, chain: tuple[tuple[str, Trigger], ...] = SUPERSEDE_CHAIN) -> Verdict:
    """Whether the rotation in flight must be abandoned and a fresh one started, and why.

    Never while suspended, and never once its store landed: a verified secret that is already
    the Key Vault latest is promoted, not abandoned (promotion replaces the expiring secret).
    """
    journal = i.status.rotation
    if i.spec.suspend or journal is None or rotation.is_stored(journal):
        return Verdict("", "", False)
    for _name, trigger in chain:
        reason, message, violated = trigger(i)
        if violated:
            return Verdict(reason, message, True)
    return Verdict("", "", False)


def evaluate(i: Input, chain: tuple[tuple[str, Trigger], ...] = CHAIN) -> Verdict:
    """Run the chain. Suspend and an in-flight rotation short-circuit it (never rotate twice)."""
    if i.spec.suspend:
        return Verdict(reasons.SUSPENDED, "spec.suspend is true: rotation is paused", False)
    if i.status.rotation is not None:
        return Verdict(
            reasons.ROTATING, f"rotation {i.status.rotation.id} is already in flight", False
        )
    for _name, trigger in chain:
        reason, message, violated = trigger(i)
        if violated:
            return Verdict(reason, message, True)
    return Verdict(reasons.ISSUED, "the current secret is up to date", False)
