"""An Azure Databricks workspace emulator: secrets, jobs 2.2, runs and a few cluster calls.

Paths, fields and errors follow what databricks-sdk 0.162 sends and parses
(``service/workspace.py``, ``service/jobs.py``, ``service/compute.py``, ``errors/``):

  GET  /.well-known/databricks-config      host metadata the SDK's Config fetches (no auth)
  GET  /aad/auth                           302 to the tenant's authorize URL (tenant discovery)
  GET  /api/2.0/preview/scim/v2/Me         the caller
  /api/2.0/secrets/...                     scopes (Databricks- or Key-Vault-backed), secrets, ACLs
  /api/2.2/jobs/...                        create, get, list, update, reset, delete, run-now,
                                           runs/list, runs/get, runs/cancel, runs/cancel-all
  /api/2.1/clusters/...                    get, list, start, restart

What the operator depends on, copied from the real service:
- ``jobs/update`` replaces top-level fields, merges ``tasks`` / ``job_clusters`` by
  ``task_key`` / ``job_cluster_key`` (a matching entry is replaced whole, a new key is added,
  others are kept) and honours ``fields_to_remove`` (``"schedule"``, ``"tasks/<key>"``);
- a continuous job that is not paused always has one active run: cancelling it starts a new one,
  and ``run-now`` on it restarts it (trigger ``CONTINUOUS_RESTART``);
- a Key-Vault-backed scope is read-only (400 ``BAD_REQUEST``) and can only be created with an
  Azure AD token, not a PAT;
- ``secrets/get`` (the drift check reads a value back) needs READ on the scope (workspace
  admins have it) and answers ``{"key", "value"}`` with the value base64-encoded; a missing
  scope or key is 404 ``RESOURCE_DOES_NOT_EXIST``. Databricks documents it as DBUtils-only and
  may answer others 400 ``BAD_REQUEST``: inject that with a fault rule on
  ``databricks.getSecret`` (the emulator itself serves any READ principal);
- unknown jobs, runs and clusters answer 400 ``INVALID_PARAMETER_VALUE`` "... does not exist"
  (the SDK turns the ``get`` calls into ``ResourceDoesNotExist`` with its own overrides);
- errors are ``{"error_code", "message"}``; a missing credential is 401, an unknown one 403
  "Invalid access token.".

Secret values never reach the request log or the state endpoint: the state shows a SHA-256
digest per key.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import hashlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from rotator.sandbox import server

AUDIENCE = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"  # the Azure Databricks first-party app
DEFAULT_TENANT = "00000000-0000-0000-0000-0000000000aa"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
NAME_PATTERN = re.compile(r"^[\w.-]{1,128}$", re.ASCII)
MAX_SECRET_BYTES = 128 * 1024
MAX_SECRETS_PER_SCOPE = 1000
PERMISSIONS = {"READ": 1, "WRITE": 2, "MANAGE": 3}
MERGED_ARRAYS = {"tasks": "task_key", "job_clusters": "job_cluster_key"}
ACTIVE_STATES = frozenset({"PENDING", "QUEUED", "RUNNING", "TERMINATING", "BLOCKED", "WAITING"})

VerifyToken = Callable[[str, str], bool]


class DatabricksError(Exception):
    """A service error: HTTP status, Databricks error code, message, optional Retry-After."""

    def __init__(
        self, status: int, error_code: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


def _invalid(message: str) -> DatabricksError:
    return DatabricksError(400, "INVALID_PARAMETER_VALUE", message)


def _missing_scope(scope: str) -> DatabricksError:
    return DatabricksError(404, "RESOURCE_DOES_NOT_EXIST", f"Scope {scope} does not exist!")


def _now_ms(clock: Callable[[], float]) -> int:
    return int(clock() * 1000)


@dataclasses.dataclass(frozen=True)
class Principal:
    """Who is calling: a PAT's owner, or the Azure AD identity behind a bearer token."""

    name: str
    admin: bool
    aad: bool  # an Azure AD token (needed to create Key-Vault-backed scopes), not a PAT


@dataclasses.dataclass
class StoredSecret:
    value: bytes = dataclasses.field(repr=False)
    last_updated: int  # ms since the epoch, as the API reports it


@dataclasses.dataclass
class Scope:
    name: str
    backend_type: str  # DATABRICKS | AZURE_KEYVAULT
    keyvault: dict[str, str] | None = None  # {"resource_id", "dns_name"} for AZURE_KEYVAULT
    secrets: dict[str, StoredSecret] = dataclasses.field(default_factory=dict)
    acls: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Job:
    job_id: int
    settings: dict[str, Any]
    created_time: int
    creator: str


@dataclasses.dataclass
class Run:
    run_id: int
    job_id: int
    number_in_job: int
    trigger: str
    run_name: str
    creator: str
    tasks: list[dict[str, Any]]  # the job's settings when the run started: what it runs with
    job_clusters: list[dict[str, Any]]
    start_time: int
    life_cycle_state: str = "RUNNING"
    result_state: str | None = None
    state_message: str = ""
    end_time: int = 0
    user_cancelled: bool = False

    @property
    def active(self) -> bool:
        return self.life_cycle_state in ACTIVE_STATES


