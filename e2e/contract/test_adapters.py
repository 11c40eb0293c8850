"""The cloud adapters (rotator.clouds) driving the real SDKs against the sandbox emulators.

Every adapter method runs here end to end, with the real azure-identity, msgraph-sdk,
azure-keyvault-secrets and databricks-sdk, and every error mapping the handlers branch on is
provoked on the emulator side (state knobs or the fault plan), not mocked:

- Graph: list/add/remove on applications and service principals, by clientId and objectId;
  the client id (appId) of an object id, read once and cached;
  addPassword under a 503 returned *after* the write is tried exactly once (the request log
  proves it) and raises a transient error; 403 → NotOwner, 400 TooManyAppPasswords,
  400 lifetime policy, 409 concurrency, 429 with Retry-After, 404.
- Entra: verification retries through a propagation delay and succeeds; classifies expired,
  unknown tenant, and gives up with a retryable "propagation" failure at its deadline.
- Key Vault: latest (also when disabled), read, set, disable, soft-deleted name, 429.
- Databricks: scopes (Databricks- and Key-Vault-backed), secrets, job resolution, job
  settings round trip with ``core.jobrefs``, active runs and cancel, PAT auth, 429, and a host
  that refuses connections failing in seconds rather than the SDK's five minutes.

And throughout: no secret value in any exception message or log record.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import pathlib
import socket
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from rotator.clouds import databricks, graph, identity, keyvault
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, jobrefs, sensitive
from rotator.sandbox import faults, stack

pytestmark = pytest.mark.e2e

UTC = datetime.UTC


def in_days(days: float) -> datetime.datetime:
    return datetime.datetime.now(UTC) + datetime.timedelta(days=days)


@pytest.fixture
async def sandbox(tmp_path: pathlib.Path) -> AsyncIterator[stack.Stack]:
    async with stack.Stack.start(tmp_path / "sandbox") as running:
        yield running


@pytest.fixture
def cloud(sandbox: stack.Stack) -> cloud_settings.CloudSettings:
    return cloud_settings.CloudSettings.from_env(sandbox.env())


@pytest.fixture
async def credential(cloud: cloud_settings.CloudSettings) -> AsyncIterator[Any]:
    cred = identity.async_credential(cloud)
    yield cred
    await cred.close()


@pytest.fixture
async def graph_adapter(
    credential: Any, cloud: cloud_settings.CloudSettings
) -> AsyncIterator[graph.GraphAdapter]:
    async with graph.GraphAdapter(credential, cloud, read_retries=0) as adapter:
        yield adapter


@pytest.fixture
async def vault(
    credential: Any, cloud: cloud_settings.CloudSettings
) -> AsyncIterator[keyvault.KeyVaultAdapter]:
    async with keyvault.KeyVaultAdapter(credential, cloud) as adapter:
        yield adapter


@pytest.fixture
def workspace(sandbox: stack.Stack, cloud: cloud_settings.CloudSettings) -> Any:
    """The Databricks emulator's state and an adapter authenticated as the operator (Entra)."""
    service = next(s for s in sandbox.services if s.kind == "databricks")
    strategy = identity.DatabricksCredentials(identity.sync_credential(cloud))
    return service.state, databricks.DatabricksAdapter(service.url, cloud, credentials=strategy)


@pytest.fixture
def secrets_seen(sandbox: stack.Stack) -> list[str]:
    """Secret values that must never appear in messages or logs (the operator's own first)."""
    return [sandbox.operator.secret_text]


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture, secrets_seen: list[str]) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for value in secrets_seen:
        assert value not in caplog.text


def assert_hidden(exc: BaseException, secrets_seen: list[str]) -> None:
    text = f"{exc} {exc!r}"
    for value in secrets_seen:
        assert value not in text


