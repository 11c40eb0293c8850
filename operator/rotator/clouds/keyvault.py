"""Azure Key Vault secrets: read the latest version, read a value, add a version, disable one.

A thin adapter over ``azure.keyvault.secrets.aio`` that raises only :mod:`rotator.core.errors`
and carries values only as :class:`~rotator.core.errors.SecretText`.

Why "latest" is read with a fallback: consumers (and Key-Vault-backed Databricks scopes) read
the latest version even when it is disabled, and then fail. ``GET /secrets/{name}`` refuses a
disabled latest with 403, so the adapter then lists the versions (no values) and reports the
newest one with ``enabled=False`` — the handler must see that state, not an authorization error.

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
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.keyvault.secrets import SecretProperties
from azure.keyvault.secrets.aio import SecretClient

from rotator.clouds import common
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, reasons

logger = logging.getLogger(__name__)

# azure-core retries 429/5xx itself; keep that short so the operator's own backoff (which
# honours Retry-After and rate limits per vault) stays in charge.
_SDK_RETRIES: Final = 2


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


def _is_disabled_refusal(exc: HttpResponseError) -> bool:
    if exc.status_code != 403:
        return False
    inner = getattr(getattr(exc, "error", None), "innererror", None) or {}
    inner_code = inner.get("code") if isinstance(inner, Mapping) else None
    return inner_code == "SecretDisabled" or "disabled" in (exc.message or "").lower()


def map_keyvault_error(
    exc: BaseException, *, action: str, vault: str, name: str
) -> errors.RotatorError:
    """Our error for a failed Key Vault call. ``action`` is a verb ("read", "store").

    Pure: unit-tested with azure-core's own exception types.
    """
    target = f"secret {name!r} in {vault}"
    if isinstance(exc, errors.RotatorError):
        return exc
    if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
        # Raised by the credential, not the vault: the operator could not get a token.
        return errors.TransientError(
            f"could not get a Key Vault token to {action} {target} ({type(exc).__name__})"
        )
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        status = exc.status_code
        code = getattr(getattr(exc, "error", None), "code", None) or ""
        said = f"Key Vault {status} {code}".rstrip()
        text = getattr(getattr(exc, "error", None), "message", None)
        if text:
            said += f": {common.detail(text)}"
        retry_after = None
        response: Any = exc.response
        if response is not None:
            retry_after = common.parse_retry_after(common.header(response.headers, "Retry-After"))
        if status == 409 and "deleted" in (text or exc.message or "").lower():
            return errors.PermanentError(
                f"cannot {action} {target}: the name is soft-deleted; recover it (az keyvault "
                f"secret recover) or purge it (az keyvault secret purge) first ({said})",
                reasons.KEY_VAULT_ERROR,
            )
        if status in (401, 403):
            return errors.NotAuthorized(
                f"the operator may not {action} {target}: its identity needs a role such as "
                f"Key Vault Secrets Officer on the vault ({said})"
            )
        if status == 404:
            return errors.NotFound(f"{target} was not found ({said})")
        if status == 429:
            return errors.Throttled(
                f"Key Vault throttled the request to {action} {target} ({said})", retry_after
            )
        if status >= 500 or status in (408, 409):
            return errors.TransientError(
                f"Key Vault failed to {action} {target} ({said})", retry_after
            )
        return errors.PermanentError(
            f"Key Vault refused to {action} {target} ({said})", reasons.KEY_VAULT_ERROR
        )
    if isinstance(exc, (ServiceRequestError, ServiceResponseError, OSError)):
        return errors.TransientError(
            f"could not reach {vault} to {action} {target} ({type(exc).__name__})"
        )
    if isinstance(exc, AzureError):
        return errors.TransientError(
            f"Key Vault call to {action} {target} failed ({type(exc).__name__})"
        )
    return errors.TransientError(
        f"Key Vault call to {action} {target} failed ({type(exc).__name__})"
    )


class KeyVaultAdapter:
    """Secrets in any number of vaults, with the operator's own async credential.

    The adapter does not close ``credential``; it closes its ``SecretClient``\\ s.
    """

    def __init__(
        self, credential: AsyncTokenCredential, settings: cloud_settings.CloudSettings
    ) -> None:
        self._credential = credential
        self._settings = settings
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
            kwargs: dict[str, Any] = {"retry_total": _SDK_RETRIES}
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
            if self._settings.is_sandbox:
                # The emulator's challenge names a resource that is not the vault's host.
                kwargs["verify_challenge_resource"] = False
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

    async def read(self, vault: str, name: str, version: str) -> errors.SecretText:
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
        return errors.SecretText(secret.value)

    async def set(
        self,
        vault: str,
        name: str,
        value: errors.SecretText,
        *,
        expires_on: datetime.datetime | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> SecretVersion:
        """Add a new version holding ``value`` (it becomes the latest) and return it."""
        try:
            secret = await self._client(vault).set_secret(
                name,
                value.reveal(),
                expires_on=expires_on,
                content_type=content_type,
                tags=dict(tags) if tags is not None else None,
            )
        except Exception as exc:
            # `from None`: the SDK exception holds the request, which holds the value.
            raise map_keyvault_error(exc, action="store", vault=vault, name=name) from None
        stored = _version_of(secret.properties)
        logger.info("stored version %s of secret %r in %s", stored.version, name, vault)
        return stored

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
