"""The seams between the handlers and the outside world.

Handlers talk to Graph, Key Vault, Entra (verification), Databricks workspaces, Kubernetes
Secrets (a PAT), the Kubernetes API (status patches) and the event recorder only through these
protocols. Production wires them to the cloud
adapters (:mod:`rotator.handlers.wiring`); unit tests pass fakes at exactly this boundary.
Every value that may be a secret travels as :class:`rotator.core.sensitive.SecretText`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from rotator.clouds import databricks, graph, keyvault
from rotator.core import sensitive

EventType = Literal["Normal", "Warning"]


class Graph(Protocol):
    """Password credentials of an application or service principal."""

    async def list_passwords(
        self, tenant: str, app: graph.AppRef, owner: graph.Owner
    ) -> list[graph.PasswordInfo]: ...

    async def add_password(
        self,
        tenant: str,
        app: graph.AppRef,
        owner: graph.Owner,
        display_name: str,
        end: dt.datetime,
    ) -> graph.MintedSecret: ...

    async def remove_password(
        self, tenant: str, app: graph.AppRef, owner: graph.Owner, key_id: str
    ) -> None: ...

    async def resolve_client_id(
        self, tenant: str, app: graph.AppRef, owner: graph.Owner
    ) -> str: ...


class Vault(Protocol):
    """Versions of Key Vault secrets (shaped like :class:`keyvault.KeyVaultAdapter`)."""

    async def latest(self, vault: str, name: str) -> keyvault.SecretVersion | None: ...

    async def read(self, vault: str, name: str, version: str) -> sensitive.SecretText: ...

    async def set(
        self,
        vault: str,
        name: str,
        value: sensitive.SecretText,
        *,
        expires_on: dt.datetime | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> keyvault.SecretVersion: ...

    async def disable(self, vault: str, name: str, version: str) -> None: ...


class Verifier(Protocol):
    """Proof that a freshly minted secret authenticates."""

    async def verify(
        self, tenant: str, client_id: str, secret: sensitive.SecretText, within: float
    ) -> None: ...


class StatusWriter(Protocol):
    """Writes and reads one kind of our objects (status only; never spec)."""

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None: ...

    async def read(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...


class Events(Protocol):
    """Kubernetes events about one object (``kopf.event`` in production)."""

    def post(
        self, body: Mapping[str, Any], type_: EventType, reason: str, message: str
    ) -> None: ...


# --- DatabricksSecretBinding ---------------------------------------------------------------


class Workspace(Protocol):
    """One Databricks workspace (shaped like :class:`databricks.DatabricksAdapter`)."""

    async def get_scope(self, name: str) -> databricks.ScopeInfo | None: ...

    async def create_scope(self, name: str) -> None: ...

    async def put_secret(self, scope: str, key: str, value: sensitive.SecretText) -> None: ...

    async def secret_digest(self, scope: str, key: str) -> bytes | None: ...

    async def resolve_job(
        self, *, job_id: int | None = None, job_name: str | None = None
    ) -> int: ...

    async def get_job_settings(self, job_id: int) -> dict[str, Any]: ...

    async def update_job(self, job_id: int, new_settings: dict[str, Any]) -> None: ...

    async def active_runs(self, job_id: int) -> list[int]: ...

    async def cancel_run(self, run_id: int) -> None: ...


class Workspaces(Protocol):
    """A workspace client for ``host``: the operator's identity (token None) or a PAT.

    ``user`` is the binding asking; :meth:`release` says it is gone, so a client no binding
    uses any more can be closed.
    """

    def __call__(
        self, host: str, token: sensitive.SecretText | None, *, user: str
    ) -> Workspace: ...

    async def release(self, user: str) -> None: ...


class SecretReader(Protocol):
    """Reads one key of a Kubernetes Secret in the binding's namespace (a PAT)."""

    async def read(self, namespace: str, name: str, key: str) -> sensitive.SecretText: ...


@dataclasses.dataclass
class BindingPorts:
    """What a binding pass talks to besides the shared runtime."""

    workspaces: Workspaces
    secrets: SecretReader
    bindings: StatusWriter  # reads and status-patches DatabricksSecretBindings
