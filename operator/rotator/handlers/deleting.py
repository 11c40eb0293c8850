"""Deleting: apply ``deletionPolicy`` when a ServicePrincipalSecret is deleted (kopf finalizer).

* ``Retain`` (the default) leaves Graph and Key Vault alone: the secrets keep working until
  they expire, and a re-created resource adopts nothing (it issues a new secret).
* ``Revoke`` removes from Graph the current secret, every retiring one and any credential of
  an in-flight rotation (before its Mint was recorded it is found by its unique displayName).
  Key Vault is left as it is: its history is the audit trail.

It waits for the object's daemon to finish its pass (the per-object lock) and re-reads the
object, so it acts on the latest journal, not on the body kopf saw at deletion time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from rotator import metrics
from rotator.core import errors, models, policies, reasons
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
    if spec.deletion_policy == "Retain":
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
            f"deletionPolicy Revoke not applied: {decision.message}",
        )
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
