"""The Graph emulator in-process: addressing forms, shapes, owners, limits and errors."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import test_utils

from rotator.sandbox import graph, tokens

TENANT = "00000000-0000-0000-0000-0000000000aa"
OPERATOR = "0a0a0a0a-0000-0000-0000-000000000001"
STRANGER = "0b0b0b0b-0000-0000-0000-000000000002"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_750_000_000.0  # 2025-06-15

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
    return graph.Directory(clock=clock, write_seconds=0.0)


@pytest.fixture
async def client(
    directory: graph.Directory, authority: tokens.TokenAuthority
) -> AsyncIterator[test_utils.TestClient[Any, Any]]:
    app = graph.make_app(directory, authority=authority)
    async with test_utils.TestClient(test_utils.TestServer(app)) as http:
        yield http


def bearer(
    authority: tokens.TokenAuthority, client_id: str = OPERATOR, **kw: str
) -> dict[str, str]:
    token = authority.issue(
        tenant_id=kw.get("tenant", TENANT),
        client_id=client_id,
        audience=kw.get("aud", tokens.GRAPH),
    )
    return {"Authorization": f"Bearer {token}"}


def seed(directory: graph.Directory) -> tuple[graph.DirectoryObject, graph.DirectoryObject]:
    application, principal = directory.seed_application(TENANT, "etl", owners=[OPERATOR])
    assert principal is not None
    return application, principal


async def test_get_application_by_object_id_and_by_app_id(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    directory.add_password(application, display_name="first")
    by_id = await client.get(
        f"/v1.0/applications/{application.object_id}", headers=bearer(authority)
    )
    body = await by_id.json()
    assert by_id.status == 200
    assert (body["id"], body["appId"]) == (application.object_id, application.app_id)
    assert body["@odata.context"].endswith("$metadata#applications/$entity")
    [credential] = body["passwordCredentials"]
    assert credential["displayName"] == "first"
    assert credential["secretText"] is None
    assert credential["hint"] == application.password_credentials[0].secret_text[:3]
    assert credential["customKeyIdentifier"] is None
    # The alternate key, plain and percent-encoded as kiota may send it.
    for path in (
        f"/v1.0/applications(appId='{application.app_id}')",
        f"/v1.0/applications(appId=%27{application.app_id}%27)",
    ):
        r = await client.get(path, headers=bearer(authority))
        assert (r.status, (await r.json())["id"]) == (200, application.object_id)


async def test_select_is_honoured(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    r = await client.get(
        f"/v1.0/applications/{application.object_id}?$select=id,passwordCredentials",
        headers=bearer(authority),
    )
    body = await r.json()
    assert set(body) == {"@odata.context", "id", "passwordCredentials"}
    assert "applications(id,passwordCredentials)" in body["@odata.context"]
    r = await client.get(
        f"/v1.0/applications/{application.object_id}?$select=nope", headers=bearer(authority)
    )
    assert (r.status, (await r.json())["error"]["code"]) == (400, "Request_BadRequest")


async def test_service_principal_get(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    _, principal = seed(directory)
    r = await client.get(
        f"/v1.0/servicePrincipals(appId='{principal.app_id}')", headers=bearer(authority)
    )
    body = await r.json()
    assert (body["id"], body["servicePrincipalType"]) == (principal.object_id, "Application")


@pytest.mark.parametrize("kind", ["applications", "servicePrincipals"])
async def test_add_then_remove_password_both_forms(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority, kind: str
) -> None:
    application, principal = seed(directory)
    obj = application if kind == "applications" else principal
    end = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    r = await client.post(
        f"/v1.0/{kind}(appId='{obj.app_id}')/addPassword",
        json={"passwordCredential": {"displayName": "rotator-x", "endDateTime": end.isoformat()}},
        headers=bearer(authority),
    )
    made = await r.json()
    assert r.status == 200
    assert made["secretText"].startswith(made["hint"])
    assert len(made["secretText"]) == 40
    assert made["endDateTime"] == "2027-01-01T00:00:00Z"
    assert made["startDateTime"] == graph.graph_datetime(directory.now())
    assert [p.key_id for p in obj.password_credentials] == [made["keyId"]]
    r = await client.post(
        f"/v1.0/{kind}/{obj.object_id}/removePassword",
        json={"keyId": made["keyId"]},
        headers=bearer(authority),
    )
    assert r.status == 204
    assert obj.password_credentials == []
    r = await client.post(
        f"/v1.0/{kind}/{obj.object_id}/removePassword",
        json={"keyId": made["keyId"]},
        headers=bearer(authority),
    )
    error = (await r.json())["error"]
    assert (r.status, error["code"]) == (400, "Request_BadRequest")
    assert made["keyId"] in error["message"]


async def test_unknown_object_is_404_with_graph_error_shape(
    client: Any, authority: tokens.TokenAuthority, directory: graph.Directory
) -> None:
    seed(directory)
    r = await client.get(
        "/v1.0/applications/11111111-0000-0000-0000-000000000000",
        headers={**bearer(authority), "client-request-id": "abc"},
    )
    error = (await r.json())["error"]
    assert r.status == 404
    assert error["code"] == "Request_ResourceNotFound"
    assert error["innerError"]["client-request-id"] == "abc"
    assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


async def test_tokens_are_checked(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    path = f"/v1.0/applications/{application.object_id}"
    r = await client.get(path)
    assert (r.status, (await r.json())["error"]["code"]) == (401, "InvalidAuthenticationToken")
    assert "WWW-Authenticate" in r.headers
    r = await client.get(path, headers=bearer(authority, aud=tokens.KEY_VAULT))
    assert r.status == 401
    forged = tokens.TokenAuthority().issue(
        tenant_id=TENANT, client_id=OPERATOR, audience=tokens.GRAPH
    )
    r = await client.get(path, headers={"Authorization": f"Bearer {forged}"})
    assert r.status == 401


async def test_only_owners_may_touch_an_object(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    for method, suffix in (("GET", ""), ("POST", "/addPassword")):
        r = await client.request(
            method,
            f"/v1.0/applications/{application.object_id}{suffix}",
            json={"passwordCredential": {}},
            headers=bearer(authority, client_id=STRANGER),
        )
        assert (r.status, (await r.json())["error"]["code"]) == (403, "Authorization_RequestDenied")
    assert application.password_credentials == []


async def test_other_tenant_sees_nothing(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    r = await client.get(
        f"/v1.0/applications/{application.object_id}",
        headers=bearer(authority, tenant="00000000-0000-0000-0000-0000000000bb"),
    )
    assert r.status == 404


async def test_too_many_passwords(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    directory.max_passwords = 2
    statuses = []
    for _ in range(3):
        r = await client.post(
            f"/v1.0/applications/{application.object_id}/addPassword",
            json={"passwordCredential": {"displayName": "x"}},
            headers=bearer(authority),
        )
        statuses.append((r.status, (await r.json()).get("error", {}).get("code")))
    assert statuses == [(200, None), (200, None), (400, "TooManyAppPasswords")]
    assert len(application.password_credentials) == 2


async def test_lifetime_policy(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    directory.max_lifetime = 86400 * 30
    start = directory.now()
    too_long = (start + datetime.timedelta(days=31)).isoformat()
    r = await client.post(
        f"/v1.0/applications/{application.object_id}/addPassword",
        json={"passwordCredential": {"endDateTime": too_long}},
        headers=bearer(authority),
    )
    error = (await r.json())["error"]
    assert (r.status, error["code"]) == (400, "CredentialInvalidLifetimeAsPerAppPolicy")
    ok = (start + datetime.timedelta(days=29)).isoformat()
    r = await client.post(
        f"/v1.0/applications/{application.object_id}/addPassword",
        json={"passwordCredential": {"endDateTime": ok}},
        headers=bearer(authority),
    )
    assert r.status == 200


async def test_overlapping_writes_conflict(
    client: Any, directory: graph.Directory, authority: tokens.TokenAuthority
) -> None:
    application, _ = seed(directory)
    directory.write_seconds = 0.3

    async def add() -> int:
        r = await client.post(
            f"/v1.0/applications/{application.object_id}/addPassword",
            json={"passwordCredential": {}},
            headers=bearer(authority),
        )
        body = await r.json()
        return int(r.status) if r.status == 200 else body["error"]["code"]

    results = await asyncio.gather(add(), add())
    assert sorted(map(str, results)) == ["200", "Directory_ConcurrencyViolation"]
    assert len(application.password_credentials) == 1
    # The hold is released: a later write succeeds.
    assert await add() == 200


async def test_control_seed_and_state_hide_secret_text(
    client: Any, directory: graph.Directory
) -> None:
    r = await client.post(
        "/_sandbox/applications",
        json={
            "tenantId": TENANT,
            "displayName": "demo",
            "owners": [OPERATOR],
            "passwords": [{"on": "servicePrincipal", "displayName": "seeded"}],
        },
    )
    seeded = await r.json()
    assert r.status == 201
    secret = seeded["passwords"][0]["secretText"]
    assert seeded["passwords"][0]["on"] == "servicePrincipal"
    state_text = await (await client.get("/_sandbox/state")).text()
    assert secret not in state_text
    assert seeded["passwords"][0]["keyId"] in state_text
    r = await client.post("/_sandbox/config", json={"maxPasswords": 3, "maxLifetimeSeconds": 60})
    assert (await r.json())["maxPasswords"] == 3
    assert directory.max_lifetime == 60