@dataclasses.dataclass
class Cluster:
    cluster_id: str
    cluster_name: str
    state: str = "RUNNING"
    spark_version: str = "15.4.x-scala2.12"
    node_type_id: str = "Standard_DS3_v2"
    num_workers: int = 1
    spark_conf: dict[str, str] = dataclasses.field(default_factory=dict)
    spark_env_vars: dict[str, str] = dataclasses.field(default_factory=dict)
    start_time: int = 0
    restarts: int = 0
    last_restarted_time: int | None = None


def _digest(value: bytes) -> str:
    return hashlib.sha256(value).hexdigest()


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# -- the jobs/update merge rules: pure, so they are tested as a table ----------------------------


def merge_job_settings(
    current: dict[str, Any], new_settings: dict[str, Any], fields_to_remove: list[str]
) -> dict[str, Any]:
    """Apply a ``jobs/update`` to a job's settings, as the Jobs API documents it.

    Removals first (a top-level field, or one ``tasks/<key>`` / ``job_clusters/<key>`` entry),
    then ``new_settings``: top-level fields are replaced whole, except ``tasks`` and
    ``job_clusters``, whose entries are matched by key: a match is replaced whole (no deep merge:
    send the complete ``new_cluster``), a new key is appended, other entries are kept.
    """
    result = copy.deepcopy(current)
    for field in fields_to_remove:
        head, slash, key = field.partition("/")
        if slash:
            key_field = MERGED_ARRAYS.get(head)
            if key_field is None:
                raise _invalid(f"Removing nested fields is not supported: {field}")
            entries = result.get(head) or []
            if not any(e.get(key_field) == key for e in entries):
                raise _invalid(f"Cannot remove {field}: no entry with {key_field} {key!r}")
            result[head] = [e for e in entries if e.get(key_field) != key]
        else:
            result.pop(head, None)
    for field, value in new_settings.items():
        key_field = MERGED_ARRAYS.get(field)
        if key_field is None or not isinstance(value, list):
            result[field] = copy.deepcopy(value)
            continue
        merged = list(result.get(field) or [])
        positions = {e.get(key_field): i for i, e in enumerate(merged)}
        for entry in value:
            replacement = copy.deepcopy(entry)
            index = positions.get(entry.get(key_field)) if isinstance(entry, dict) else None
            if index is None:
                positions[replacement.get(key_field)] = len(merged)
                merged.append(replacement)
            else:
                merged[index] = replacement
        result[field] = merged
    return result


def validate_job_settings(settings: dict[str, Any]) -> None:
    """The checks the Jobs API makes that matter to us; raise INVALID_PARAMETER_VALUE."""
    for field, key_field in MERGED_ARRAYS.items():
        entries = settings.get(field)
        if entries is None:
            continue
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise _invalid(f"{field} must be a list of objects")
        keys = [e.get(key_field) for e in entries]
        if not all(isinstance(k, str) and k for k in keys):
            raise _invalid(f"Every entry of {field} needs a non-empty {key_field}")
        if len(set(keys)) != len(keys):
            raise _invalid(f"{key_field} values must be unique in {field}")
    cluster_keys = {c["job_cluster_key"] for c in settings.get("job_clusters") or []}
    for task in settings.get("tasks") or []:
        ref = task.get("job_cluster_key")
        if ref is not None and ref not in cluster_keys:
            raise _invalid(
                f"Task {task['task_key']} refers to job cluster {ref}, which is not defined"
                " in job_clusters."
            )
    if settings.get("continuous") and settings.get("schedule"):
        raise _invalid("A job can have either a schedule or continuous settings, not both.")
    max_runs = settings.get("max_concurrent_runs", 1)
    if not isinstance(max_runs, int) or isinstance(max_runs, bool) or not 0 <= max_runs <= 1000:
        raise _invalid("max_concurrent_runs must be an integer between 0 and 1000")


def _continuous_unpaused(settings: dict[str, Any]) -> bool:
    continuous = settings.get("continuous")
    if not isinstance(continuous, dict):
        return False
    return bool(continuous.get("pause_status", "UNPAUSED") == "UNPAUSED")


