"""Rotating: drive the rotation journal (docs/design.md) from wherever it stands to Promote.

The pure state machine (:func:`rotator.core.rotation.next_action`) says what to do; this module
does it, writing the journal to status BEFORE (``phase: Started``) and AFTER (``phase: Done``)
every step, so a crash at any instant resumes instead of starting over:

    Plan → Mint (Graph addPassword, no SDK retry) → Stage (<secretName>-rotator-staging)
         → Verify (fresh credential, bounded by verify.timeout) → Store (the real name)
         → Promote (status: current/retiring; the staging version is disabled)

A transient failure propagates (the reconcile retries with backoff; the journal says where
to resume). A permanent failure goes through :func:`give_up`, which removes whatever this
attempt minted and clears the journal — unless the store already landed, in which case the
verified secret is promoted instead of revoked.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Final

from rotator import metrics
from rotator.core import errors, facts, models, reasons, rotation, sensitive
from rotator.handlers import subjects

logger = logging.getLogger(__name__)

#: Safety bound on loop iterations of one pass: each iteration writes status or reads a fact.
_MAX_ACTIONS: Final = 50


async def gather(
    subject: subjects.Subject, want: rotation.Gather, observed: facts.Facts
) -> facts.Facts:
    """Read the facts ``want`` asks for (Graph passwords, Key Vault latest, staging latest)."""
    rt, spec = subject.rt, subject.spec
    if want.graph_credentials:
        async with rt.limits.graph_read(subject.tenant):
            listed = await rt.graph.list_passwords(subject.tenant, subject.app, subject.owner)
        observed = dataclasses.replace(
            observed,
            graph_credentials=tuple(
                facts.GraphCredential(
                    key_id=p.key_id, display_name=p.display_name, hint=p.hint, end_date_time=p.end
                )
                for p in listed
            ),
        )
    if want.key_vault_latest:
        observed = dataclasses.replace(
            observed,
            key_vault_latest=await _latest(subject, spec.key_vault.secret_name),
        )
    if want.staging_latest:
        observed = dataclasses.replace(
            observed,
            staging_latest=await _latest(
                subject, rotation.staging_secret_name(spec.key_vault.secret_name)
            ),
        )
    return observed


async def _latest(subject: subjects.Subject, name: str) -> facts.VaultLatest:
    found = await subject.rt.vault.latest(subject.spec.key_vault.vault_url, name)
    if found is None:
        return facts.VaultLatest(version=None)
    return facts.VaultLatest(version=found.version, tags=dict(found.tags), enabled=found.enabled)


def _journal(subject: subjects.Subject) -> models.RotationJournal:
    journal = subject.status.rotation
    if journal is None:
        raise RuntimeError("no rotation in flight")
    return journal


async def _write(subject: subjects.Subject, journal: models.RotationJournal | None) -> None:
    await subject.save(subject.status.model_copy(update={"rotation": journal}))


async def _text(subject: subjects.Subject, staging_name: str, version: str) -> sensitive.SecretText:
    """The new secret's text: from memory, else read back from the staging version."""
    journal = _journal(subject)
    held = subject.memory.texts.get(journal.id)
    if held is not None:
        return held
    return await subject.rt.vault.read(subject.spec.key_vault.vault_url, staging_name, version)


async def remove(subject: subjects.Subject, key_id: str, reason: str, why: str) -> None:
    """removePassword of one credential of this object's application (rate-limited, serialized)."""
    rt = subject.rt
    async with rt.limits.graph_write(subject.tenant, subject.spec.application.id):
        await rt.graph.remove_password(subject.tenant, subject.app, subject.owner, key_id)
    metrics.REVOCATIONS.labels(reason=reason).inc()
    subject.event("Normal", reason, f"removed credential {key_id} from Graph: {why}")


def _observe(step: models.Step, started: float) -> None:
    metrics.STEP_SECONDS.labels(step=step.value).observe(time.monotonic() - started)


async def _mint(subject: subjects.Subject, action: rotation.MintPassword) -> None:
    rt = subject.rt
    journal = rotation.begin(_journal(subject), models.Step.MINT)
    await _write(subject, journal)
    started = time.monotonic()
    async with rt.limits.graph_write(subject.tenant, subject.spec.application.id):
        minted = await rt.graph.add_password(
            subject.tenant, subject.app, subject.owner, action.display_name, action.expires_at
        )
    subject.memory.texts[journal.id] = minted.text
    journal = rotation.complete(
        journal, models.Step.MINT, rotation.Minted(minted.key_id, minted.hint)
    )
    await _write(subject, journal)
    _observe(models.Step.MINT, started)
    subject.event(
        "Normal",
        reasons.ROTATING,
        f"rotation {journal.id}: added credential {minted.key_id} ({action.display_name}) in Graph",
    )


