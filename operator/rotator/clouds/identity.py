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
words, and ``raise ... from None`` drops the SDK exception, which holds the request. Entra's
answers are read off the wire (a ``raw_response_hook``) and classified by the one table in
:mod:`rotator.core.failures`: a 429 or 503 is Entra being busy, never a verdict on the secret.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from azure.identity import ClientSecretCredential as SyncClientSecretCredential
from azure.identity import DefaultAzureCredential as SyncDefaultAzureCredential
from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential
from databricks.sdk.config import Config
from databricks.sdk.credentials_provider import CredentialsProvider, CredentialsStrategy

from rotator.clouds import common
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, failures, sensitive

logger = logging.getLogger(__name__)

GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
AZURE_DATABRICKS_SCOPE: Final = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default"

# The operator may act in any tenant a RotationPolicy grants; the policy is the boundary,
# so the credential itself must not refuse a tenant other than its home one.
_ANY_TENANT: Final = ["*"]

# What the token endpoint's answers mean lives in the one table, rotator.core.failures.
PROPAGATING: Final = (
    "7000215"  # invalid client secret: normal for seconds-minutes after addPassword
)


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
    """The first ``AADSTSnnnn`` code in an Entra message, without the prefix."""
    return failures.aadsts_code(message) or None


def classify_verification(code: str | None) -> errors.VerificationKind:
    """What an AADSTS code in a rejection of a secret we just minted means (unknown: invalid)."""
    reply = failures.Reply("entra", 401, code="invalid_client", aadsts=code or "")
    return failures.classify(reply).verification or "invalid"


def _rejection(
    verdict: failures.Verdict,
    reply: failures.Reply,
    tenant_id: str,
    client_id: str,
    *,
    waited: float | None = None,
) -> errors.VerificationFailed:
    kind = verdict.verification or "invalid"
    what = verdict.explain or "Entra rejected the secret"
    label = f"AADSTS{reply.aadsts}" if reply.aadsts else failures.said(reply)
    message = f"new secret of application {client_id} in tenant {tenant_id}: {what} ({label})"
    if waited is not None:
        message += f", still after {waited:.0f}s"
    return errors.VerificationFailed(message, kind=kind)


def verification_error(
    code: str | None, tenant_id: str, client_id: str, *, waited: float | None = None
) -> errors.VerificationFailed:
    """The VerificationFailed for ``code``, with a message naming the app but never the secret."""
    reply = failures.Reply("entra", 401, code="invalid_client", aadsts=code or "")
    return _rejection(failures.classify(reply), reply, tenant_id, client_id, waited=waited)


def backoff_delay(
    attempt: int, *, base: float = 1.0, cap: float = 30.0, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped at ``cap``."""
    ceiling = min(cap, base * 2.0**attempt)
    return ceiling / 2 + rng() * ceiling / 2


class _Answers:
    """The token endpoint's last error answer, as the wire had it (a ``raw_response_hook``).

    azure-identity folds every failed answer into ``ClientAuthenticationError`` (a 429 and a
    wrong secret alike) or, for a body it cannot read, into whatever its decoding raised; the
    status, ``Retry-After`` and body are what tell them apart.
    """

    def __init__(self) -> None:
        self.reply: failures.Reply | None = None

    def __call__(self, pipeline_response: Any) -> None:
        response = pipeline_response.http_response
        if response.status_code < 400:
            return
        try:
            body = response.text()
        except Exception:  # an unreadable body is classified by its status alone
            body = None
        self.reply = failures.parse(
            "entra",
            response.status_code,
            body,
            content_type=common.header(response.headers, "Content-Type") or "",
            retry_after=common.parse_retry_after(common.header(response.headers, "Retry-After")),
        )


async def _try_token(
    tenant_id: str,
    client_id: str,
    secret: sensitive.SecretText,
    *,
    authority: str,
    scope: str,
    ca_bundle: str | None,
    request_timeout: float,
    answers: _Answers,
) -> None:
    kwargs: dict[str, Any] = {
        "connection_timeout": request_timeout,
        "read_timeout": request_timeout,
        "raw_response_hook": answers,
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
    secret: sensitive.SecretText,
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

    Every answer is classified by the table in :mod:`rotator.core.failures`. AADSTS7000215
    (not propagated yet) and everything transient (429, 5xx, ``temporarily_unavailable``,
    AADSTS90033 and other "busy" codes, an unreadable body, no answer) are retried with backoff
    and jitter, never sooner than ``Retry-After``, until ``timeout`` seconds have passed. Raises:

    * ``VerificationFailed(kind="expired" | "tenant" | "invalid")`` at once, for answers that
      will not heal (AADSTS7000222, AADSTS90002 / AADSTS700016, another AADSTS rejection);
    * ``VerificationFailed(kind="propagation")`` when the secret was still rejected at the
      deadline: ``transient`` is True, so the caller decides, from when its Verify step
      started and ``verify.timeout``, whether to try again or give up;
    * ``Throttled`` / ``TransientError`` (with ``retry_after``) when Entra was busy or
      unreachable until the deadline: never a verdict on the secret.
    """
    started = clock()
    deadline = started + timeout
    attempt = 0
    while True:
        answers = _Answers()
        try:
            await _try_token(
                tenant_id,
                client_id,
                secret,
                authority=authority,
                scope=scope,
                ca_bundle=ca_bundle,
                request_timeout=request_timeout,
                answers=answers,
            )
        except Exception as exc:
            reply = answers.reply
            if reply is None:
                if not isinstance(exc, (AzureError, OSError)):
                    raise  # no answer was read and no transport failed: a bug, not Entra
                reply = failures.Reply("entra", None, failure=type(exc).__name__)
            verdict = failures.classify(reply)
            last: errors.RotatorError
            if verdict.verification == "propagation":
                last = _rejection(verdict, reply, tenant_id, client_id, waited=clock() - started)
            elif verdict.transient:
                last = failures.error(
                    verdict,
                    reply,
                    action="verify the new secret of",
                    target=f"application {client_id} in tenant {tenant_id}",
                )
            else:
                raise _rejection(verdict, reply, tenant_id, client_id) from None
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
        # Back off, and never sooner than Entra asked (Retry-After on 429/503).
        delay = min(remaining, max(backoff_delay(attempt, rng=rng), errors.retry_after(last) or 0))
        logger.debug(
            "verification attempt %d failed (%s); retrying in %.1fs", attempt + 1, last, delay
        )
        await sleep(delay)
        attempt += 1
