"""The real databricks-sdk WorkspaceClient against our Databricks emulator, over real HTTPS.

databricks-sdk is synchronous (requests), so the emulator runs on its own event loop in a
thread and the tests are plain functions. The client trusts the sandbox CA through
REQUESTS_CA_BUNDLE (Config has no CA option) and is built with short retry and HTTP timeouts,
as the operator must build it.

What is pinned here is what the operator relies on: the calls it makes, the jobs/update merge
rules, the continuous-job restart, and the exception classes the SDK raises for each error.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import pathlib
import ssl
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    BadRequest,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceDoesNotExist,
    TooManyRequests,
)
from databricks.sdk.service import compute, jobs, workspace

from rotator.sandbox import databricks, server, tls

pytestmark = pytest.mark.e2e

PAT = "dapi-contract-admin"
READER_PAT = "dapi-contract-reader"
AAD_TOKEN = "eyJ.aad-token-for-the-operator"


class Workspace:
    """The emulator on a private event loop in a thread, for a synchronous SDK."""

    def __init__(
        self, directory: pathlib.Path, verify_token: Callable[[str, str], bool] | None
    ) -> None:
        self.ca = tls.SandboxCA(directory)
        self.state = databricks.DatabricksState()
        self.state.add_pat(PAT)
        self.state.add_pat(READER_PAT, "reader@sandbox.local", admin=False)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        app = databricks.make_app(self.state, verify_token=verify_token)
        future = asyncio.run_coroutine_threadsafe(
            server.serve(app, self.ca.server_context()), self._loop
        )
        self._running = future.result(timeout=30)
        self.url = self._running.url

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._running.stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def client(self, token: str = PAT) -> WorkspaceClient:
        config = Config(
            host=self.url, token=token, retry_timeout_seconds=20, http_timeout_seconds=10
        )
        return WorkspaceClient(config=config)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        ctx = ssl.create_default_context(cafile=str(self.ca.bundle_path))
        with urllib.request.urlopen(request, context=ctx, timeout=10) as response:
            raw = response.read()
        return json.loads(raw) if raw else None


@pytest.fixture
def ws(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    for name in ("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CONFIG_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    workspace_ = Workspace(tmp_path / "ca", verify_token=None)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(workspace_.ca.bundle_path))
    try:
        yield workspace_
    finally:
        workspace_.stop()


def _cluster(env: dict[str, str], **extra: Any) -> compute.ClusterSpec:
    return compute.ClusterSpec(
        spark_version="15.4.x-scala2.12",
        node_type_id="Standard_DS3_v2",
        num_workers=1,
        spark_env_vars=env,
        **extra,
    )


def test_client_reads_the_host_metadata(ws: Workspace) -> None:
    w = ws.client()
    assert w.config.workspace_id == str(ws.state.workspace_id)
    assert w.config.is_azure
    assert w.current_user.me().user_name == "admin@sandbox.local"
    log = ws.control("GET", "/_sandbox/requests?operation=databricks.hostMetadata")
    assert [e["status"] for e in log] == [200]


def test_secret_scope_lifecycle(ws: Workspace) -> None:
    w = ws.client()
    w.secrets.create_scope("etl")
    assert [(s.name, s.backend_type) for s in w.secrets.list_scopes()] == [
        ("etl", workspace.ScopeBackendType.DATABRICKS)
    ]
    w.secrets.put_secret("etl", "client-secret", string_value="first")
    w.secrets.put_secret("etl", "client-secret", string_value="second")  # overwrites
    (listed,) = w.secrets.list_secrets("etl")
    assert listed.key == "client-secret"
    assert listed.last_updated_timestamp is not None and listed.last_updated_timestamp > 0
    got = w.secrets.get_secret("etl", "client-secret")
    assert got.value is not None and base64.b64decode(got.value) == b"second"
    state = ws.control("GET", "/_sandbox/state")
    assert state["scopes"]["etl"]["keys"]["client-secret"]["sha256"] == (
        hashlib.sha256(b"second").hexdigest()
    )
    assert "second" not in json.dumps(state)

    with pytest.raises(ResourceAlreadyExists):
        w.secrets.create_scope("etl")
    with pytest.raises(ResourceDoesNotExist) as caught:
        w.secrets.put_secret("nope", "k", string_value="x")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert isinstance(caught.value, NotFound)
    with pytest.raises(InvalidParameterValue):
        w.secrets.put_secret("etl", "bad key!", string_value="x")

    w.secrets.delete_secret("etl", "client-secret")
    assert list(w.secrets.list_secrets("etl")) == []
    with pytest.raises(ResourceDoesNotExist):
        w.secrets.delete_secret("etl", "client-secret")
    w.secrets.delete_scope("etl")
    assert list(w.secrets.list_scopes()) == []


def test_key_vault_backed_scope_is_read_only(ws: Workspace) -> None:
    kv = workspace.AzureKeyVaultSecretScopeMetadata(
        resource_id="/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/kv",
        dns_name="https://kv.vault.azure.net/",
    )
    with pytest.raises(InvalidParameterValue) as caught:  # a PAT cannot create one
        ws.client().secrets.create_scope(
            "kv",
            scope_backend_type=workspace.ScopeBackendType.AZURE_KEYVAULT,
            backend_azure_keyvault=kv,
        )
    assert "userAADToken" in str(caught.value)

    aad = ws.client(AAD_TOKEN)  # not a registered PAT: an Azure AD token (verify_token=None)
    aad.secrets.create_scope(
        "kv",
        scope_backend_type=workspace.ScopeBackendType.AZURE_KEYVAULT,
        backend_azure_keyvault=kv,
    )
    (scope,) = aad.secrets.list_scopes()
    assert scope.backend_type == workspace.ScopeBackendType.AZURE_KEYVAULT
    assert scope.keyvault_metadata is not None
    assert scope.keyvault_metadata.dns_name == "https://kv.vault.azure.net/"
    with pytest.raises(BadRequest) as rejected:
        aad.secrets.put_secret("kv", "client-secret", string_value="x")
    assert rejected.value.error_code == "BAD_REQUEST"
    assert "Cannot write secrets to Azure KeyVault-backed scope" in str(rejected.value)


def test_acls_and_permission_denied(ws: Workspace) -> None:
    w = ws.client()
    w.secrets.create_scope("etl")
    w.secrets.put_acl("etl", "reader@sandbox.local", workspace.AclPermission.READ)
    acl = w.secrets.get_acl("etl", "reader@sandbox.local")
    assert acl.permission == workspace.AclPermission.READ
    assert {(a.principal, a.permission) for a in w.secrets.list_acls("etl")} == {
        ("admin@sandbox.local", workspace.AclPermission.MANAGE),
        ("reader@sandbox.local", workspace.AclPermission.READ),
    }
    reader = ws.client(READER_PAT)
    assert list(reader.secrets.list_secrets("etl")) == []
    with pytest.raises(PermissionDenied):
        reader.secrets.put_secret("etl", "k", string_value="x")
    w.secrets.delete_acl("etl", "reader@sandbox.local")
    with pytest.raises(ResourceDoesNotExist):
        w.secrets.get_acl("etl", "reader@sandbox.local")


def test_jobs_update_merges_by_key_and_reset_replaces(ws: Workspace) -> None:
    w = ws.client()
    created = w.jobs.create(
        name="nightly-etl",
        tags={"team": "data"},
        schedule=jobs.CronSchedule(quartz_cron_expression="0 0 2 * * ?", timezone_id="UTC"),
        job_clusters=[
            jobs.JobCluster("main", _cluster({"A": "1"}, spark_conf={"x": "y"})),
            jobs.JobCluster("side", _cluster({"B": "2"})),
        ],
        tasks=[
            jobs.Task("ingest", job_cluster_key="main", notebook_task=jobs.NotebookTask("/a")),
            jobs.Task("old", job_cluster_key="side", notebook_task=jobs.NotebookTask("/b")),
        ],
    )
    assert created.job_id is not None
    job_id = created.job_id

    secret_ref = "{{secrets/etl/client-secret}}"
    w.jobs.update(
        job_id,
        new_settings=jobs.JobSettings(
            tags={"owner": "rotator"},
            job_clusters=[jobs.JobCluster("main", _cluster({"AZURE_CLIENT_SECRET": secret_ref}))],
            tasks=[
                jobs.Task("report", job_cluster_key="main", notebook_task=jobs.NotebookTask("/c"))
            ],
        ),
        fields_to_remove=["schedule", "tasks/old"],
    )
    settings = w.jobs.get(job_id).settings
    assert settings is not None
    assert settings.name == "nightly-etl"  # untouched top-level field kept
    assert settings.schedule is None  # removed
    assert settings.tags == {"owner": "rotator"}  # a top-level field is replaced whole
    clusters = {c.job_cluster_key: c.new_cluster for c in settings.job_clusters or []}
    assert clusters["side"] is not None and clusters["side"].spark_env_vars == {"B": "2"}
    main = clusters["main"]
    assert main is not None
    assert main.spark_env_vars == {"AZURE_CLIENT_SECRET": secret_ref}
    assert main.spark_conf is None  # the matching entry was replaced whole, not deep-merged
    assert [t.task_key for t in settings.tasks or []] == ["ingest", "report"]

    with pytest.raises(InvalidParameterValue):  # a task pointing at an undefined job cluster
        w.jobs.update(
            job_id,
            new_settings=jobs.JobSettings(
                tasks=[
                    jobs.Task(
                        "bad", job_cluster_key="missing", notebook_task=jobs.NotebookTask("/d")
                    )
                ]
            ),
        )

    w.jobs.reset(job_id, jobs.JobSettings(name="renamed", max_concurrent_runs=1))
    reset = w.jobs.get(job_id).settings
    assert reset is not None
    assert (reset.name, reset.tags) == ("renamed", None)
    assert not reset.job_clusters  # the SDK renders an absent list as [] or None


def test_jobs_list_by_name_pages_through_everything(ws: Workspace) -> None:
    w = ws.client()
    made = {w.jobs.create(name="bulk").job_id for _ in range(23)}
    w.jobs.create(name="other")
    found = {j.job_id for j in w.jobs.list(name="BULK")}  # exact name, case-insensitive
    assert found == made
    log = ws.control("GET", "/_sandbox/requests?operation=databricks.jobsList")
    assert len(log) == 2  # 20 per page by default: the SDK followed next_page_token once


def test_missing_jobs_runs_and_clusters(ws: Workspace) -> None:
    w = ws.client()
    with pytest.raises(ResourceDoesNotExist):  # 400 + the SDK's override for jobs/get
        w.jobs.get(424242)
    with pytest.raises(ResourceDoesNotExist):
        w.jobs.get_run(424242)
    with pytest.raises(ResourceDoesNotExist):
        w.clusters.get("0000-000000-missing")
    # Writes on a missing job are plain INVALID_PARAMETER_VALUE: the SDK has no override there.
    with pytest.raises(InvalidParameterValue) as caught:
        w.jobs.update(424242, new_settings=jobs.JobSettings(name="x"))
    assert not isinstance(caught.value, NotFound)
    assert "does not exist" in str(caught.value)
    with pytest.raises(InvalidParameterValue):
        w.jobs.run_now(424242)
    with pytest.raises(InvalidParameterValue):
        w.jobs.cancel_run(424242)


def test_continuous_job_restarts_with_a_new_run(ws: Workspace) -> None:
    w = ws.client()
    job_id = w.jobs.create(
        name="stream",
        continuous=jobs.Continuous(pause_status=jobs.PauseStatus.UNPAUSED),
        job_clusters=[jobs.JobCluster("main", _cluster({"SECRET": "{{secrets/etl/old}}"}))],
        tasks=[jobs.Task("t", job_cluster_key="main", notebook_task=jobs.NotebookTask("/s"))],
    ).job_id
    assert job_id is not None
    (first,) = list(w.jobs.list_runs(job_id=job_id, active_only=True))
    assert first.trigger == jobs.TriggerType.CONTINUOUS
    assert (
        first.state is not None and first.state.life_cycle_state == jobs.RunLifeCycleState.RUNNING
    )

    w.jobs.update(
        job_id,
        new_settings=jobs.JobSettings(
            job_clusters=[jobs.JobCluster("main", _cluster({"SECRET": "{{secrets/etl/new}}"}))]
        ),
    )
    assert first.run_id is not None
    w.jobs.cancel_run(first.run_id)  # the Wait is not awaited: the operator does not block on it
    (second,) = list(w.jobs.list_runs(job_id=job_id, active_only=True))
    assert second.run_id != first.run_id
    ended = w.jobs.get_run(first.run_id)
    assert ended.state is not None
    assert ended.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert ended.state.result_state == jobs.RunResultState.CANCELED
    assert second.run_id is not None
    restarted = w.jobs.get_run(second.run_id)
    (cluster,) = restarted.job_clusters or []
    assert cluster.new_cluster is not None
    assert cluster.new_cluster.spark_env_vars == {"SECRET": "{{secrets/etl/new}}"}

    again = w.jobs.run_now(job_id).response  # run-now on a continuous job restarts it
    (third,) = list(w.jobs.list_runs(job_id=job_id, active_only=True))
    assert third.run_id == again.run_id
    assert third.run_id not in (first.run_id, second.run_id)
    assert third.trigger == jobs.TriggerType.CONTINUOUS_RESTART
    all_runs = list(w.jobs.list_runs(job_id=job_id))
    assert len(all_runs) == 3


def test_one_time_runs_and_cancel_all(ws: Workspace) -> None:
    w = ws.client()
    job_id = w.jobs.create(name="batch", max_concurrent_runs=1).job_id
    assert job_id is not None
    run_id = w.jobs.run_now(job_id).response.run_id
    skipped_id = w.jobs.run_now(job_id).response.run_id
    assert skipped_id is not None
    skipped = w.jobs.get_run(skipped_id)
    assert skipped.state is not None
    assert skipped.state.life_cycle_state == jobs.RunLifeCycleState.SKIPPED
    w.jobs.cancel_all_runs(job_id=job_id)
    assert list(w.jobs.list_runs(job_id=job_id, active_only=True)) == []
    assert run_id is not None
    cancelled = w.jobs.get_run(run_id)
    assert cancelled.state is not None
    assert cancelled.state.result_state == jobs.RunResultState.CANCELED


def test_throttling_is_retried_after_retry_after(ws: Workspace) -> None:
    w = ws.client()
    job_id = w.jobs.create(name="t").job_id
    assert job_id is not None
    ws.control(
        "POST",
        "/_sandbox/faults",
        {
            "operation": "databricks.jobsGet",
            "kind": "status",
            "status": 429,
            "count": 1,
            "retryAfter": 1,
        },
    )
    assert w.jobs.get(job_id).job_id == job_id
    log = ws.control("GET", "/_sandbox/requests?operation=databricks.jobsGet")
    assert [e["status"] for e in log] == [429, 200]


def test_throttling_surfaces_as_too_many_requests_when_the_budget_is_spent(
    ws: Workspace,
) -> None:
    config = Config(host=ws.url, token=PAT, retry_timeout_seconds=1, http_timeout_seconds=5)
    w = WorkspaceClient(config=config)
    ws.control(
        "POST",
        "/_sandbox/faults",
        {
            "operation": "databricks.listScopes",
            "kind": "status",
            "status": 429,
            "count": 50,
            "retryAfter": 1,
        },
    )
    with pytest.raises((TooManyRequests, TimeoutError)) as caught:
        list(w.secrets.list_scopes())
    # The SDK wraps the last error in TimeoutError once its retry budget is spent.
    error = caught.value if isinstance(caught.value, TooManyRequests) else caught.value.__cause__
    assert isinstance(error, TooManyRequests)
    assert error.error_code == "REQUEST_LIMIT_EXCEEDED"
    assert error.retry_after_secs == 1


def test_clusters_get_list_restart(ws: Workspace) -> None:
    ws.state.add_cluster("0101-abc", "shared", spark_env_vars={"S": "{{secrets/etl/k}}"})
    ws.state.add_cluster("0202-def", "stopped", state="TERMINATED")
    w = ws.client()
    got = w.clusters.get("0101-abc")
    assert (got.cluster_name, got.state) == ("shared", compute.State.RUNNING)
    assert {c.cluster_id for c in w.clusters.list()} == {"0101-abc", "0202-def"}
    w.clusters.restart("0101-abc")
    assert ws.state.clusters["0101-abc"].restarts == 1
    with pytest.raises(InvalidState):
        w.clusters.restart("0202-def")


def test_unknown_token_is_permission_denied(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
    asked: list[str] = []

    def verify(token: str, audience: str) -> bool:
        asked.append(audience)
        return token == AAD_TOKEN

    strict = Workspace(tmp_path / "ca", verify_token=verify)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(strict.ca.bundle_path))
    try:
        with pytest.raises(PermissionDenied) as caught:
            list(strict.client("dapi-not-registered").secrets.list_scopes())
        assert "Invalid access token" in str(caught.value)
        assert list(strict.client(AAD_TOKEN).secrets.list_scopes()) == []
        assert list(strict.client(PAT).secrets.list_scopes()) == []  # PATs skip verify_token
        assert set(asked) == {databricks.AUDIENCE}
    finally:
        strict.stop()
