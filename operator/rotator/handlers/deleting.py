"""Deleting: apply ``deletionPolicy`` when a ServicePrincipalSecret is deleted (kopf finalizer).

* ``Retain`` (the default) leaves the secrets in use alone — current, retiring, and an
  in-flight rotation's secret once it was stored in Key Vault (consumers may read it): they
  keep working until they expire, and a re-created resource adopts nothing (it issues a new
  secret). A rotation still in flight whose secret was NOT stored yet is given up the way a
  permanent failure gives it up (:func:`rotating.give_up`): its minted credential is used by
  nobody and is removed from Graph, so no orphan outlives the resource. An idle resource gets
  no cloud call.
* ``Revoke`` removes from Graph the current secret, every retiring one and any credential of
  an in-flight rotation (before its Mint was recorded it is found by its unique displayName).
  Key Vault is left as it is: its history is the audit trail.

RotationPolicy is checked before any cloud call: a resource no policy allows gets none, even
on delete (a Warning event says what was not done).

It waits for the object's daemon to finish its pass (the per-object lock) and re-reads the
object, so it acts on the latest journal, not on the body kopf saw at deletion time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rotator import metrics
from rotator.core import errors, models, policies, reasons, rotation
from rotator.handlers import rotating, runtime, subjects, waking

logger = logging.getLogger(__name__)


def credentials_to_revoke(status: models.ServicePrincipalSecretStatus) -> list[str]:
    """KeyIds ``Revoke`` removes: current, retiring, and the in-flight rotation's (if minted)."""
    found: list[str] = []
    if status.current is not None:
        found.append(status.current.key_id)
    found.extend(r.key_id for r in status.retiring)
    if status.rotation is not None and status.rotation.key_id is not None:
        found.append(status.rotation.key_id)
    return list(dict.fromkeys(found))


async def delete(rt: runtime.Runtime, namespace: str, name: str, body: Mapping[str, Any]) -> None:
    """Apply the deletion policy; raises TransientError to be retried by kopf."""
    obj = waking.key(namespace, name)
    memory = rt.memory(obj)
    async with memory.lock:
        fresh = await rt.status.read(namespace, name)
        await _apply(rt, fresh if fresh is not None else body)
    rt.forget(obj)
    metrics.forget(namespace, name)


async def _apply(rt: runtime.Runtime, body: Mapping[str, Any]) -> None:
    meta = models.ResourceMeta.from_body(body)
    try:
        spec = models.ServicePrincipalSecretSpec.from_body(body)
        status = models.ServicePrincipalSecretStatus.from_dict(body.get("status"))
    except errors.PermanentError as exc:
        # Nothing trustworthy to act on: behave as Retain rather than guess.
        logger.warning(
            "%s/%s deleted with an unreadable spec or status: %s",
            meta.namespace,
            meta.name,
            exc.message,
        )
        return
    subject = subjects.Subject.parse(body, rt, spec, status)
    journal = status.rotation
    retain = spec.deletion_policy == "Retain"
    if retain and (journal is None or rotation.is_stored(journal)):
        subject.event(
            "Normal",
            reasons.DELETED,
            "deletionPolicy Retain: the secrets in Graph and Key Vault were left as they are",
        )
        return
    decision = rt.police.check(subject.namespace, policies.request_for_secret(spec))
    if not decision.allowed:
        subject.event(
            "Warning",
            reasons.NOT_AUTHORIZED,
            f"deletionPolicy {spec.deletion_policy} not applied: {decision.message}",
        )
        return
    if retain:
        assert journal is not None
        await _abandon_in_flight(subject, journal)
        return
    revoke = credentials_to_revoke(status)
    journal = status.rotation
    if journal is not None and journal.key_id is None and journal.step is not models.Step.PLAN:
        # addPassword may have run without its result being recorded: find it by its name.
        async with rt.limits.graph_read(subject.tenant):
            listed = await rt.graph.list_passwords(subject.tenant, subject.app, subject.owner)
        revoke.extend(p.key_id for p in listed if p.display_name == journal.display_name)
    for key_id in revoke:
        await rotating.remove(subject, key_id, reasons.DELETED, "deletionPolicy Revoke")
    subject.event(
        "Normal",
        reasons.DELETED,
        f"deletionPolicy Revoke: removed {len(revoke)} credential(s) from Graph",
    )


async def _abandon_in_flight(subject: subjects.Subject, journal: models.RotationJournal) -> None:
    """Retain with a rotation in flight: remove its unstored credential (the give-up path).

    The journal rules decide (docs/design.md): a credential minted but not stored is removed
    (found by its displayName when the Mint was not recorded); if the store landed after all
    (Store Started, Key Vault's latest carries this rotation's tags) the secret is promoted and
    kept, like current.
    """
    error = errors.PermanentError(
        f"{subject.namespace}/{subject.name} was deleted during rotation {journal.id}",
        reasons.DELETED,
    )
    await rotating.give_up(subject, error)
    current = subject.status.current
    if journal.key_id is not None and current is not None and current.key_id == journal.key_id:
        outcome = f"rotation {journal.id} had stored its secret, which was kept like current"
    else:
        outcome = (
            f"rotation {journal.id} was abandoned and its credential, never stored in Key "
            "Vault and used by nobody, removed from Graph"
        )
    subject.event(
        "Normal",
        reasons.DELETED,
        f"deletionPolicy Retain: {outcome}; the secrets in use were left as they are",
    )
