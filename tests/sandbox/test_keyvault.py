"""The Key Vault emulator at the wire: challenge, shapes, limits, soft delete, state, faults."""

from __future__ import annotations

import hashlib
import pathlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yarl

from rotator.sandbox import keyvault, server, tls

API = "api-version=2026-04-01"
AUTH = {"Authorization": "Bearer any"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> keyvault.KeyVaultState:
    return keyvault.KeyVaultState(
        tenant_id="tenant-1", authority="https://127.0.0.1:9999/", clock=clock
    )


@pytest.fixture
async def http(
    tmp_path: pathlib.Path, state: keyvault.KeyVaultState
) -> AsyncIterator[aiohttp.ClientSession]:
    ca = tls.SandboxCA(tmp_path)
    running = await server.serve(keyvault.make_app(state, verify_token=None), ca.server_context())
    ctx = ssl.create_default_context(cafile=str(ca.bundle_path))
    connector = aiohttp.TCPConnector(ssl=ctx)
    async with aiohttp.ClientSession(base_url=running.url, connector=connector) as session:
        yield session
    await running.stop()


async def _json(response: aiohttp.ClientResponse) -> Any:
    return await response.json()


async def test_unauthenticated_request_gets_the_challenge(http: aiohttp.ClientSession) -> None:
    r = await http.put(f"/secrets/a?{API}", json={"value": "x"})
    assert r.status == 401
    # The resource is the parent domain of the vault's host, as *.vault.azure.net → vault.azure.net.
    assert r.headers["WWW-Authenticate"] == (
        'Bearer authorization="https://127.0.0.1:9999/tenant-1", '
        f'resource="https://0.0.1:{r.url.port}"'
    )
    assert (await _json(r))["error"]["code"] == "Unauthorized"


async def test_verify_token_is_asked_with_the_vault_audience(tmp_path: pathlib.Path) -> None:
    asked: list[tuple[str, str]] = []

    def verify(token: str, audience: str) -> bool:
        asked.append((token, audience))
        return False

    ca = tls.SandboxCA(tmp_path)
    app = keyvault.make_app(keyvault.KeyVaultState(), verify_token=verify)
    running = await server.serve(app, ca.server_context())
    try:
        async with aiohttp.ClientSession() as session:
            r = await session.get(
                f"{running.url}/secrets?{API}",
                headers={"Authorization": "Bearer tok-9f3a7c"},
                ssl=ca.client_context(),
            )
            assert r.status == 401
            assert "tok-9f3a7c" not in await r.text()  # a rejected token is never echoed
            assert "WWW-Authenticate" in r.headers
    finally:
        await running.stop()
    assert asked == [("tok-9f3a7c", f"https://0.0.1:{yarl.URL(running.url).port}")]


async def test_set_returns_the_bundle_and_the_state_hides_the_value(
    http: aiohttp.ClientSession, state: keyvault.KeyVaultState
) -> None:
    body = {
        "value": "s3cr3t",
        "contentType": "text/plain",
        "tags": {"k": "v"},
        "attributes": {"enabled": True, "exp": 1_900_000_000, "nbf": 1_700_000_000},
    }
    r = await http.put(f"/secrets/Etl-Sp?{API}", json=body, headers=AUTH)
    assert r.status == 200
    bundle = await _json(r)
    base = str(r.url.origin())
    version = bundle["id"].rsplit("/", 1)[1]
    assert bundle["id"] == f"{base}/secrets/Etl-Sp/{version}"
    assert bundle["value"] == "s3cr3t"
    assert bundle["attributes"]["exp"] == 1_900_000_000
    assert bundle["attributes"]["created"] == 1_800_000_000
    assert bundle["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"

    snapshot = await _json(await http.get("/_sandbox/state"))
    assert "s3cr3t" not in str(snapshot)
    (only,) = snapshot["secrets"]["Etl-Sp"]["versions"]
    assert only["sha256"] == hashlib.sha256(b"s3cr3t").hexdigest()

    # Names are case-insensitive; the id keeps the casing of the first write.
    r = await http.get(f"/secrets/etl-sp/?{API}", headers=AUTH)
    assert (await _json(r))["id"] == f"{base}/secrets/Etl-Sp/{version}"


@pytest.mark.parametrize(
    ("name", "body", "fragment"),
    [
        ("bad_name", {"value": "x"}, "invalid name"),
        ("a" * 128, {"value": "x"}, "invalid name"),
        ("big", {"value": "x" * (25 * 1024 + 1)}, "maximum size"),
        ("tags", {"value": "x", "tags": {f"t{i}": "v" for i in range(16)}}, "tags"),
        ("ctype", {"value": "x", "contentType": "c" * 256}, "contentType"),
        ("novalue", {"contentType": "text/plain"}, "value"),
    ],
)
async def test_limits_are_bad_parameter(
    http: aiohttp.ClientSession, name: str, body: dict[str, Any], fragment: str
) -> None:
    r = await http.put(f"/secrets/{name}?{API}", json=body, headers=AUTH)
    assert r.status == 400
    error = (await _json(r))["error"]
    assert error["code"] == "BadParameter"
    assert fragment in error["message"]


async def test_limits_at_the_edge_are_accepted(http: aiohttp.ClientSession) -> None:
    body = {"value": "x" * (25 * 1024), "tags": {f"t{i}": "v" for i in range(15)}}
    r = await http.put(f"/secrets/{'a' * 127}?{API}", json=body, headers=AUTH)
    assert r.status == 200


async def test_missing_or_unknown_api_version_is_rejected(http: aiohttp.ClientSession) -> None:
    r = await http.get("/secrets", headers=AUTH)
    assert r.status == 400
    r = await http.get("/secrets?api-version=1999-01-01", headers=AUTH)
    assert r.status == 400


async def test_list_pages_follow_next_link(http: aiohttp.ClientSession) -> None:
    for i in range(3):
        await http.put(f"/secrets/s{i}?{API}", json={"value": "x"}, headers=AUTH)
    page = await _json(await http.get(f"/secrets?{API}&maxresults=2", headers=AUTH))
    assert [item["id"].rsplit("/", 1)[1] for item in page["value"]] == ["s0", "s1"]
    assert "value" not in page["value"][0]
    second = await _json(await http.get(page["nextLink"], headers=AUTH))
    assert [item["id"].rsplit("/", 1)[1] for item in second["value"]] == ["s2"]
    assert second["nextLink"] is None


async def test_deleted_secret_is_purged_when_retention_ends(
    http: aiohttp.ClientSession, state: keyvault.KeyVaultState, clock: Clock
) -> None:
    await http.put(f"/secrets/gone?{API}", json={"value": "x"}, headers=AUTH)
    deleted = await _json(await http.delete(f"/secrets/gone?{API}", headers=AUTH))
    assert deleted["scheduledPurgeDate"] == deleted["deletedDate"] + 90 * 86400
    assert "value" not in deleted
    r = await http.put(f"/secrets/gone?{API}", json={"value": "y"}, headers=AUTH)
    assert r.status == 409
    assert (await _json(r))["error"]["innererror"]["code"] == "ObjectIsDeletedButRecoverable"
    clock.now += 90 * 86400
    r = await http.put(f"/secrets/gone?{API}", json={"value": "y"}, headers=AUTH)
    assert r.status == 200


async def test_faults_target_one_operation(http: aiohttp.ClientSession) -> None:
    await http.post(
        "/_sandbox/faults",
        json={"operation": "keyvault.setSecret", "kind": "status", "status": 429, "count": 1},
    )
    r = await http.put(f"/secrets/f?{API}", json={"value": "x"}, headers=AUTH)
    assert r.status == 429
    r = await http.get(f"/secrets/f/?{API}", headers=AUTH)
    assert r.status == 404  # a different operation: not faulted, and nothing was written
    log = await _json(await http.get("/_sandbox/requests?operation=keyvault.getSecret"))
    assert [e["status"] for e in log] == [404]
