"""The Entra token emulator in-process: discovery, client credentials and AADSTS errors."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils

from rotator.sandbox import entra, graph, tokens

TENANT = "00000000-0000-0000-0000-0000000000aa"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def authority(clock: FakeClock) -> tokens.TokenAuthority:
    return tokens.TokenAuthority(clock=clock)


@pytest.fixture
def directory(clock: FakeClock) -> graph.Directory:
    return graph.Directory(clock=clock)


@pytest.fixture
async def client(
    directory: graph.Directory, authority: tokens.TokenAuthority
) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    app = entra.make_app(directory, authority=authority)
    async with test_utils.TestClient(test_utils.TestServer(app)) as http:
        yield http


def app_with_secret(directory: graph.Directory) -> tuple[graph.DirectoryObject, str]:
    application, _ = directory.seed_application(TENANT, "operator")
    credential = directory.add_password(application, propagated=True)
    return application, credential.secret_text


def form(
    client_id: str, secret: str, scope: str = "https://graph.microsoft.com/.default"
) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": scope,
    }


async def test_discovery_document_points_at_this_server(
    client: Any, directory: graph.Directory
) -> None:
    directory.ensure_tenant(TENANT)
    r = await client.get(f"/{TENANT}/v2.0/.well-known/openid-configuration")
    doc = await r.json()
    base = str(client.make_url("/"))
    assert r.status == 200
    assert doc["token_endpoint"] == f"{base}{TENANT}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{base}{TENANT}/oauth2/v2.0/authorize"
    assert doc["issuer"] == f"{base}{TENANT}/v2.0"


async def test_discovery_of_unknown_tenant_is_aadsts90002(client: Any) -> None:
    r = await client.get("/nope/v2.0/.well-known/openid-configuration")
    body = await r.json()
    assert (r.status, body["error"], body["error_codes"]) == (400, "invalid_tenant", [90002])
    assert body["error_description"].startswith("AADSTS90002: Tenant 'nope' not found.")


@pytest.mark.parametrize(
    ("scope", "audience"),
    [
        ("https://graph.microsoft.com/.default", tokens.GRAPH),
        ("https://vault.azure.net/.default", tokens.KEY_VAULT),
        ("https://0.0.1:8443/.default", "https://0.0.1:8443"),  # a loopback vault's resource
        (f"{tokens.AZURE_DATABRICKS}/.default", tokens.AZURE_DATABRICKS),
    ],
)
async def test_client_credentials_issue_a_token_for_the_resource(
    client: Any,
    directory: graph.Directory,
    authority: tokens.TokenAuthority,
    scope: str,
    audience: str,
) -> None:
    application, secret = app_with_secret(directory)
    r = await client.post(
        f"/{TENANT}/oauth2/v2.0/token", data=form(application.app_id, secret, scope)
    )
    body = await r.json()
    assert r.status == 200
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    claims = authority.verify(body["access_token"], audience)
    assert claims is not None
    assert (claims["tid"], claims["appid"]) == (TENANT, application.app_id)


async def test_secret_on_the_service_principal_authenticates_too(
    client: Any, directory: graph.Directory
) -> None:
    _, principal = directory.seed_application(TENANT, "sp-owned")
    assert principal is not None
    secret = directory.add_password(principal, propagated=True).secret_text
    r = await client.post(f"/{TENANT}/oauth2/v2.0/token", data=form(principal.app_id, secret))
    assert r.status == 200


async def expect_error(
    client: Any, data: dict[str, str], tenant: str = TENANT
) -> tuple[int, str, int, str]:
    r = await client.post(f"/{tenant}/oauth2/v2.0/token", data=data)
    body = await r.json()
    assert {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
    } <= set(body)
    assert "access_token" not in body
    return r.status, body["error"], body["error_codes"][0], body["error_description"]


async def test_wrong_secret_is_7000215_and_never_echoed(
    client: Any, directory: graph.Directory
) -> None:
    application, secret = app_with_secret(directory)
    wrong = "zzz8Q~" + "y" * 34
    status, error, code, description = await expect_error(client, form(application.app_id, wrong))
    assert (status, error, code) == (401, "invalid_client", 7000215)
    assert description.startswith("AADSTS7000215: Invalid client secret provided.")
    assert wrong not in description and secret not in description


async def test_unknown_tenant_and_unknown_app(client: Any, directory: graph.Directory) -> None:
    application, secret = app_with_secret(directory)
    status, error, code, _ = await expect_error(
        client, form(application.app_id, secret), tenant="00000000-0000-0000-0000-0000000000ff"
    )
    assert (status, error, code) == (400, "invalid_tenant", 90002)
    status, error, code, description = await expect_error(
        client, form("99999999-0000-0000-0000-000000000000", secret)
    )
    assert (status, error, code) == (400, "unauthorized_client", 700016)
    assert "99999999-0000-0000-0000-000000000000" in description


async def test_expired_secret_is_7000222(
    client: Any, directory: graph.Directory, clock: FakeClock
) -> None:
    application, _ = directory.seed_application(TENANT, "old")
    credential = directory.add_password(
        application, end=directory.now() + datetime.timedelta(seconds=10), propagated=True
    )
    clock.now += 11
    status, error, code, _ = await expect_error(
        client, form(application.app_id, credential.secret_text)
    )
    assert (status, error, code) == (401, "invalid_client", 7000222)


async def test_new_secret_is_refused_until_propagated(
    client: Any, directory: graph.Directory, clock: FakeClock
) -> None:
    r = await client.post("/_sandbox/config", json={"propagationDelay": 30})
    assert (await r.json()) == {"propagationDelay": 30.0}
    application, _ = directory.seed_application(TENANT, "fresh")
    secret = directory.add_password(application).secret_text
    status, _, code, _ = await expect_error(client, form(application.app_id, secret))
    assert (status, code) == (401, 7000215)
    clock.now += 29.9
    assert (await expect_error(client, form(application.app_id, secret)))[2] == 7000215
    clock.now += 0.2
    r = await client.post(f"/{TENANT}/oauth2/v2.0/token", data=form(application.app_id, secret))
    assert r.status == 200


async def test_bad_requests(client: Any, directory: graph.Directory) -> None:
    application, secret = app_with_secret(directory)
    cases = [
        ({**form(application.app_id, secret), "grant_type": "password"}, 70003),
        (form(application.app_id, secret, scope="User.Read"), 1002012),
        (form(application.app_id, secret, scope="https://example.com/.default"), 500011),
        (
            {k: v for k, v in form(application.app_id, secret).items() if k != "client_secret"},
            7000216,
        ),
    ]
    for data, expected in cases:
        assert (await expect_error(client, data))[2] == expected


async def test_token_requests_are_logged_without_bodies(
    client: Any, directory: graph.Directory
) -> None:
    application, secret = app_with_secret(directory)
    await client.post(f"/{TENANT}/oauth2/v2.0/token", data=form(application.app_id, secret))
    log_text = await (await client.get("/_sandbox/requests?operation=entra.token")).text()
    assert '"status": 200' in log_text
    assert secret not in log_text
    assert secret not in await (await client.get("/_sandbox/state")).text()


def test_injected_faults_have_entra_s_shape() -> None:
    from rotator.sandbox import entra

    named = entra.entra_fault_body(400, "AADSTS90002", "injected")
    assert named["error_codes"] == [90002] and named["error_description"].startswith("AADSTS90002")
    busy = entra.entra_fault_body(429, "TooManyRequests", "injected")
    assert busy["error"] == "temporarily_unavailable" and busy["error_codes"] == []