# --- Graph ------------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["clientId", "objectId"])
async def test_graph_password_lifecycle_on_an_application(
    sandbox: stack.Stack,
    graph_adapter: graph.GraphAdapter,
    cloud: cloud_settings.CloudSettings,
    secrets_seen: list[str],
    by: str,
) -> None:
    demo = sandbox.demo_application
    app = (
        graph.AppRef(client_id=demo.client_id)
        if by == "clientId"
        else graph.AppRef(object_id=demo.object_id)
    )
    before = await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    assert [p.display_name for p in before] == ["initial"]

    minted = await graph_adapter.add_password(
        demo.tenant_id, app, "application", "rotator-etl-sp-1a2b3c", in_days(30)
    )
    secrets_seen.append(minted.text.reveal())
    assert minted.hint == minted.text.reveal()[:3]
    assert minted.end is not None and abs((minted.end - in_days(30)).total_seconds()) < 60

    listed = await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    assert {p.key_id for p in listed} == {before[0].key_id, minted.key_id}
    await identity.verify_client_secret(
        demo.tenant_id,
        demo.client_id,
        minted.text,
        authority=cloud.authority,
        timeout=10,
        ca_bundle=cloud.ca_bundle,
    )

    await graph_adapter.remove_password(demo.tenant_id, app, "application", minted.key_id)
    # Already gone is success, not an error.
    await graph_adapter.remove_password(demo.tenant_id, app, "application", minted.key_id)
    after = await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    assert [p.key_id for p in after] == [before[0].key_id]


