"""Every adapter through every row of the failure corpus, and "exactly one write", for real.

The emulators answer each recorded error body (``tests/core/corpus/*.json``) byte for byte with
the ``respond`` fault, the real SDK (azure-identity, msgraph-sdk, azure-keyvault-secrets,
databricks-sdk) parses it, and our adapter must classify it as the row says: transient with
the right delay, permanent with the right reason, or NotAuthorized naming what is missing.
No message may carry HTML or a secret.

Then the writes we promise happen once:

- Key Vault ``set`` under a 5xx returned *after* the write: one request, one version in the
  emulator's state, and the adapter returns the version that landed.
- Graph ``removePassword`` confirmation: an object read back without ``passwordCredentials``
  is not proof of removal.
- Databricks lists that come back ``null`` are empty lists, not errors.
"""

from __future__ import annotations

import datetime
import logging
import pathlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tests.core import corpus

from rotator.clouds import databricks, graph, identity, keyvault
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, reasons, sensitive
from rotator.sandbox import faults, stack

pytestmark = pytest.mark.e2e

UTC = datetime.UTC


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
def secrets_seen(sandbox: stack.Stack) -> list[str]:
    return [sandbox.operator.secret_text]


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture, secrets_seen: list[str]) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    for value in secrets_seen:
        assert value not in caplog.text


def respond(row: dict[str, Any], operation: str, *, count: int = 100) -> faults.FaultRule:
    """The fault that makes ``operation`` answer exactly what the service answered."""
    return faults.FaultRule(
        operation,
        "respond",
        count=count,
        status=row["status"],
        body=corpus.body_text(row),
        headers=dict(row.get("headers", {})),
    )


def check(exc: BaseException, row: dict[str, Any], secrets_seen: list[str]) -> None:
    """``exc`` is what the row's ``expect`` says, and its message is clean."""
    expect = row["expect"]
    text = f"{exc} {exc!r}"
    assert "<" not in str(exc), str(exc)
    for value in secrets_seen:
        assert value not in text
    assert errors.is_transient(exc) is expect["transient"], str(exc)
    if expect["outcome"] == "permission":
        assert isinstance(exc, errors.NotAuthorized), repr(exc)
    if expect["outcome"] == "transient":
        assert isinstance(exc, errors.TransientError), repr(exc)
        assert errors.retry_after(exc) == expect["delay"], str(exc)
        assert exc.reason == expect["reason"]
    elif expect.get("verification"):
        assert isinstance(exc, errors.VerificationFailed), repr(exc)
        assert exc.kind == expect["verification"]
    else:
        assert isinstance(exc, errors.PermanentError), repr(exc)
        assert exc.reason == expect["reason"], str(exc)
    if row.get("text"):
        assert f"HTTP {row['status']} with a non-JSON body" in str(exc)


# --- Key Vault --------------------------------------------------------------------------------

KEYVAULT = corpus.rows("keyvault")


@pytest.mark.parametrize("row", KEYVAULT, ids=[r["name"] for r in KEYVAULT])
async def test_keyvault_adapter_classifies_every_row(
    sandbox: stack.Stack,
    credential: Any,
    cloud: cloud_settings.CloudSettings,
    secrets_seen: list[str],
    row: dict[str, Any],
) -> None:
    url = sandbox.keyvault_urls[0]
    async with keyvault.KeyVaultAdapter(credential, cloud, read_retries=0) as vault:
        stored = await vault.set(url, "corpus", sensitive.SecretText("abc8Q~corpus-value"))
        secrets_seen.append("abc8Q~corpus-value")
        sandbox.clear_requests()
        sandbox.add_fault(respond(row, "keyvault.getSecret"))
        with pytest.raises(errors.RotatorError) as caught:
            await vault.read(url, "corpus", stored.version)
    check(caught.value, row, secrets_seen)
    assert sandbox.count("keyvault.getSecret") >= 1


