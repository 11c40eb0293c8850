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
bindings that reference it (found through the runtime's binding index); a binding's own spec
change wakes it; a RotationPolicy change wakes everyone. Only keyVault-sourced bindings look at
the cloud on their own, once per drift-check interval (nobody tells us about a new version).

Everything outside the process goes through :class:`Ports` (Databricks workspaces, the
Kubernetes Secret holding a PAT, the binding's own status) or the shared runtime (Key Vault,
policies, events, clock), so unit tests swap fakes in at exactly that boundary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Final, Protocol

import kopf

from rotator.clouds import databricks, identity
from rotator.clouds import settings as cloud_settings
from rotator.core import conditions, errors, jobrefs, models, policies, reasons, schedule
from rotator.handlers import ports, reporting, runtime, waking, wiring

logger = logging.getLogger(__name__)

GROUP: Final = "rotator.dev"
VERSION: Final = "v1alpha1"
DSB: Final = "databrickssecretbindings"
SPS: Final = "serviceprincipalsecrets"
#: The runtime's index of bindings by (namespace, source sps name) (rotator.handlers.registering).
BINDINGS_INDEX: Final = "rotator_bindings"
#: Per-object keys of bindings in the shared runtime (wakers, memory) must never equal a
#: ServicePrincipalSecret's ``namespace/name``; ":" cannot occur in an object name.
_KEY_PREFIX: Final = "dsb:"


def binding_key(namespace: str | None, name: str) -> str:
    """The runtime key (wakers, memory) of one binding."""
    return waking.key(namespace, _KEY_PREFIX + name)


# --- ports: the outside world of this module --------------------------------------------------


class Workspace(Protocol):
    """One Databricks workspace (shaped like :class:`databricks.DatabricksAdapter`)."""

    async def get_scope(self, name: str) -> databricks.ScopeInfo | None: ...

    async def create_scope(self, name: str) -> None: ...

    async def put_secret(self, scope: str, key: str, value: errors.SecretText) -> None: ...

    async def resolve_job(
        self, *, job_id: int | None = None, job_name: str | None = None
    ) -> int: ...

    async def get_job_settings(self, job_id: int) -> dict[str, Any]: ...

    async def update_job(self, job_id: int, new_settings: dict[str, Any]) -> None: ...

    async def active_runs(self, job_id: int) -> list[int]: ...

    async def cancel_run(self, run_id: int) -> None: ...


class Workspaces(Protocol):
    """A workspace client for ``host``: the operator's identity (token None) or a PAT."""

    def __call__(self, host: str, token: errors.SecretText | None) -> Workspace: ...


class SecretReader(Protocol):
    """Reads one key of a Kubernetes Secret in the binding's namespace (a PAT)."""

    async def read(self, namespace: str, name: str, key: str) -> errors.SecretText: ...


@dataclasses.dataclass
class Ports:
    """What a binding pass talks to besides the shared runtime."""

    workspaces: Workspaces
    secrets: SecretReader
    bindings: ports.StatusWriter  # reads and status-patches DatabricksSecretBindings


# --- the source ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """The value a binding must deliver: one Key Vault version (and its Graph keyId, if any)."""

    vault_url: str
    secret_name: str
    version: str
    key_id: str | None = None
    label: str = ""  # how messages name it


class SourceNotReady(Exception):
    """The referenced ServicePrincipalSecret does not exist or has no current secret yet."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def resolve_source(
    rt: runtime.Runtime, namespace: str, spec: models.DatabricksSecretBindingSpec
) -> Source:
    """The source's current version: sps status (an API read) or Key Vault latest (a cloud call)."""
    ref = spec.source.service_principal_secret_ref
    if ref is not None:
        body = await rt.status.read(namespace, ref.name)
        if body is None:
            raise SourceNotReady(f"ServicePrincipalSecret {ref.name!r} does not exist")
        try:
            sps_spec = models.ServicePrincipalSecretSpec.from_body(body)
            sps_status = models.ServicePrincipalSecretStatus.from_dict(body.get("status"))
        except errors.PermanentError:
            raise SourceNotReady(
                f"ServicePrincipalSecret {ref.name!r} has an invalid spec or status"
            ) from None
        current = sps_status.current
        if current is None or not current.key_vault_version:
            raise SourceNotReady(f"ServicePrincipalSecret {ref.name!r} has no current secret yet")
        return Source(
            vault_url=sps_spec.key_vault.vault_url,
            secret_name=sps_spec.key_vault.secret_name,
            version=current.key_vault_version,
            key_id=current.key_id,
            label=f"ServicePrincipalSecret {ref.name!r} (secret {current.key_id})",
        )
    source = spec.source.key_vault
    assert source is not None  # the spec model guarantees exactly one source
    latest = await rt.vault.latest(source.vault_url, source.secret_name)
    if latest is None:
        raise errors.NotFound(
            f"Key Vault secret {source.secret_name!r} does not exist in {source.vault_url}"
        )
    if not latest.enabled:
        raise errors.PermanentError(
            f"the latest version of Key Vault secret {source.secret_name!r} in "
            f"{source.vault_url} is disabled; consumers cannot read it",
            reasons.KEY_VAULT_ERROR,
        )
    return Source(
        vault_url=source.vault_url,
        secret_name=source.secret_name,
        version=latest.version,
        label=f"Key Vault secret {source.secret_name!r}",
    )


# --- the sync -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """What a sync did to one job; ``error`` set when it failed."""

    status: models.JobStatus
    error: errors.RotatorError | None = None


def scope_reads_vault(scope: databricks.ScopeInfo, vault_url: str) -> bool:
    """Whether a Key-Vault-backed scope reads ``vault_url`` (origins compared normalised)."""
    if not scope.keyvault_dns:
        return False
    try:
        return models.normalize_url(scope.keyvault_dns.rstrip("/")) == models.normalize_url(
            vault_url
        )
    except ValueError:
        return False


def is_continuous(settings: Mapping[str, Any]) -> bool:
    """A continuous job that is not paused: cancelling its run makes Databricks start another."""
    continuous = settings.get("continuous")
    return isinstance(continuous, Mapping) and continuous.get("pause_status") != "PAUSED"


async def deliver_value(
    rt: runtime.Runtime,
    workspace: Workspace,
    spec: models.DatabricksSecretBindingSpec,
    source: Source,
) -> None:
    """Put the source version's value in the scope, or check a Key-Vault-backed scope."""
    scope = await workspace.get_scope(spec.scope.name)
    if scope is None:
        if not spec.scope.create:
            raise errors.NotFound(
                f"secret scope {spec.scope.name!r} does not exist in {spec.workspace.host}; "
                "create it or set scope.create: true"
            )
        await workspace.create_scope(spec.scope.name)
    elif scope.backend == "AZURE_KEYVAULT":
        # Read-only in Databricks: the scope reads the vault itself, so there is nothing to
        # write, only to check that jobs referencing it will read the source's secret.
        if not scope_reads_vault(scope, source.vault_url):
            raise errors.PermanentError(
                f"secret scope {spec.scope.name!r} is backed by Key Vault "
                f"{scope.keyvault_dns or '(unknown)'}, not by the source vault "
                f"{source.vault_url}; the binding never writes to a Key-Vault-backed scope",
                reasons.DATABRICKS_ERROR,
            )
        if spec.scope.key != source.secret_name:
            raise errors.PermanentError(
                f"secret scope {spec.scope.name!r} is Key-Vault-backed, so key "
                f"{spec.scope.key!r} reads the vault secret of that name; set scope.key to "
                f"{source.secret_name!r}",
                reasons.DATABRICKS_ERROR,
            )
        return
    value = await rt.vault.read(source.vault_url, source.secret_name, source.version)
    await workspace.put_secret(spec.scope.name, spec.scope.key, value)


async def sync_job(
    workspace: Workspace,
    spec: models.DatabricksSecretBindingSpec,
    job: models.JobRef,
    *,
    value_changed: bool,
) -> JobOutcome:
    """Point one job's clusters at the scope (writing only what changes); restart if asked."""
    job_id = job.job_id
    try:
        job_id = await workspace.resolve_job(job_id=job.job_id, job_name=job.job_name)
        settings = await workspace.get_job_settings(job_id)
        update = jobrefs.ensure_secret_refs(
            settings, spec.scope.name, spec.scope.key, job.env, job.spark_conf
        )
        if update is not None:
            await workspace.update_job(job_id, update)
        restarted = 0
        notes: list[str] = []
        if job.restart == "IfRunning" and (value_changed or update is not None):
            if is_continuous(settings):
                for run_id in await workspace.active_runs(job_id):
                    await workspace.cancel_run(run_id)
                    restarted += 1
            else:
                notes.append("not a continuous job: running clusters pick it up on their next run")
        return JobOutcome(
            models.JobStatus(
                job_name=job.job_name,
                job_id=job_id,
                changed=update is not None,
                restarted_runs=restarted,
                message="; ".join(notes),
            )
        )
    except errors.RotatorError as exc:
        return JobOutcome(
            models.JobStatus(job_name=job.job_name, job_id=job_id, message=exc.message), exc
        )


@dataclasses.dataclass(frozen=True)
class SyncResult:
    jobs: tuple[JobOutcome, ...]

    @property
    def error(self) -> errors.RotatorError | None:
        return next((j.error for j in self.jobs if j.error is not None), None)


async def sync(
    rt: runtime.Runtime,
    workspace: Workspace,
    spec: models.DatabricksSecretBindingSpec,
    source: Source,
    previous: models.DatabricksSecretBindingStatus,
) -> SyncResult:
    """The act step: value first, then the jobs that reference it (their order is the spec's)."""
    await deliver_value(rt, workspace, spec, source)
    value_changed = (previous.synced_version, previous.synced_key_id) != (
        source.version,
        source.key_id,
    )
    outcomes = [
        await sync_job(workspace, spec, job, value_changed=value_changed) for job in spec.jobs
    ]
    return SyncResult(tuple(outcomes))


# --- one pass -----------------------------------------------------------------------------------


@dataclasses.dataclass
class Pass:
    """The binding being reconciled, and how to save its status and post its events."""

    rt: runtime.Runtime
    io: Ports
    body: Mapping[str, Any]
    meta: models.ResourceMeta
    status: models.DatabricksSecretBindingStatus

    @property
    def namespace(self) -> str:
        return self.meta.namespace or ""

    @property
    def key(self) -> str:
        return binding_key(self.meta.namespace, self.meta.name)

    async def save(
        self,
        status: models.DatabricksSecretBindingStatus,
        *,
        ready: bool,
        signal: conditions.Signal,
        reconciling: conditions.Signal | None = None,
        stalled: conditions.Signal | None = None,
    ) -> None:
        """Render conditions and patch only what changed (an idle pass writes nothing)."""
        now = self.rt.clock.now()
        rendered = conditions.render(
            status.conditions,
            ready=ready,
            signal=signal,
            generation=self.meta.generation,
            now=now,
            reconciling=reconciling,
            stalled=stalled,
        )
        new = status.model_copy(
            update={"conditions": rendered, "observed_generation": self.meta.generation}
        )
        patch = reporting.diff_patch(self.status.to_dict(), new.to_patch())
        if patch:
            await self.io.bindings.patch_status(self.namespace, self.meta.name, patch)
        self.status = new

    def event(self, type_: ports.EventType, reason: str, message: str) -> None:
        self.rt.events.post(self.body, type_, reason, message)

    def entering(self, type_: str, reason: str) -> bool:
        """Whether condition ``type_`` is not yet True with ``reason`` (post its event once)."""
        found = conditions.find(self.status.conditions, type_)
        return not (found is not None and found.status == "True" and found.reason == reason)


def _synced_signal(status: models.DatabricksSecretBindingStatus) -> conditions.Signal:
    return conditions.Signal(
        reasons.SYNCED,
        f"Key Vault version {status.synced_version} is in the scope and every job references it",
    )


async def stall(p: Pass, exc: errors.PermanentError) -> None:
    """Stalled with the error's reason; a Warning event when newly stalled for it."""
    signal = conditions.Signal(exc.reason, exc.message)
    if p.entering(conditions.STALLED, exc.reason):
        p.event("Warning", exc.reason, exc.message)
    await p.save(p.status, ready=False, signal=signal, stalled=signal)


async def reconcile(rt: runtime.Runtime, port: Ports, namespace: str, name: str) -> float | None:
    """One pass over one binding; returns the seconds until the next pass is due (None: woken)."""
    body = await port.bindings.read(namespace, name)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    meta = models.ResourceMeta.from_body(body)
    try:
        status = models.DatabricksSecretBindingStatus.from_dict(body.get("status"))
    except errors.PermanentError as exc:
        # Start from an empty record: the next successful sync rewrites every field.
        p = Pass(rt, port, body, meta, models.DatabricksSecretBindingStatus())
        await stall(p, exc)
        return None
    p = Pass(rt, port, body, meta, status)
    try:
        spec = models.DatabricksSecretBindingSpec.from_body(body)
    except errors.SpecError as exc:
        await stall(p, exc)
        return None
    decision = rt.police.check(namespace, policies.request_for_binding(spec))
    if not decision.allowed:
        await stall(p, errors.NotAuthorized(decision.message))
        return None
    memory = rt.memory(p.key)
    now = rt.clock.now()
    interval = rt.config.drift_check_interval.total_seconds()
    if spec.source.key_vault is not None and not _kv_check_due(p, memory, now):
        # Nothing new can have happened that we would be told about: wait for the next look.
        assert memory.drift_checked is not None
        return max(1.0, (memory.drift_checked - now).total_seconds() + interval)
    try:
        source = await resolve_source(rt, namespace, spec)
    except SourceNotReady as exc:
        signal = conditions.Signal(reasons.SOURCE_NOT_READY, exc.message)
        await p.save(p.status, ready=False, signal=signal, reconciling=signal)
        return None  # the source's status change wakes us
    except errors.RotatorError as exc:
        return await failed(p, exc)
    finally:
        if spec.source.key_vault is not None:
            memory.drift_checked = now
    if _up_to_date(p, source):
        await p.save(p.status, ready=True, signal=_synced_signal(p.status))
        return interval if spec.source.key_vault is not None else None
    return await run_sync(p, spec, source)


def _kv_check_due(p: Pass, memory: runtime.Memory, now: dt.datetime) -> bool:
    """Whether a keyVault-sourced binding should read the vault in this pass."""
    if memory.drift_checked is None or memory.retry_at is not None:
        return True
    if p.status.observed_generation != p.meta.generation or _FAILURES.get(p.key):
        return True
    return now >= memory.drift_checked + p.rt.config.drift_check_interval


def _up_to_date(p: Pass, source: Source) -> bool:
    status = p.status
    return (
        status.synced_version == source.version
        and status.synced_key_id == source.key_id
        and status.observed_generation == p.meta.generation
        and not _FAILURES.get(p.key)
        and not conditions.is_true(status.conditions, conditions.STALLED)
    )


async def run_sync(
    p: Pass, spec: models.DatabricksSecretBindingSpec, source: Source
) -> float | None:
    """Sync now: Reconciling first, then the cloud work, then the record (or the failure)."""
    rt = p.rt
    memory = rt.memory(p.key)
    working = conditions.Signal(
        reasons.RECONCILING, f"syncing {source.label}, Key Vault version {source.version}"
    )
    ready_now = p.status.synced_version is not None and not _FAILURES.get(p.key)
    await p.save(
        p.status,
        ready=ready_now,
        signal=_synced_signal(p.status) if ready_now else working,
        reconciling=working,
    )
    try:
        token = None
        auth = spec.workspace.auth
        if auth is not None and auth.pat_secret_ref is not None:
            ref = auth.pat_secret_ref
            token = await p.io.secrets.read(p.namespace, ref.name, ref.key)
        workspace = p.io.workspaces(spec.workspace.host, token)
        result = await sync(rt, workspace, spec, source, p.status)
    except errors.RotatorError as exc:
        return await failed(p, exc)
    jobs = tuple(o.status for o in result.jobs)
    if result.error is not None:
        p.status = p.status.model_copy(update={"jobs": jobs})
        return await failed(p, result.error)
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
    _FAILURES.pop(p.key, None)
    await p.save(synced, ready=True, signal=_synced_signal(synced))
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
    return rt.config.drift_check_interval.total_seconds() if spec.source.key_vault else None


async def failed(p: Pass, exc: errors.RotatorError) -> float | None:
    """Record a failure: transient ones retry with backoff, permanent ones stall (and are
    retried rarely, since a fix may happen in Databricks or Key Vault, not in the spec)."""
    rt = p.rt
    now = rt.clock.now()
    # Also counted in memory, so the backoff does not depend on reading our own status write
    # back (a restart starts the backoff over, which is harmless).
    failures = _FAILURES.get(p.key, 0) + 1
    _FAILURES[p.key] = failures
    status = p.status.model_copy(
        update={"failures": failures, "last_error": exc.message, "last_failure_time": now}
    )
    reason = getattr(exc, "reason", reasons.TRANSIENT_ERROR)
    signal = conditions.Signal(reason, exc.message)
    memory = rt.memory(p.key)
    if isinstance(exc, errors.PermanentError):
        if p.entering(conditions.STALLED, reason):
            p.event("Warning", reason, exc.message)
        await p.save(status, ready=False, signal=signal, stalled=signal)
        delay = rt.config.drift_check_interval.total_seconds()
    else:
        if failures == 1:  # once per streak of failures, not on every retry
            p.event("Warning", reason, exc.message)
        await p.save(status, ready=False, signal=signal, reconciling=signal)
        delay = schedule.backoff_delay(failures, errors.retry_after(exc), key=p.key)
    memory.retry_at = now + dt.timedelta(seconds=delay)
    logger.warning("binding %s/%s: %s (retry in %.0fs)", p.namespace, p.meta.name, reason, delay)
    return delay


# --- production ports ---------------------------------------------------------------------------


class CountedWorkspace:
    """:class:`Workspace` over a :class:`databricks.DatabricksAdapter`, every call counted."""

    def __init__(self, adapter: databricks.DatabricksAdapter) -> None:
        self._adapter = adapter

    async def get_scope(self, name: str) -> databricks.ScopeInfo | None:
        return await wiring.counted("databricks", "getScope", self._adapter.get_scope(name))

    async def create_scope(self, name: str) -> None:
        await wiring.counted("databricks", "createScope", self._adapter.create_scope(name))

    async def put_secret(self, scope: str, key: str, value: errors.SecretText) -> None:
        await wiring.counted("databricks", "putSecret", self._adapter.put_secret(scope, key, value))

    async def resolve_job(self, *, job_id: int | None = None, job_name: str | None = None) -> int:
        call = self._adapter.resolve_job(job_id=job_id, job_name=job_name)
        return await wiring.counted("databricks", "resolveJob", call)

    async def get_job_settings(self, job_id: int) -> dict[str, Any]:
        return await wiring.counted("databricks", "getJob", self._adapter.get_job_settings(job_id))

    async def update_job(self, job_id: int, new_settings: dict[str, Any]) -> None:
        call = self._adapter.update_job(job_id, new_settings)
        await wiring.counted("databricks", "updateJob", call)

    async def active_runs(self, job_id: int) -> list[int]:
        return await wiring.counted("databricks", "listRuns", self._adapter.active_runs(job_id))

    async def cancel_run(self, run_id: int) -> None:
        await wiring.counted("databricks", "cancelRun", self._adapter.cancel_run(run_id))


class AdapterCache:
    """:class:`Workspaces` for production: one adapter per (host, credential), kept.

    Adapters built with a PAT are keyed by a digest of the token, so a rotated PAT gets a new
    client and the token itself is never a dict key.
    """

    def __init__(self, cloud: cloud_settings.CloudSettings) -> None:
        self._cloud = cloud
        self._strategy: identity.DatabricksCredentials | None = None
        self._adapters: dict[tuple[str, str], CountedWorkspace] = {}

    def __call__(self, host: str, token: errors.SecretText | None) -> Workspace:
        if token is None:
            key = (host, "")
        else:
            key = (host, hashlib.sha256(token.reveal().encode()).hexdigest())
        found = self._adapters.get(key)
        if found is None:
            if token is None:
                if self._strategy is None:
                    credential = identity.sync_credential(self._cloud)
                    self._strategy = identity.DatabricksCredentials(credential)
                adapter = databricks.DatabricksAdapter(
                    host, self._cloud, credentials=self._strategy
                )
            else:
                adapter = databricks.DatabricksAdapter(host, self._cloud, token=token)
            found = self._adapters[key] = CountedWorkspace(adapter)
        return found


class KubernetesSecrets:
    """:class:`SecretReader` on the official client, in a worker thread."""

    def __init__(self) -> None:
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        self._api = kubernetes.client.CoreV1Api()
        self._error = kubernetes.client.exceptions.ApiException

    async def read(self, namespace: str, name: str, key: str) -> errors.SecretText:
        import base64

        where = f"Secret {namespace}/{name}"
        try:
            secret = await asyncio.to_thread(self._api.read_namespaced_secret, name, namespace)
        except self._error as exc:
            status = getattr(exc, "status", None)
            if status == 404:
                raise errors.NotFound(
                    f"{where} (workspace.auth.patSecretRef) does not exist"
                ) from None
            if status == 403:
                raise errors.NotAuthorized(f"the operator may not read {where}") from None
            raise errors.TransientError(f"could not read {where} (HTTP {status})") from None
        data = secret.data or {}
        if key not in data:
            raise errors.NotFound(f"{where} has no key {key!r} (workspace.auth.patSecretRef)")
        try:
            text = base64.b64decode(data[key]).decode().strip()
        except ValueError:
            raise errors.PermanentError(
                f"{where} key {key!r} is not a UTF-8 token", reasons.INVALID_SPEC
            ) from None
        return errors.SecretText(text)


_PORTS: list[Ports] = []
#: Consecutive failed passes per binding (for backoff and the once-per-streak event).
_FAILURES: dict[str, int] = {}


def production_ports(rt: runtime.Runtime) -> Ports:
    """The production ports, built once per process on first use."""
    if not _PORTS:
        _PORTS.append(
            Ports(
                workspaces=AdapterCache(rt.cloud),
                secrets=KubernetesSecrets(),
                bindings=reporting.KubernetesStatusWriter(plural=DSB),
            )
        )
    return _PORTS[0]


# --- the daemon and its wake-ups ----------------------------------------------------------------


async def loop(
    rt: runtime.Runtime,
    port: Ports,
    namespace: str,
    name: str,
    stopped: Any,
    *,
    pass_: Callable[[runtime.Runtime, Ports, str, str], Awaitable[float | None]] = reconcile,
) -> None:
    """The per-binding daemon: reconcile, sleep until due or woken, until ``stopped``."""
    obj = binding_key(namespace, name)
    memory = rt.memory(obj)
    crashes = 0
    while not stopped:
        try:
            async with memory.lock:
                wait = await pass_(rt, port, namespace, name)
            crashes = 0
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The API server refused a read or a status write: retry the whole pass.
            crashes += 1
            wait = schedule.backoff_delay(crashes, key=obj)
            logger.warning("%s: pass failed (%s); retrying in %.0fs", obj, type(exc).__name__, wait)
            logger.debug("binding pass failure of %s", obj, exc_info=exc)
        if stopped:
            return
        await _sleep(rt, obj, wait, stopped)


async def _sleep(rt: runtime.Runtime, obj: str, seconds: float | None, stopped: Any) -> None:
    waker = asyncio.ensure_future(rt.wakers.sleep(obj, seconds))
    stopper = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waker, stopper):
            task.cancel()