async def _stage(subject: subjects.Subject, action: rotation.StageSecret) -> None:
    rt = subject.rt
    journal = rotation.begin(_journal(subject), models.Step.STAGE)
    await _write(subject, journal)
    started = time.monotonic()
    text = subject.memory.texts[journal.id]
    stored = await rt.vault.set(
        subject.spec.key_vault.vault_url,
        action.secret_name,
        text,
        expires_on=action.expires_at,
        tags=action.tags,
    )
    journal = rotation.complete(journal, models.Step.STAGE, rotation.Staged(stored.version))
    await _write(subject, journal)
    _observe(models.Step.STAGE, started)
    subject.event(
        "Normal",
        reasons.ROTATING,
        f"rotation {journal.id}: staged the new secret as version {stored.version} of "
        f"{action.secret_name}",
    )


async def _verify(subject: subjects.Subject, action: rotation.VerifySecret) -> None:
    rt = subject.rt
    # The token request names the client id: given an objectId, Graph tells it (the adapter
    # caches it, so this reads Graph once per object and process).
    client_id = subject.spec.application.client_id
    if not client_id:
        async with rt.limits.graph_read(subject.tenant):
            client_id = await rt.graph.resolve_client_id(subject.tenant, subject.app, subject.owner)
    # The deadline is fixed by the first attempt and kept in status: neither a retry nor a
    # restart gives Entra a fresh verify.timeout.
    journal = rotation.begin_verify(_journal(subject), rt.clock.now(), action.timeout)
    await _write(subject, journal)
    assert journal.verify_deadline is not None
    text = await _text(subject, action.staging_secret_name, action.staging_version)
    # Past the deadline, one last attempt (within=0) decides: Entra still refusing the secret
    # is final, but a throttled or unreachable token endpoint is not a verdict on the secret
    # (it stays transient; expiry-wins supersedes the rotation if that lasts too long).
    remaining = max((journal.verify_deadline - rt.clock.now()).total_seconds(), 0.0)
    started = time.monotonic()
    try:
        await rt.verifier.verify(subject.tenant, client_id, text, within=remaining)
    except errors.VerificationFailed as exc:
        # verify() only gives up on a propagation delay at our deadline: now it is final.
        if exc.transient:
            raise errors.VerificationFailed(
                f"{exc.message}; still refused after verify.timeout ({action.timeout})",
                kind="invalid",
            ) from None
        raise
    journal = rotation.complete(journal, models.Step.VERIFY, rotation.Verified())
    await _write(subject, journal)
    _observe(models.Step.VERIFY, started)
    subject.event(
        "Normal",
        reasons.ROTATING,
        f"rotation {journal.id}: the new credential {journal.key_id} authenticates",
    )


async def _store(subject: subjects.Subject, action: rotation.StoreSecret) -> None:
    rt = subject.rt
    journal = rotation.begin(_journal(subject), models.Step.STORE)
    await _write(subject, journal)
    started = time.monotonic()
    text = await _text(subject, action.staging_secret_name, action.staging_version)
    stored = await rt.vault.set(
        subject.spec.key_vault.vault_url,
        action.secret_name,
        text,
        expires_on=action.expires_at,
        content_type=action.content_type,
        tags=action.tags,
    )
    journal = rotation.complete(journal, models.Step.STORE, rotation.Stored(stored.version))
    await _write(subject, journal)
    _observe(models.Step.STORE, started)
    subject.event(
        "Normal",
        reasons.ROTATING,
        f"rotation {journal.id}: stored version {stored.version} of {action.secret_name}",
    )


async def _promote(subject: subjects.Subject, action: rotation.Promote) -> None:
    rt = subject.rt
    journal = _journal(subject)
    started = time.monotonic()
    # Disable the staging copy first: once status is promoted nothing remembers it.
    if action.staging_version:
        try:
            await rt.vault.disable(
                subject.spec.key_vault.vault_url,
                action.staging_secret_name,
                action.staging_version,
            )
        except errors.NotFound:
            # Deleted by hand: nothing left to disable. Promotion must not wait for it, or a
            # stored (verified, already the Key Vault latest) secret would never become current.
            logger.info(
                "%s: staging version %s of %s is already gone",
                subject.key,
                action.staging_version,
                action.staging_secret_name,
            )
    promoted = rotation.promote(subject.status, subject.spec, subject.meta, rt.clock.now())
    await subject.save(promoted)
    _observe(models.Step.PROMOTE, started)
    subject.memory.texts.pop(journal.id, None)
    subject.memory.stalled_on = None
    metrics.ROTATIONS.labels(result="succeeded", reason=journal.reason).inc()
    assert promoted.current is not None
    subject.event(
        "Normal",
        reasons.ROTATED,
        f"rotation {journal.id} ({journal.reason}): credential {promoted.current.key_id} is "
        f"current, Key Vault version {action.key_vault_version}, expires "
        f"{models.format_time(promoted.current.expires_at)}",
    )


