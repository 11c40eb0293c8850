"""Reconciling one ServicePrincipalSecret: gather → decide (core) → act (clouds), then sleep.

Each object has one long-lived loop (a kopf daemon, :func:`loop`). A pass (:func:`reconcile`):

1. reads the object fresh from the API server (status is the record, kopf's cache may lag);
2. parses spec and status (a bad one is Stalled with InvalidSpec / InvalidStatus);
3. checks RotationPolicy BEFORE any cloud call (denied: Stalled NotAuthorized, zero calls);
4. honours ``suspend`` (no cloud calls at all; Ready says Suspended);
5. resumes an in-flight rotation from its journal, or asks the trigger chain whether to start
   one — looking at Graph and Key Vault only when the drift check is due;
6. retires superseded secrets and removes orphans;
7. returns how long to sleep: until the next rotation, retireAt, retry, drift check or expiry.

Failures are sorted: transient ones are retried with backoff (``Retry-After`` honoured,
Reconciling=True), permanent ones stall (Stalled=True, an actionable message) and are not
retried until the user changes the spec or the ``rotator.dev/rotate`` annotation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from rotator import metrics
from rotator.core import (
    authorization,
    conditions,
    errors,
    facts,
    models,
    reasons,
    retirement,
    rotation,
    schedule,
    triggers,
)
from rotator.handlers import (
    daemons,
    guarding,
    retiring,
    rotating,
    runtime,
    subjects,
    waking,
)

logger = logging.getLogger(__name__)


def first_drift_check(rt: runtime.Runtime, obj: str, now: dt.datetime) -> dt.datetime:
    """When an object first seen at ``now`` makes its first drift check: ``now`` plus a stable
    per-object offset in ``[0, interval)``, so the checks of a start-up (or of a burst of new
    objects) are spread evenly over one interval instead of all coming at once.

    (The offset used to come from :func:`schedule.jitter`, whose window is capped at 10%: every
    first check fell in the last tenth of the interval, so a burst checked nothing for 54 min.)
    """
    interval = rt.config.drift_check_interval
    return now + schedule.spread(obj, interval)


def drift_due(rt: runtime.Runtime, obj: str, now: dt.datetime) -> bool:
    """Whether Graph and Key Vault should be compared with status in this pass.

    After a start-up, each object's first check is spread over one interval by a stable
    per-object offset (:func:`first_drift_check`), so a restart does not list every
    application at once.
    """
    memory = rt.memory(obj)
    interval = rt.config.drift_check_interval
    if memory.drift_checked is None:
        memory.drift_checked = first_drift_check(rt, obj, now) - interval
    return now >= memory.drift_checked + interval


async def reconcile(rt: runtime.Runtime, namespace: str, name: str) -> float | None:
    """One pass over one object; returns the seconds until the next pass is due."""
    started = rt.clock.now()
    body = await rt.status.read(namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    meta = models.ResourceMeta.from_body(body)
    try:
        status = models.ServicePrincipalSecretStatus.from_dict(body.get("status"))
    except errors.PermanentError as exc:
        await subjects.stall_unreadable(rt, body, meta, exc)
        return None
    try:
        spec = models.ServicePrincipalSecretSpec.from_body(body)
    except errors.SpecError as exc:
        await subjects.stall_invalid_spec(rt, body, meta, status, exc)
        return None
    subject = subjects.Subject.parse(body, rt, spec, status)
    decision = rt.police.check(namespace, authorization.request_for_secret(spec))
    if not decision.allowed:
        await _stall(subject, errors.NotAuthorized(decision.message), cleanup=False)
        return None
    _observe_expiry(subject)
    if spec.suspend:
        await subject.save(subject.status)
        return _next_wake(subject, gated=True, since=started)
    held = _held_back(subject, started)
    if held is not None:
        return held
    try:
        gated = await _work(subject)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return await _failed(subject, exc, since=started)
    return _next_wake(subject, gated=gated, since=started)


def _held_back(subject: subjects.Subject, now: dt.datetime) -> float | None:
    """On this process's first pass, the retry time an earlier process wrote to status.

    A restart must not reset backoff (nor a cloud's Retry-After). A user's change since the
    failure (a new generation or rotate annotation) is acted on at once instead.
    """
    memory, status, meta = subject.memory, subject.status, subject.meta
    if memory.seen:
        return None
    memory.seen = True
    retry = status.next_retry_time
    changed = meta.generation != status.observed_generation or meta.rotate_request not in (
        None,
        status.rotate_request,
    )
    if retry is None or now >= retry or changed:
        return None
    memory.retry_at = retry
    return _next_wake(subject, gated=False, since=now)


async def _work(subject: subjects.Subject) -> bool:
    """Rotate if needed, retire, remove orphans; True when a stall gate held back a rotation."""
    rt, memory, meta = subject.rt, subject.memory, subject.meta
    now = rt.clock.now()
    observed = facts.Facts()
    if drift_due(rt, subject.key, now):
        memory.drift_checked = now
        if subject.status.rotation is None and subject.status.current is not None:
            observed = await rotating.gather(
                subject, rotation.Gather(graph_credentials=True, key_vault_latest=True), observed
            )
    # Expiry always wins: near expiry a stall no longer holds rotation back.
    urgent = triggers.at_risk(subject.spec, subject.status, now)
    gated = memory.stalled_on == (meta.generation, meta.rotate_request) and not urgent
    # Read before any write of this pass: writes without a stall signal drop the condition.
    stalled = conditions.find(subject.status.conditions, conditions.STALLED)
    held = (
        conditions.Signal(stalled.reason, stalled.message)
        if gated and stalled is not None and stalled.status == "True"
        else None
    )
    subject.holding = held or guarding.refused_annotation(subject, announce=True)
    if subject.status.rotation is not None:
        # A new manual request, or a stuck rotation near expiry: abandon it for a fresh one.
        superseding = triggers.supersede(
            triggers.Input(subject.spec, subject.status, meta, observed, now)
        )
        if superseding.violated:
            async with rt.limits.rotation_slot():
                await rotating.supersede(subject, superseding.reason, superseding.message)
            memory.stalled_on = None
            gated = False
    if subject.status.rotation is not None and gated:
        # A permanent failure stopped this attempt but its cleanup did not finish: finish it.
        # Resuming instead would replan and mint again for a spec that already failed.
        error = errors.PermanentError(
            held.message if held else subject.status.last_error or "the rotation failed",
            held.reason if held else reasons.GRAPH_ERROR,
        )
        async with rt.limits.rotation_slot():
            await rotating.give_up(subject, error)
    elif subject.status.rotation is not None:
        async with rt.limits.rotation_slot():
            await rotating.run(subject)
    else:
        verdict = triggers.evaluate(
            triggers.Input(subject.spec, subject.status, meta, observed, now)
        )
        if (
            verdict.violated
            and not gated
            and not await guarding.storm_held(subject, verdict.reason, now)
        ):
            async with rt.limits.rotation_slot():
                started = rotation.start(
                    subject.status, subject.spec, meta, verdict.reason, rt.new_id(), now
                )
                started = guarding.recorded(started, rt.config.max_rotations_per_hour, now)
                assert started.rotation is not None
                await subject.save(started)
                subject.event(
                    "Warning" if verdict.reason == reasons.DRIFT_DETECTED else "Normal",
                    verdict.reason,
                    f"starting rotation {started.rotation.id}: {verdict.message}",
                )
                await rotating.run(subject)
    await retiring.retire(subject, observed.graph_key_ids)
    if observed.graph_credentials is not None:
        await retiring.remove_orphans(subject, observed.graph_credentials)
    if guarding.storm_holding(subject):  # a time-based hold: wake at retry_at, when it ends
        await subject.save(subject.status)
        return True
    memory.retry_at = None
    # Re-read the gate: a promotion in this pass (a stored secret) lifts it.
    still_gated = memory.stalled_on == (meta.generation, meta.rotate_request) and not urgent
    if still_gated and subject.status.rotation is None:
        await subject.save(subject.status, stalled=held)
        return True
    subject.holding = guarding.refused_annotation(subject)
    await subject.save(
        subject.status.model_copy(
            update={
                "failures": 0,
                "last_error": "",
                "last_failure_time": None,
                "next_retry_time": None,
            }
        )
    )
    return False


async def _failed(
    subject: subjects.Subject, exc: BaseException, *, since: dt.datetime | None = None
) -> float | None:
    """Record a failure: back off if transient, stall if permanent. Returns the sleep."""
    rt, memory, _meta = subject.rt, subject.memory, subject.meta
    if not isinstance(exc, errors.RotatorError):
        # Our own bug or an unmapped library error: its text may carry request data, so the
        # message shows the type only (the traceback goes to the debug log).
        logger.debug("unexpected error reconciling %s", subject.key, exc_info=exc)
        exc = errors.TransientError(f"unexpected {type(exc).__name__}; retrying")
    reason = exc.reason
    now = rt.clock.now()
    failures = subject.status.failures + 1
    if errors.is_transient(exc):
        delay = schedule.backoff_delay(failures, errors.retry_after(exc), key=subject.key)
        memory.retry_at = now + dt.timedelta(seconds=delay)
        metrics.FAILURES.labels(reason=reason, kind="transient").inc()
        await subject.save(
            _with_failure(subject.status, failures, exc.message, now, retry_at=memory.retry_at),
            reconciling=conditions.Signal(reason, f"{exc.message}; retrying in {delay:.0f}s"),
        )
        if conditions.streak_begins(failures):
            subject.event("Warning", reason, f"{exc.message}; retrying in {delay:.0f}s")
        return delay
    await _stall(subject, exc)
    current = subject.status.current
    if current is not None and triggers.at_risk(subject.spec, subject.status, now):
        # Expiry always wins: near expiry a permanent failure is retried too (Stalled still
        # tells a human what is wrong), backing off with each attempt made inside the margin
        # so the storm limit's budget is spread over it rather than spent in a minute.
        urgent = triggers.urgent_at(subject.spec, current)
        tries = sum(1 for started in subject.status.recent_rotations if started >= urgent)
        delay = schedule.backoff_delay(max(tries, 1), key=subject.key)
        memory.retry_at = now + dt.timedelta(seconds=delay)
        return delay
    return _next_wake(subject, gated=True, since=since)


async def _stall(
    subject: subjects.Subject, exc: errors.RotatorError, *, cleanup: bool = True
) -> None:
    """Permanent failure: give up the in-flight attempt, Stalled=True, Warning event.

    ``cleanup=False`` (a policy denial) makes no cloud call at all: the journal stays, and the
    rotation resumes — removing what it minted if needed — once a policy allows it again.
    """
    rt, memory, meta = subject.rt, subject.memory, subject.meta
    reason = exc.reason
    now = rt.clock.now()
    if cleanup and subject.status.rotation is not None:
        try:
            await rotating.give_up(subject, exc)
        except errors.RotatorError as cleanup_error:
            # The journal still names the attempt; the next pass finishes the cleanup.
            logger.warning(
                "%s: could not clean up rotation %s yet: %s",
                subject.key,
                subject.status.rotation.id if subject.status.rotation else "-",
                cleanup_error.message,
            )
    if cleanup:
        # Not for a policy denial: a new or widened policy must take effect without an edit.
        memory.stalled_on = (meta.generation, meta.rotate_request)
    memory.retry_at = None
    already = not conditions.newly_stalled(subject.status.conditions, reason, exc.message)
    metrics.FAILURES.labels(reason=reason, kind="permanent").inc()
    failures = subject.status.failures if already else subject.status.failures + 1
    await subject.save(
        _with_failure(subject.status, failures, exc.message, now),
        stalled=conditions.Signal(reason, exc.message),
    )
    if not already:
        subject.event("Warning", reason, exc.message)


def _with_failure(
    status: models.ServicePrincipalSecretStatus,
    failures: int,
    message: str,
    now: dt.datetime,
    *,
    retry_at: dt.datetime | None = None,
) -> models.ServicePrincipalSecretStatus:
    return status.model_copy(
        update={
            "failures": failures,
            "last_error": message,
            "last_failure_time": now,
            "next_retry_time": retry_at.replace(microsecond=0) if retry_at else None,
        }
    )


def _observe_expiry(subject: subjects.Subject) -> None:
    """Expiry gauges, and a Warning the first time the secret is at risk of expiring unreplaced."""
    current = subject.status.current
    if current is None:
        return
    now = subject.rt.clock.now()
    labels = {"namespace": subject.namespace, "name": subject.name}
    metrics.SECONDS_UNTIL_EXPIRY.labels(**labels).set((current.expires_at - now).total_seconds())
    risk = triggers.at_risk(subject.spec, subject.status, now)
    metrics.EXPIRING_WITHOUT_REPLACEMENT.labels(**labels).set(1 if risk else 0)
    ready = conditions.find(subject.status.conditions, conditions.READY)
    suspended = subject.spec.suspend  # Ready says Suspended then; no event on every pass
    if (
        risk
        and not suspended
        and now < current.expires_at
        and (ready is None or ready.reason != _AT_RISK)
    ):
        subject.event(
            "Warning",
            _AT_RISK,
            f"secret {current.key_id} expires at {models.format_time(current.expires_at)} "
            f"and no verified replacement is ready yet"
            + (f" (last error: {subject.status.last_error})" if subject.status.last_error else ""),
        )


_AT_RISK = reasons.EXPIRING_WITHOUT_REPLACEMENT


def _next_wake(
    subject: subjects.Subject, *, gated: bool, since: dt.datetime | None = None
) -> float:
    """Seconds until something is due (:func:`rotator.core.schedule.next_wake`)."""
    rt, status, memory = subject.rt, subject.status, subject.memory
    now = rt.clock.now()
    current = status.current
    due = schedule.Due(
        next_rotation=status.next_rotation_time,
        retire_at=retirement.next_retire_time(status.retiring),
        retry_at=memory.retry_at,
        drift_check=(
            memory.drift_checked + rt.config.drift_check_interval
            if memory.drift_checked is not None and current is not None
            else None
        ),
        expires_at=current.expires_at if current is not None else None,
        urgent_at=triggers.urgent_at(subject.spec, current) if current is not None else None,
    )
    return schedule.next_wake(
        due,
        now=now,
        since=now if since is None else since,
        suspended=subject.spec.suspend,
        gated=gated,
    )


async def loop(rt: runtime.Runtime, namespace: str, name: str, stopped: Any) -> None:
    """The per-object daemon (:func:`rotator.handlers.daemons.run` over :func:`reconcile`)."""

    async def pass_() -> float | None:
        return await reconcile(rt, namespace, name)

    await daemons.run(rt, waking.key(namespace, name), pass_, stopped)
