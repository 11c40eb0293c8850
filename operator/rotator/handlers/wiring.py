"""Wiring the ports to the cloud adapters (and the Kubernetes client), every call counted.

``rotator_cloud_calls_total{service, operation, outcome}``: outcome is ``ok`` or the reason of
the error (a :mod:`rotator.core.reasons` constant), never a message.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

from rotator import metrics
from rotator.clouds import databricks, graph, identity, keyvault
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, kinds, reasons, sensitive
from rotator.handlers import ports, reporting, runtime

T = TypeVar("T")


async def counted(service: str, operation: str, call: Awaitable[T]) -> T:
    """Await ``call`` and count it by outcome."""
    try:
        result = await call
    except errors.RotatorError as exc:
        outcome = exc.reason
        metrics.CLOUD_CALLS.labels(service=service, operation=operation, outcome=outcome).inc()
        raise
    except Exception:
        metrics.CLOUD_CALLS.labels(service=service, operation=operation, outcome="error").inc()
        raise
    metrics.CLOUD_CALLS.labels(service=service, operation=operation, outcome="ok").inc()
    return result


class CountedGraph:
    """:class:`rotator.handlers.ports.Graph` over a :class:`graph.GraphAdapter`."""

    def __init__(self, adapter: graph.GraphAdapter) -> None:
        self._adapter = adapter

    async def list_passwords(
        self, tenant: str, app: graph.AppRef, owner: graph.Owner
    ) -> list[graph.PasswordInfo]:
        return await counted(
            "graph", "listPasswords", self._adapter.list_passwords(tenant, app, owner)
        )

    async def add_password(
        self,
        tenant: str,
        app: graph.AppRef,
        owner: graph.Owner,
        display_name: str,
        end: dt.datetime,
    ) -> graph.MintedSecret:
        return await counted(
            "graph",
            "addPassword",
            self._adapter.add_password(tenant, app, owner, display_name, end),
        )

    async def remove_password(
        self, tenant: str, app: graph.AppRef, owner: graph.Owner, key_id: str
    ) -> None:
        await counted(
            "graph",
            "removePassword",
            self._adapter.remove_password(tenant, app, owner, key_id),
        )

    async def resolve_client_id(self, tenant: str, app: graph.AppRef, owner: graph.Owner) -> str:
        # Not counted, like the adapter's appId → objectId look-up: a cached, internal read.
        return await self._adapter.resolve_client_id(tenant, app, owner)


class CountedVault:
    """:class:`rotator.handlers.ports.Vault` over a :class:`keyvault.KeyVaultAdapter`."""

    def __init__(self, adapter: keyvault.KeyVaultAdapter) -> None:
        self._adapter = adapter

    async def latest(self, vault: str, name: str) -> keyvault.SecretVersion | None:
        return await counted("keyvault", "getLatest", self._adapter.latest(vault, name))

    async def read(self, vault: str, name: str, version: str) -> sensitive.SecretText:
        return await counted("keyvault", "getVersion", self._adapter.read(vault, name, version))

    async def set(
        self,
        vault: str,
        name: str,
        value: sensitive.SecretText,
        *,
        expires_on: dt.datetime | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> keyvault.SecretVersion:
        return await counted(
            "keyvault",
            "setSecret",
            self._adapter.set(
                vault, name, value, expires_on=expires_on, content_type=content_type, tags=tags
            ),
        )

    async def disable(self, vault: str, name: str, version: str) -> None:
        await counted("keyvault", "disableVersion", self._adapter.disable(vault, name, version))


class EntraVerifier:
    """:class:`rotator.handlers.ports.Verifier`: a token with the new secret, from Entra."""

    def __init__(self, cloud: cloud_settings.CloudSettings) -> None:
        self._cloud = cloud

    async def verify(
        self, tenant: str, client_id: str, secret: sensitive.SecretText, within: float
    ) -> None:
        await counted(
            "entra",
            "verifySecret",
            identity.verify_client_secret(
                tenant,
                client_id,
                secret,
                authority=self._cloud.authority,
                timeout=within,
                ca_bundle=self._cloud.ca_bundle,
                request_timeout=min(15.0, self._cloud.http_timeout_seconds),
            ),
        )


# --- DatabricksSecretBinding ---------------------------------------------------------------


class CountedWorkspace:
    """:class:`ports.Workspace` over a :class:`databricks.DatabricksAdapter`, every call counted."""

    def __init__(self, adapter: databricks.DatabricksAdapter) -> None:
        self._adapter = adapter

    async def get_scope(self, name: str) -> databricks.ScopeInfo | None:
        return await counted("databricks", "getScope", self._adapter.get_scope(name))

    async def create_scope(self, name: str) -> None:
        await counted("databricks", "createScope", self._adapter.create_scope(name))

    async def put_secret(self, scope: str, key: str, value: sensitive.SecretText) -> None:
        await counted("databricks", "putSecret", self._adapter.put_secret(scope, key, value))

    async def secret_digest(self, scope: str, key: str) -> bytes | None:
        call = self._adapter.secret_digest(scope, key)
        return await counted("databricks", "getSecret", call)

    async def resolve_job(self, *, job_id: int | None = None, job_name: str | None = None) -> int:
        call = self._adapter.resolve_job(job_id=job_id, job_name=job_name)
        return await counted("databricks", "resolveJob", call)

    async def get_job_settings(self, job_id: int) -> dict[str, Any]:
        return await counted("databricks", "getJob", self._adapter.get_job_settings(job_id))

    async def update_job(self, job_id: int, new_settings: dict[str, Any]) -> None:
        call = self._adapter.update_job(job_id, new_settings)
        await counted("databricks", "updateJob", call)

    async def active_runs(self, job_id: int) -> list[int]:
        return await counted("databricks", "listRuns", self._adapter.active_runs(job_id))

    async def cancel_run(self, run_id: int) -> None:
        await counted("databricks", "cancelRun", self._adapter.cancel_run(run_id))

    async def close(self) -> None:
        await self._adapter.close()


class AdapterCache:
    """:class:`ports.Workspaces` for production: one adapter per (host, credential), shared.

    Adapters built with a PAT are keyed by a digest of the token, so a rotated PAT gets a new
    client and the token itself is never a dict key. Each binding uses one adapter at a time;
    an adapter no binding uses any more (the last one was deleted, or moved to another host or
    PAT) is closed and dropped, so its connection pool does not outlive its users.
    """

    def __init__(self, cloud: cloud_settings.CloudSettings) -> None:
        self._cloud = cloud
        self._strategy: identity.DatabricksCredentials | None = None
        self._adapters: dict[tuple[str, str], CountedWorkspace] = {}
        self._users: dict[str, tuple[str, str]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._adapters)

    def _unused(self) -> list[CountedWorkspace]:
        used = set(self._users.values())
        return [self._adapters.pop(key) for key in list(self._adapters) if key not in used]

    async def release(self, user: str) -> None:
        """Binding ``user`` is gone: close the adapters nobody uses any more."""
        self._users.pop(user, None)
        for adapter in self._unused():
            await adapter.close()

    def __call__(
        self, host: str, token: sensitive.SecretText | None, *, user: str
    ) -> ports.Workspace:
        if token is None:
            key = (host, "")
        else:
            key = (host, hashlib.sha256(token.reveal().encode()).hexdigest())
        previous = self._users.get(user)
        self._users[user] = key
        if previous is not None and previous != key:
            # This binding moved (new host or PAT): its old adapter may have no user left.
            for unused in self._unused():
                task = asyncio.get_running_loop().create_task(unused.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)
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
    """:class:`ports.SecretReader` on the official client, in a worker thread.

    The client is built on first use: an operator without PAT-authenticated bindings never
    loads a kubeconfig for it.
    """

    def __init__(self) -> None:
        self._api: Any = None
        self._error: type[Exception] = Exception

    def _client(self) -> Any:
        if self._api is None:
            import kubernetes

            try:
                kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
            except kubernetes.config.ConfigException:
                kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
            self._api = kubernetes.client.CoreV1Api()
            self._error = kubernetes.client.exceptions.ApiException
        return self._api

    async def read(self, namespace: str, name: str, key: str) -> sensitive.SecretText:
        api = self._client()
        where = f"Secret {namespace}/{name}"
        try:
            secret = await asyncio.to_thread(api.read_namespaced_secret, name, namespace)
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
        return sensitive.SecretText(text)


def binding_ports(rt: runtime.Runtime) -> ports.BindingPorts:
    """The bindings' production ports (built once, at start-up, and kept in kopf's memo)."""
    cache = AdapterCache(rt.cloud)
    rt.tracked["databricks_clients"] = cache.__len__
    return ports.BindingPorts(
        workspaces=cache,
        secrets=KubernetesSecrets(),
        bindings=reporting.KubernetesStatusWriter(plural=kinds.DSB),
    )