async def _replan(subject: subjects.Subject, action: rotation.Replan) -> None:
    journal = _journal(subject)
    for key_id in action.remove:
        await remove(
            subject, key_id, reasons.ORPHAN_REMOVED, f"rotation {journal.id}: {action.why}"
        )
    subject.memory.texts.pop(journal.id, None)
    fresh = rotation.replan(
        journal, subject.spec, subject.meta, subject.rt.new_id(), subject.rt.clock.now()
    )
    await _write(subject, fresh)
    subject.event(
        "Normal",
        reasons.ROTATING,
        f"rotation {journal.id} replanned as {fresh.id} (attempt {fresh.attempts}): {action.why}",
    )


async def _abandon(subject: subjects.Subject, action: rotation.Abandon) -> None:
    journal = _journal(subject)
    for key_id in action.remove:
        await remove(subject, key_id, reasons.ORPHAN_REMOVED, f"rotation {journal.id} abandoned")
    subject.memory.texts.pop(journal.id, None)
    await _write(subject, None)


async def _act(subject: subjects.Subject, action: rotation.Action) -> bool:
    """Do one non-gather action; True when the rotation is over (promoted or abandoned)."""
    match action:
        case rotation.Idle():
            return True
        case rotation.MintPassword():
            await _mint(subject, action)
        case rotation.StageSecret():
            await _stage(subject, action)
        case rotation.VerifySecret():
            await _verify(subject, action)
        case rotation.StoreSecret():
            await _store(subject, action)
        case rotation.Record():
            await _write(subject, action.journal)
        case rotation.Promote():
            await _promote(subject, action)
            return True
        case rotation.Replan():
            await _replan(subject, action)
        case rotation.Abandon():
            await _abandon(subject, action)
            raise errors.PermanentError(action.why, reasons.GRAPH_ERROR)
        case _:
            raise RuntimeError(f"unexpected action {action!r}")
    return False


async def run(subject: subjects.Subject) -> None:
    """Drive the in-flight rotation to Promote (or raise what stopped it)."""
    # The first decision of a pass resumes a journal written earlier (maybe by another
    # process): it checks that what the journal names still exists before acting on it.
    observed = facts.Facts(resumed=True)
    for _ in range(_MAX_ACTIONS):
        journal = subject.status.rotation
        if journal is None:
            return
        observed = dataclasses.replace(observed, text_held=journal.id in subject.memory.texts)
        action = rotation.next_action(subject.spec, journal, observed)
        if isinstance(action, rotation.Gather):
            observed = await gather(subject, action, observed)
            continue
        if await _act(subject, action):
            return
        # Facts were true before the action; after it they may not be.
        observed = facts.Facts()
    raise errors.TransientError(f"rotation did not settle within {_MAX_ACTIONS} actions")


async def supersede(subject: subjects.Subject, verdict: str, why: str) -> None:
    """Abandon the rotation in flight so a fresh one can start (``verdict`` is the reason).

    Safe like :func:`give_up`: what this attempt minted is removed only if it was never
    stored; a stored one is promoted instead (it replaces the expiring secret just as well).
    """
    journal = _journal(subject)
    subject.event(
        "Warning" if verdict == reasons.EXPIRING_WITHOUT_REPLACEMENT else "Normal",
        verdict,
        f"abandoning rotation {journal.id} at {journal.step}/{journal.phase} for a fresh one: "
        f"{why}",
    )
    await give_up(subject, errors.PermanentError(why, verdict), result="superseded")


async def give_up(
    subject: subjects.Subject, error: errors.RotatorError, *, result: str = "failed"
) -> None:
    """After a permanent ``error``: remove this attempt's credential and clear the journal.

    If the store already landed, the verified secret is promoted instead (never revoke what
    consumers may already read). The caller reports the error (Stalled).
    """
    observed = facts.Facts()
    for _ in range(_MAX_ACTIONS):
        journal = subject.status.rotation
        if journal is None:
            return
        action = rotation.abandon(subject.spec, journal, observed, error.message)
        if isinstance(action, rotation.Gather):
            observed = await gather(subject, action, observed)
            continue
        if isinstance(action, rotation.Abandon):
            await _abandon(subject, action)
            metrics.ROTATIONS.labels(result=result, reason=_reason(error)).inc()
            return
        if await _act(subject, action):
            return
        observed = facts.Facts()


def _reason(error: errors.RotatorError) -> str:
    return error.reason
