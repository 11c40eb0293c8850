"""The sandbox stack: every emulator over HTTPS with one CA, seeded identities, env file, CLI."""

from __future__ import annotations

import asyncio
import os
import pathlib
import shlex
import signal
import ssl
import sys

import aiohttp
import pytest

from rotator.sandbox import faults, stack


async def _token(http: aiohttp.ClientSession, st: stack.Stack, ctx: ssl.SSLContext) -> str:
    r = await http.post(
        f"{st.entra_url}/{st.operator.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": st.operator.client_id,
            "client_secret": st.operator.secret_text,
            "scope": "https://graph.microsoft.com/.default",
        },
        ssl=ctx,
    )
    assert r.status == 200
    return str((await r.json())["access_token"])


async def test_operator_identity_reaches_its_demo_apps_over_https(tmp_path: pathlib.Path) -> None:
    async with stack.Stack.start(tmp_path, seed=3) as st:
        ctx = ssl.create_default_context(cafile=str(st.ca.bundle_path))
        async with aiohttp.ClientSession() as http:
            token = await _token(http, st, ctx)
            headers = {"Authorization": f"Bearer {token}"}
            app_owned = st.demo_application
            r = await http.get(
                f"{st.graph_url}/v1.0/applications(appId='{app_owned.client_id}')",
                headers=headers,
                ssl=ctx,
            )
            body = await r.json()
            assert (r.status, body["id"]) == (200, app_owned.object_id)
            assert [p["displayName"] for p in body["passwordCredentials"]] == ["initial"]
            sp_owned = st.demo_service_principal
            r = await http.get(
                f"{st.graph_url}/v1.0/servicePrincipals/{sp_owned.service_principal_id}",
                headers=headers,
                ssl=ctx,
            )
            assert [p["displayName"] for p in (await r.json())["passwordCredentials"]] == [
                "initial"
            ]
            # The service-principal-owned demo keeps no password on its application object.
            r = await http.get(
                f"{st.graph_url}/v1.0/applications/{sp_owned.object_id}", headers=headers, ssl=ctx
            )
            assert (await r.json())["passwordCredentials"] == []
        assert st.count("entra.token") == 1
        assert st.count("graph.getApplication") == 2
        assert st.requests()[0]["operation"] == "entra.token"


async def test_seed_is_repeatable_and_operator_owns_nothing_else(tmp_path: pathlib.Path) -> None:
    async with stack.Stack.start(tmp_path / "a", seed=5) as one:
        first = (one.operator.client_id, one.demo_service_principal.object_id)
        stranger = one.seed_application("not-ours", owners=[])
        assert (
            one.operator.client_id
            not in one.directory.tenants[stack.DEMO_TENANT_ID]
            .applications[stranger.object_id]
            .owners
        )
    async with stack.Stack.start(tmp_path / "b", seed=5) as two:
        assert (two.operator.client_id, two.demo_service_principal.object_id) == first
        assert two.operator.secret_text != one.operator.secret_text  # secrets are never seeded


async def test_faults_go_to_the_emulator_serving_the_operation(tmp_path: pathlib.Path) -> None:
    async with stack.Stack.start(tmp_path) as st:
        st.add_fault(faults.FaultRule(operation="graph.addPassword", kind="status", count=1))
        by_kind = {s.kind: len(s.app[stack.server.FAULTS_KEY].rules) for s in st.services}
        assert by_kind["graph"] == 1
        assert by_kind["entra"] == 0
        st.add_fault(faults.FaultRule(operation="*", kind="latency"))
        assert all(len(s.app[stack.server.FAULTS_KEY].rules) >= 1 for s in st.services)
        st.clear_faults()
        assert all(not s.app[stack.server.FAULTS_KEY].rules for s in st.services)


