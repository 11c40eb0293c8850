"""Microsoft Graph: list, add and remove the client secrets of an application or service principal.

A thin adapter over msgraph-sdk. It hides the SDK's types and raises only
:mod:`rotator.core.errors`:

* ``addPassword`` runs with the SDK's retry handler OFF. Its retry middleware retries POSTs
  on 429/503/504; a 503 returned *after* Graph created the credential would mint a second
  secret and lose the first ``secretText``. The caller retries with orphan detection instead.
* ``removePassword`` of a credential that is already gone succeeds, once a re-read of
  ``passwordCredentials`` shows it gone (an answer without that property proves nothing).
* Failures are classified by the table in :mod:`rotator.core.failures`.
* ``appId`` → objectId is resolved once per (tenant, owner kind, appId) and cached; so is
  objectId → ``appId`` (:meth:`GraphAdapter.resolve_client_id`, for token requests).

One ``GraphServiceClient`` per tenant: Graph URLs carry no tenant, the token does, so each
client asks the credential for a token of its own tenant.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import ssl
import uuid
from typing import Any, Final, Literal

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError
from kiota_abstractions.api_error import APIError
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.applications_with_app_id import (
    applications_with_app_id_request_builder as app_with_app_id,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.service_principals.item.add_password import (
    add_password_post_request_body as sp_add,
)
from msgraph.generated.service_principals.item.remove_password import (
    remove_password_post_request_body as sp_remove,
)
from msgraph.generated.service_principals_with_app_id import (
    service_principals_with_app_id_request_builder as sp_with_app_id,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_request_adapter import options as graph_default_options
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]

from rotator.clouds import common, identity
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, failures, reasons, sensitive

logger = logging.getLogger(__name__)

Owner = Literal["application", "servicePrincipal"]

# No SDK retry at all: safe only because the caller re-reads passwordCredentials after a failure.
_NO_RETRY: Final = RetryHandlerOption(delay=0, max_retries=0, should_retry=False)


@dataclasses.dataclass(frozen=True)
class AppRef:
    """An application by exactly one of its client id (``appId``) or its object id.

    The object id is that of the object holding the password: the application object for
    ``owner="application"``, the service principal for ``owner="servicePrincipal"``.
    """

    client_id: str | None = None
    object_id: str | None = None

    def __post_init__(self) -> None:
        if (self.client_id is None) == (self.object_id is None):
            raise ValueError("AppRef needs exactly one of client_id and object_id")

    def __str__(self) -> str:
        return f"clientId {self.client_id}" if self.client_id else f"objectId {self.object_id}"


@dataclasses.dataclass(frozen=True)
class PasswordInfo:
    """A password credential as Graph lists it: never its text."""

    key_id: str
    display_name: str | None
    hint: str | None
    start: datetime.datetime | None
    end: datetime.datetime | None


@dataclasses.dataclass(frozen=True)
class MintedSecret:
    """What ``addPassword`` returned: the only time Graph shows the secret text."""

    key_id: str
    hint: str | None
    text: sensitive.SecretText = dataclasses.field(repr=False)
    end: datetime.datetime | None
    display_name: str | None = None
    start: datetime.datetime | None = None


def _owner_phrase(owner: Owner) -> str:
    return "service principal" if owner == "servicePrincipal" else "application"


def reply_of(exc: BaseException) -> failures.Reply:
    """What Graph answered (or that it did not), read from kiota's exception.

    kiota parses a JSON error body into an ``ODataError``; any other body (an HTML gateway
    page) leaves a bare ``APIError`` with only the status and headers, which is all we need.
    """
    if isinstance(exc, APIError) and exc.response_status_code:
        headers = exc.response_headers
        retry_after = common.parse_retry_after(common.header(headers, "Retry-After"))
        content_type = (common.header(headers, "Content-Type") or "").split(";")[0].strip()
        if isinstance(exc, ODataError) and exc.error is not None:
            inner: Any = exc.error.inner_error
            extra = getattr(inner, "additional_data", None) or {}
            return failures.Reply(
                "graph",
                exc.response_status_code,
                code=exc.error.code or "",
                inner=str(extra.get("code") or "") if isinstance(extra, dict) else "",
                message=common.detail(exc.error.message),
                retry_after=retry_after,
                content_type=content_type,
            )
        return failures.Reply(
            "graph",
            exc.response_status_code,
            retry_after=retry_after,
            json=False,
            content_type=content_type or "unknown",
        )
    if isinstance(exc, httpx.TimeoutException):
        return failures.Reply("graph", None, failure=f"timed out ({type(exc).__name__})")
    if isinstance(exc, AzureError):
        # The operator's own credential failed to get a Graph token (IMDS, workload identity).
        return failures.Reply(
            "graph", None, failure=f"could not get a Graph token ({type(exc).__name__})"
        )
    return failures.Reply("graph", None, failure=type(exc).__name__)


def map_graph_error(
    exc: BaseException, *, action: str, tenant: str, app: AppRef, owner: Owner
) -> errors.RotatorError:
    """Our error for a failed Graph call (the table in :mod:`rotator.core.failures`).

    ``action`` is a verb phrase ("add a password to"). Pure: unit-tested with the SDK's own
    error objects.
    """
    if isinstance(exc, errors.RotatorError):
        return exc
    reply = reply_of(exc)
    return failures.error(
        failures.classify(reply),
        reply,
        action=action,
        target=f"the {_owner_phrase(owner)} with {app} in tenant {tenant}",
        kind=_owner_phrase(owner),
    )


def _password_info(credential: PasswordCredential) -> PasswordInfo:
    return PasswordInfo(
        key_id=str(credential.key_id),
        display_name=credential.display_name,
        hint=credential.hint,
        start=credential.start_date_time,
        end=credential.end_date_time,
    )


class GraphAdapter:
    """Password credentials of Entra applications and service principals, through Graph.

    ``credential`` is the operator's own (async) credential; the adapter does not close it.
    ``read_retries`` is how often the SDK may retry GETs and ``removePassword`` (idempotent).
    """

    def __init__(
        self,
        credential: AsyncTokenCredential,
        settings: cloud_settings.CloudSettings,
        *,
        read_retries: int = 2,
    ) -> None:
        self._credential = credential
        self._settings = settings
        self._read_retry = RetryHandlerOption(delay=1.0, max_retries=read_retries)
        self._clients: dict[str, tuple[GraphServiceClient, httpx.AsyncClient]] = {}
        self._object_ids: dict[tuple[str, Owner, str], str] = {}
        self._client_ids: dict[tuple[str, Owner, str], str] = {}

    async def __aenter__(self) -> GraphAdapter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every tenant's HTTP client."""
        clients, self._clients = self._clients, {}
        for _, http in clients.values():
            await http.aclose()

    def _client(self, tenant: str) -> GraphServiceClient:
        key = tenant.lower()
        cached = self._clients.get(key)
        if cached is not None:
            return cached[0]
        verify: ssl.SSLContext | bool = True
        if self._settings.ca_bundle:
            verify = ssl.create_default_context(cafile=self._settings.ca_bundle)
        http = httpx.AsyncClient(
            verify=verify,
            timeout=httpx.Timeout(self._settings.http_timeout_seconds),
            base_url=self._settings.graph_url.rstrip("/"),
        )
        http = GraphClientFactory.create_with_default_middleware(
            client=http, options=graph_default_options
        )
        auth = AzureIdentityAuthenticationProvider(
            self._credential,
            # Ask for a token of *this* tenant (the credential allows any tenant).
            options={"tenant_id": tenant},
            scopes=[identity.GRAPH_SCOPE],
        )
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = self._settings.graph_url.rstrip("/")
        client = GraphServiceClient(request_adapter=adapter)
        self._clients[key] = (client, http)
        return client

    def _config(self, retry: RetryHandlerOption, **query: Any) -> RequestConfiguration[Any]:
        config: RequestConfiguration[Any] = RequestConfiguration(options=[retry])
        if query:
            config.query_parameters = _Query(**query)
        return config

    async def _object_id(self, tenant: str, app: AppRef, owner: Owner) -> str:
        if app.object_id is not None:
            return app.object_id
        assert app.client_id is not None
        key = (tenant.lower(), owner, app.client_id.lower())
        cached = self._object_ids.get(key)
        if cached is not None:
            return cached
        client = self._client(tenant)
        config = self._config(self._read_retry, select=["id"])
        found: Any
        # Not client.applications_with_app_id(...): msgraph's generated builder writes the appId
        # into the path-parameter dict it is given, which is the client's own shared dict, and
        # renders the URL only after awaiting a token. Concurrent look-ups in one tenant then
        # send each other's appId, and a secret would be minted on another application.
        # Each builder here gets a private copy.
        params = dict(client.path_parameters)
        builder: Any
        if owner == "application":
            builder = app_with_app_id.ApplicationsWithAppIdRequestBuilder(
                client.request_adapter, params, app.client_id
            )
        else:
            builder = sp_with_app_id.ServicePrincipalsWithAppIdRequestBuilder(
                client.request_adapter, params, app.client_id
            )
        try:
            found = await builder.get(config)
        except Exception as exc:
            raise map_graph_error(
                exc, action="look up", tenant=tenant, app=app, owner=owner
            ) from exc
        if found is None or not found.id:
            raise errors.NotFound(
                f"the {_owner_phrase(owner)} with {app} in tenant {tenant} was not found"
            )
        self._object_ids[key] = str(found.id)
        return str(found.id)

    async def resolve_client_id(self, tenant: str, app: AppRef, owner: Owner) -> str:
        """The application's client id (``appId``), which a token request names.

        Given a client id, that is the answer (no call). Given an object id, the object
        ``owner`` names is read once (``$select=appId``) and the answer cached per
        (tenant, owner kind, objectId): an object's appId never changes.
        """
        if app.client_id is not None:
            return app.client_id
        assert app.object_id is not None
        key = (tenant.lower(), owner, app.object_id.lower())
        cached = self._client_ids.get(key)
        if cached is not None:
            return cached
        config = self._config(self._read_retry, select=["appId"])
        try:
            found = await self._item(tenant, owner, app.object_id).get(config)
        except Exception as exc:
            raise map_graph_error(
                exc, action="read the client id (appId) of", tenant=tenant, app=app, owner=owner
            ) from exc
        if found is None or not found.app_id:
            raise errors.NotFound(
                f"the {_owner_phrase(owner)} with {app} in tenant {tenant} was not found"
            )
        client_id = str(found.app_id).lower()
        self._client_ids[key] = client_id
        return client_id

    def _forget(self, tenant: str, app: AppRef, owner: Owner) -> None:
        if app.client_id is not None:
            self._object_ids.pop((tenant.lower(), owner, app.client_id.lower()), None)

    def _item(self, tenant: str, owner: Owner, object_id: str) -> Any:
        client = self._client(tenant)
        if owner == "application":
            return client.applications.by_application_id(object_id)
        return client.service_principals.by_service_principal_id(object_id)

    async def list_passwords(self, tenant: str, app: AppRef, owner: Owner) -> list[PasswordInfo]:
        """Every password credential on the object (key ids, names, hints, validity)."""
        action = "list the passwords of"
        object_id = await self._object_id(tenant, app, owner)
        config = self._config(self._read_retry, select=["id", "passwordCredentials"])
        try:
            found = await self._item(tenant, owner, object_id).get(config)
        except Exception as exc:
            mapped = map_graph_error(exc, action=action, tenant=tenant, app=app, owner=owner)
            if isinstance(mapped, errors.NotFound):
                self._forget(tenant, app, owner)
            raise mapped from exc
        if found is None:
            raise errors.NotFound(
                f"the {_owner_phrase(owner)} with {app} in tenant {tenant} was not found"
            )
        if found.password_credentials is None:
            # Graph always lists the property it was asked for ([] when there is none): an
            # answer without it proves nothing, least of all that a credential is gone.
            raise errors.TransientError(
                f"Graph answered without the passwordCredentials of the {_owner_phrase(owner)} "
                f"with {app} in tenant {tenant}; reading them again"
            )
        return [_password_info(p) for p in found.password_credentials]

    async def add_password(
        self,
        tenant: str,
        app: AppRef,
        owner: Owner,
        display_name: str,
        end: datetime.datetime,
    ) -> MintedSecret:
        """Mint a new secret, once: no SDK retry (see the module docstring).

        Any failure may still have created the credential in Graph: the caller must re-read
        :meth:`list_passwords` and remove a credential with ``display_name`` it cannot account for.
        """
        action = "add a password to"
        object_id = await self._object_id(tenant, app, owner)
        wanted = PasswordCredential(display_name=display_name, end_date_time=end)
        body: Any
        if owner == "application":
            body = AddPasswordPostRequestBody(password_credential=wanted)
        else:
            body = sp_add.AddPasswordPostRequestBody(password_credential=wanted)
        try:
            created = await self._item(tenant, owner, object_id).add_password.post(
                body, self._config(_NO_RETRY)
            )
        except Exception as exc:
            mapped = map_graph_error(exc, action=action, tenant=tenant, app=app, owner=owner)
            if isinstance(mapped, errors.NotFound):
                self._forget(tenant, app, owner)
            raise mapped from exc
        if created is None or created.key_id is None or not created.secret_text:
            raise errors.TransientError(
                f"Graph answered addPassword on the {_owner_phrase(owner)} with {app} in tenant "
                f"{tenant} without a credential; the credential may exist: check for orphans"
            )
        logger.info(
            "added password %s (%s) to the %s with %s in tenant %s",
            created.key_id,
            display_name,
            _owner_phrase(owner),
            app,
            tenant,
        )
        return MintedSecret(
            key_id=str(created.key_id),
            hint=created.hint,
            text=sensitive.SecretText(created.secret_text),
            end=created.end_date_time,
            display_name=created.display_name,
            start=created.start_date_time,
        )

    async def remove_password(self, tenant: str, app: AppRef, owner: Owner, key_id: str) -> None:
        """Revoke one secret; a credential that is already gone counts as removed."""
        action = f"remove password {key_id} from"
        object_id = await self._object_id(tenant, app, owner)
        body: Any
        if owner == "application":
            body = RemovePasswordPostRequestBody(key_id=_uuid(key_id))
        else:
            body = sp_remove.RemovePasswordPostRequestBody(key_id=_uuid(key_id))
        try:
            await self._item(tenant, owner, object_id).remove_password.post(
                body, self._config(self._read_retry)
            )
        except Exception as exc:
            mapped = map_graph_error(exc, action=action, tenant=tenant, app=app, owner=owner)
            if isinstance(mapped, errors.NotFound):
                self._forget(tenant, app, owner)
            # Graph answers 400 for an unknown keyId, in wording that has changed over time:
            # decide by looking rather than by parsing the message.
            if isinstance(exc, APIError) and exc.response_status_code in (400, 404):
                remaining = await self.list_passwords(tenant, app, owner)
                if all(p.key_id.lower() != key_id.lower() for p in remaining):
                    logger.info("password %s was already gone from %s", key_id, app)
                    return
            raise mapped from exc
        logger.info(
            "removed password %s from the %s with %s in tenant %s",
            key_id,
            _owner_phrase(owner),
            app,
            tenant,
        )


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise errors.PermanentError(
            f"{value!r} is not a Graph keyId (a UUID)", reasons.GRAPH_ERROR
        ) from None


@dataclasses.dataclass
class _Query:
    """Query parameters in the shape kiota's request builders read (``$select``)."""

    select: list[str] | None = None

    def get_query_parameter(self, original_name: str) -> str:
        return "%24select" if original_name == "select" else original_name