async def test_graph_app_id_is_resolved_once(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(client_id=demo.client_id)
    sandbox.clear_requests()
    for _ in range(3):
        await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    paths = [e["path"] for e in sandbox.requests("graph.getApplication")]
    assert sum("appId=" in p for p in paths) == 1
    assert sum(p.endswith(demo.object_id) for p in paths) == 3


async def test_graph_concurrent_app_id_look_ups_each_find_their_own_application(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    # Regression: msgraph's appId builders share the client's path-parameter dict, so
    # look-ups started together once sent each other's appId and minted on the wrong app.
    apps = [sandbox.seed_application(f"concurrent-{i}") for i in range(6)]
    tenant = apps[0].tenant_id
    found = await asyncio.gather(
        *(
            graph_adapter.list_passwords(tenant, graph.AppRef(client_id=a.client_id), "application")
            for a in apps
        )
    )
    for app, passwords in zip(apps, found, strict=True):
        by_object = await graph_adapter.list_passwords(
            tenant, graph.AppRef(object_id=app.object_id), "application"
        )
        assert [p.key_id for p in passwords] == [p.key_id for p in by_object], app.client_id
    looked_up = [
        urllib.parse.unquote(e["path"])
        for e in sandbox.requests("graph.getApplication")
        if "appId=" in urllib.parse.unquote(e["path"])
    ]
    assert sorted(looked_up) == sorted(f"/v1.0/applications(appId='{a.client_id}')" for a in apps)


@pytest.mark.parametrize("owner", ["application", "servicePrincipal"])
async def test_graph_client_id_is_resolved_from_the_object_id_once(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter, owner: graph.Owner
) -> None:
    if owner == "application":
        demo = sandbox.demo_application
        object_id = demo.object_id
    else:
        demo = sandbox.demo_service_principal
        assert demo.service_principal_id is not None
        object_id = demo.service_principal_id
    operation = "graph.getApplication" if owner == "application" else "graph.getServicePrincipal"
    app = graph.AppRef(object_id=object_id.upper())  # GUIDs compare case-insensitively
    sandbox.clear_requests()
    for _ in range(3):
        assert await graph_adapter.resolve_client_id(demo.tenant_id, app, owner) == demo.client_id
    # One GET of the object itself, asking only for its appId; cached afterwards.
    (read,) = sandbox.requests(operation)
    assert read["path"].lower().endswith(f"/{object_id}".lower())
    assert read["status"] == 200 and "appId" in urllib.parse.unquote(read["query"])
    # A client id is the answer itself: no call.
    given = graph.AppRef(client_id=demo.client_id)
    assert await graph_adapter.resolve_client_id(demo.tenant_id, given, owner) == demo.client_id
    assert [e["operation"] for e in sandbox.requests() if e["operation"].startswith("graph.")] == [
        operation
    ]


async def test_graph_client_id_look_up_maps_errors_like_the_other_calls(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    demo = sandbox.demo_service_principal
    assert demo.service_principal_id is not None
    tenant = demo.tenant_id
    unknown = graph.AppRef(object_id="99999999-9999-9999-9999-999999999999")
    with pytest.raises(errors.NotFound):
        await graph_adapter.resolve_client_id(tenant, unknown, "servicePrincipal")
    # The service principal's objectId names no application object.
    on_app = graph.AppRef(object_id=demo.service_principal_id)
    with pytest.raises(errors.NotFound):
        await graph_adapter.resolve_client_id(tenant, on_app, "application")
    foreign = sandbox.seed_application("not-ours-either", owners=[])
    assert foreign.service_principal_id is not None
    with pytest.raises(errors.NotOwner, match="must be an owner of that service principal"):
        await graph_adapter.resolve_client_id(
            tenant, graph.AppRef(object_id=foreign.service_principal_id), "servicePrincipal"
        )
    sandbox.add_fault(
        faults.FaultRule("graph.getServicePrincipal", "status", count=1, status=429, retry_after=7)
    )
    sp = graph.AppRef(object_id=demo.service_principal_id)
    with pytest.raises(errors.Throttled) as caught:
        await graph_adapter.resolve_client_id(tenant, sp, "servicePrincipal")
    assert caught.value.retry_after == 7.0
    # Failures are not cached: the next look-up succeeds.
    assert await graph_adapter.resolve_client_id(tenant, sp, "servicePrincipal") == demo.client_id


async def test_graph_password_on_a_service_principal(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter, secrets_seen: list[str]
) -> None:
    demo = sandbox.demo_service_principal
    assert demo.service_principal_id is not None
    for app in (
        graph.AppRef(client_id=demo.client_id),
        graph.AppRef(object_id=demo.service_principal_id),
    ):
        minted = await graph_adapter.add_password(
            demo.tenant_id, app, "servicePrincipal", "rotator-sp-x", in_days(10)
        )
        secrets_seen.append(minted.text.reveal())
        listed = await graph_adapter.list_passwords(demo.tenant_id, app, "servicePrincipal")
        assert minted.key_id in {p.key_id for p in listed}
        await graph_adapter.remove_password(demo.tenant_id, app, "servicePrincipal", minted.key_id)
    # The application object itself holds no password of ours.
    on_app = await graph_adapter.list_passwords(
        demo.tenant_id, graph.AppRef(client_id=demo.client_id), "application"
    )
    assert all(p.display_name != "rotator-sp-x" for p in on_app)


async def test_add_password_is_not_retried_after_a_503(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter, secrets_seen: list[str]
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(client_id=demo.client_id)
    await graph_adapter.list_passwords(demo.tenant_id, app, "application")  # resolve first
    sandbox.clear_requests()
    sandbox.add_fault(
        faults.FaultRule("graph.addPassword", "after", count=1, status=503, retry_after=1)
    )
    with pytest.raises(errors.TransientError) as caught:
        await graph_adapter.add_password(
            demo.tenant_id, app, "application", "rotator-etl-sp-orphan", in_days(30)
        )
    assert_hidden(caught.value, secrets_seen)
    # Exactly one attempt reached Graph: the SDK's retry handler did not mint a second secret.
    assert sandbox.count("graph.addPassword") == 1
    # The write did happen: the caller finds the orphan by its display name.
    listed = await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    assert [p.display_name for p in listed].count("rotator-etl-sp-orphan") == 1


async def test_graph_refuses_apps_the_operator_does_not_own(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    foreign = sandbox.seed_application("not-ours", owners=[])
    app = graph.AppRef(client_id=foreign.client_id)
    with pytest.raises(errors.NotOwner, match="must be an owner of that application"):
        await graph_adapter.list_passwords(foreign.tenant_id, app, "application")
    with pytest.raises(errors.NotOwner):
        await graph_adapter.add_password(
            foreign.tenant_id,
            graph.AppRef(object_id=foreign.object_id),
            "application",
            "rotator-x",
            in_days(1),
        )


async def test_graph_limits_and_policies_are_permanent(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(client_id=demo.client_id)
    sandbox.directory.max_passwords = 1  # the seeded "initial" password fills it
    with pytest.raises(errors.TooManyPasswords) as too_many:
        await graph_adapter.add_password(demo.tenant_id, app, "application", "r-1", in_days(1))
    assert not errors.is_transient(too_many.value)

    sandbox.directory.max_passwords = 10
    sandbox.directory.max_lifetime = datetime.timedelta(days=7).total_seconds()
    with pytest.raises(errors.PermanentError, match=r"spec\.rotation\.validity") as policy:
        await graph_adapter.add_password(demo.tenant_id, app, "application", "r-2", in_days(30))
    assert not errors.is_transient(policy.value)


async def test_graph_concurrent_writes_are_a_transient_conflict(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter, secrets_seen: list[str]
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(client_id=demo.client_id)
    await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    sandbox.directory.write_seconds = 0.5
    results = await asyncio.gather(
        graph_adapter.add_password(demo.tenant_id, app, "application", "r-a", in_days(1)),
        graph_adapter.add_password(demo.tenant_id, app, "application", "r-b", in_days(1)),
        return_exceptions=True,
    )
    minted = [r for r in results if isinstance(r, graph.MintedSecret)]
    conflicts = [r for r in results if isinstance(r, errors.ConcurrencyConflict)]
    secrets_seen.extend(m.text.reveal() for m in minted)
    assert len(minted) == 1 and len(conflicts) == 1
    assert errors.is_transient(conflicts[0])


async def test_graph_throttling_carries_retry_after(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(object_id=demo.object_id)
    sandbox.add_fault(
        faults.FaultRule("graph.getApplication", "status", count=1, status=429, retry_after=7)
    )
    with pytest.raises(errors.Throttled) as caught:
        await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    assert caught.value.retry_after == 7.0


async def test_graph_unknown_application_is_not_found(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    app = graph.AppRef(client_id="99999999-9999-9999-9999-999999999999")
    with pytest.raises(errors.NotFound):
        await graph_adapter.list_passwords(sandbox.demo_application.tenant_id, app, "application")


async def test_graph_retries_idempotent_reads_itself(
    sandbox: stack.Stack, credential: Any, cloud: cloud_settings.CloudSettings
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(object_id=demo.object_id)
    sandbox.add_fault(
        faults.FaultRule("graph.getApplication", "status", count=1, status=503, retry_after=0)
    )
    async with graph.GraphAdapter(credential, cloud, read_retries=2) as adapter:
        listed = await adapter.list_passwords(demo.tenant_id, app, "application")
    assert len(listed) == 1
    assert sandbox.count("graph.getApplication") == 2


# --- Entra: verification -------------------------------------------------------------------


async def test_verification_waits_out_propagation(
    sandbox: stack.Stack,
    graph_adapter: graph.GraphAdapter,
    cloud: cloud_settings.CloudSettings,
    secrets_seen: list[str],
) -> None:
    demo = sandbox.demo_application
    sandbox.directory.propagation_delay = 2.0
    minted = await graph_adapter.add_password(
        demo.tenant_id, graph.AppRef(client_id=demo.client_id), "application", "r", in_days(1)
    )
    secrets_seen.append(minted.text.reveal())
    sandbox.clear_requests()
    started = time.monotonic()
    await identity.verify_client_secret(
        demo.tenant_id,
        demo.client_id,
        minted.text,
        authority=cloud.authority,
        timeout=30,
        ca_bundle=cloud.ca_bundle,
    )
    assert time.monotonic() - started >= 1.5
    tokens = sandbox.requests("entra.token")
    assert len(tokens) >= 2
    assert [t["status"] for t in tokens][-1] == 200
    assert all(t["status"] in (400, 401) for t in tokens[:-1])


async def test_verification_gives_up_at_its_deadline_as_retryable(
    sandbox: stack.Stack,
    graph_adapter: graph.GraphAdapter,
    cloud: cloud_settings.CloudSettings,
    secrets_seen: list[str],
) -> None:
    demo = sandbox.demo_application
    sandbox.directory.propagation_delay = 600.0
    minted = await graph_adapter.add_password(
        demo.tenant_id, graph.AppRef(client_id=demo.client_id), "application", "r", in_days(1)
    )
    secrets_seen.append(minted.text.reveal())
    with pytest.raises(errors.VerificationFailed) as caught:
        await identity.verify_client_secret(
            demo.tenant_id,
            demo.client_id,
            minted.text,
            authority=cloud.authority,
            timeout=2,
            ca_bundle=cloud.ca_bundle,
        )
    assert caught.value.kind == "propagation" and errors.is_transient(caught.value)
    assert "AADSTS7000215" in str(caught.value)
    assert_hidden(caught.value, secrets_seen)


async def test_verification_of_an_expired_secret_fails_at_once(
    sandbox: stack.Stack, cloud: cloud_settings.CloudSettings, secrets_seen: list[str]
) -> None:
    demo = sandbox.demo_application
    holder = sandbox.directory.tenant(demo.tenant_id).find(  # type: ignore[union-attr]
        "application", object_id=demo.object_id
    )
    assert holder is not None
    start = datetime.datetime.now(UTC) - datetime.timedelta(days=10)
    expired = sandbox.directory.add_password(
        holder, start=start, end=start + datetime.timedelta(days=1), propagated=True
    )
    secrets_seen.append(expired.secret_text)
    sandbox.clear_requests()
    with pytest.raises(errors.VerificationFailed) as caught:
        await identity.verify_client_secret(
            demo.tenant_id,
            demo.client_id,
            sensitive.SecretText(expired.secret_text),
            authority=cloud.authority,
            timeout=30,
            ca_bundle=cloud.ca_bundle,
        )
    assert caught.value.kind == "expired" and not errors.is_transient(caught.value)
    assert sandbox.count("entra.token") == 1
    assert_hidden(caught.value, secrets_seen)


async def test_verification_in_an_unknown_tenant_is_permanent(
    sandbox: stack.Stack, cloud: cloud_settings.CloudSettings
) -> None:
    with pytest.raises(errors.VerificationFailed) as caught:
        await identity.verify_client_secret(
            "12345678-0000-0000-0000-000000000000",
            sandbox.demo_application.client_id,
            sensitive.SecretText("abc8Q~whatever-it-is"),
            authority=cloud.authority,
            timeout=30,
            ca_bundle=cloud.ca_bundle,
        )
    assert caught.value.kind == "tenant"


# --- Key Vault --------------------------------------------------------------------------------


async def test_keyvault_versions(
    sandbox: stack.Stack, vault: keyvault.KeyVaultAdapter, secrets_seen: list[str]
) -> None:
    url = sandbox.keyvault_urls[0]
    assert await vault.latest(url, "etl-sp-client-secret") is None
    value = sensitive.SecretText("abc8Q~first-value-of-the-secret")
    secrets_seen.append(value.reveal())
    expires = in_days(90).replace(microsecond=0)
    stored = await vault.set(
        url,
        "etl-sp-client-secret",
        value,
        expires_on=expires,
        content_type="text/plain",
        tags={"rotator.dev/key-id": "k1"},
    )
    assert stored.enabled and stored.tags == {"rotator.dev/key-id": "k1"}
    assert stored.expires_on == expires and stored.content_type == "text/plain"
    assert await vault.read(url, "etl-sp-client-secret", stored.version) == value

    latest = await vault.latest(url, "etl-sp-client-secret")
    assert latest is not None and latest.version == stored.version

    await vault.disable(url, "etl-sp-client-secret", stored.version)
    disabled = await vault.latest(url, "etl-sp-client-secret")
    # A disabled latest is reported as such (consumers would fail), not as a 403.
    assert disabled is not None and disabled.version == stored.version and not disabled.enabled


async def test_keyvault_soft_deleted_name_is_permanent(
    sandbox: stack.Stack, vault: keyvault.KeyVaultAdapter
) -> None:
    url = sandbox.keyvault_urls[0]
    service = next(s for s in sandbox.services if s.kind == "keyvault")
    await vault.set(url, "gone", sensitive.SecretText("value-one"))
    service.state.delete_secret("gone")
    with pytest.raises(errors.PermanentError, match="recover") as caught:
        await vault.set(url, "gone", sensitive.SecretText("value-two"))
    assert "purge" in str(caught.value)
    assert "value-two" not in str(caught.value)


async def test_keyvault_throttling_and_missing_versions(
    sandbox: stack.Stack, vault: keyvault.KeyVaultAdapter
) -> None:
    url = sandbox.keyvault_urls[0]
    stored = await vault.set(url, "busy", sensitive.SecretText("value"))
    sandbox.add_fault(
        faults.FaultRule("keyvault.getSecret", "status", count=3, status=429, retry_after=1)
    )
    with pytest.raises(errors.Throttled) as caught:
        await vault.read(url, "busy", stored.version)
    assert caught.value.retry_after == 1.0
    sandbox.clear_faults()
    with pytest.raises(errors.NotFound):
        await vault.read(url, "busy", "0" * 32)


# --- Databricks -------------------------------------------------------------------------------

CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", "num_workers": 1}


async def test_databricks_scopes_and_secrets(workspace: Any, secrets_seen: list[str]) -> None:
    state, adapter = workspace
    assert await adapter.get_scope("etl") is None
    await adapter.create_scope("etl")
    await adapter.create_scope("etl")  # already there: fine
    scope = await adapter.get_scope("etl")
    assert scope == databricks.ScopeInfo(name="etl", backend="DATABRICKS")
    value = sensitive.SecretText("abc8Q~the-value-in-databricks")
    secrets_seen.append(value.reveal())
    await adapter.put_secret("etl", "client-secret", value)
    assert "client-secret" in state.scopes["etl"].secrets


async def test_databricks_keyvault_backed_scope_is_read_only(
    workspace: Any, secrets_seen: list[str]
) -> None:
    state, adapter = workspace
    state.create_scope(
        state.aad(),
        "kv",
        backend_type="AZURE_KEYVAULT",
        keyvault={
            "resource_id": "/subscriptions/x/vaults/kv",
            "dns_name": "https://kv.vault.azure.net/",
        },
    )
    scope = await adapter.get_scope("kv")
    assert scope is not None and scope.backend == "AZURE_KEYVAULT"
    assert scope.keyvault_dns == "https://kv.vault.azure.net/"
    value = sensitive.SecretText("abc8Q~must-not-be-written")
    secrets_seen.append(value.reveal())
    with pytest.raises(errors.PermanentError) as caught:
        await adapter.put_secret("kv", "client-secret", value)
    assert_hidden(caught.value, secrets_seen)


async def test_databricks_jobs_are_pointed_at_the_scope(workspace: Any) -> None:
    state, adapter = workspace
    job = state.create_job(
        state.aad(),
        {
            "name": "nightly-etl",
            "job_clusters": [{"job_cluster_key": "main", "new_cluster": dict(CLUSTER)}],
            "tasks": [
                {
                    "task_key": "a",
                    "job_cluster_key": "main",
                    "notebook_task": {"notebook_path": "/a"},
                },
                {
                    "task_key": "b",
                    "new_cluster": dict(CLUSTER),
                    "notebook_task": {"notebook_path": "/b"},
                },
            ],
        },
    )
    job_id = await adapter.resolve_job(job_name="nightly-etl")
    assert job_id == job.job_id
    assert await adapter.resolve_job(job_id=job.job_id) == job.job_id

    settings = await adapter.get_job_settings(job_id)
    assert settings["name"] == "nightly-etl"
    update = jobrefs.ensure_secret_refs(
        settings, "etl", "client-secret", ["AZURE_CLIENT_SECRET"], ["fs.azure.secret"]
    )
    assert update is not None
    await adapter.update_job(job_id, update)

    after = await adapter.get_job_settings(job_id)
    ref = "{{secrets/etl/client-secret}}"
    assert after["job_clusters"][0]["new_cluster"]["spark_env_vars"] == {"AZURE_CLIENT_SECRET": ref}
    assert after["tasks"][1]["new_cluster"]["spark_conf"] == {"fs.azure.secret": ref}
    assert after["tasks"][0]["notebook_task"] == {"notebook_path": "/a"}
    assert (
        jobrefs.ensure_secret_refs(
            after, "etl", "client-secret", ["AZURE_CLIENT_SECRET"], ["fs.azure.secret"]
        )
        is None
    )


async def test_databricks_job_names_must_be_unique_and_exist(workspace: Any) -> None:
    state, adapter = workspace
    for _ in range(2):
        state.create_job(state.aad(), {"name": "twin", "tasks": []})
    with pytest.raises(errors.PermanentError, match="2 jobs are named 'twin'"):
        await adapter.resolve_job(job_name="twin")
    with pytest.raises(errors.NotFound):
        await adapter.resolve_job(job_name="nobody")
    with pytest.raises(errors.NotFound):
        await adapter.get_job_settings(987654)


async def test_databricks_continuous_job_restarts_when_its_run_is_cancelled(workspace: Any) -> None:
    state, adapter = workspace
    job = state.create_job(
        state.aad(),
        {
            "name": "stream",
            "continuous": {"pause_status": "UNPAUSED"},
            "tasks": [
                {
                    "task_key": "s",
                    "new_cluster": dict(CLUSTER),
                    "notebook_task": {"notebook_path": "/s"},
                }
            ],
        },
    )
    runs = await adapter.active_runs(job.job_id)
    assert len(runs) == 1
    await adapter.cancel_run(runs[0])
    again = await adapter.active_runs(job.job_id)
    assert len(again) == 1 and again != runs


async def test_databricks_with_a_personal_access_token(
    sandbox: stack.Stack, workspace: Any, cloud: cloud_settings.CloudSettings
) -> None:
    state, _ = workspace
    host = next(s for s in sandbox.services if s.kind == "databricks").url
    state.add_pat("dapi-good-token")
    good = databricks.DatabricksAdapter(host, cloud, token=sensitive.SecretText("dapi-good-token"))
    await good.create_scope("pat-scope")
    assert await good.get_scope("pat-scope") is not None
    await good.close()
    assert await good.get_scope("pat-scope") is not None  # rebuilt after close
    await good.close()
    bad = databricks.DatabricksAdapter(host, cloud, token=sensitive.SecretText("dapi-wrong-token"))
    async with bad:
        with pytest.raises(errors.NotAuthorized) as caught:
            await bad.get_scope("pat-scope")
    assert "dapi-wrong-token" not in str(caught.value)


async def test_databricks_throttling_is_transient_with_retry_after(
    sandbox: stack.Stack, workspace: Any, cloud: cloud_settings.CloudSettings
) -> None:
    host = next(s for s in sandbox.services if s.kind == "databricks").url
    impatient = cloud_settings.CloudSettings(
        authority_host=cloud.authority_host,
        ca_bundle=cloud.ca_bundle,
        tenant_id=cloud.tenant_id,
        client_id=cloud.client_id,
        client_secret=cloud.client_secret,
        databricks_retry_timeout_seconds=2,
    )
    adapter = databricks.DatabricksAdapter(
        host,
        impatient,
        credentials=identity.DatabricksCredentials(identity.sync_credential(impatient)),
    )
    sandbox.add_fault(
        faults.FaultRule("*", "status", count=100, status=429, retry_after=1), url=host
    )
    with pytest.raises(errors.Throttled) as caught:
        await adapter.get_scope("etl")
    assert caught.value.retry_after == 1.0


async def test_databricks_refused_connection_fails_fast(
    cloud: cloud_settings.CloudSettings,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on `port` now. The production defaults, not a test-only budget.
    defaults = cloud_settings.CloudSettings(ca_bundle=cloud.ca_bundle)
    adapter = databricks.DatabricksAdapter(
        f"https://127.0.0.1:{port}", defaults, token=sensitive.SecretText("dapi-x")
    )
    started = time.monotonic()
    with pytest.raises(errors.TransientError, match="gave up retrying"):
        await adapter.get_scope("etl")
    elapsed = time.monotonic() - started
    assert elapsed < 45, elapsed