def source_fingerprint(body: Mapping[str, Any]) -> Hashable:
    """What a binding reads from its source sps: a change of it must wake the bindings."""
    status = body.get("status") or {}
    current = status.get("current") if isinstance(status, Mapping) else None
    current = current if isinstance(current, Mapping) else {}
    spec = body.get("spec") or {}
    vault = spec.get("keyVault") if isinstance(spec, Mapping) else None
    vault = vault if isinstance(vault, Mapping) else {}
    return (
        current.get("keyId"),
        current.get("keyVaultVersion"),
        vault.get("vaultUrl"),
        vault.get("secretName"),
        bool((body.get("metadata") or {}).get("deletionTimestamp")),
    )


def wake_bindings_of(rt: runtime.Runtime, index: Any, namespace: str, name: str) -> int:
    """Wake every binding whose source is sps ``namespace/name``; how many were woken."""
    woken = 0
    for entry in index.get((namespace, name), ()):
        binding_ns, _, binding_name = str(entry.name).partition("/")
        rt.wakers.wake(binding_key(binding_ns, binding_name))
        woken += 1
    return woken


# What each sps looked like to us last time; first sight counts as a change (a binding may
# be waiting for a source that only now appears).
_SEEN_SOURCES: dict[str, Hashable] = {}


def _runtime(memo: Any) -> runtime.Runtime:
    rt = memo.get("runtime")
    if not isinstance(rt, runtime.Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return rt


@kopf.daemon(GROUP, VERSION, DSB, id="binding-sync", cancellation_timeout=10.0)
async def binding_daemon(
    stopped: kopf.DaemonStopped, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """One long-lived loop per DatabricksSecretBinding."""
    rt = _runtime(memo)
    await loop(rt, production_ports(rt), namespace or "", name, stopped)


@kopf.on.event(GROUP, VERSION, DSB, id="binding-spec-changed")
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
    obj = binding_key(namespace, name)
    if type == "DELETED":
        # Nothing to undo in Databricks: the value stays where its consumers read it.
        rt.forget(obj)
        _FAILURES.pop(obj, None)
        return
    fingerprint = (meta.get("generation"), bool(meta.get("deletionTimestamp")))
    rt.wakers.wake_if_changed(obj, fingerprint)


@kopf.on.event(GROUP, VERSION, SPS, id="binding-source-changed")
async def binding_source_changed(
    namespace: str | None, name: str, body: kopf.Body, type: str, memo: Any, **kwargs: Any
) -> None:
    """An sps's current secret (or vault) changed: wake the bindings that copy it."""
    rt = memo.get("runtime")
    index = kwargs.get(BINDINGS_INDEX)
    if not isinstance(rt, runtime.Runtime) or index is None:
        return
    obj = waking.key(namespace, name)
    fingerprint = None if type == "DELETED" else source_fingerprint(body)
    if obj not in _SEEN_SOURCES or _SEEN_SOURCES[obj] != fingerprint:
        _SEEN_SOURCES[obj] = fingerprint
        wake_bindings_of(rt, index, namespace or "", name)
    if type == "DELETED":
        _SEEN_SOURCES.pop(obj, None)