class DatabricksState:
    """One workspace: who may call it, its scopes, jobs, runs and clusters."""

    def __init__(
        self,
        *,
        workspace_id: int = 1234567890123456,
        tenant_id: str = DEFAULT_TENANT,
        authority: str = DEFAULT_AUTHORITY,
        aad_principal: str = "rotator-operator",
        continuous_restart_delay: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.workspace_id = workspace_id
        # Azure starts the next run of a continuous job "less than 60 seconds" after the last
        # one ends; 0 starts it at once, more makes callers that expect it instantly fail.
        self.continuous_restart_delay = continuous_restart_delay
        self.tenant_id = tenant_id
        self.authority = authority
        self.aad_principal = aad_principal
        self.clock = clock
        self.pats: dict[str, Principal] = {}  # by SHA-256 of the token: never the token itself
        self.scopes: dict[str, Scope] = {}
        self.jobs: dict[int, Job] = {}
        self.runs: dict[int, Run] = {}
        self.clusters: dict[str, Cluster] = {}
        self._next_job_id = 1001
        self._next_run_id = 5001

    # -- identities and fixtures ---------------------------------------------------------------

    def add_pat(
        self, token: str, principal: str = "admin@sandbox.local", *, admin: bool = True
    ) -> None:
        """Accept this personal access token from now on, as ``principal``."""
        self.pats[_token_digest(token)] = Principal(principal, admin=admin, aad=False)

    def pat_principal(self, token: str) -> Principal | None:
        return self.pats.get(_token_digest(token))

    def aad(self) -> Principal:
        return Principal(self.aad_principal, admin=True, aad=True)

    def add_cluster(self, cluster_id: str, cluster_name: str = "", **fields: Any) -> Cluster:
        cluster = Cluster(
            cluster_id, cluster_name or cluster_id, start_time=_now_ms(self.clock), **fields
        )
        self.clusters[cluster_id] = cluster
        return cluster

    # -- secrets -----------------------------------------------------------------------------

    def _scope(self, name: str) -> Scope:
        scope = self.scopes.get(name)
        if scope is None:
            raise _missing_scope(name)
        return scope

    def _require(self, scope: Scope, who: Principal, level: str) -> None:
        if who.admin:
            return
        have = max(
            PERMISSIONS.get(scope.acls.get(who.name, ""), 0),
            PERMISSIONS.get(scope.acls.get("users", ""), 0),
        )
        if have < PERMISSIONS[level]:
            raise DatabricksError(
                403,
                "PERMISSION_DENIED",
                f"User {who.name} does not have {level} permission on scope {scope.name}",
            )

    def create_scope(
        self,
        who: Principal,
        name: str,
        *,
        backend_type: str = "DATABRICKS",
        keyvault: dict[str, Any] | None = None,
        initial_manage_principal: str | None = None,
    ) -> Scope:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise _invalid(
                "Scope name must consist of alphanumeric characters, dashes, underscores, and"
                " periods, and may not exceed 128 characters."
            )
        if name in self.scopes:
            raise DatabricksError(400, "RESOURCE_ALREADY_EXISTS", f"Scope {name} already exists!")
        if initial_manage_principal not in (None, "users"):
            raise _invalid("initial_manage_principal must be 'users' if given.")
        metadata: dict[str, str] | None = None
        if backend_type == "AZURE_KEYVAULT":
            if not who.aad:
                raise _invalid("Scope with Azure KeyVault must have userAADToken defined!")
            if not isinstance(keyvault, dict) or not all(
                isinstance(keyvault.get(k), str) and keyvault.get(k)
                for k in ("resource_id", "dns_name")
            ):
                raise _invalid("backend_azure_keyvault needs resource_id and dns_name.")
            metadata = {"resource_id": keyvault["resource_id"], "dns_name": keyvault["dns_name"]}
        elif backend_type != "DATABRICKS":
            raise _invalid(f"Unknown scope_backend_type {backend_type}")
        scope = Scope(name, backend_type, metadata)
        scope.acls[initial_manage_principal or who.name] = "MANAGE"
        self.scopes[name] = scope
        return scope

    def delete_scope(self, who: Principal, name: str) -> None:
        self._require(self._scope(name), who, "MANAGE")
        del self.scopes[name]

    def put_secret(self, who: Principal, scope_name: str, key: str, value: bytes) -> None:
        scope = self._scope(scope_name)
        if scope.backend_type == "AZURE_KEYVAULT":
            raise DatabricksError(
                400,
                "BAD_REQUEST",
                f"Cannot write secrets to Azure KeyVault-backed scope {scope_name}",
            )
        self._require(scope, who, "WRITE")
        if not isinstance(key, str) or not NAME_PATTERN.match(key):
            raise _invalid(
                "Secret key must consist of alphanumeric characters, dashes, underscores, and"
                " periods, and may not exceed 128 characters."
            )
        if len(value) > MAX_SECRET_BYTES:
            raise _invalid(f"Secret value exceeds the maximum size of {MAX_SECRET_BYTES} bytes.")
        if key not in scope.secrets and len(scope.secrets) >= MAX_SECRETS_PER_SCOPE:
            raise DatabricksError(
                400, "RESOURCE_LIMIT_EXCEEDED", f"Scope {scope_name} already holds 1000 secrets."
            )
        scope.secrets[key] = StoredSecret(value, _now_ms(self.clock))

    def delete_secret(self, who: Principal, scope_name: str, key: str) -> None:
        scope = self._scope(scope_name)
        if scope.backend_type == "AZURE_KEYVAULT":
            raise DatabricksError(
                400,
                "BAD_REQUEST",
                f"Cannot delete secrets from Azure KeyVault-backed scope {scope_name}",
            )
        self._require(scope, who, "WRITE")
        if key not in scope.secrets:
            raise DatabricksError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"Secret {key} does not exist in scope {scope_name}.",
            )
        del scope.secrets[key]

    def get_secret(self, who: Principal, scope_name: str, key: str) -> bytes:
        scope = self._scope(scope_name)
        self._require(scope, who, "READ")
        stored = scope.secrets.get(key)
        if stored is None:
            raise DatabricksError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"Secret does not exist with scope: {scope_name} and key: {key}",
            )
        return stored.value

    def list_secrets(self, who: Principal, scope_name: str) -> list[tuple[str, int]]:
        scope = self._scope(scope_name)
        self._require(scope, who, "READ")
        return sorted((k, s.last_updated) for k, s in scope.secrets.items())

    def put_acl(self, who: Principal, scope_name: str, principal: str, permission: str) -> None:
        scope = self._scope(scope_name)
        self._require(scope, who, "MANAGE")
        if permission not in PERMISSIONS:
            raise _invalid(f"Invalid permission {permission}: use READ, WRITE or MANAGE.")
        if not isinstance(principal, str) or not principal:
            raise _invalid("principal is required.")
        scope.acls[principal] = permission

    def get_acl(self, who: Principal, scope_name: str, principal: str) -> str:
        scope = self._scope(scope_name)
        self._require(scope, who, "MANAGE")
        if principal not in scope.acls:
            raise DatabricksError(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"No ACL for principal {principal} in scope {scope_name}.",
            )
        return scope.acls[principal]

    def delete_acl(self, who: Principal, scope_name: str, principal: str) -> None:
        self.get_acl(who, scope_name, principal)
        del self.scopes[scope_name].acls[principal]

    # -- jobs and runs -------------------------------------------------------------------------

    def job(self, job_id: Any) -> Job:
        job = self.jobs.get(job_id) if isinstance(job_id, int) else None
        if job is None:
            raise _invalid(f"Job {job_id} does not exist.")
        return job

    def run(self, run_id: Any) -> Run:
        run = self.runs.get(run_id) if isinstance(run_id, int) else None
        if run is None:
            raise _invalid(f"Run {run_id} does not exist.")
        return run

    def create_job(self, who: Principal, settings: dict[str, Any]) -> Job:
        settings = copy.deepcopy(settings)
        settings.setdefault("name", "Untitled")
        settings.setdefault("max_concurrent_runs", 1)
        validate_job_settings(settings)
        job = Job(self._next_job_id, settings, _now_ms(self.clock), who.name)
        self._next_job_id += 1
        self.jobs[job.job_id] = job
        self._keep_continuous_running(job)
        return job

    def update_job(
        self, job_id: Any, new_settings: dict[str, Any], fields_to_remove: list[str]
    ) -> Job:
        job = self.job(job_id)
        merged = merge_job_settings(job.settings, new_settings, fields_to_remove)
        validate_job_settings(merged)
        job.settings = merged
        self._keep_continuous_running(job)
        return job

    def reset_job(self, job_id: Any, new_settings: dict[str, Any]) -> Job:
        job = self.job(job_id)
        settings = copy.deepcopy(new_settings)
        settings.setdefault("name", "Untitled")
        validate_job_settings(settings)
        job.settings = settings
        self._keep_continuous_running(job)
        return job

    def delete_job(self, job_id: Any) -> None:
        job = self.job(job_id)
        for run in self.active_runs(job.job_id):
            self._end(run, "TERMINATED", "CANCELED", "The job was deleted.", user=True)
        del self.jobs[job.job_id]

    def active_runs(self, job_id: int | None = None) -> list[Run]:
        return [
            r for r in self.runs.values() if r.active and (job_id is None or r.job_id == job_id)
        ]

    def _start(self, job: Job, trigger: str, creator: str) -> Run:
        number = sum(1 for r in self.runs.values() if r.job_id == job.job_id) + 1
        run = Run(
            run_id=self._next_run_id,
            job_id=job.job_id,
            number_in_job=number,
            trigger=trigger,
            run_name=str(job.settings.get("name", "Untitled")),
            creator=creator,
            tasks=copy.deepcopy(job.settings.get("tasks") or []),
            job_clusters=copy.deepcopy(job.settings.get("job_clusters") or []),
            start_time=_now_ms(self.clock),
        )
        self._next_run_id += 1
        self.runs[run.run_id] = run
        return run

    def _end(
        self, run: Run, life_cycle: str, result: str, message: str, *, user: bool = False
    ) -> None:
        run.life_cycle_state = life_cycle
        run.result_state = result
        run.state_message = message
        run.user_cancelled = user
        run.end_time = _now_ms(self.clock)

    def _keep_continuous_running(self, job: Job) -> None:
        # An unpaused continuous job always has one active run (after the restart delay); a
        # paused one has none: Azure documents Pause as the way to stop a continuous job.
        active = self.active_runs(job.job_id)
        if not _continuous_unpaused(job.settings):
            if job.settings.get("continuous"):
                for run in active:
                    if run.trigger in ("CONTINUOUS", "CONTINUOUS_RESTART"):
                        self._end(run, "TERMINATED", "CANCELED", "The job was paused.")
            return
        if active:
            return
        ended = [r.end_time for r in self.runs.values() if r.job_id == job.job_id]
        due = max(ended, default=0) + int(self.continuous_restart_delay * 1000)
        if _now_ms(self.clock) >= due:
            self._start(job, "CONTINUOUS", job.creator)

    def tick(self) -> None:
        """Start the continuous runs whose restart delay has passed (called before each request)."""
        for job in list(self.jobs.values()):
            self._keep_continuous_running(job)

    def run_now(self, who: Principal, job_id: Any) -> Run:
        job = self.job(job_id)
        if _continuous_unpaused(job.settings):
            # run-now on a continuous job restarts it: the active run ends, a new one starts.
            for run in self.active_runs(job.job_id):
                self._end(run, "TERMINATED", "CANCELED", "Run restarted.", user=True)
            return self._start(job, "CONTINUOUS_RESTART", who.name)
        run = self._start(job, "ONE_TIME", who.name)
        limit = int(job.settings.get("max_concurrent_runs", 1))
        if len(self.active_runs(job.job_id)) > limit:
            self._end(
                run,
                "SKIPPED",
                "MAXIMUM_CONCURRENT_RUNS_REACHED",
                f"Skipping this run because the limit of {limit} maximum concurrent runs has"
                " been reached.",
            )
        return run

    def cancel_run(self, run_id: Any) -> Run:
        run = self.run(run_id)
        if run.active:  # cancelling a finished run is a no-op, as in the real API
            self._end(run, "TERMINATED", "CANCELED", "Run cancelled.", user=True)
            job = self.jobs.get(run.job_id)
            if job is not None:
                self._keep_continuous_running(job)
        return run

    def cancel_all(self, job_id: Any) -> list[Run]:
        job = self.job(job_id)
        cancelled = self.active_runs(job.job_id)
        for run in cancelled:
            self._end(run, "TERMINATED", "CANCELED", "Run cancelled.", user=True)
        self._keep_continuous_running(job)
        return cancelled

    def finish_run(self, run_id: Any, result_state: str = "SUCCESS") -> Run:
        """Test hook: a run ends by itself (a continuous job then starts its next run)."""
        run = self.run(run_id)
        if run.active:
            self._end(run, "TERMINATED", result_state, "")
            job = self.jobs.get(run.job_id)
            if job is not None:
                self._keep_continuous_running(job)
        return run

    # -- clusters -------------------------------------------------------------------------------

    def cluster(self, cluster_id: Any) -> Cluster:
        cluster = self.clusters.get(cluster_id) if isinstance(cluster_id, str) else None
        if cluster is None:
            raise _invalid(f"Cluster {cluster_id} does not exist")
        return cluster

    def restart_cluster(self, cluster_id: Any) -> Cluster:
        cluster = self.cluster(cluster_id)
        if cluster.state != "RUNNING":
            raise DatabricksError(
                400,
                "INVALID_STATE",
                f"Cluster {cluster_id} is in unexpected state {cluster.state.title()}.",
            )
        cluster.restarts += 1
        cluster.last_restarted_time = _now_ms(self.clock)
        return cluster

    def start_cluster(self, cluster_id: Any) -> Cluster:
        cluster = self.cluster(cluster_id)
        if cluster.state == "TERMINATED":
            cluster.state = "RUNNING"
            cluster.start_time = _now_ms(self.clock)
        return cluster

    # -- the state endpoint: never a value --------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        self.tick()
        return {
            "workspaceId": self.workspace_id,
            "scopes": {
                s.name: {
                    "backendType": s.backend_type,
                    "keyvault": s.keyvault,
                    "acls": dict(s.acls),
                    "keys": {
                        k: {"sha256": _digest(v.value), "lastUpdated": v.last_updated}
                        for k, v in s.secrets.items()
                    },
                }
                for s in self.scopes.values()
            },
            "jobs": {str(j.job_id): render_job(j) for j in self.jobs.values()},
            "runs": {str(r.run_id): render_run(r, "") for r in self.runs.values()},
            "clusters": {c.cluster_id: render_cluster(c) for c in self.clusters.values()},
        }


