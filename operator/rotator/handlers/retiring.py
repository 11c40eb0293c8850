"""Retiring: revoke superseded secrets once every binding has the new one and overlap passed;
remove orphans (credentials this object minted that no record accounts for).

The decisions are :func:`rotator.core.retirement.plan` and :func:`retirement.orphans`; this
module gathers the bindings' reports (a kopf index over DatabricksSecretBindings, read through
the runtime) and calls Graph ``removePassword``.

Two ServicePrincipalSecrets with the same name in different namespaces may target the same
application, and their credentials' displayNames then look alike (``rotator-<name>-<id>``): a
credential that any other ServicePrincipalSecret accounts for is never treated as an orphan.
"""

from __future__ import annotations

import logging

from rotator.core import facts, models, reasons, retirement
from rotator.handlers import rotating, subjects

logger = logging.getLogger(__name__)


async def retire(
    subject: subjects.Subject, graph_key_ids: frozenset[str] | None = None
) -> retirement.Plan:
    """Fill in retireAt where decidable, revoke what is due, and save status."""
    rt, spec = subject.rt, subject.spec
    bindings = rt_consumers(subject)
    plan = retirement.plan(
        subject.status, bindings, spec.rotation.overlap, rt.clock.now(), graph_key_ids
    )
    status = subject.status.model_copy(update={"retiring": plan.retiring})
    newly_scheduled = [
        r for r in plan.retiring if r.retire_at is not None and _was_unscheduled(subject, r)
    ]
    await subject.save(status)
    for scheduled in newly_scheduled:
        assert scheduled.retire_at is not None
        subject.event(
            "Normal",
            reasons.RETIRING,
            f"every consumer has the current secret; credential {scheduled.key_id} will be "
            f"revoked at {models.format_time(scheduled.retire_at)}",
        )
    for key_id in plan.forgotten:
        logger.info("%s: retiring credential %s is already gone from Graph", subject.key, key_id)
    for key_id in plan.revoke:
        await rotating.remove(subject, key_id, reasons.REVOKED, "its overlap period has passed")
        await subject.save(retirement.without(subject.status, [key_id]))
    return plan


def _was_unscheduled(subject: subjects.Subject, new: models.RetiringSecret) -> bool:
    for old in subject.status.retiring:
        if old.key_id == new.key_id:
            return old.retire_at is None
    return False


def rt_consumers(subject: subjects.Subject) -> tuple[retirement.ConsumerSync, ...]:
    """What the bindings that reference this object report (from the runtime's index)."""
    return tuple(subject.rt.consumers_of(subject.namespace, subject.name))


async def remove_orphans(
    subject: subjects.Subject, credentials: tuple[facts.GraphCredential, ...]
) -> list[str]:
    """Remove credentials minted by this object that no record here or elsewhere accounts for."""
    accounted = subject.rt.accounted_elsewhere(
        subject.tenant, subject.spec.application.id, subject.key
    )
    removed = []
    for cred in retirement.orphans(credentials, subject.status, subject.name):
        if cred.key_id in accounted or (cred.display_name or "") in accounted:
            continue
        await rotating.remove(
            subject,
            cred.key_id,
            reasons.ORPHAN_REMOVED,
            f"{cred.display_name} was minted for this resource but no status accounts for it",
        )
        removed.append(cred.key_id)
    return removed
