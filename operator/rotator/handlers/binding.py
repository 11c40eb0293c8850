"""DatabricksSecretBinding: copy the source's current secret into a Databricks scope, point the
named jobs at it, restart continuous runs when asked, and report it in status.

One long-lived loop per binding (a kopf daemon, :func:`loop`). A pass (:func:`reconcile`):

1. reads the binding fresh from the API server, parses spec and status (a bad one stalls);
2. checks RotationPolicy (workspace, and the vault of a keyVault source) BEFORE any cloud
   call: denied means Stalled/NotAuthorized, one Warning event and zero cloud calls;
3. resolves the source: a ServicePrincipalSecret's ``status.current`` (keyId + Key Vault
   version, read from the API server, not the cloud) or a Key Vault secret's latest version;
4. decides whether a sync is needed (new version or keyId, new generation, or a failure to
   retry); an up-to-date binding makes no cloud call at all;
5. syncs: writes the Key Vault value into a Databricks-backed scope (creating it when
   ``scope.create``), or for a Key-Vault-backed scope only checks it reads the source vault
   and NEVER writes; then rewrites each job's clusters in place (only what changes, see
   :mod:`rotator.core.jobrefs`) and cancels the active runs of continuous jobs with
   ``restart: IfRunning`` so they restart with the new value;
6. writes ``syncedVersion``/``syncedKeyId``/``lastSyncTime`` only once the scope holds the
   value AND every job references it (and restarts were issued): the ServicePrincipalSecret's
   retirement waits for exactly these fields, so they must never run ahead of the consumers.

Wake-ups, not polling: a ServicePrincipalSecret whose ``status.current`` changes wakes the
bindings that reference it (through the consumers index, :mod:`consuming`); a binding's own spec
change wakes it; a RotationPolicy change wakes everyone. On its own a binding looks at the cloud
only once per drift-check interval: a keyVault-sourced one reads the vault's latest version
(nobody tells us about a new one), and every synced binding checks its scope
(:func:`check_scope`): a Databricks-backed scope must still hold the source's value — compared
by SHA-256 digest, in memory, never shown — or the value is written back (``DriftDetected``);
a Key-Vault-backed scope must still read the source vault. Between checks an idle binding makes
no call at all.

Per-binding state lives in the runtime's memory and is dropped, along with the binding's
Databricks client when no other binding uses it, when the binding's daemon ends.

Everything outside the process goes through :class:`ports.BindingPorts` (Databricks
workspaces, the Kubernetes Secret holding a PAT, the binding's own status) or the shared runtime
(Key Vault, policies, events, clock), so unit tests swap fakes in at exactly that boundary. The
source is resolved in :mod:`rotator.handlers.sourcing`, the decisions are
:mod:`rotator.core.syncing`'s, the Databricks work is done in :mod:`rotator.handlers.delivering`,
status, events and failures are recorded by :mod:`rotator.handlers.recording`, and the production
adapters are in :mod:`rotator.handlers.wiring`; this module runs the pass and its kopf handlers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import kopf

from rotator import metrics
from rotator.core import (
    authorization,
    conditions,
    errors,
    kinds,
    models,
    readiness,
    reasons,
    syncing,
)
from rotator.handlers import (
    consuming,
    daemons,
    delivering,
    ports,
    recording,
    runtime,
    sourcing,
    wiring,
)

logger = logging.getLogger(__name__)


async def reconcile(
    rt: runtime.Runtime, port: ports.BindingPorts, namespace: str, name: str
) -> float | None:
    """One pass over one binding; returns the seconds until the next pass is due (None: woken)."""
    body = await port.bindings.read(namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    meta = models.ResourceMeta.from_body(body)
    try:
        status = models.DatabricksSecretBindingStatus.from_dict(body.get("status"))
    except errors.PermanentError as exc:
        # Start from an empty record: the next successful sync rewrites every field.
        p = recording.Pass(rt, port, body, meta, models.DatabricksSecretBindingStatus())
        await recording.stall(p, exc)
        return None
    p = recording.Pass(rt, port, body, meta, status)
    try:
        spec = models.DatabricksSecretBindingSpec.from_body(body)
    except errors.SpecError as exc:
        await recording.stall(p, exc)
        return None
    decision = rt.police.check(namespace, authorization.request_for_binding(spec))
    if not decision.allowed:
        await recording.stall(p, errors.NotAuthorized(decision.message))
        return None
    memory = rt.memory(p.key)
    now = rt.clock.now()
    memory.scope_checked = syncing.scope_baseline(snapshot(p, spec, now), p.key)
    seen = snapshot(p, spec, now)
    scope_due = syncing.scope_check_due(seen)
    if seen.keyvault_source and not scope_due and not syncing.source_check_due(seen):
        # Nothing new can have happened that we would be told about: wait for the next look.
        return syncing.next_check(seen)
    try:
        source = await sourcing.resolve_source(rt, namespace, spec.source)
    except sourcing.SourceNotReady as exc:
        signal = conditions.Signal(reasons.SOURCE_NOT_READY, exc.message)
        await p.save(p.status, ready=False, signal=signal, reconciling=signal)
        return None  # the source's status change wakes us
    except errors.RotatorError as exc:
        return await recording.failed(p, exc)
    finally:
        if spec.source.key_vault is not None:
            memory.drift_checked = now
    found = syncing.Source(source.version, source.key_id)
    if syncing.needs_sync(snapshot(p, spec, now), found)[2]:
        return await run_sync(p, spec, source)
    if scope_due:
        try:
            await check_scope(p, spec, source)
        except errors.RotatorError as exc:
            return await recording.failed(p, exc)
    await p.save(p.status, ready=True, signal=readiness.synced(p.status))
    return syncing.next_check(snapshot(p, spec, now))


def snapshot(
    p: recording.Pass, spec: models.DatabricksSecretBindingSpec, now: dt.datetime
) -> syncing.Snapshot:
    """What the binding's decisions (:mod:`rotator.core.syncing`) look at, as of now."""
    memory = p.rt.memory(p.key)
    return syncing.Snapshot(
        generation=p.meta.generation,
        observed_generation=p.status.observed_generation,
        synced_version=p.status.synced_version,
        synced_key_id=p.status.synced_key_id,
        stalled=conditions.is_true(p.status.conditions, conditions.STALLED),
        last_sync_time=p.status.last_sync_time,
        failures=memory.failures,
        retry_pending=memory.retry_at is not None,
        source_checked=memory.drift_checked,
        scope_checked=memory.scope_checked,
        keyvault_source=spec.source.key_vault is not None,
        interval=p.rt.config.drift_check_interval,
        now=now,
    )