# -- rendering ------------------------------------------------------------------------------------


def render_job(job: Job, *, expand: bool = True) -> dict[str, Any]:
    settings = copy.deepcopy(job.settings)
    if not expand:
        settings.pop("tasks", None)
        settings.pop("job_clusters", None)
    return {
        "job_id": job.job_id,
        "creator_user_name": job.creator,
        "run_as_user_name": job.creator,
        "created_time": job.created_time,
        "settings": settings,
    }


def render_run(run: Run, base: str) -> dict[str, Any]:
    state: dict[str, Any] = {
        "life_cycle_state": run.life_cycle_state,
        "state_message": run.state_message,
        "user_cancelled_or_timedout": run.user_cancelled,
    }
    status: dict[str, Any] = {"state": "TERMINATED" if not run.active else run.life_cycle_state}
    if run.result_state is not None:
        state["result_state"] = run.result_state
        code = {"SUCCESS": "SUCCESS", "CANCELED": "CANCELED"}.get(
            run.result_state, "RUN_EXECUTION_ERROR"
        )
        status["termination_details"] = {
            "code": code,
            "type": "SUCCESS" if code in ("SUCCESS", "CANCELED") else "CLIENT_ERROR",
            "message": run.state_message,
        }
    return {
        "job_id": run.job_id,
        "run_id": run.run_id,
        "number_in_job": run.number_in_job,
        "original_attempt_run_id": run.run_id,
        "creator_user_name": run.creator,
        "run_name": run.run_name,
        "run_type": "JOB_RUN",
        "trigger": run.trigger,
        "state": state,
        "status": status,
        "start_time": run.start_time,
        "end_time": run.end_time,
        "setup_duration": 0,
        "execution_duration": 0,
        "cleanup_duration": 0,
        "run_page_url": f"{base}/#job/{run.job_id}/run/{run.run_id}",
        "tasks": [dict(t, run_id=run.run_id) for t in run.tasks],
        "job_clusters": run.job_clusters,
    }


