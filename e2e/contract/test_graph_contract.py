"""msgraph-sdk 1.65 with a real azure-identity credential against the Graph and Entra emulators.

The client is built the way the operator's Graph adapter builds it: an httpx client trusting
the sandbox CA with msgraph's default middleware, kiota's ``AzureIdentityAuthenticationProvider``
with the explicit Graph scope (derived from the host it would be ``https://127.0.0.1/.default``),
the request adapter's ``base_url`` on the emulator. Every call the operator makes is here, with
the exception it raises for every failure the operator must tell apart.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import ssl
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from azure.identity.aio import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.applications.item.add_password.add_password_request_builder import (
    AddPasswordRequestBuilder,
)
from msgraph.generated.applications.item.application_item_request_builder import (
    ApplicationItemRequestBuilder,
)
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.service_principals.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody as SpAddPasswordPostRequestBody,
)
from msgraph.generated.service_principals.item.remove_password import (
    remove_password_post_request_body as sp_remove,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from rotator.sandbox import faults, stack

pytestmark = pytest.mark.e2e

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


class Sdk:
    """A stack plus SDK clients for its operator identity."""

    def __init__(self, st: stack.Stack) -> None:
        self.stack = st
        self.base = f"{st.graph_url}/v1.0"
        self._closers: list[Any] = []

    def client(
        self, identity: stack.Identity | None = None, scope: str = GRAPH_SCOPE
    ) -> GraphServiceClient:
        who = identity or self.stack.operator
        credential = ClientSecretCredential(
            who.tenant_id,
            who.client_id,
            who.secret_text,
            authority=self.stack.entra_url,
            disable_instance_discovery=True,
            connection_verify=str(self.stack.ca.bundle_path),
        )
        http = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(self.stack.ca.bundle_path)),
            base_url=self.base,
        )
        http = GraphClientFactory.create_with_default_middleware(client=http)
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[scope])
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = self.base
        self._closers += [credential.close, http.aclose]
        return GraphServiceClient(request_adapter=adapter)

    async def close(self) -> None:
        for close in self._closers:
            await close()


@pytest.fixture
async def sdk(tmp_path: pathlib.Path) -> AsyncIterator[Sdk]:
    async with stack.Stack.start(tmp_path, seed=11) as st:
        handle = Sdk(st)
        try:
            yield handle
        finally:
            await handle.close()


def no_retry() -> RequestConfiguration[Any]:
    """addPassword must not be retried by the SDK: a retry after a lost answer mints twice."""
    return RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])


def new_password(name: str, days: int = 30) -> AddPasswordPostRequestBody:
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    return AddPasswordPostRequestBody(
        password_credential=PasswordCredential(display_name=name, end_date_time=end)
    )


async def test_get_application_by_object_id_and_app_id_with_select(sdk: Sdk) -> None:
    graph = sdk.client()
    demo = sdk.stack.demo_application
    by_id = await graph.applications.by_application_id(demo.object_id).get()
    assert by_id is not None
    assert (by_id.id, by_id.app_id) == (demo.object_id, demo.client_id)
    [initial] = by_id.password_credentials or []
    assert initial.display_name == "initial"
    assert isinstance(initial.key_id, uuid.UUID)
    assert initial.secret_text is None
    assert initial.hint and len(initial.hint) == 3
    assert initial.end_date_time and initial.end_date_time.tzinfo is not None
    by_app_id = await graph.applications_with_app_id(demo.client_id).get()
    assert by_app_id is not None and by_app_id.id == demo.object_id
    selected = await graph.applications.by_application_id(demo.object_id).get(
        RequestConfiguration(
            query_parameters=ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(
                select=["id", "appId", "passwordCredentials"]
            )
        )
    )
    assert selected is not None and selected.display_name is None
    assert (
        selected.password_credentials and selected.password_credentials[0].key_id == initial.key_id
    )
    log = sdk.stack.requests("graph.getApplication")
    assert log[-1]["query"] == "$select=id,appId,passwordCredentials"


async def test_get_service_principal_both_forms(sdk: Sdk) -> None:
    graph = sdk.client()
    demo = sdk.stack.demo_service_principal
    assert demo.service_principal_id
    sp = await graph.service_principals.by_service_principal_id(demo.service_principal_id).get()
    assert sp is not None and [p.display_name for p in sp.password_credentials or []] == ["initial"]
    by_app_id = await graph.service_principals_with_app_id(demo.client_id).get()
    assert by_app_id is not None and by_app_id.id == demo.service_principal_id


async def test_add_and_remove_password_on_the_application(sdk: Sdk) -> None:
    graph = sdk.client()
    demo = sdk.stack.demo_application
    item = graph.applications.by_application_id(demo.object_id)
    made = await item.add_password.post(new_password("rotator-etl-sp-aaaa"), no_retry())
    assert made is not None and made.secret_text and made.key_id
    assert made.hint == made.secret_text[:3]
    assert made.display_name == "rotator-etl-sp-aaaa"
    # The new secret authenticates (no propagation delay configured here).
    fresh = stack.Identity(demo.tenant_id, demo.client_id, demo.object_id, None, made.secret_text)
    token = await ClientSecretCredential(
        fresh.tenant_id,
        fresh.client_id,
        fresh.secret_text,
        authority=sdk.stack.entra_url,
        disable_instance_discovery=True,
        connection_verify=str(sdk.stack.ca.bundle_path),
    ).get_token(GRAPH_SCOPE)
    assert sdk.stack.authority.verify(token.token, "https://graph.microsoft.com") is not None
    assert (
        await item.remove_password.post(RemovePasswordPostRequestBody(key_id=made.key_id))
    ) is None
    after = await item.get()
    assert after is not None
    assert [p.display_name for p in after.password_credentials or []] == ["initial"]


async def test_add_password_by_app_id_needs_with_url(sdk: Sdk) -> None:
    graph = sdk.client()
    demo = sdk.stack.demo_application
    builder: AddPasswordRequestBuilder = graph.applications.by_application_id("unused").add_password
    builder = builder.with_url(f"{sdk.base}/applications(appId='{demo.client_id}')/addPassword")
    made = await builder.post(new_password("rotator-by-app-id"), no_retry())
    assert made is not None and made.key_id
    log = sdk.stack.requests("graph.addPassword")
    assert log[-1]["path"] == f"/v1.0/applications(appId='{demo.client_id}')/addPassword"


async def test_service_principal_passwords(sdk: Sdk) -> None:
    graph = sdk.client()
    demo = sdk.stack.demo_service_principal
    assert demo.service_principal_id
    item = graph.service_principals.by_service_principal_id(demo.service_principal_id)
    end = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=7)
    made = await item.add_password.post(
        SpAddPasswordPostRequestBody(
            password_credential=PasswordCredential(display_name="rotator-sp", end_date_time=end)
        ),
        no_retry(),
    )
    assert made is not None and made.secret_text
    sp = await item.get()
    assert sp is not None
    assert sorted(p.display_name or "" for p in sp.password_credentials or []) == [
        "initial",
        "rotator-sp",
    ]
    await item.remove_password.post(sp_remove.RemovePasswordPostRequestBody(key_id=made.key_id))
    sp = await item.get()
    assert sp is not None and len(sp.password_credentials or []) == 1


async def test_503_after_creation_is_not_retried_when_disabled(sdk: Sdk) -> None:
    graph = sdk.client()
    demo = sdk.stack.demo_application
    sdk.stack.add_fault(
        faults.FaultRule(operation="graph.addPassword", kind="after", status=503, count=1)
    )
    item = graph.applications.by_application_id(demo.object_id)
    with pytest.raises(ODataError) as caught:
        await item.add_password.post(new_password("rotator-lost-answer"), no_retry())
    assert caught.value.response_status_code == 503
    assert caught.value.error is not None and caught.value.error.code == "ServiceUnavailable"
    assert sdk.stack.count("graph.addPassword") == 1
    # The credential exists although the caller never saw its text: an orphan to find.
    app = await item.get()
    assert app is not None
    names = [p.display_name for p in app.password_credentials or []]
    assert names.count("rotator-lost-answer") == 1


async def test_503_after_creation_is_retried_by_default_and_mints_twice(sdk: Sdk) -> None:
    graph = sdk.client()
    demo = sdk.stack.demo_application
    sdk.stack.add_fault(
        faults.FaultRule(
            operation="graph.addPassword", kind="after", status=503, count=1, retry_after=1
        )
    )
    item = graph.applications.by_application_id(demo.object_id)
    made = await item.add_password.post(new_password("rotator-retried"))
    assert made is not None
    assert [e["status"] for e in sdk.stack.requests("graph.addPassword")] == [503, 200]
    app = await item.get()
    assert app is not None
    twins = [p for p in app.password_credentials or [] if p.display_name == "rotator-retried"]
    assert len(twins) == 2  # the SDK's retry left a second secret whose text nobody has
    assert made.key_id in {p.key_id for p in twins}


async def test_unknown_application_is_404(sdk: Sdk) -> None:
    graph = sdk.client()
    with pytest.raises(ODataError) as caught:
        await graph.applications.by_application_id(str(uuid.uuid4())).get()
    error = caught.value
    assert error.response_status_code == 404
    assert error.error is not None and error.error.code == "Request_ResourceNotFound"
    assert error.error.inner_error is not None and error.error.inner_error.request_id
    with pytest.raises(ODataError) as caught:
        await graph.applications_with_app_id(str(uuid.uuid4())).get()
    assert caught.value.response_status_code == 404


async def test_too_many_passwords_is_400(sdk: Sdk) -> None:
    graph = sdk.client()
    sdk.stack.directory.max_passwords = 1  # the demo app already holds its initial secret
    item = graph.applications.by_application_id(sdk.stack.demo_application.object_id)
    with pytest.raises(ODataError) as caught:
        await item.add_password.post(new_password("rotator-one-too-many"), no_retry())
    assert caught.value.response_status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "TooManyAppPasswords"


async def test_lifetime_policy_is_400(sdk: Sdk) -> None:
    graph = sdk.client()
    sdk.stack.directory.max_lifetime = 86400 * 30
    item = graph.applications.by_application_id(sdk.stack.demo_application.object_id)
    with pytest.raises(ODataError) as caught:
        await item.add_password.post(new_password("rotator-too-long", days=90), no_retry())
    assert caught.value.response_status_code == 400
    assert caught.value.error is not None
    assert caught.value.error.code == "CredentialInvalidLifetimeAsPerAppPolicy"


async def test_concurrent_writes_to_one_app_conflict_with_409(sdk: Sdk) -> None:
    graph = sdk.client()
    sdk.stack.directory.write_seconds = 1.0  # wide enough for a loaded machine
    item = graph.applications.by_application_id(sdk.stack.demo_application.object_id)
    await item.get()  # acquire the token first so both writes leave at once
    results = await asyncio.gather(
        item.add_password.post(new_password("rotator-a"), no_retry()),
        item.add_password.post(new_password("rotator-b"), no_retry()),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, ODataError)]
    assert len(errors) == 1 and len([r for r in results if isinstance(r, PasswordCredential)]) == 1
    assert errors[0].response_status_code == 409
    assert errors[0].error is not None
    assert errors[0].error.code == "Directory_ConcurrencyViolation"


async def test_app_not_owned_by_the_operator_is_403(sdk: Sdk) -> None:
    graph = sdk.client()
    stranger = sdk.stack.seed_application("someone-elses", owners=[])
    with pytest.raises(ODataError) as caught:
        await graph.applications.by_application_id(stranger.object_id).add_password.post(
            new_password("rotator-nope"), no_retry()
        )
    assert caught.value.response_status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Authorization_RequestDenied"


async def test_throttling_429_carries_retry_after(sdk: Sdk) -> None:
    graph = sdk.client()
    sdk.stack.add_fault(
        faults.FaultRule(
            operation="graph.getApplication", kind="status", status=429, count=1, retry_after=7
        )
    )
    item = graph.applications.by_application_id(sdk.stack.demo_application.object_id)
    with pytest.raises(ODataError) as caught:
        await item.get(no_retry())
    error = caught.value
    assert error.response_status_code == 429
    assert error.response_headers is not None and error.response_headers["retry-after"] == "7"
    assert error.error is not None and error.error.code == "TooManyRequests"
    # With the SDK's default retry a single 429 is absorbed after Retry-After.
    sdk.stack.add_fault(
        faults.FaultRule(
            operation="graph.getApplication", kind="status", status=429, count=1, retry_after=1
        )
    )
    assert await item.get() is not None
    assert [e["status"] for e in sdk.stack.requests("graph.getApplication")][-2:] == [429, 200]


async def test_remove_unknown_key_id_is_400(sdk: Sdk) -> None:
    graph = sdk.client()
    item = graph.applications.by_application_id(sdk.stack.demo_application.object_id)
    with pytest.raises(ODataError) as caught:
        await item.remove_password.post(RemovePasswordPostRequestBody(key_id=uuid.uuid4()))
    assert caught.value.response_status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "Request_BadRequest"


async def test_token_for_another_resource_is_401(sdk: Sdk) -> None:
    graph = sdk.client(scope="https://vault.azure.net/.default")
    with pytest.raises(ODataError) as caught:
        await graph.applications.by_application_id(sdk.stack.demo_application.object_id).get()
    assert caught.value.response_status_code == 401
    assert caught.value.error is not None
    assert caught.value.error.code == "InvalidAuthenticationToken"
