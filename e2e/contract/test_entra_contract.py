"""azure-identity 1.27 (async, and sync through MSAL) against the Entra token emulator.

The async ``ClientSecretCredential`` posts straight to ``{authority}/{tenant}/oauth2/v2.0/token``;
the sync one goes through MSAL, which first reads
``/{tenant}/v2.0/.well-known/openid-configuration`` (instance discovery is off with
``disable_instance_discovery=True``). Both raise
``ClientAuthenticationError`` whose message carries Entra's ``error`` and the AADSTS description;
the operator classifies failures by the AADSTS code in that message.
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
from collections.abc import AsyncIterator

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential as SyncClientSecretCredential
from azure.identity.aio import ClientSecretCredential

from rotator.sandbox import stack, tokens

pytestmark = pytest.mark.e2e

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
DATABRICKS_SCOPE = f"{tokens.AZURE_DATABRICKS}/.default"


@pytest.fixture
async def st(tmp_path: pathlib.Path) -> AsyncIterator[stack.Stack]:
    async with stack.Stack.start(tmp_path, seed=21) as running:
        yield running


def credential(
    st: stack.Stack, who: stack.Identity, *, tenant: str | None = None
) -> ClientSecretCredential:
    return ClientSecretCredential(
        tenant or who.tenant_id,
        who.client_id,
        who.secret_text,
        authority=st.entra_url,
        disable_instance_discovery=True,
        connection_verify=str(st.ca.bundle_path),
    )


async def fails(
    st: stack.Stack, who: stack.Identity, *, tenant: str | None = None
) -> ClientAuthenticationError:
    async with credential(st, who, tenant=tenant) as cred:
        with pytest.raises(ClientAuthenticationError) as caught:
            await cred.get_token(GRAPH_SCOPE)
    assert who.secret_text not in str(caught.value)
    return caught.value


async def test_async_credential_gets_tokens_for_each_resource(st: stack.Stack) -> None:
    async with credential(st, st.operator) as cred:
        for scope, audience in (
            (GRAPH_SCOPE, tokens.GRAPH),
            ("https://vault.azure.net/.default", tokens.KEY_VAULT),
            (DATABRICKS_SCOPE, tokens.AZURE_DATABRICKS),
        ):
            token = await cred.get_token(scope)
            claims = st.authority.verify(token.token, audience)
            assert claims is not None and claims["appid"] == st.operator.client_id
    assert st.count("entra.token") == 3
    assert st.count("entra.openidConfiguration") == 0  # the async client skips discovery


async def test_sync_credential_discovers_through_msal(st: stack.Stack) -> None:
    cred = SyncClientSecretCredential(
        st.operator.tenant_id,
        st.operator.client_id,
        st.operator.secret_text,
        authority=st.entra_url,
        disable_instance_discovery=True,
        connection_verify=str(st.ca.bundle_path),
    )
    token = await asyncio.to_thread(cred.get_token, GRAPH_SCOPE)
    assert st.authority.verify(token.token, tokens.GRAPH) is not None
    assert st.count("entra.openidConfiguration") == 1
    assert st.count("entra.token") == 1


async def test_wrong_secret_is_aadsts7000215(st: stack.Stack) -> None:
    wrong = stack.Identity(
        st.operator.tenant_id, st.operator.client_id, "", None, "abc8Q~" + "x" * 34
    )
    error = await fails(st, wrong)
    assert "invalid_client" in error.message and "AADSTS7000215" in error.message
    assert error.response is not None and error.response.status_code == 401


async def test_new_secret_is_refused_during_propagation_then_accepted(st: stack.Stack) -> None:
    st.directory.propagation_delay = 1.5
    application, _ = st.directory.seed_application(st.operator.tenant_id, "fresh")
    made = st.directory.add_password(application)
    who = stack.Identity(
        st.operator.tenant_id, application.app_id, application.object_id, None, made.secret_text
    )
    error = await fails(st, who)
    assert "AADSTS7000215" in error.message
    # Verification retries with a fresh credential, as the operator does.
    deadline = asyncio.get_running_loop().time() + 10
    refusals: list[str] = []
    token = None
    while token is None and asyncio.get_running_loop().time() < deadline:
        try:
            async with credential(st, who) as cred:
                token = await cred.get_token(GRAPH_SCOPE)
        except ClientAuthenticationError as retry:
            refusals.append(retry.message)
            await asyncio.sleep(0.25)
    assert token is not None
    assert refusals and all("AADSTS7000215" in m for m in refusals)
    assert st.authority.verify(token.token, tokens.GRAPH) is not None
    statuses = [e["status"] for e in st.requests("entra.token")]
    assert statuses[0] == 401 and statuses[-1] == 200


async def test_expired_secret_is_aadsts7000222(st: stack.Stack) -> None:
    application, _ = st.directory.seed_application(st.operator.tenant_id, "expired")
    now = st.directory.now()
    made = st.directory.add_password(
        application,
        start=now - datetime.timedelta(days=10),
        end=now - datetime.timedelta(seconds=1),
        propagated=True,
    )
    who = stack.Identity(
        st.operator.tenant_id, application.app_id, application.object_id, None, made.secret_text
    )
    error = await fails(st, who)
    assert "AADSTS7000222" in error.message


async def test_wrong_tenant_is_aadsts90002(st: stack.Stack) -> None:
    error = await fails(st, st.operator, tenant="00000000-0000-0000-0000-0000000000ff")
    assert "invalid_tenant" in error.message and "AADSTS90002" in error.message
    assert error.response is not None and error.response.status_code == 400


async def test_unknown_client_is_aadsts700016(st: stack.Stack) -> None:
    who = stack.Identity(
        st.operator.tenant_id, "99999999-0000-0000-0000-000000000000", "", None, "abc8Q~" + "x" * 34
    )
    error = await fails(st, who)
    assert "unauthorized_client" in error.message and "AADSTS700016" in error.message


async def test_sync_credential_with_wrong_tenant_fails_at_discovery(st: stack.Stack) -> None:
    cred = SyncClientSecretCredential(
        "00000000-0000-0000-0000-0000000000ff",
        st.operator.client_id,
        st.operator.secret_text,
        authority=st.entra_url,
        disable_instance_discovery=True,
        connection_verify=str(st.ca.bundle_path),
    )
    with pytest.raises(ClientAuthenticationError) as caught:
        await asyncio.to_thread(cred.get_token, GRAPH_SCOPE)
    # MSAL turns the failed discovery (Entra's 400 AADSTS90002) into a ValueError without the
    # code; azure-identity wraps it: the operator must classify this message text too.
    assert "Unable to get authority configuration" in caught.value.message
    assert st.count("entra.openidConfiguration") == 1 and st.count("entra.token") == 0
    assert st.operator.secret_text not in str(caught.value)