def render_cluster(cluster: Cluster) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cluster_id": cluster.cluster_id,
        "cluster_name": cluster.cluster_name,
        "state": cluster.state,
        "spark_version": cluster.spark_version,
        "node_type_id": cluster.node_type_id,
        "num_workers": cluster.num_workers,
        "spark_conf": cluster.spark_conf,
        "spark_env_vars": cluster.spark_env_vars,
        "start_time": cluster.start_time,
    }
    if cluster.last_restarted_time is not None:
        body["last_restarted_time"] = cluster.last_restarted_time
    return body


# -- HTTP ---------------------------------------------------------------------------------------

STATE_KEY: web.AppKey[DatabricksState] = web.AppKey("databricks_state", DatabricksState)
VERIFY_KEY: web.AppKey[VerifyToken | None] = web.AppKey("databricks_verify")

Op = Callable[[web.Request, DatabricksState, Principal], Awaitable[dict[str, Any] | None]]


def databricks_fault_body(status: int, code: str, message: str) -> dict[str, Any]:
    """Injected faults in Databricks' shape, with the error_code the SDK maps to a class."""
    if not re.fullmatch(r"[A-Z_]+", code):
        code = {
            400: "INVALID_PARAMETER_VALUE",
            403: "PERMISSION_DENIED",
            404: "RESOURCE_DOES_NOT_EXIST",
            429: "REQUEST_LIMIT_EXCEEDED",
            500: "INTERNAL_ERROR",
            503: "TEMPORARILY_UNAVAILABLE",
            504: "DEADLINE_EXCEEDED",
        }.get(status, "UNKNOWN")
    return {"error_code": code, "message": message}


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _error(exc: DatabricksError) -> web.Response:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return web.json_response(exc.body(), status=exc.status, headers=headers)


