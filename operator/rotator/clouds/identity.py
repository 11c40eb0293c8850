"""Identities: the operator's own Azure credential, and proof that a new client secret works.

* :func:`async_credential` — what Graph and Key Vault calls use: ``DefaultAzureCredential``
  (workload identity on AKS) or, when the settings name an authority host, an explicit
  ``ClientSecretCredential`` against it (the sandbox, or a sovereign cloud).
* :class:`DatabricksCredentials` — a databricks-sdk ``credentials_strategy`` that sends an Entra
  token for the Azure Databricks resource. The SDK calls it from its worker thread, so it uses
  a *sync* credential (:func:`sync_credential`) and never touches the event loop.
* :func:`verify_client_secret` — acquire a token with a freshly minted secret, retrying the
  propagation delay (AADSTS7000215) with backoff and classifying the failures that will not
  heal. A fresh credential per attempt: a cached token or MSAL state must not prove anything.

No secret value ever reaches a message here: errors are built from the AADSTS code and our own
words, and ``raise ... from None`` drops the SDK exception, which holds the request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.identity import ClientSecretCredential as SyncClientSecretCredential
from azure.identity import DefaultAzureCredential as SyncDefaultAzureCredential
from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential
from databricks.sdk.config import Config
from databricks.sdk.credentials_provider import CredentialsProvider, CredentialsStrategy

from rotator.clouds import settings as cloud_settings
from rotator.core import errors

logger = logging.getLogger(__name__)

GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
AZURE_DATABRICKS_SCOPE: Final = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"

# The operator may act in any tenant a RotationPolicy grants; the policy is the boundary,
# so the credential itself must not refuse a tenant other than its home one.
_ANY_TENANT: Final = ["*"]

# AADSTS codes we branch on (https://learn.microsoft.com/entra/identity-platform/reference-error-codes).
PROPAGATING: Final = (
    "7000215"  # invalid client secret: normal for seconds-minutes after addPassword
)
EXPIRED_SECRET: Final = "7000222"  # the secret is expired
TENANT_NOT_FOUND: Final = "90002"  # the tenant does not exist
APP_NOT_FOUND: Final = "700016"  # the application is not in the tenant

_AADSTS = re.compile(r"AADSTS(\d+)")

_KIND_BY_CODE: Final[dict[str, errors.VerificationKind]] = {
    PROPAGATING: "propagation",
    EXPIRED_SECRET: "expired",
    TENANT_NOT_FOUND: "tenant",
    APP_NOT_FOUND: "tenant",
}

_EXPLANATION: Final[dict[str, str]] = {
    PROPAGATING: "Entra does not accept the secret (yet)",
    EXPIRED_SECRET: "the secret is already expired",
    TENANT_NOT_FOUND: "the tenant was not found",
    APP_NOT_FOUND: "the application was not found in the tenant",
}


def _transport_kwargs(settings: cloud_settings.CloudSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if settings.ca_bundle:
        kwargs["connection_verify"] = settings.ca_bundle
    return kwargs


def _explicit_secret(settings: cloud_settings.CloudSettings) -> tuple[str, str, str]:
    if not (settings.tenant_id and settings.client_id and settings.client_secret):
        # A start-up configuration error, not a per-resource failure: refuse to start.
        raise ValueError(
            "an authority host is configured, so the operator authenticates with a client "
            "secret: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET"
        )
    return settings.tenant_id, settings.client_id, settings.client_secret.reveal()


def async_credential(settings: cloud_settings.CloudSettings) -> AsyncTokenCredential:
    """The operator's own credential for Graph and Key Vault (async; the caller closes it)."""
    if settings.authority_host:
        tenant, client, secret = _explicit_secret(settings)
        return ClientSecretCredential(
            tenant,
            client,
            secret,
            authority=settings.authority_host,
            disable_instance_discovery=True,
            additionally_allowed_tenants=_ANY_TENANT,
            **_transport_kwargs(settings),
        )
    return DefaultAzureCredential(
        additionally_allowed_tenants=_ANY_TENANT, **_transport_kwargs(settings)
    )


def sync_credential(settings: cloud_settings.CloudSettings) -> TokenCredential:
    """The same identity as :func:`async_credential`, for code running in worker threads."""
    if settings.authority_host:
        tenant, client, secret = _explicit_secret(settings)
        return SyncClientSecretCredential(
            tenant,
            client,
            secret,
            authority=settings.authority_host,
            disable_instance_discovery=True,
            additionally_allowed_tenants=_ANY_TENANT,
            **_transport_kwargs(settings),
        )
    return SyncDefaultAzureCredential(
        additionally_allowed_tenants=_ANY_TENANT, **_transport_kwargs(settings)
    )


