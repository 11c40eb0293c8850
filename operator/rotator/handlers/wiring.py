"""Wiring the ports to the cloud adapters, with every call counted in metrics.

``rotator_cloud_calls_total{service, operation, outcome}``: outcome is ``ok`` or the reason of
the error (a :mod:`rotator.core.reasons` constant), never a message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Mapping
from typing import TypeVar

from rotator import metrics
from rotator.clouds import graph, identity, keyvault
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, reasons

T = TypeVar("T")


async def counted(service: str, operation: str, call: Awaitable[T]) -> T:
    """Await ``call`` and count it by outcome."""
    try:
        result = await call
    except errors.RotatorError as exc:
        outcome = getattr(exc, "reason", reasons.TRANSIENT_ERROR)
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

    async def read(self, vault: str, name: str, version: str) -> errors.SecretText:
        return await counted("keyvault", "getVersion", self._adapter.read(vault, name, version))

    async def set(
        self,
        vault: str,
        name: str,
        value: errors.SecretText,
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
        self, tenant: str, client_id: str, secret: errors.SecretText, within: float
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