async def test_keyvault_disabled_latest_is_a_state_not_a_missing_role(
    sandbox: stack.Stack, credential: Any, cloud: cloud_settings.CloudSettings
) -> None:
    (row,) = [r for r in KEYVAULT if r["name"] == "keyvault-403-disabled-version"]
    url = sandbox.keyvault_urls[0]
    async with keyvault.KeyVaultAdapter(credential, cloud, read_retries=0) as vault:
        stored = await vault.set(url, "corpus", sensitive.SecretText("abc8Q~corpus-value"))
        sandbox.add_fault(respond(row, "keyvault.getSecret", count=1))
        latest = await vault.latest(url, "corpus")
    # The 403 sent the adapter to the version list: it reports the latest, not NotAuthorized.
    assert latest is not None and latest.version == stored.version
    assert sandbox.count("keyvault.getSecretVersions") == 1


@pytest.mark.parametrize("status", [500, 503])
async def test_keyvault_set_writes_once_and_finds_what_landed(
    sandbox: stack.Stack,
    credential: Any,
    cloud: cloud_settings.CloudSettings,
    secrets_seen: list[str],
    status: int,
) -> None:
    url = sandbox.keyvault_urls[0]
    value = sensitive.SecretText("abc8Q~written-exactly-once")
    secrets_seen.append(value.reveal())
    tags = {"rotator.dev/rotation-id": "r-1", "rotator.dev/key-id": "k-1"}
    # The adapter as production builds it: azure-core may retry reads, never the write.
    async with keyvault.KeyVaultAdapter(credential, cloud) as vault:
        await vault.latest(url, "once")  # the challenge handshake, before counting
        sandbox.clear_requests()
        sandbox.add_fault(faults.FaultRule("keyvault.setSecret", "after", count=3, status=status))
        stored = await vault.set(url, "once", value, tags=tags)
    service = next(s for s in sandbox.services if s.kind == "keyvault" and s.url == url)
    secret = service.state.snapshot()["secrets"]["once"]
    assert len(secret["versions"]) == 1
    assert sandbox.count("keyvault.setSecret") == 1
    assert stored.version == secret["versions"][0]["version"] and stored.tags == tags


async def test_keyvault_set_that_did_not_land_is_transient_and_not_repeated(
    sandbox: stack.Stack, credential: Any, cloud: cloud_settings.CloudSettings
) -> None:
    url = sandbox.keyvault_urls[0]
    async with keyvault.KeyVaultAdapter(credential, cloud) as vault:
        await vault.set(url, "twice", sensitive.SecretText("abc8Q~older-value"), tags={"a": "1"})
        sandbox.clear_requests()
        sandbox.add_fault(faults.FaultRule("keyvault.setSecret", "status", count=3, status=503))
        with pytest.raises(errors.TransientError):
            await vault.set(
                url, "twice", sensitive.SecretText("abc8Q~newer-value"), tags={"a": "2"}
            )
    assert sandbox.count("keyvault.setSecret") == 1
    service = next(s for s in sandbox.services if s.kind == "keyvault" and s.url == url)
    secret = service.state.snapshot()["secrets"]["twice"]
    assert [v["tags"] for v in secret["versions"]] == [{"a": "1"}]


# --- Graph ------------------------------------------------------------------------------------

GRAPH = corpus.rows("graph")


@pytest.fixture
async def graph_adapter(
    credential: Any, cloud: cloud_settings.CloudSettings
) -> AsyncIterator[graph.GraphAdapter]:
    async with graph.GraphAdapter(credential, cloud, read_retries=0) as adapter:
        yield adapter