class DatabricksCredentials(CredentialsStrategy):
    """databricks-sdk auth: ``Authorization: Bearer <Entra token for Azure Databricks>``.

    The SDK has no workload-identity strategy; this one asks azure-identity for the token on
    every request (the credential caches it until shortly before expiry). It runs in the
    SDK's thread, hence the sync credential.
    """

    def __init__(self, credential: TokenCredential, scope: str = AZURE_DATABRICKS_SCOPE) -> None:
        self._credential = credential
        self._scope = scope

    def auth_type(self) -> str:
        return "rotator-entra"

    def __call__(self, cfg: Config) -> CredentialsProvider:
        def headers() -> dict[str, str]:
            token = self._credential.get_token(self._scope)
            return {"Authorization": f"Bearer {token.token}"}

        return headers


def aadsts_code(message: str) -> str | None:
    """The first ``AADSTSnnnn`` code in an Entra error message, without the prefix."""
    match = _AADSTS.search(message)
    return match.group(1) if match else None


def classify_verification(code: str | None) -> errors.VerificationKind:
    """What an AADSTS code means for a secret we just minted (unknown codes: ``invalid``)."""
    if code is None:
        return "invalid"
    return _KIND_BY_CODE.get(code, "invalid")


def verification_error(
    code: str | None, tenant_id: str, client_id: str, *, waited: float | None = None
) -> errors.VerificationFailed:
    """The VerificationFailed for ``code``, with a message naming the app but never the secret."""
    kind = classify_verification(code)
    what = _EXPLANATION.get(code or "", "Entra rejected the secret")
    label = f"AADSTS{code}" if code else "no AADSTS code"
    message = f"new secret of application {client_id} in tenant {tenant_id}: {what} ({label})"
    if waited is not None:
        message += f", still after {waited:.0f}s"
    return errors.VerificationFailed(message, kind=kind)


def backoff_delay(
    attempt: int, *, base: float = 1.0, cap: float = 30.0, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped at ``cap``."""
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + rng() * ceiling / 2


async def _try_token(
    tenant_id: str,
    client_id: str,
    secret: errors.SecretText,
    *,
    authority: str,
    scope: str,
    ca_bundle: str | None,
    request_timeout: float,
) -> None:
    kwargs: dict[str, Any] = {
        "connection_timeout": request_timeout,
        "read_timeout": request_timeout,
    }
    if ca_bundle:
        kwargs["connection_verify"] = ca_bundle
    # A fresh credential every attempt: its token cache and connection must not carry over.
    # retry_total=0: our loop owns the retries and the deadline.
    credential = ClientSecretCredential(
        tenant_id,
        client_id,
        secret.reveal(),
        authority=authority,
        disable_instance_discovery=True,
        retry_total=0,
        **kwargs,
    )
    try:
        await credential.get_token(scope)
    finally:
        await credential.close()


async def verify_client_secret(
    tenant_id: str,
    client_id: str,
    secret: errors.SecretText,
    *,
    authority: str,
    timeout: float,  # noqa: ASYNC109 - a retry budget for propagation, not a cancel scope
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: Callable[[], float] = random.random,
    ca_bundle: str | None = None,
    scope: str = GRAPH_SCOPE,
    request_timeout: float = 15.0,
) -> None:
    """Return once ``secret`` authenticates as ``client_id`` in ``tenant_id``; else raise.

    AADSTS7000215 (not propagated yet) and network failures are retried with backoff and
    jitter until ``timeout`` seconds have passed. Raises:

    * ``VerificationFailed(kind="expired" | "tenant" | "invalid")`` at once, for codes that
      will not heal (AADSTS7000222, AADSTS90002 / AADSTS700016, anything unknown);
    * ``VerificationFailed(kind="propagation")`` when the secret was still rejected at the
      deadline: ``transient`` is True, so the caller decides, from when its Verify step
      started and ``verify.timeout``, whether to try again or give up;
    * ``TransientError`` when the token endpoint could not be reached until the deadline.
    """
    started = clock()
    deadline = started + timeout
    attempt = 0
    while True:
        try:
            await _try_token(
                tenant_id,
                client_id,
                secret,
                authority=authority,
                scope=scope,
                ca_bundle=ca_bundle,
                request_timeout=request_timeout,
            )
        except ClientAuthenticationError as exc:
            code = aadsts_code(exc.message or "")
            failure = verification_error(code, tenant_id, client_id, waited=clock() - started)
            if failure.kind != "propagation":
                raise verification_error(code, tenant_id, client_id) from None
            last: errors.RotatorError = failure
        except (AzureError, OSError) as exc:
            last = errors.TransientError(
                f"could not reach the token endpoint to verify the new secret of application "
                f"{client_id} in tenant {tenant_id} ({type(exc).__name__})"
            )
        else:
            logger.info(
                "verified the new secret of application %s in tenant %s after %d attempt(s)",
                client_id,
                tenant_id,
                attempt + 1,
            )
            return
        remaining = deadline - clock()
        if remaining <= 0:
            raise last from None
        delay = min(remaining, backoff_delay(attempt, rng=rng))
        logger.debug(
            "verification attempt %d failed (%s); retrying in %.1fs", attempt + 1, last, delay
        )
        await sleep(delay)
        attempt += 1
