"""Azure Key Vault secrets: read the latest version, read a value, add a version, disable one.

A thin adapter over ``azure.keyvault.secrets.aio`` that raises only :mod:`rotator.core.errors`
and carries values only as :class:`~rotator.core.sensitive.SecretText`.

Why "latest" is read with a fallback: consumers (and Key-Vault-backed Databricks scopes) read
the latest version even when it is disabled, and then fail. ``GET /secrets/{name}`` refuses a
disabled latest with 403, so the adapter then lists the versions (no values) and reports the
newest one with ``enabled=False`` — the handler must see that state, not an authorization error.

Exactly one write per :meth:`KeyVaultAdapter.set`: ``set_secret`` adds a version every time it
reaches the vault, so azure-core must not retry it (a 5xx *after* the write would otherwise leave
two or three identical versions). When a ``set`` fails in a way that may have landed, the adapter
looks before anyone writes again: if the latest version already holds this value with these
tags, that version is the result.

Failures are classified by the table in :mod:`rotator.core.failures`.

One ``SecretClient`` per vault URL, cached and closed by :meth:`KeyVaultAdapter.close`.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import ssl
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets import SecretProperties
from azure.keyvault.secrets.aio import SecretClient

from rotator.clouds import common
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, failures, reasons, sensitive

logger = logging.getLogger(__name__)

# azure-core retries 429/5xx itself; keep that short so the operator's own backoff (which
# honours Retry-After and rate limits per vault) stays in charge. Reads only: see _WRITE_ONCE.
_SDK_RETRIES: Final = 2
# Per-call override for set_secret: every attempt that reaches the vault is a new version.
_WRITE_ONCE: Final = 0


@dataclasses.dataclass(frozen=True)
class SecretVersion:
    """One version of a Key Vault secret, without its value."""

    name: str
    version: str
    tags: Mapping[str, str]
    enabled: bool
    expires_on: datetime.datetime | None
    content_type: str | None
    created_on: datetime.datetime | None = None


def _version_of(props: SecretProperties) -> SecretVersion:
    return SecretVersion(
        name=props.name or "",
        version=props.version or "",
        tags=dict(props.tags or {}),
        enabled=bool(props.enabled),
        expires_on=props.expires_on,
        content_type=props.content_type,
        created_on=props.created_on,
    )


def reply_of(exc: BaseException) -> failures.Reply:
    """What Key Vault answered (or that it did not), read from azure-core's exception."""
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        response: Any = exc.response
        body: str | None = None
        content_type = ""
        retry_after = None
        if response is not None:
            try:
                body = response.text()
            except Exception:  # a stream already consumed: fall back to the parsed error
                body = None
            content_type = common.header(response.headers, "Content-Type") or ""
            retry_after = common.parse_retry_after(common.header(response.headers, "Retry-After"))
        reply = failures.parse(
            "keyvault", exc.status_code, body, content_type=content_type, retry_after=retry_after
        )
        if body is None:
            error: Any = getattr(exc, "error", None)
            inner = getattr(error, "innererror", None) or {}
            reply = dataclasses.replace(
                reply,
                code=str(getattr(error, "code", "") or ""),
                inner=str(inner.get("code") or "") if isinstance(inner, Mapping) else "",
                message=common.detail(getattr(error, "message", None) or exc.message),
            )
        return reply
    if isinstance(exc, ClientAuthenticationError):
        # Raised by the credential, not the vault: the operator could not get a token.
        return failures.Reply(
            "keyvault", None, failure=f"could not get a token ({type(exc).__name__})"
        )
    return failures.Reply("keyvault", None, failure=type(exc).__name__)


def _is_disabled_refusal(exc: HttpResponseError) -> bool:
    return failures.classify(reply_of(exc)).cause == "disabled"


def map_keyvault_error(
    exc: BaseException, *, action: str, vault: str, name: str
) -> errors.RotatorError:
    """Our error for a failed Key Vault call (the table in :mod:`rotator.core.failures`).

    ``action`` is a verb ("read", "store"). Pure: unit-tested with azure-core's own exceptions.
    """
    if isinstance(exc, errors.RotatorError):
        return exc
    reply = reply_of(exc)
    target = f"secret {name!r} in {vault}"
    return failures.error(failures.classify(reply), reply, action=action, target=target)