async def test_env_file_is_complete_private_and_sourceable(tmp_path: pathlib.Path) -> None:
    async with stack.Stack.start(tmp_path) as st:
        path = st.write_env_file(tmp_path / "out" / "env")
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert not list(path.parent.glob(".*tmp"))
        env = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in path.read_text().splitlines()
        )
        assert env == st.env()
        assert env["ROTATOR_GRAPH_URL"] == f"{st.graph_url}/v1.0"
        assert env["ROTATOR_AUTHORITY_HOST"] == st.entra_url
        assert env["SSL_CERT_FILE"] == env["REQUESTS_CA_BUNDLE"] == str(st.ca.bundle_path)
        assert env["AZURE_CLIENT_SECRET"] == st.operator.secret_text
        assert env["ROTATOR_KEYVAULT_URLS"].split() == st.keyvault_urls
        assert env["ROTATOR_DEMO_CLIENT_ID"] == stack.DEMO_CLIENT_ID


async def test_cli_writes_env_file_when_listening_and_stops_on_sigterm(
    tmp_path: pathlib.Path,
) -> None:
    env_file = tmp_path / "sandbox.env"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rotator.sandbox",
        "serve",
        "--dir",
        str(tmp_path),
        "--env-file",
        str(env_file),
        "--seed",
        "1",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        for _ in range(300):
            if env_file.exists() or process.returncode is not None:
                break
            await asyncio.sleep(0.1)
        assert env_file.exists(), process.returncode
        env = dict(
            shlex.split(line.removeprefix("export "))[0].split("=", 1)
            for line in env_file.read_text().splitlines()
        )
        ctx = ssl.create_default_context(cafile=env["ROTATOR_CA_BUNDLE"])
        async with aiohttp.ClientSession() as http:
            r = await http.get(
                f"{env['ROTATOR_AUTHORITY_HOST']}/{env['AZURE_TENANT_ID']}/v2.0/.well-known/openid-configuration",
                ssl=ctx,
            )
            assert r.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0
        assert not env_file.exists()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_key_vault_sdk_authenticates_through_the_stacks_entra(
    tmp_path: pathlib.Path,
) -> None:
    secrets_aio = pytest.importorskip("azure.keyvault.secrets.aio")
    identity_aio = pytest.importorskip("azure.identity.aio")
    async with stack.Stack.start(tmp_path, vaults=1) as st:
        if not st.keyvault_urls:
            pytest.skip("rotator.sandbox.keyvault is not there yet")
        bundle = str(st.ca.bundle_path)
        credential = identity_aio.ClientSecretCredential(
            st.operator.tenant_id,
            st.operator.client_id,
            st.operator.secret_text,
            authority=st.entra_url,
            disable_instance_discovery=True,
            connection_verify=bundle,
        )
        async with (
            credential,
            secrets_aio.SecretClient(
                st.keyvault_urls[0],
                credential,  # the SDK's challenge resource check stays on, as in production
                connection_verify=bundle,
            ) as client,
        ):
            await client.set_secret("probe", "value-1")
            assert (await client.get_secret("probe")).value == "value-1"
        assert st.count("entra.token") == 1
        assert st.count("keyvault.setSecret") >= 1


async def test_databricks_accepts_the_stacks_tokens_for_its_resource_only(
    tmp_path: pathlib.Path,
) -> None:
    async with stack.Stack.start(tmp_path, workspaces=2) as st:
        if not st.databricks_hosts:
            pytest.skip("rotator.sandbox.databricks is not there yet")
        assert len(set(st.databricks_hosts)) == 2
        ctx = ssl.create_default_context(cafile=str(st.ca.bundle_path))
        async with aiohttp.ClientSession() as http:
            statuses = []
            for scope in (
                f"{stack.tokens.AZURE_DATABRICKS}/.default",
                "https://graph.microsoft.com/.default",
            ):
                r = await http.post(
                    f"{st.entra_url}/{st.operator.tenant_id}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": st.operator.client_id,
                        "client_secret": st.operator.secret_text,
                        "scope": scope,
                    },
                    ssl=ctx,
                )
                token = (await r.json())["access_token"]
                r = await http.get(
                    f"{st.databricks_hosts[1]}/api/2.0/secrets/scopes/list",
                    headers={"Authorization": f"Bearer {token}"},
                    ssl=ctx,
                )
                statuses.append(r.status)
        assert statuses[0] == 200
        assert statuses[1] in (401, 403)
