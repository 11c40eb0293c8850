"""DatabricksSecretBinding end to end: the operator process, a real kube-apiserver, emulators.

Every scenario applies ServicePrincipalSecrets and bindings with kubectl, lets the operator
(``rotator run`` in its own process, under the chart's RBAC) do its work, and checks the
result where it lands: the Databricks emulator's scopes, jobs and runs, Graph's credentials,
the request logs, and the objects' status. Expected values are computed here from what the
test set up (job settings before, secret texts Graph minted), never read back from the code
under test.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import secrets
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from e2e.operator_harness import (
    Kube,
    OperatorProcess,
    Sandbox,
    condition,
    secret_forms,
    wait_for,
    wait_for_events,
)
from rotator.clouds import databricks
from rotator.clouds import settings as cloud_settings
from rotator.core import sensitive
from rotator.sandbox import faults

pytest_plugins = ["e2e.operator_harness"]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

API = "rotator.dev/v1alpha1"


# --- builders ----------------------------------------------------------------------------------


def sps_manifest(
    namespace: str, name: str, client_id: str, vault: str, *, overlap: str = "5s"
) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ServicePrincipalSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "tenantId": "00000000-0000-0000-0000-0000000000aa",
            "application": {"clientId": client_id, "credentialOwner": "application"},
            "rotation": {"validity": "2d", "renewBefore": "1d", "overlap": overlap},
            "keyVault": {"vaultUrl": vault, "secretName": f"{name}-secret"},
        },
    }


def dsb_manifest(
    namespace: str,
    name: str,
    host: str,
    *,
    sps: str | None = None,
    key_vault: dict[str, str] | None = None,
    scope: str = "etl",
    key: str = "client-secret",
    create: bool = True,
    jobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    source: dict[str, Any] = (
        {"servicePrincipalSecretRef": {"name": sps}} if sps else {"keyVault": key_vault}
    )
    return {
        "apiVersion": API,
        "kind": "DatabricksSecretBinding",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": source,
            "workspace": {"host": host},
            "scope": {"name": scope, "key": key, "create": create},
            "jobs": jobs or [],
        },
    }


def batch_job(name: str) -> dict[str, Any]:
    """A scheduled job with a shared job cluster, a task cluster and unrelated settings."""
    return {
        "name": name,
        "tags": {"team": "data-eng", "cost-center": "42"},
        "schedule": {"quartz_cron_expression": "0 0 2 * * ?", "timezone_id": "UTC"},
        "email_notifications": {"on_failure": ["oncall@example.com"]},
        "max_concurrent_runs": 1,
        "job_clusters": [
            {
                "job_cluster_key": "shared",
                "new_cluster": {
                    "spark_version": "15.4.x-scala2.12",
                    "node_type_id": "Standard_DS3_v2",
                    "num_workers": 2,
                    "spark_env_vars": {"PYSPARK_PYTHON": "/databricks/python3/bin/python3"},
                    "custom_tags": {"owner": "etl"},
                },
            }
        ],
        "tasks": [
            {
                "task_key": "extract",
                "job_cluster_key": "shared",
                "notebook_task": {"notebook_path": "/Repos/etl/extract"},
            },
            {
                "task_key": "load",
                "depends_on": [{"task_key": "extract"}],
                "new_cluster": {
                    "spark_version": "15.4.x-scala2.12",
                    "node_type_id": "Standard_DS4_v2",
                    "num_workers": 1,
                    "spark_conf": {"spark.speculation": "true"},
                },
                "spark_python_task": {"python_file": "dbfs:/etl/load.py"},
            },
        ],
    }


def continuous_job(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "continuous": {"pause_status": "UNPAUSED"},
        "tasks": [
            {
                "task_key": "stream",
                "new_cluster": {
                    "spark_version": "15.4.x-scala2.12",
                    "node_type_id": "Standard_DS3_v2",
                    "num_workers": 1,
                },
                "notebook_task": {"notebook_path": "/Repos/etl/stream"},
            }
        ],
    }


# --- emulator access ---------------------------------------------------------------------------


class Workspace:
    """One Databricks emulator, read and seeded in-process."""

    def __init__(self, sandbox: Sandbox, index: int) -> None:
        self.sandbox = sandbox
        self.state = sandbox.state("databricks", index)
        self.url = sandbox.url_of("databricks", index)

    def create_job(self, settings: dict[str, Any]) -> int:
        return int(
            self.sandbox.call(lambda: self.state.create_job(self.state.aad(), settings).job_id)
        )

    def settings(self, job_id: int) -> dict[str, Any]:
        return dict(self.sandbox.call(lambda: copy.deepcopy(self.state.jobs[job_id].settings)))

    def active_runs(self, job_id: int) -> list[int]:
        return sorted(self.sandbox.call(lambda: [r.run_id for r in self.state.active_runs(job_id)]))

    def value(self, scope: str, key: str) -> str | None:
        def read() -> str | None:
            found = self.state.scopes.get(scope)
            stored = found.secrets.get(key) if found else None
            return stored.value.decode() if stored else None

        return self.sandbox.call(read)

    def create_keyvault_scope(self, name: str, vault_url: str) -> None:
        meta = {"resource_id": f"/subscriptions/x/vaults/{name}", "dns_name": vault_url + "/"}
        self.sandbox.call(
            lambda: self.state.create_scope(
                self.state.aad(), name, backend_type="AZURE_KEYVAULT", keyvault=meta
            )
        )

    def count(self, operation: str) -> int:
        return self.sandbox.count(f"databricks.{operation}", url=self.url)


def secret_text(sandbox: Sandbox, client_id: str, key_id: str) -> str:
    def find() -> str:
        for tenant in sandbox.stack.directory.tenants.values():
            for obj in tenant.by_app_id(client_id):
                for cred in obj.password_credentials:
                    if cred.key_id == key_id:
                        return str(cred.secret_text)
        raise LookupError(key_id)

    return sandbox.call(find)


def with_refs(
    settings: dict[str, Any], ref: str, env: list[str], conf: list[str]
) -> dict[str, Any]:
    """What the settings must look like after the binding: refs added to every own cluster."""
    expected = copy.deepcopy(settings)
    clusters = [c["new_cluster"] for c in expected.get("job_clusters", [])]
    clusters += [t["new_cluster"] for t in expected.get("tasks", []) if "new_cluster" in t]
    for cluster in clusters:
        if env:
            cluster.setdefault("spark_env_vars", {}).update(dict.fromkeys(env, ref))
        if conf:
            cluster.setdefault("spark_conf", {}).update(dict.fromkeys(conf, ref))
    return expected


# --- kube helpers ------------------------------------------------------------------------------


def current_of(kube: Kube, namespace: str, name: str) -> dict[str, Any]:
    return wait_for(
        lambda: kube.status("ServicePrincipalSecret", namespace, name).get("current"),
        timeout=90,
        message=f"sps {name} to have a current secret",
    )


def rotate(kube: Kube, namespace: str, name: str) -> None:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")
    kube.patch(
        "ServicePrincipalSecret",
        namespace,
        name,
        {"metadata": {"annotations": {"rotator.dev/rotate": stamp}}},
    )


def synced_to(kube: Kube, namespace: str, name: str, key_id: str) -> Callable[[], Any]:
    def check() -> Any:
        status = kube.status("DatabricksSecretBinding", namespace, name)
        ready = condition({"status": status}, "Ready").get("status") == "True"
        return status if status.get("syncedKeyId") == key_id and ready else None

    return check


def rotated_from(kube: Kube, namespace: str, name: str, old: str) -> dict[str, Any]:
    def check() -> Any:
        current = kube.status("ServicePrincipalSecret", namespace, name).get("current") or {}
        return current if current.get("keyId") not in (None, old) else None

    return wait_for(check, timeout=120, message=f"sps {name} to rotate away from {old}")


# --- scenarios ---------------------------------------------------------------------------------


def test_binding_syncs_scope_and_rewrites_jobs_in_place(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"app-{ns}"))
    ws = Workspace(sandbox, 0)
    batch_id = ws.create_job(batch_job(f"nightly-{ns}"))
    restart_id = ws.create_job(continuous_job(f"stream-{ns}"))
    keep_id = ws.create_job(continuous_job(f"stream-keep-{ns}"))
    before = {job: ws.settings(job) for job in (batch_id, restart_id, keep_id)}
    runs_before = {job: ws.active_runs(job) for job in (restart_id, keep_id)}
    assert all(runs_before.values()), "continuous jobs run from creation"
    scope = f"s-{ns}"[:60]
    ref = "{{secrets/" + scope + "/client-secret}}"

    kube.apply(sps_manifest(ns, "etl-sp", app.client_id, sandbox.stack.keyvault_urls[0]))
    current = current_of(kube, ns, "etl-sp")
    jobs = [
        {
            "jobName": f"nightly-{ns}",
            "env": ["AZURE_CLIENT_SECRET"],
            "sparkConf": ["fs.azure.account.oauth2.client.secret"],
            "restart": "IfRunning",
        },
        {"jobName": f"stream-{ns}", "env": ["AZURE_CLIENT_SECRET"], "restart": "IfRunning"},
        {"jobId": keep_id, "env": ["AZURE_CLIENT_SECRET"], "restart": "Never"},
    ]
    kube.apply(dsb_manifest(ns, "etl-prod", ws.url, sps="etl-sp", scope=scope, jobs=jobs))
    status = wait_for(
        synced_to(kube, ns, "etl-prod", current["keyId"]), timeout=90, message="first sync"
    )

    # The scope holds exactly the secret Graph minted for the current keyId.
    assert ws.value(scope, "client-secret") == secret_text(sandbox, app.client_id, current["keyId"])
    assert status["syncedVersion"] == current["keyVaultVersion"]
    # Jobs rewritten in place: only the references were added, every other setting kept.
    env_conf = (["AZURE_CLIENT_SECRET"], ["fs.azure.account.oauth2.client.secret"])
    assert ws.settings(batch_id) == with_refs(before[batch_id], ref, *env_conf)
    env_only = (["AZURE_CLIENT_SECRET"], [])
    assert ws.settings(restart_id) == with_refs(before[restart_id], ref, *env_only)
    assert ws.settings(keep_id) == with_refs(before[keep_id], ref, *env_only)
    # IfRunning restarted the continuous job (a new run); Never left its run alone.
    new_runs = ws.active_runs(restart_id)
    assert new_runs and set(new_runs).isdisjoint(runs_before[restart_id])
    assert ws.active_runs(keep_id) == runs_before[keep_id]
    by_name = {j.get("jobName") or str(j.get("jobId")): j for j in status["jobs"]}
    assert by_name[f"nightly-{ns}"]["jobId"] == batch_id and by_name[f"nightly-{ns}"]["changed"]
    assert by_name[f"stream-{ns}"]["restartedRuns"] == 1
    assert by_name[str(keep_id)]["restartedRuns"] == 0
    wanted = {"Synced", "JobUpdated", "RunsRestarted"}
    reasons = {e["reason"] for e in wait_for_events(kube, ns, "etl-prod", wanted)}
    assert wanted <= reasons

    # A rotation reaches the scope promptly; jobs already reference it, so no job write, but the
    # continuous job restarts again to pick the new value up.
    updates = ws.count("jobsUpdate")
    rotate(kube, ns, "etl-sp")
    new = rotated_from(kube, ns, "etl-sp", current["keyId"])
    status = wait_for(synced_to(kube, ns, "etl-prod", new["keyId"]), timeout=60, message="resync")
    assert ws.value(scope, "client-secret") == secret_text(sandbox, app.client_id, new["keyId"])
    assert ws.count("jobsUpdate") == updates
    assert not any(j["changed"] for j in status["jobs"])
    assert set(ws.active_runs(restart_id)).isdisjoint(new_runs)
    assert ws.active_runs(keep_id) == runs_before[keep_id]


def test_idle_binding_makes_no_cloud_calls(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"app-{ns}"))
    ws = Workspace(sandbox, 0)
    kube.apply(sps_manifest(ns, "idle-sp", app.client_id, sandbox.stack.keyvault_urls[0]))
    current = current_of(kube, ns, "idle-sp")
    kube.apply(dsb_manifest(ns, "idle", ws.url, sps="idle-sp", scope=f"idle-{ns}"[:60]))
    wait_for(synced_to(kube, ns, "idle", current["keyId"]), timeout=90, message="sync")
    calls = len(sandbox.requests(url=ws.url))
    # A restart re-reads status: an up-to-date binding needs no Databricks call.
    operator.kill()
    operator.start()
    wait_for(lambda: operator.running, message="operator up")
    time.sleep(5)
    assert len(sandbox.requests(url=ws.url)) == calls


def test_keyvault_backed_scope_is_checked_never_written(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"app-{ns}"))
    ws = Workspace(sandbox, 1)
    vault = sandbox.stack.keyvault_urls[0]
    other_vault = sandbox.stack.keyvault_urls[1]
    good, bad = f"kv-{ns}"[:60], f"kvbad-{ns}"[:60]
    ws.create_keyvault_scope(good, vault)
    ws.create_keyvault_scope(bad, other_vault)
    job_id = ws.create_job(batch_job(f"kvjob-{ns}"))
    kube.apply(sps_manifest(ns, "kv-sp", app.client_id, vault))
    current = current_of(kube, ns, "kv-sp")
    puts = ws.count("putSecret")
    jobs = [{"jobId": job_id, "env": ["AZURE_CLIENT_SECRET"]}]
    kube.apply(
        dsb_manifest(ns, "kv", ws.url, sps="kv-sp", scope=good, key="kv-sp-secret", jobs=jobs),
        dsb_manifest(ns, "kv-bad", ws.url, sps="kv-sp", scope=bad, key="kv-sp-secret"),
    )
    status = wait_for(synced_to(kube, ns, "kv", current["keyId"]), timeout=90, message="KV sync")
    assert status["syncedVersion"] == current["keyVaultVersion"]
    assert (
        ws.settings(job_id)["job_clusters"][0]["new_cluster"]["spark_env_vars"][
            "AZURE_CLIENT_SECRET"
        ]
        == "{{secrets/" + good + "/kv-sp-secret}}"
    )

    def stalled() -> Any:
        obj = kube.get("DatabricksSecretBinding", ns, "kv-bad")
        return condition(obj, "Stalled") if condition(obj, "Stalled").get("status") else None

    stall = wait_for(stalled, timeout=60, message="kv-bad to stall")
    assert other_vault.split("//")[1] in stall["message"] and stall["reason"] == "DatabricksError"
    assert not kube.status("DatabricksSecretBinding", ns, "kv-bad").get("syncedKeyId")
    assert ws.count("putSecret") == puts, "a Key-Vault-backed scope must never be written"
    assert ws.value(good, "kv-sp-secret") is None and ws.value(bad, "kv-sp-secret") is None


def test_old_secret_revoked_only_after_both_workspaces_synced(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"app-{ns}"))
    first, second = Workspace(sandbox, 0), Workspace(sandbox, 1)
    scope = f"two-{ns}"[:60]
    kube.apply(
        sps_manifest(ns, "shared-sp", app.client_id, sandbox.stack.keyvault_urls[1], overlap="3s")
    )
    old = current_of(kube, ns, "shared-sp")
    kube.apply(
        dsb_manifest(ns, "ws-a", first.url, sps="shared-sp", scope=scope),
        dsb_manifest(ns, "ws-b", second.url, sps="shared-sp", scope=scope),
    )
    for name in ("ws-a", "ws-b"):
        wait_for(synced_to(kube, ns, name, old["keyId"]), timeout=90, message=f"{name} sync")

    # The second workspace answers every write with 503 until the fault is cleared: the SDK
    # retries for its budget, then the binding records the failure and keeps retrying.
    sandbox.add_fault(faults.FaultRule("databricks.putSecret", "status", rate=1.0), url=second.url)
    try:
        rotate(kube, ns, "shared-sp")
        new = rotated_from(kube, ns, "shared-sp", old["keyId"])
        wait_for(synced_to(kube, ns, "ws-a", new["keyId"]), timeout=60, message="ws-a resync")

        def failing() -> Any:
            ready = condition(kube.get("DatabricksSecretBinding", ns, "ws-b"), "Ready")
            return ready if ready.get("reason") in ("Throttled", "TransientError") else None

        lagging = wait_for(failing, timeout=120, message="ws-b to record its failure")
        assert lagging["status"] == "False"
        # Long past the 3 s overlap after ws-a synced, and ws-b still lacks the new secret.
        assert kube.status("DatabricksSecretBinding", ns, "ws-b").get("syncedKeyId") == old["keyId"]
        assert old["keyId"] in sandbox.key_ids(app.tenant_id, app.client_id), (
            "the old secret was revoked while a binding still lacked the new one"
        )
        ready = condition(kube.get("DatabricksSecretBinding", ns, "ws-b"), "Ready")
        assert ready["status"] == "False"
    finally:
        sandbox.clear_faults()
    synced_b = wait_for(synced_to(kube, ns, "ws-b", new["keyId"]), timeout=120, message="ws-b")
    assert second.value(scope, "client-secret") == secret_text(sandbox, app.client_id, new["keyId"])
    wait_for(
        lambda: old["keyId"] not in sandbox.key_ids(app.tenant_id, app.client_id),
        timeout=60,
        message="old secret revoked after both synced and overlap",
    )
    assert synced_b["lastSyncTime"]


def test_binding_denied_by_policy_makes_no_calls(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, make_namespace: Callable[[], str]
) -> None:
    ns = make_namespace()  # no RotationPolicy grants it
    ws = Workspace(sandbox, 0)
    vault = sandbox.stack.keyvault_urls[0]
    calls = len(sandbox.requests(url=ws.url)) + len(sandbox.requests(url=vault))
    kube.apply(
        dsb_manifest(
            ns,
            "denied",
            ws.url,
            key_vault={"vaultUrl": sandbox.stack.keyvault_urls[0], "secretName": "anything"},
        )
    )

    def stalled() -> Any:
        obj = kube.get("DatabricksSecretBinding", ns, "denied")
        found = condition(obj, "Stalled")
        return found if found.get("reason") == "NotAuthorized" else None

    wait_for(stalled, timeout=60, message="NotAuthorized stall")
    events = wait_for_events(kube, ns, "denied", {"NotAuthorized"})
    assert any(e["type"] == "Warning" and e["reason"] == "NotAuthorized" for e in events)
    assert len(sandbox.requests(url=ws.url)) + len(sandbox.requests(url=vault)) == calls


def test_keyvault_source_with_pat_auth(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    ws = Workspace(sandbox, 1)
    vault = sandbox.state("keyvault", 1)
    value = f"external-{secrets.token_urlsafe(24)}"
    sandbox.remember_secret(value)
    _, version = sandbox.call(lambda: vault.set_secret("external-secret", value))
    token = f"dapi{secrets.token_hex(16)}"
    sandbox.call(lambda: ws.state.add_pat(token, principal=f"pat-{ns}@e2e"))
    kube.kubectl(
        "create", "secret", "generic", "dbx-pat", "-n", ns, f"--from-literal=token={token}"
    )
    scope = f"pat-{ns}"[:60]
    manifest = dsb_manifest(
        ns,
        "external",
        ws.url,
        key_vault={"vaultUrl": sandbox.stack.keyvault_urls[1], "secretName": "external-secret"},
        scope=scope,
    )
    manifest["spec"]["workspace"]["auth"] = {"patSecretRef": {"name": "dbx-pat", "key": "token"}}
    kube.apply(manifest)

    def synced() -> Any:
        status = kube.status("DatabricksSecretBinding", ns, "external")
        return status if status.get("syncedVersion") == version.version else None

    status = wait_for(synced, timeout=90, message="Key-Vault-sourced binding to sync")
    assert "syncedKeyId" not in status  # no Graph secret behind a plain Key Vault source
    assert ws.value(scope, "client-secret") == value
    # The scope was created with the PAT's identity, not the operator's Entra identity.
    acls = sandbox.call(lambda: dict(ws.state.scopes[scope].acls))
    assert acls == {f"pat-{ns}@e2e": "MANAGE"}


@pytest.fixture
def fast_drift(operator: OperatorProcess) -> Iterator[OperatorProcess]:
    """The operator restarted with a 4 s drift check; restored to the defaults afterwards."""
    saved = tuple(operator.args)
    operator.args = (*saved, "--drift-check-interval", "4s")
    operator.restart()
    try:
        yield operator
    finally:
        operator.args = saved
        operator.restart()


def metric(operator: OperatorProcess, name: str, labels: str = "") -> float:
    """One sample of the operator's /metrics page (0 when absent)."""
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as answer:
        page = answer.read().decode()
    wanted = f"{name}{{{labels}}}" if labels else name
    for line in page.splitlines():
        if line.startswith(wanted + " "):
            return float(line.split()[-1])
    return 0.0


