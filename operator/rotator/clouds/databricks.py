"""Databricks: secret scopes, secrets, and the jobs that reference them, in one workspace.

A thin async adapter over the *synchronous* databricks-sdk: every SDK call runs in a worker
thread (``asyncio.to_thread``) so the event loop never stalls, and the client is built with
small retry and HTTP timeouts — the SDK's default retry budget is 300 s, so an unreachable
workspace would otherwise hold a handler for five minutes.

Job settings travel as plain JSON dicts, read and written through the SDK's raw API client:
``jobs.update`` replaces each matching ``job_clusters``/``tasks`` entry whole, and a round
trip through the SDK's dataclasses would silently drop any field this SDK version does not
know. :mod:`rotator.core.jobrefs` computes what to send.

Failures are classified by the table in :mod:`rotator.core.failures`, from the error answer as
it came over the wire (a response hook on the SDK's session): the SDK keeps no status, and for
a body it cannot parse its message is a dump of the request. A 501 is permanent.

Only :mod:`rotator.core.errors` leave this module; secret values travel as ``SecretText``.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import logging
import threading
from collections.abc import Callable
from typing import Any, Final, Literal, TypeVar

import requests
import requests.adapters
from azure.core.exceptions import AzureError
from databricks.sdk import WorkspaceClient
from databricks.sdk import errors as dbx_errors
from databricks.sdk.config import Config
from databricks.sdk.credentials_provider import CredentialsStrategy
from databricks.sdk.errors.base import DatabricksError
from databricks.sdk.service.workspace import ScopeBackendType

from rotator.clouds import common
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, failures, reasons, sensitive

logger = logging.getLogger(__name__)

T = TypeVar("T")

Backend = Literal["DATABRICKS", "AZURE_KEYVAULT"]

# Arrays of a job's settings that jobs/get pages through (API 2.2) and that we merge back.
_PAGED_ARRAYS: Final = ("tasks", "job_clusters", "parameters", "environments")


@dataclasses.dataclass(frozen=True)
class ScopeInfo:
    """A secret scope: its backend and, when Key-Vault-backed, which vault it reads."""

    name: str
    backend: Backend
    keyvault_dns: str | None = None
    keyvault_resource_id: str | None = None


class _Config(Config):
    """``Config`` without the ``/.well-known/databricks-config`` probe.

    The probe only discovers account/OIDC details that neither a PAT nor our Entra strategy
    uses; it builds its own HTTP client that trusts neither our CA bundle nor our timeouts, so
    against a refusing host or the sandbox it burns a whole retry budget before the first
    real call. (If a future SDK renames the hook, the probe simply runs again: still correct.)
    """

    # Config discovers its settings from the class's own __dict__: hand it the parent's list,
    # or a subclass would know no settings at all.
    _attributes = Config.attributes()

    def _resolve_host_metadata(self) -> None:
        return None


class _TrustingAdapter(requests.adapters.HTTPAdapter):
    """An HTTPS transport that verifies against our CA bundle, whatever the environment says.

    ``Session.verify`` is not enough: requests lets ``REQUESTS_CA_BUNDLE`` /
    ``CURL_CA_BUNDLE`` override it, and many images set those to the system store.
    """

    def __init__(self, ca_bundle: str) -> None:
        # The pool sizes databricks-sdk mounts itself.
        super().__init__(pool_connections=20, pool_maxsize=20, pool_block=True)
        self._ca_bundle = ca_bundle

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        return super().send(
            request,
            stream=stream,
            timeout=timeout,
            verify=self._ca_bundle,
            cert=cert,
            proxies=proxies,
        )


# The status each databricks-sdk error class stands for (errors/platform.py), most specific
# first: the SDK keeps no status on the exception, and the table reads statuses.
_STATUS_OF: Final[tuple[tuple[type[DatabricksError], int], ...]] = (
    (dbx_errors.TooManyRequests, 429),
    (dbx_errors.PermissionDenied, 403),
    (dbx_errors.Unauthenticated, 401),
    (dbx_errors.NotFound, 404),
    (dbx_errors.ResourceConflict, 409),
    (dbx_errors.BadRequest, 400),
    (dbx_errors.NotImplemented, 501),
    (dbx_errors.TemporarilyUnavailable, 503),
    (dbx_errors.DeadlineExceeded, 504),
    (dbx_errors.InternalError, 500),
)
# What databricks-sdk says when it cannot parse a body; the rest of that message is a dump of
# the request (which may hold a secret value), so it is never shown.
_UNPARSED: Final = "unable to parse response"


def reply_from_response(response: requests.Response) -> failures.Reply:
    """What Databricks answered, read from the raw HTTP response (the adapter's hook)."""
    return failures.parse(
        "databricks",
        response.status_code,
        response.content,
        content_type=response.headers.get("Content-Type", ""),
        retry_after=common.parse_retry_after(response.headers.get("Retry-After")),
    )


def reply_of(exc: BaseException) -> failures.Reply:
    """What Databricks answered, as far as databricks-sdk's exception tells."""
    if isinstance(exc, TimeoutError):
        # The SDK's retry loop gave up; the cause says on what.
        cause = exc.__cause__
        if isinstance(cause, DatabricksError):
            return reply_of(cause)
        what = type(cause).__name__ if cause is not None else "timeout"
        return failures.Reply("databricks", None, failure=f"gave up retrying ({what})")
    if isinstance(exc, DatabricksError):
        status = next((code for cls, code in _STATUS_OF if isinstance(exc, cls)), None)
        retry_after = float(exc.retry_after_secs) if exc.retry_after_secs is not None else None
        text = str(exc)
        if status is None:
            return failures.Reply(
                "databricks", None, retry_after=retry_after, failure=type(exc).__name__
            )
        if text.startswith(_UNPARSED):
            return failures.Reply(
                "databricks", status, retry_after=retry_after, json=False, content_type="unknown"
            )
        return failures.Reply(
            "databricks",
            status,
            code=exc.error_code or "",
            message=common.detail(text),
            retry_after=retry_after,
        )
    if isinstance(exc, AzureError):
        return failures.Reply(
            "databricks",
            None,
            failure=f"could not get an Entra token for Azure Databricks ({type(exc).__name__})",
        )
    return failures.Reply("databricks", None, failure=type(exc).__name__)


def map_databricks_error(
    exc: BaseException, *, action: str, host: str, seen: failures.Reply | None = None
) -> errors.RotatorError:
    """Our error for a failed Databricks call (the table in :mod:`rotator.core.failures`).

    ``action`` names what we tried ("update job 7"); ``seen`` is the last error answer of this
    call as read off the wire, which beats what the SDK's exception kept of it. Pure:
    unit-tested with the SDK's own exception types.
    """
    if isinstance(exc, errors.RotatorError):
        return exc
    where = f"in workspace {host}"
    if isinstance(exc, ValueError) and not isinstance(exc, DatabricksError):
        # Config validation (bad host, conflicting auth settings in the environment).
        return errors.PermanentError(
            f"cannot {action} {where}: {common.detail(str(exc))}", reasons.DATABRICKS_ERROR
        )
    reply = reply_of(exc)
    if seen is not None and isinstance(exc, (DatabricksError, TimeoutError)):
        reply = seen
    return failures.error(failures.classify(reply), reply, action=action, target=where)


class DatabricksAdapter:
    """One Databricks workspace, authenticated as the operator (Entra) or with a PAT.

    Give exactly one of ``credentials`` (e.g.
    :class:`rotator.clouds.identity.DatabricksCredentials`) or ``token`` (a personal access
    token). The SDK client is built lazily, in a thread.
    """

    def __init__(
        self,
        host: str,
        settings: cloud_settings.CloudSettings,
        *,
        credentials: CredentialsStrategy | None = None,
        token: sensitive.SecretText | None = None,
    ) -> None:
        if (credentials is None) == (token is None):
            raise ValueError("DatabricksAdapter needs exactly one of credentials and token")
        self.host = host.rstrip("/")
        self._settings = settings
        self._credentials = credentials
        self._token = token
        self._client: WorkspaceClient | None = None
        self._lock = asyncio.Lock()
        # The last error answer seen on the wire, per worker thread (one SDK call per thread).
        self._seen = threading.local()

    async def __aenter__(self) -> DatabricksAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the SDK client's pooled connections (it is rebuilt if used again)."""
        client, self._client = self._client, None
        if client is not None:
            session = client.api_client._api_client._session
            if isinstance(session, requests.Session):
                await asyncio.to_thread(session.close)

    def _build(self) -> WorkspaceClient:
        common: dict[str, Any] = {
            "host": self.host,
            "retry_timeout_seconds": self._settings.databricks_retry_timeout_seconds,
            "http_timeout_seconds": self._settings.databricks_http_timeout_seconds,
        }
        if self._token is not None:
            config = _Config(token=self._token.reveal(), auth_type="pat", **common)
        else:
            config = _Config(credentials_strategy=self._credentials, **common)
        client = WorkspaceClient(config=config)
        session = client.api_client._api_client._session
        if not isinstance(session, requests.Session):
            raise TypeError("databricks-sdk internals changed: cannot watch its responses")
        # The SDK keeps neither the status nor the headers of an error: read them here.
        session.hooks["response"].append(self._record)
        if self._settings.ca_bundle:
            # databricks-sdk has no CA setting; its requests session is the only place to put
            # one (checked above: a future SDK that moves it fails loudly).
            session.mount("https://", _TrustingAdapter(self._settings.ca_bundle))
        return client

    def _record(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if not response.ok:
            self._seen.reply = reply_from_response(response)

    async def _call(
        self, action: str, fn: Callable[[WorkspaceClient], T], *, carries_secret: bool = False
    ) -> T:
        def run() -> T:
            # Map inside the thread: asyncio re-creates a TimeoutError crossing
            # run_in_executor, losing its __cause__, which says what the SDK gave up on.
            self._seen.reply = None
            try:
                if self._client is None:
                    self._client = self._build()
                return fn(self._client)
            except Exception as exc:
                seen: failures.Reply | None = getattr(self._seen, "reply", None)
                mapped = map_databricks_error(exc, action=action, host=self.host, seen=seen)
                if carries_secret:
                    # Drop the SDK exception: it may reference the request, holding the value.
                    raise mapped from None
                raise mapped from exc

        if self._client is None:
            # One build at a time: concurrent first calls would each build a client.
            async with self._lock:
                if self._client is None:
                    return await asyncio.to_thread(run)
        return await asyncio.to_thread(run)

    # --- secret scopes ------------------------------------------------------------------------

    async def get_scope(self, name: str) -> ScopeInfo | None:
        """The scope named ``name``, or None when the workspace has none by that name."""

        def find(client: WorkspaceClient) -> ScopeInfo | None:
            for scope in client.secrets.list_scopes():
                if scope.name != name:
                    continue
                meta = scope.keyvault_metadata
                backend: Backend = (
                    "AZURE_KEYVAULT"
                    if scope.backend_type == ScopeBackendType.AZURE_KEYVAULT
                    else "DATABRICKS"
                )
                return ScopeInfo(
                    name=name,
                    backend=backend,
                    keyvault_dns=meta.dns_name if meta else None,
                    keyvault_resource_id=meta.resource_id if meta else None,
                )
            return None

        return await self._call(f"look up secret scope {name!r}", find)

    async def create_scope(self, name: str) -> None:
        """Create a Databricks-backed scope; one that already exists counts as created."""

        def create(client: WorkspaceClient) -> None:
            try:
                client.secrets.create_scope(name)
            except dbx_errors.ResourceAlreadyExists:
                logger.info("secret scope %r already exists in %s", name, self.host)

        await self._call(f"create secret scope {name!r}", create)

    async def put_secret(self, scope: str, key: str, value: sensitive.SecretText) -> None:
        """Write ``value`` under ``scope``/``key`` (overwrites). Key-Vault-backed scopes refuse."""

        def put(client: WorkspaceClient) -> None:
            client.secrets.put_secret(scope, key, string_value=value.reveal())

        await self._call(f"write secret {key!r} in scope {scope!r}", put, carries_secret=True)
        logger.info("wrote secret %r in scope %r of %s", key, scope, self.host)

    async def secret_digest(self, scope: str, key: str) -> bytes | None:
        """SHA-256 of the value under ``scope``/``key``; None when the key does not exist.

        ``secrets/get`` (READ on the scope) returns the value base64-encoded; it is decoded
        and hashed inside the worker thread, so only the digest ever leaves this method.
        """

        def digest(client: WorkspaceClient) -> bytes | None:
            try:
                got = client.secrets.get_secret(scope, key)
            except dbx_errors.NotFound:
                return None
            return hashlib.sha256(base64.b64decode(got.value or "")).digest()

        return await self._call(
            f"read secret {key!r} in scope {scope!r}", digest, carries_secret=True
        )

    # --- jobs -----------------------------------------------------------------------------------

    async def resolve_job(self, *, job_id: int | None = None, job_name: str | None = None) -> int:
        """The id of the job named ``job_name`` (exactly one must exist), or ``job_id`` as is."""
        if (job_id is None) == (job_name is None):
            raise ValueError("resolve_job needs exactly one of job_id and job_name")
        if job_id is not None:
            return job_id
        assert job_name is not None

        def find(client: WorkspaceClient) -> list[int]:
            # Raw pages, not client.jobs.list(): the SDK iterates "jobs" without a None check,
            # and Databricks leaves it out or null when nothing matches.
            ids: list[int] = []
            query: dict[str, Any] = {"name": job_name, "limit": 100}
            while True:
                page = client.api_client.do("GET", "/api/2.2/jobs/list", query=query)
                for job in page.get("jobs") or []:
                    settings = job.get("settings") or {}
                    if job.get("job_id") is not None and settings.get("name") == job_name:
                        ids.append(int(job["job_id"]))
                if not page.get("next_page_token"):
                    return ids
                query["page_token"] = page["next_page_token"]

        ids = await self._call(f"find job {job_name!r}", find)
        if not ids:
            raise errors.NotFound(f"no job named {job_name!r} in workspace {self.host}")
        if len(ids) > 1:
            shown = ", ".join(str(i) for i in sorted(ids))
            raise errors.PermanentError(
                f"{len(ids)} jobs are named {job_name!r} in workspace {self.host} (ids {shown}); "
                "reference the job by jobId instead",
                reasons.DATABRICKS_ERROR,
            )
        return ids[0]

    async def get_job_settings(self, job_id: int) -> dict[str, Any]:
        """The job's settings as JSON, every page of tasks and clusters merged."""

        def get(client: WorkspaceClient) -> dict[str, Any]:
            query: dict[str, Any] = {"job_id": job_id}
            page = client.api_client.do("GET", "/api/2.2/jobs/get", query=query)
            settings: dict[str, Any] = dict(page.get("settings") or {})
            while page.get("next_page_token"):
                query["page_token"] = page["next_page_token"]
                page = client.api_client.do("GET", "/api/2.2/jobs/get", query=query)
                more = page.get("settings") or {}
                for field in _PAGED_ARRAYS:
                    if more.get(field):
                        settings.setdefault(field, []).extend(more[field])
            return settings

        return await self._call(f"read job {job_id}", get)

    async def update_job(self, job_id: int, new_settings: dict[str, Any]) -> None:
        """``jobs/update``: top-level fields replaced, matching clusters/tasks replaced whole."""

        def update(client: WorkspaceClient) -> None:
            body = {"job_id": job_id, "new_settings": new_settings}
            client.api_client.do("POST", "/api/2.2/jobs/update", body=body)

        await self._call(f"update job {job_id}", update)
        logger.info("updated job %s in %s", job_id, self.host)

    async def active_runs(self, job_id: int) -> list[int]:
        """Ids of the job's active runs (queued, pending, running, terminating)."""

        def runs(client: WorkspaceClient) -> list[int]:
            # Raw pages for the same reason as resolve_job: "runs" may be null.
            ids: list[int] = []
            query: dict[str, Any] = {"job_id": job_id, "active_only": "true", "limit": 25}
            while True:
                page = client.api_client.do("GET", "/api/2.2/jobs/runs/list", query=query)
                ids.extend(int(r["run_id"]) for r in page.get("runs") or [] if "run_id" in r)
                if not page.get("next_page_token"):
                    return ids
                query["page_token"] = page["next_page_token"]

        return await self._call(f"list active runs of job {job_id}", runs)

    async def cancel_run(self, run_id: int) -> None:
        """Ask Databricks to cancel a run (asynchronous there; this does not wait)."""

        def cancel(client: WorkspaceClient) -> None:
            client.jobs.cancel_run(run_id)

        await self._call(f"cancel run {run_id}", cancel)
        logger.info("cancelled run %s in %s", run_id, self.host)