def _authenticate(request: web.Request) -> Principal:
    state = request.app[STATE_KEY]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise DatabricksError(
            401,
            "UNAUTHENTICATED",
            "Credential was not sent or was of an unsupported type for this API.",
        )
    pat = state.pat_principal(token)
    if pat is not None:
        return pat
    verify = request.app[VERIFY_KEY]
    # A bearer that is not a registered PAT must be an Azure AD token for Azure Databricks.
    if verify is None or verify(token, AUDIENCE):
        return state.aad()
    raise DatabricksError(403, "PERMISSION_DENIED", "Invalid access token.")


def _route(op: Op) -> server.Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE_KEY]
        try:
            who = _authenticate(request)
            workspace = request.headers.get("X-Databricks-Workspace-Id")
            if workspace is not None and workspace != str(state.workspace_id):
                raise _invalid(f"Workspace {workspace} is not this workspace.")
            state.tick()
            result = await op(request, state, who)
        except DatabricksError as exc:
            return _error(exc)
        return web.json_response(result if result is not None else {})

    return handler


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise DatabricksError(
            400, "MALFORMED_REQUEST", "Invalid JSON given in the body of the request."
        ) from None
    if not isinstance(body, dict):
        raise DatabricksError(400, "MALFORMED_REQUEST", "The request body must be a JSON object.")
    return body


def _required(data: Any, field: str) -> Any:
    value = data.get(field)
    if value is None or value == "":
        raise _invalid(f"Missing required field: {field}")
    return value


def _int(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _invalid(f"{field} must be an integer") from None


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


def _paginate(
    request: web.Request, items: list[dict[str, Any]], *, default: int, maximum: int
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    limit = _int(request.query.get("limit", default), "limit")
    if not 1 <= limit <= maximum:
        raise _invalid(f"limit must be between 1 and {maximum}")
    token = request.query.get("page_token")
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode()).decode())
        except (ValueError, binascii.Error):
            raise _invalid("Invalid page_token") from None
    else:
        start = _int(request.query.get("offset", 0), "offset")
    chunk = items[start : start + limit]
    extra: dict[str, Any] = {"has_more": start + limit < len(items)}
    if extra["has_more"]:
        extra["next_page_token"] = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
    if start > 0:
        prev = max(0, start - limit)
        extra["prev_page_token"] = base64.urlsafe_b64encode(str(prev).encode()).decode()
    return chunk, extra


# secrets