def test_overwritten_scope_value_is_written_back_at_the_drift_check(
    fast_drift: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"app-{ns}"))
    ws = Workspace(sandbox, 0)
    scope = f"drift-{ns}"[:60]
    kube.apply(sps_manifest(ns, "drift-sp", app.client_id, sandbox.stack.keyvault_urls[0]))
    current = current_of(kube, ns, "drift-sp")
    kube.apply(dsb_manifest(ns, "drift", ws.url, sps="drift-sp", scope=scope))
    wait_for(synced_to(kube, ns, "drift", current["keyId"]), timeout=90, message="sync")
    expected = secret_text(sandbox, app.client_id, current["keyId"])
    assert ws.value(scope, "client-secret") == expected

    # Someone overwrites the value by hand, through the Databricks API with their own PAT.
    tampered = f"typed-by-hand-{secrets.token_urlsafe(18)}"
    sandbox.remember_secret(tampered)
    token = f"dapi{secrets.token_hex(16)}"
    sandbox.call(lambda: ws.state.add_pat(token, principal=f"human-{ns}@e2e"))
    cloud = cloud_settings.CloudSettings.from_env(sandbox.env())

    async def overwrite() -> None:
        pat = sensitive.SecretText(token)
        async with databricks.DatabricksAdapter(ws.url, cloud, token=pat) as human:
            await human.put_secret(scope, "client-secret", sensitive.SecretText(tampered))

    repaired_before = metric(
        fast_drift, "rotator_drift_repaired_total", 'what="databricks_scope_value"'
    )
    puts, reads = ws.count("putSecret"), ws.count("getSecret")
    asyncio.run(overwrite())
    assert ws.value(scope, "client-secret") == tampered
    wait_for(
        lambda: ws.value(scope, "client-secret") == expected,
        timeout=30,
        message="the scope's value written back",
    )
    assert ws.count("putSecret") == puts + 2  # the human's write, and the repair
    events = wait_for_events(kube, ns, "drift", {"DriftDetected"})
    drift = [e for e in events if e["reason"] == "DriftDetected"]
    assert drift[0]["type"] == "Warning"
    assert f"'{scope}'" in drift[0]["message"] and "'client-secret'" in drift[0]["message"]
    assert (
        metric(fast_drift, "rotator_drift_repaired_total", 'what="databricks_scope_value"')
        == repaired_before + 1
    )
    # The binding's record is unchanged: this was a repair, not a new version.
    status = kube.status("DatabricksSecretBinding", ns, "drift")
    assert status["syncedKeyId"] == current["keyId"]

    # Between checks an intact scope costs one read per interval (4 s), not one per pass.
    reads = ws.count("getSecret")
    time.sleep(10)
    assert 1 <= ws.count("getSecret") - reads <= 4
    assert ws.count("putSecret") == puts + 2

    # Neither value, in any form, reached an event or the operator's log.
    shown = str(kube.events_for(ns, "drift")) + fast_drift.log_text()
    for value in (expected, tampered):
        for form in secret_forms(value):
            assert form not in shown