@pytest.mark.parametrize("row", GRAPH, ids=[r["name"] for r in GRAPH])
async def test_graph_adapter_classifies_every_row(
    sandbox: stack.Stack,
    graph_adapter: graph.GraphAdapter,
    secrets_seen: list[str],
    row: dict[str, Any],
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(object_id=demo.object_id)
    sandbox.add_fault(respond(row, "graph.getApplication"))
    with pytest.raises(errors.RotatorError) as caught:
        await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    check(caught.value, row, secrets_seen)
    if row["expect"]["cause"] == "not-owner":
        assert isinstance(caught.value, errors.NotOwner)
        assert "Application.ReadWrite.OwnedBy" in str(caught.value)


async def test_graph_add_password_is_sent_once_whatever_graph_answers(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter, secrets_seen: list[str]
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(object_id=demo.object_id)
    for row in GRAPH:
        if not row["expect"]["transient"]:
            continue
        sandbox.clear_requests()
        sandbox.add_fault(respond(row, "graph.addPassword", count=1))
        end = datetime.datetime.now(UTC) + datetime.timedelta(days=1)
        with pytest.raises(errors.TransientError) as caught:
            await graph_adapter.add_password(demo.tenant_id, app, "application", "r-once", end)
        check(caught.value, row, secrets_seen)
        assert sandbox.count("graph.addPassword") == 1, row["name"]


async def test_remove_password_is_not_confirmed_by_an_answer_without_the_list(
    sandbox: stack.Stack, graph_adapter: graph.GraphAdapter
) -> None:
    demo = sandbox.demo_application
    app = graph.AppRef(object_id=demo.object_id)
    (initial,) = await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    # removePassword fails (as for an unknown keyId), and the re-read comes back without
    # passwordCredentials: that is no proof the credential is gone.
    sandbox.add_fault(
        faults.FaultRule(
            "graph.removePassword",
            "respond",
            count=1,
            status=400,
            body='{"error": {"code": "Request_BadRequest", "message": "Invalid keyId."}}',
            headers={"Content-Type": "application/json"},
        )
    )
    sandbox.add_fault(
        faults.FaultRule(
            "graph.getApplication",
            "respond",
            count=1,
            status=200,
            body=f'{{"id": "{demo.object_id}"}}',
            headers={"Content-Type": "application/json"},
        )
    )
    with pytest.raises(errors.TransientError, match="without the passwordCredentials"):
        await graph_adapter.remove_password(demo.tenant_id, app, "application", initial.key_id)
    # The credential is indeed still there.
    listed = await graph_adapter.list_passwords(demo.tenant_id, app, "application")
    assert [p.key_id for p in listed] == [initial.key_id]


# --- Databricks -------------------------------------------------------------------------------

DATABRICKS = corpus.rows("databricks")


@pytest.fixture
def workspace(sandbox: stack.Stack, cloud: cloud_settings.CloudSettings) -> Any:
    """The Databricks emulator and an adapter whose SDK gives up retrying after 2 s."""
    service = next(s for s in sandbox.services if s.kind == "databricks")
    impatient = cloud_settings.CloudSettings(
        authority_host=cloud.authority_host,
        ca_bundle=cloud.ca_bundle,
        tenant_id=cloud.tenant_id,
        client_id=cloud.client_id,
        client_secret=cloud.client_secret,
        databricks_retry_timeout_seconds=2,
    )
    strategy = identity.DatabricksCredentials(identity.sync_credential(impatient))
    return service, databricks.DatabricksAdapter(service.url, impatient, credentials=strategy)


@pytest.mark.parametrize("row", DATABRICKS, ids=[r["name"] for r in DATABRICKS])
async def test_databricks_adapter_classifies_every_row(
    sandbox: stack.Stack, workspace: Any, secrets_seen: list[str], row: dict[str, Any]
) -> None:
    service, adapter = workspace
    async with adapter:
        await adapter.get_scope("etl")  # the client is built and authenticated first
        sandbox.add_fault(respond(row, "databricks.listScopes"), url=service.url)
        with pytest.raises(errors.RotatorError) as caught:
            await adapter.get_scope("etl")
    check(caught.value, row, secrets_seen)


async def test_databricks_501_is_asked_once(sandbox: stack.Stack, workspace: Any) -> None:
    (row,) = [r for r in DATABRICKS if r["name"] == "databricks-501-not-implemented"]
    service, adapter = workspace
    async with adapter:
        await adapter.get_scope("etl")
        sandbox.clear_requests()
        sandbox.add_fault(respond(row, "databricks.listScopes"), url=service.url)
        with pytest.raises(errors.PermanentError) as caught:
            await adapter.get_scope("etl")
    assert caught.value.reason == reasons.DATABRICKS_ERROR
    assert sandbox.count("databricks.listScopes") == 1


async def test_databricks_null_lists_are_empty_lists(sandbox: stack.Stack, workspace: Any) -> None:
    service, adapter = workspace
    ok = {"Content-Type": "application/json"}
    async with adapter:
        for operation, body in (
            ("databricks.listScopes", '{"scopes": null}'),
            ("databricks.jobsList", '{"jobs": null, "has_more": false}'),
            ("databricks.runsList", '{"runs": null, "has_more": false}'),
        ):
            sandbox.add_fault(
                faults.FaultRule(operation, "respond", count=1, status=200, body=body, headers=ok),
                url=service.url,
            )
        assert await adapter.get_scope("etl") is None
        with pytest.raises(errors.NotFound):
            await adapter.resolve_job(job_name="nightly")
        assert await adapter.active_runs(7) == []


# --- Entra (verifying a new secret) -----------------------------------------------------------

ENTRA = corpus.rows("entra")


@pytest.mark.parametrize("row", ENTRA, ids=[r["name"] for r in ENTRA])
async def test_verification_classifies_every_token_answer(
    sandbox: stack.Stack,
    cloud: cloud_settings.CloudSettings,
    secrets_seen: list[str],
    row: dict[str, Any],
) -> None:
    demo = sandbox.demo_application
    secret = sensitive.SecretText("abc8Q~a-secret-being-verified")
    secrets_seen.append(secret.reveal())
    # A clock that the verifier's own sleeps move: the retry schedule runs in no time.
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    sandbox.clear_requests()
    sandbox.add_fault(respond(row, "entra.token", count=1000))
    with pytest.raises(errors.RotatorError) as caught:
        await identity.verify_client_secret(
            demo.tenant_id,
            demo.client_id,
            secret,
            authority=cloud.authority,
            timeout=30,
            ca_bundle=cloud.ca_bundle,
            sleep=sleep,
            clock=lambda: now[0],
        )
    check(caught.value, row, secrets_seen)
    asked = sandbox.count("entra.token")
    if row["expect"]["transient"]:
        # Retried until the deadline, never sooner than Entra asked.
        assert asked >= 2 and len(slept) >= 2
        # Every wait but the last (cut short by the deadline) honours Retry-After.
        assert all(s >= (row["expect"].get("delay") or 0) for s in slept[:-1]), slept
        assert abs(sum(slept) - 30) < 1e-6
    else:
        # Settled at the first answer: no second token request.
        assert asked == 1 and not slept


async def test_a_throttled_verification_then_succeeds(
    sandbox: stack.Stack, cloud: cloud_settings.CloudSettings, secrets_seen: list[str]
) -> None:
    (row,) = [r for r in ENTRA if r["name"] == "entra-429-throttled-no-aadsts"]
    seeded = sandbox.seed_application("verify-after-429")
    text = seeded.secret_text
    secrets_seen.append(text)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    sandbox.add_fault(respond(row, "entra.token", count=1))
    await identity.verify_client_secret(
        seeded.tenant_id,
        seeded.client_id,
        sensitive.SecretText(text),
        authority=cloud.authority,
        timeout=60,
        ca_bundle=cloud.ca_bundle,
        sleep=sleep,
    )
    assert slept == [7.0]  # Retry-After, not the one-second first backoff