class KeyVaultAdapter:
    """Secrets in any number of vaults, with the operator's own async credential.

    The adapter does not close ``credential``; it closes its ``SecretClient``\\ s.
    """

    def __init__(
        self,
        credential: AsyncTokenCredential,
        settings: cloud_settings.CloudSettings,
        *,
        read_retries: int = _SDK_RETRIES,
    ) -> None:
        self._credential = credential
        self._settings = settings
        self._read_retries = read_retries
        self._clients: dict[str, SecretClient] = {}
        self._ssl: ssl.SSLContext | None = None

    async def __aenter__(self) -> KeyVaultAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.close()

    def _client(self, vault: str) -> SecretClient:
        key = vault.rstrip("/").lower()
        client = self._clients.get(key)
        if client is None:
            kwargs: dict[str, Any] = {"retry_total": self._read_retries}
            if self._settings.ca_bundle:
                # Not connection_verify=<path>: azure-core's aiohttp transport then builds an
                # SSLContext (reading and parsing the file) on the event loop for every request,
                # and a new context per request defeats connection reuse. Build it once.
                if self._ssl is None:
                    self._ssl = ssl.create_default_context(cafile=self._settings.ca_bundle)
                kwargs["transport"] = AioHttpTransport(
                    session=aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self._ssl)),
                    session_owner=True,
                )
            client = SecretClient(vault.rstrip("/"), self._credential, **kwargs)
            self._clients[key] = client
        return client

    async def latest(self, vault: str, name: str) -> SecretVersion | None:
        """The latest version's properties (even when disabled), or None when the name is new."""
        client = self._client(vault)
        try:
            secret = await client.get_secret(name)
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if not _is_disabled_refusal(exc):
                raise map_keyvault_error(exc, action="read", vault=vault, name=name) from exc
            return await self._newest_version(vault, name)
        except Exception as exc:
            raise map_keyvault_error(exc, action="read", vault=vault, name=name) from exc
        return _version_of(secret.properties)

    async def _newest_version(self, vault: str, name: str) -> SecretVersion | None:
        newest: SecretProperties | None = None
        try:
            async for props in self._client(vault).list_properties_of_secret_versions(name):
                if newest is None or _created(props) > _created(newest):
                    newest = props
        except ResourceNotFoundError:
            return None
        except Exception as exc:
            raise map_keyvault_error(
                exc, action="list the versions of", vault=vault, name=name
            ) from exc
        return _version_of(newest) if newest is not None else None

    async def read(self, vault: str, name: str, version: str) -> sensitive.SecretText:
        """The value of one version (``version`` must be given: never read "whatever is latest")."""
        if not version:
            raise ValueError("read() needs an explicit version")
        try:
            secret = await self._client(vault).get_secret(name, version)
        except Exception as exc:
            raise map_keyvault_error(
                exc, action=f"read version {version} of", vault=vault, name=name
            ) from exc
        if secret.value is None:
            raise errors.PermanentError(
                f"version {version} of secret {name!r} in {vault} has no value",
                reasons.KEY_VAULT_ERROR,
            )
        return sensitive.SecretText(secret.value)

    async def set(
        self,
        vault: str,
        name: str,
        value: sensitive.SecretText,
        *,
        expires_on: datetime.datetime | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SecretVersion:
        """Add a new version holding ``value`` (it becomes the latest) and return it.

        One request at most: no SDK retry. After a failure that may have landed (a 5xx or a
        lost answer), the version that did land is found and returned; otherwise the error.
        """
        try:
            secret = await self._client(vault).set_secret(
                name,
                value.reveal(),
                expires_on=expires_on,
                content_type=content_type,
                tags=dict(tags) if tags is not None else None,
                retry_total=_WRITE_ONCE,
            )
        except Exception as exc:
            # `from None`: the SDK exception holds the request, which holds the value.
            mapped = map_keyvault_error(exc, action="store", vault=vault, name=name)
            if errors.is_transient(mapped):
                landed = await self._landed(vault, name, value, tags or {}, content_type)
                if landed is not None:
                    logger.info(
                        "the store of secret %r in %s failed (%s) but version %s landed: using it",
                        name,
                        vault,
                        type(exc).__name__,
                        landed.version,
                    )
                    return landed
            raise mapped from None
        stored = _version_of(secret.properties)
        logger.info("stored version %s of secret %r in %s", stored.version, name, vault)
        return stored

    async def _landed(
        self,
        vault: str,
        name: str,
        value: sensitive.SecretText,
        tags: Mapping[str, str],
        content_type: str | None,
    ) -> SecretVersion | None:
        """The latest version if it is the write we just attempted (value, tags, content type)."""
        try:
            latest = await self.latest(vault, name)
            if latest is None or not latest.enabled:
                return None
            if any(latest.tags.get(k) != v for k, v in tags.items()):
                return None
            if content_type is not None and latest.content_type != content_type:
                return None
            held = await self.read(vault, name, latest.version)
        except errors.RotatorError:
            return None  # cannot tell: the caller gets the original (transient) error
        return latest if held == value else None

    async def disable(self, vault: str, name: str, version: str) -> None:
        """Disable one version (reads of it fail from now on)."""
        if not version:
            raise ValueError("disable() needs an explicit version")
        try:
            await self._client(vault).update_secret_properties(name, version, enabled=False)
        except Exception as exc:
            raise map_keyvault_error(
                exc, action=f"disable version {version} of", vault=vault, name=name
            ) from exc
        logger.info("disabled version %s of secret %r in %s", version, name, vault)


def _created(props: SecretProperties) -> datetime.datetime:
    return props.created_on or datetime.datetime.min.replace(tzinfo=datetime.UTC)
