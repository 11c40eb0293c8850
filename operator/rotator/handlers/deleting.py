"""Deleting: apply ``deletionPolicy`` when a ServicePrincipalSecret is deleted (kopf finalizer).

* ``Retain`` (the default) leaves the secrets in use alone — current, retiring, and an
  in-flight rotation's secret once it was stored in Key Vault (consumers may read it): they
  keep working until they expire, and a re-created resource adopts nothing (it issues a new
  secret). A rotation still in flight whose secret was NOT stored yet is given up the way a
  permanent failure gives it up (:func:`rotating.give_up`): its minted credential is used by
  nobody and is removed from Graph, so no orphan outlives the resource. An idle resource gets
  no cloud call.
* ``Revoke`` removes from Graph the current secret, every retiring one and any credential of
  an in-flight rotation (before its Mint was recorded it is found by its unique displayName),
  then disables the Key Vault versions known to hold a revoked secret: current's version
  (normally the latest, which consumers read), an in-flight rotation's stored version and its
  staging version. Versions are disabled, never deleted: the history stays as the audit trail,
  and the latest no longer hands out a dead secret as if it were live. (Retiring secrets'
  versions are not recorded in status, and are not the latest.)

RotationPolicy is checked before any cloud call: a resource no policy allows gets none, even
on delete (a Warning event says what was not done).

It waits for the object's daemon to finish its pass (the per-object lock) and re-reads the
object, so it acts on the latest journal, not on the body kopf saw at deletion time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from rotator import metrics
from rotator.core import authorization, errors, models, reasons, rotation
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


@dataclasses.dataclass(frozen=True)
class VaultVersion:
    """One Key Vault version to disable: secret name and version."""

    name: str
    version: str


def versions_to_disable(
    spec: models.ServicePrincipalSecretSpec, status: models.ServicePrincipalSecretStatus
) -> list[VaultVersion]:
    """The Key Vault versions holding a secret ``Revoke`` removes, as far as status knows.

    Current's version under the real name; an in-flight rotation's stored version (the latest
    once Store ran) and its staging version (enabled until Promote disables it).
    """
    name = spec.key_vault.secret_name
    found: list[VaultVersion] = []
    if status.current is not None and status.current.key_vault_version:
        found.append(VaultVersion(name, status.current.key_vault_version))
    journal = status.rotation
    if journal is not None and journal.key_id is not None:
        if journal.key_vault_version:
            found.append(VaultVersion(name, journal.key_vault_version))
        if journal.staging_version:
            staging = rotation.staging_secret_name(name)
            found.append(VaultVersion(staging, journal.staging_version))
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
    decision = rt.police.check(subject.namespace, authorization.request_for_secret(spec))
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
        revoke.extend(rotation.minted_by_attempt(journal, listed))
    # Graph first, Key Vault second. A version is disabled only once its secret is revoked:
    # disabling first and then failing to revoke (403 from Graph, a permanent error that ends
    # the finalizer) would leave a live credential whose only stored copy nobody can read.
    # Crash safety: the finalizer stays until this handler succeeds, and status is not
    # written here, so a crash or error anywhere in between re-runs all of it on kopf's next
    # attempt: removePassword of a credential already gone counts as removed, disabling a
    # version twice changes nothing, and one already deleted by hand is skipped.
    for key_id in revoke:
        await rotating.remove(subject, key_id, reasons.DELETED, "deletionPolicy Revoke")
    disabled = await _disable(subject, versions_to_disable(spec, status))
    subject.event(
        "Normal",
        reasons.DELETED,
        f"deletionPolicy Revoke: removed {len(revoke)} credential(s) from Graph and disabled "
        f"{disabled} Key Vault version(s) that held them",
    )


async def _disable(subject: subjects.Subject, versions: list[VaultVersion]) -> int:
    """Disable each version (already gone: skipped); how many were disabled."""
    vault = subject.spec.key_vault.vault_url
    done = 0
    for found in versions:
        try:
            await subject.rt.vault.disable(vault, found.name, found.version)
        except errors.NotFound:
            logger.info(
                "%s: version %s of %s is already gone", subject.key, found.version, found.name
            )
            continue
        done += 1
    return done


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