async def _create_scope(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    s.create_scope(
        who,
        _required(body, "scope"),
        backend_type=str(body.get("scope_backend_type") or "DATABRICKS").upper(),
        keyvault=body.get("backend_azure_keyvault"),
        initial_manage_principal=body.get("initial_manage_principal"),
    )
    return


async def _list_scopes(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    scopes = []
    for scope in sorted(s.scopes.values(), key=lambda x: x.name):
        item: dict[str, Any] = {"name": scope.name, "backend_type": scope.backend_type}
        if scope.keyvault is not None:
            item["keyvault_metadata"] = dict(scope.keyvault)
        scopes.append(item)
    return {"scopes": scopes}


async def _delete_scope(r: web.Request, s: DatabricksState, who: Principal) -> None:
    s.delete_scope(who, _required(await _body(r), "scope"))
    return


async def _put_secret(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    scope, key = _required(body, "scope"), _required(body, "key")
    string_value, bytes_value = body.get("string_value"), body.get("bytes_value")
    if (string_value is None) == (bytes_value is None):
        raise _invalid("Exactly one of string_value and bytes_value must be specified.")
    if string_value is not None:
        value = str(string_value).encode("utf-8")
    else:
        try:
            value = base64.b64decode(str(bytes_value), validate=True)
        except (ValueError, binascii.Error):
            raise _invalid("bytes_value must be base64-encoded.") from None
    s.put_secret(who, scope, key, value)
    return


async def _delete_secret(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    s.delete_secret(who, _required(body, "scope"), _required(body, "key"))
    return


async def _list_secrets(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    listed = s.list_secrets(who, _required(r.query, "scope"))
    return {"secrets": [{"key": k, "last_updated_timestamp": t} for k, t in listed]}


async def _get_secret(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    key = _required(r.query, "key")
    value = s.get_secret(who, _required(r.query, "scope"), key)
    return {"key": key, "value": base64.b64encode(value).decode("ascii")}


async def _put_acl(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    s.put_acl(
        who, _required(body, "scope"), _required(body, "principal"), _required(body, "permission")
    )
    return


async def _get_acl(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    principal = _required(r.query, "principal")
    permission = s.get_acl(who, _required(r.query, "scope"), principal)
    return {"principal": principal, "permission": permission}


async def _list_acls(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    scope = s._scope(_required(r.query, "scope"))
    s._require(scope, who, "MANAGE")
    items = [{"principal": p, "permission": perm} for p, perm in sorted(scope.acls.items())]
    return {"items": items}


async def _delete_acl(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    s.delete_acl(who, _required(body, "scope"), _required(body, "principal"))
    return


# jobs


def _settings_of(body: dict[str, Any], field: str) -> dict[str, Any]:
    settings = body.get(field)
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise _invalid(f"{field} must be an object")
    return settings


async def _create_job(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    # jobs/create takes the settings at the top level of the body.
    job = s.create_job(who, await _body(r))
    return {"job_id": job.job_id}


async def _get_job(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    return render_job(s.job(_int(_required(r.query, "job_id"), "job_id")))


async def _list_jobs(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    name = r.query.get("name")
    jobs = sorted(s.jobs.values(), key=lambda j: j.job_id, reverse=True)  # newest first
    if name is not None:
        jobs = [j for j in jobs if str(j.settings.get("name", "")).lower() == name.lower()]
    expand = _flag(r, "expand_tasks")
    chunk, extra = _paginate(
        r, [render_job(j, expand=expand) for j in jobs], default=20, maximum=100
    )
    return {"jobs": chunk, **extra} if chunk else extra


async def _update_job(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    remove = body.get("fields_to_remove") or []
    if not isinstance(remove, list) or not all(isinstance(f, str) for f in remove):
        raise _invalid("fields_to_remove must be a list of strings")
    s.update_job(_required(body, "job_id"), _settings_of(body, "new_settings"), remove)
    return


async def _reset_job(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    s.reset_job(_required(body, "job_id"), _settings_of(body, "new_settings"))
    return


async def _delete_job(r: web.Request, s: DatabricksState, who: Principal) -> None:
    s.delete_job(_required(await _body(r), "job_id"))
    return


async def _run_now(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    run = s.run_now(who, _required(await _body(r), "job_id"))
    return {"run_id": run.run_id, "number_in_job": run.number_in_job}


async def _list_runs(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    active_only, completed_only = _flag(r, "active_only"), _flag(r, "completed_only")
    if active_only and completed_only:
        raise _invalid("active_only and completed_only cannot both be true")
    runs = list(s.runs.values())
    if "job_id" in r.query:
        job_id = _int(r.query["job_id"], "job_id")
        s.job(job_id)
        runs = [x for x in runs if x.job_id == job_id]
    if active_only:
        runs = [x for x in runs if x.active]
    if completed_only:
        runs = [x for x in runs if not x.active]
    if "start_time_from" in r.query:
        since = _int(r.query["start_time_from"], "start_time_from")
        runs = [x for x in runs if x.start_time >= since]
    if "start_time_to" in r.query:
        until = _int(r.query["start_time_to"], "start_time_to")
        runs = [x for x in runs if x.start_time <= until]
    runs.sort(key=lambda x: (x.start_time, x.run_id), reverse=True)
    rendered = [render_run(x, _base(r)) for x in runs]
    if not _flag(r, "expand_tasks"):
        for item in rendered:
            item.pop("tasks", None)
            item.pop("job_clusters", None)
    chunk, extra = _paginate(r, rendered, default=20, maximum=25)
    return {"runs": chunk, **extra} if chunk else extra


async def _get_run(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    return render_run(s.run(_int(_required(r.query, "run_id"), "run_id")), _base(r))


async def _cancel_run(r: web.Request, s: DatabricksState, who: Principal) -> None:
    s.cancel_run(_required(await _body(r), "run_id"))
    return


async def _cancel_all(r: web.Request, s: DatabricksState, who: Principal) -> None:
    body = await _body(r)
    if body.get("job_id") is None:
        if not body.get("all_queued_runs"):
            raise _invalid("Either job_id or all_queued_runs must be set")
        return  # nothing is ever queued here
    s.cancel_all(body["job_id"])
    return


# clusters and identity


async def _get_cluster(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    return render_cluster(s.cluster(_required(r.query, "cluster_id")))


async def _list_clusters(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    clusters = [render_cluster(c) for c in sorted(s.clusters.values(), key=lambda c: c.cluster_id)]
    return {"clusters": clusters}


async def _restart_cluster(r: web.Request, s: DatabricksState, who: Principal) -> None:
    s.restart_cluster(_required(await _body(r), "cluster_id"))
    return


async def _start_cluster(r: web.Request, s: DatabricksState, who: Principal) -> None:
    s.start_cluster(_required(await _body(r), "cluster_id"))
    return


async def _me(r: web.Request, s: DatabricksState, who: Principal) -> dict[str, Any]:
    return {"id": _digest(who.name.encode())[:16], "userName": who.name, "active": True}


async def _well_known(request: web.Request) -> web.Response:
    # Config._resolve_host_metadata reads this without credentials; "cloud" makes is_azure true.
    state = request.app[STATE_KEY]
    return web.json_response(
        {
            "oidc_endpoint": f"{_base(request)}/oidc",
            "workspace_id": str(state.workspace_id),
            "cloud": "azure",
        }
    )


async def _aad_auth(request: web.Request) -> web.Response:
    # Config.load_azure_tenant_id reads the tenant from this redirect's first path segment.
    state = request.app[STATE_KEY]
    location = (
        f"{state.authority.rstrip('/')}/{state.tenant_id}/oauth2/authorize?client_id={AUDIENCE}"
    )
    return web.Response(status=302, headers={"Location": location})


async def _finish_run(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await request.json() if request.can_read_body else {}
    try:
        run = state.finish_run(
            _int(request.match_info["run_id"], "run_id"), body.get("result_state", "SUCCESS")
        )
    except DatabricksError as exc:
        return _error(exc)
    return web.json_response(render_run(run, _base(request)))


def make_app(
    state: DatabricksState, *, verify_token: VerifyToken | None, seed: int = 0
) -> web.Application:
    """The workspace's app: sandbox shell plus the REST surface above.

    ``verify_token(token, audience)`` checks bearer tokens that are not registered PATs
    (audience: the Azure Databricks application id); None accepts any such token as the
    operator's Azure AD identity. Extra control route: ``POST /_sandbox/runs/{run_id}/finish``
    ends a run by itself (``{"result_state": "SUCCESS"}``).
    """
    app = server.make_app(state.snapshot, seed=seed, fault_body=databricks_fault_body)
    app[STATE_KEY] = state
    app[VERIFY_KEY] = verify_token
    app.router.add_get(
        "/.well-known/databricks-config", _well_known, name="databricks.hostMetadata"
    )
    app.router.add_get("/aad/auth", _aad_auth, name="databricks.aadAuth")
    app.router.add_post("/_sandbox/runs/{run_id}/finish", _finish_run)
    routes: list[tuple[str, str, Op, str]] = [
        ("GET", "/api/2.0/preview/scim/v2/Me", _me, "me"),
        ("POST", "/api/2.0/secrets/scopes/create", _create_scope, "createScope"),
        ("GET", "/api/2.0/secrets/scopes/list", _list_scopes, "listScopes"),
        ("POST", "/api/2.0/secrets/scopes/delete", _delete_scope, "deleteScope"),
        ("POST", "/api/2.0/secrets/put", _put_secret, "putSecret"),
        ("POST", "/api/2.0/secrets/delete", _delete_secret, "deleteSecret"),
        ("GET", "/api/2.0/secrets/list", _list_secrets, "listSecrets"),
        ("GET", "/api/2.0/secrets/get", _get_secret, "getSecret"),
        ("POST", "/api/2.0/secrets/acls/put", _put_acl, "putAcl"),
        ("GET", "/api/2.0/secrets/acls/get", _get_acl, "getAcl"),
        ("GET", "/api/2.0/secrets/acls/list", _list_acls, "listAcls"),
        ("POST", "/api/2.0/secrets/acls/delete", _delete_acl, "deleteAcl"),
        ("POST", "/api/2.2/jobs/create", _create_job, "jobsCreate"),
        ("GET", "/api/2.2/jobs/get", _get_job, "jobsGet"),
        ("GET", "/api/2.2/jobs/list", _list_jobs, "jobsList"),
        ("POST", "/api/2.2/jobs/update", _update_job, "jobsUpdate"),
        ("POST", "/api/2.2/jobs/reset", _reset_job, "jobsReset"),
        ("POST", "/api/2.2/jobs/delete", _delete_job, "jobsDelete"),
        ("POST", "/api/2.2/jobs/run-now", _run_now, "jobsRunNow"),
        ("GET", "/api/2.2/jobs/runs/list", _list_runs, "runsList"),
        ("GET", "/api/2.2/jobs/runs/get", _get_run, "runsGet"),
        ("POST", "/api/2.2/jobs/runs/cancel", _cancel_run, "runsCancel"),
        ("POST", "/api/2.2/jobs/runs/cancel-all", _cancel_all, "runsCancelAll"),
        ("GET", "/api/2.1/clusters/get", _get_cluster, "clustersGet"),
        ("GET", "/api/2.1/clusters/list", _list_clusters, "clustersList"),
        ("POST", "/api/2.1/clusters/restart", _restart_cluster, "clustersRestart"),
        ("POST", "/api/2.1/clusters/start", _start_cluster, "clustersStart"),
    ]
    for method, path, op, name in routes:
        app.router.add_route(method, path, _route(op), name=f"databricks.{name}")
    return app
