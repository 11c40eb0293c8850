"""The act step of a DatabricksSecretBinding: put the value in the scope, point jobs at it.

Everything here talks to one Databricks workspace through :class:`ports.Workspace` (and to
Key Vault for the value): :func:`sync` writes the source version's value into a
Databricks-backed scope (or only checks a Key-Vault-backed one, which it never writes), then
rewrites each job's clusters in place (only what changes, see :mod:`rotator.core.jobrefs`) and
cancels the active runs of continuous jobs with ``restart: IfRunning``; :func:`scope_drift`
reads a scope back to tell whether its value still is the source's, compared by SHA-256 digest
in memory and never shown. Status, events and the decision when to do any of it belong to
:mod:`rotator.handlers.binding`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from rotator.clouds import databricks
from rotator.core import errors, jobrefs, models, reasons, sensitive
from rotator.handlers import ports, runtime, sourcing


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


def check_keyvault_scope(
    spec: models.DatabricksSecretBindingSpec, scope: databricks.ScopeInfo, source: sourcing.Source
) -> None:
    """A Key-Vault-backed scope must read the source's vault and secret (PermanentError if not).

    Read-only in Databricks: the scope reads the vault itself, so there is nothing to write,
    only to check that jobs referencing it will read the source's secret.
    """
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


def _digest_key(source: sourcing.Source) -> str:
    return f"{source.vault_url}|{source.secret_name}|{source.version}"


def _digest(value: sensitive.SecretText) -> bytes:
    # What Databricks stores for put_secret(string_value=...): the text's UTF-8 bytes.
    return hashlib.sha256(value.reveal().encode()).digest()


async def deliver_value(
    rt: runtime.Runtime,
    workspace: ports.Workspace,
    spec: models.DatabricksSecretBindingSpec,
    source: sourcing.Source,
    memory: runtime.Memory | None = None,
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
        check_keyvault_scope(spec, scope, source)
        return
    value = await rt.vault.read(source.vault_url, source.secret_name, source.version)
    await workspace.put_secret(spec.scope.name, spec.scope.key, value)
    if memory is not None:
        # The next drift check compares against this without reading Key Vault again.
        memory.source_digest = (_digest_key(source), _digest(value))


async def source_digest(
    rt: runtime.Runtime, source: sourcing.Source, memory: runtime.Memory
) -> bytes:
    """SHA-256 of the source version's value (versions never change: kept per version)."""
    key = _digest_key(source)
    if memory.source_digest is not None and memory.source_digest[0] == key:
        return memory.source_digest[1]
    digest = _digest(await rt.vault.read(source.vault_url, source.secret_name, source.version))
    memory.source_digest = (key, digest)
    return digest


class ValueUnreadable(Exception):
    """Databricks refused to give the scope's value back (no READ, or ``secrets/get`` is not
    served outside notebooks): the value cannot be compared, which is no reason to stall."""

    def __init__(self, error: errors.PermanentError) -> None:
        super().__init__(error.message)
        self.error = error


async def scope_drift(
    rt: runtime.Runtime,
    workspace: ports.Workspace,
    spec: models.DatabricksSecretBindingSpec,
    source: sourcing.Source,
    memory: runtime.Memory,
) -> str | None:
    """What is wrong with the scope (None: it holds the source's value). Reads, never writes.

    Values are compared by digest, in memory; the message never carries a value or a digest.
    A Key-Vault-backed scope holds no value of ours: it must still read the source vault.
    """
    name, key, host = spec.scope.name, spec.scope.key, spec.workspace.host
    scope = await workspace.get_scope(name)
    if scope is None:
        return f"secret scope {name!r} no longer exists in {host}"
    if scope.backend == "AZURE_KEYVAULT":
        check_keyvault_scope(spec, scope, source)
        return None
    try:
        found = await workspace.secret_digest(name, key)
    except errors.PermanentError as exc:
        raise ValueUnreadable(exc) from None
    if found is None:
        return f"key {key!r} is missing from secret scope {name!r} in {host}"
    if not hmac.compare_digest(found, await source_digest(rt, source, memory)):
        return (
            f"key {key!r} of secret scope {name!r} in {host} no longer holds the value the "
            "binding wrote (changed outside the operator)"
        )
    return None


async def sync_job(
    workspace: ports.Workspace,
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
    workspace: ports.Workspace,
    spec: models.DatabricksSecretBindingSpec,
    source: sourcing.Source,
    previous: models.DatabricksSecretBindingStatus,
    memory: runtime.Memory | None = None,
) -> SyncResult:
    """The act step: value first, then the jobs that reference it (their order is the spec's)."""
    await deliver_value(rt, workspace, spec, source, memory)
    value_changed = (previous.synced_version, previous.synced_key_id) != (
        source.version,
        source.key_id,
    )
    outcomes = [
        await sync_job(workspace, spec, job, value_changed=value_changed) for job in spec.jobs
    ]
    return SyncResult(tuple(outcomes))


# --- one pass -----------------------------------------------------------------------------------