async def _workspace(
    p: recording.Pass, spec: models.DatabricksSecretBindingSpec
) -> ports.Workspace:
    """The binding's workspace client: the operator's identity, or the PAT it names."""
    token = None
    auth = spec.workspace.auth
    if auth is not None and auth.pat_secret_ref is not None:
        ref = auth.pat_secret_ref
        token = await p.io.secrets.read(p.namespace, ref.name, ref.key)
    return p.io.workspaces(spec.workspace.host, token, user=p.key)


async def check_scope(
    p: recording.Pass, spec: models.DatabricksSecretBindingSpec, source: sourcing.Source
) -> None:
    """The drift check of a synced binding: repair a scope changed outside the operator."""
    memory = p.rt.memory(p.key)
    workspace = await _workspace(p, spec)
    try:
        drift = await delivering.scope_drift(p.rt, workspace, spec, source, memory)
    except delivering.ValueUnreadable as exc:
        # The binding did its job (it wrote the value); only the check cannot be made. Say so
        # once, not at every interval, and stay Ready.
        message = (
            f"cannot read key {spec.scope.key!r} of secret scope {spec.scope.name!r} back to "
            f"check it for drift, so the check is skipped: {exc.error.message}"
        )
        if memory.unreadable != message:
            p.event("Warning", exc.error.reason, message)
        memory.unreadable = message
        logger.warning("binding %s/%s: %s", p.namespace, p.meta.name, message)
        drift = None
    else:
        memory.unreadable = None
    if drift is not None:
        await delivering.deliver_value(p.rt, workspace, spec, source, memory)
        metrics.DRIFT_REPAIRED.labels(what="databricks_scope_value").inc()
        p.event(
            "Warning",
            reasons.DRIFT_DETECTED,
            f"{drift}; wrote {source.label}, Key Vault version {source.version}, back",
        )
        logger.warning(
            "binding %s/%s: scope %r key %r drifted; wrote version %s back",
            p.namespace,
            p.meta.name,
            spec.scope.name,
            spec.scope.key,
            source.version,
        )
    memory.scope_checked = p.rt.clock.now()


async def run_sync(
    p: recording.Pass, spec: models.DatabricksSecretBindingSpec, source: sourcing.Source
) -> float | None:
    """Sync now: Reconciling first, then the cloud work, then the record (or the failure)."""
    rt = p.rt
    memory = rt.memory(p.key)
    working = conditions.Signal(
        reasons.RECONCILING, f"syncing {source.label}, Key Vault version {source.version}"
    )
    ready_now = p.status.synced_version is not None and not memory.failures
    await p.save(
        p.status,
        ready=ready_now,
        signal=readiness.synced(p.status) if ready_now else working,
        reconciling=working,
    )
    try:
        workspace = await _workspace(p, spec)
        result = await delivering.sync(rt, workspace, spec, source, p.status, memory)
    except errors.RotatorError as exc:
        return await recording.failed(p, exc)
    jobs = tuple(o.status for o in result.jobs)
    if result.error is not None:
        p.status = p.status.model_copy(update={"jobs": jobs})
        return await recording.failed(p, result.error)
    now = rt.clock.now()
    version_changed = p.status.synced_version != source.version
    synced = p.status.model_copy(
        update={
            "synced_version": source.version,
            "synced_key_id": source.key_id,
            "last_sync_time": now,
            "jobs": jobs,
            "failures": 0,
            "last_error": "",
            "last_failure_time": None,
        }
    )
    memory.retry_at = None
    memory.failures = 0
    memory.scope_checked = now  # the value was just written
    await p.save(synced, ready=True, signal=readiness.synced(synced))
    if version_changed:
        p.event(
            "Normal",
            reasons.SYNCED,
            f"{source.label}: Key Vault version {source.version} synced to scope "
            f"{spec.scope.name!r} in {spec.workspace.host}",
        )
    for job in jobs:
        label = job.job_name or str(job.job_id)
        if job.changed:
            p.event(
                "Normal",
                reasons.JOB_UPDATED,
                f"job {label!r} now references {spec.scope.reference}",
            )
        if job.restarted_runs:
            p.event(
                "Normal",
                reasons.RUNS_RESTARTED,
                f"cancelled {job.restarted_runs} active run(s) of continuous job {label!r} "
                "so it restarts with the new secret",
            )
    logger.info(
        "binding %s/%s synced version %s (%d job(s), %d changed)",
        p.namespace,
        p.meta.name,
        source.version,
        len(jobs),
        sum(1 for j in jobs if j.changed),
    )
    return syncing.next_check(snapshot(p, spec, now))


async def loop(
    rt: runtime.Runtime,
    port: ports.BindingPorts,
    namespace: str,
    name: str,
    stopped: Any,
    *,
    pass_: Callable[
        [runtime.Runtime, ports.BindingPorts, str, str], Awaitable[float | None]
    ] = reconcile,
) -> None:
    """The per-binding daemon (:func:`rotator.handlers.daemons.run` over :func:`reconcile`)."""
    obj = recording.binding_key(namespace, name)

    async def one_pass() -> float | None:
        return await pass_(rt, port, namespace, name)

    async def on_exit() -> None:
        # kopf ends a binding's daemon when the binding is being deleted (or the operator
        # stops): nothing of it stays behind, including a Databricks client only it used. A
        # pass that ran after the DELETED event forgot it would otherwise bring it back.
        rt.forget(obj)
        await port.workspaces.release(obj)

    await daemons.run(rt, obj, one_pass, stopped, on_exit=on_exit)


def _runtime(memo: Any) -> runtime.Runtime:
    rt = memo.get("runtime")
    if not isinstance(rt, runtime.Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return rt


def _ports(rt: runtime.Runtime) -> ports.BindingPorts:
    """The bindings' production ports, built on first use and kept in the runtime."""
    return rt.attach(kinds.DSB, lambda: wiring.binding_ports(rt))


@kopf.daemon(kinds.GROUP, kinds.VERSION, kinds.DSB, id="binding-sync", cancellation_timeout=10.0)
async def binding_daemon(
    stopped: kopf.DaemonStopped, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """One long-lived loop per DatabricksSecretBinding."""
    rt = _runtime(memo)
    await loop(rt, _ports(rt), namespace or "", name, stopped)


@kopf.on.event(kinds.GROUP, kinds.VERSION, kinds.DSB, id="binding-spec-changed")
async def binding_spec_changed(
    namespace: str | None, name: str, meta: kopf.Meta, type: str, memo: Any, **_: Any
) -> None:
    """A user changed the binding's spec (generation): wake its daemon; forget it when gone.

    Async on purpose: kopf runs sync handlers in worker threads, and the wakers and the maps
    here belong to the event loop.
    """
    rt = memo.get("runtime")
    if not isinstance(rt, runtime.Runtime):
        return
    obj = recording.binding_key(namespace, name)
    if type == "DELETED":
        # Nothing to undo in Databricks: the value stays where its consumers read it.
        rt.forget(obj)
        found = rt.attached.get(kinds.DSB)
        if isinstance(found, ports.BindingPorts):
            await found.workspaces.release(obj)
        return
    fingerprint = (meta.get("generation"), bool(meta.get("deletionTimestamp")))
    rt.wakers.wake_if_changed(obj, fingerprint)


def _source_of(spec: Mapping[str, Any]) -> str | None:
    ref = (spec.get("source") or {}).get("servicePrincipalSecretRef") or {}
    name = ref.get("name")
    return str(name) if name else None


# A binding is a consumer of the ServicePrincipalSecret it names (retirement waits for it).
consuming.register(kinds.DSB, _source_of, recording.binding_key)
