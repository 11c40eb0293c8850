"""What deleting leaves behind, end to end: the operator process, a real kube-apiserver and
the emulators.

- ``deletionPolicy: Revoke``: the credential is gone from Graph AND the Key Vault version that
  held it, the latest, is disabled (read through the Key Vault SDK and the emulator's state):
  Key Vault no longer hands out, enabled, a secret Graph no longer accepts.
- Hygiene: after N ServicePrincipalSecrets and N bindings are created, synced and deleted,
  every structure the operator keeps in memory (``rotator_tracked_objects``: per-object
  memory, wake-ups, limiter entries, Databricks clients) is back where it was.
"""

from __future__ import annotations

import asyncio
import urllib.request
from typing import Any

import pytest

from e2e.operator_harness import Kube, OperatorProcess, Sandbox, wait_for, wait_for_events
from e2e.test_binding_scenarios import current_of, dsb_manifest, sps_manifest, synced_to
from rotator.clouds import identity, keyvault
from rotator.clouds import settings as cloud_settings

pytest_plugins = ["e2e.operator_harness"]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SPS = "ServicePrincipalSecret"
DSB = "DatabricksSecretBinding"


def latest_through_the_sdk(sandbox: Sandbox, vault: str, name: str) -> keyvault.SecretVersion:
    """Key Vault's latest version of ``name``, read with azure-keyvault-secrets."""
    cloud = cloud_settings.CloudSettings.from_env(sandbox.env())

    async def read() -> keyvault.SecretVersion:
        credential = identity.async_credential(cloud)
        try:
            async with keyvault.KeyVaultAdapter(credential, cloud) as adapter:
                found = await adapter.latest(vault, name)
        finally:
            await credential.close()
        assert found is not None
        return found

    return asyncio.run(read())


def test_revoke_disables_the_key_vault_latest(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"revoke-{ns}"))
    vault = sandbox.stack.keyvault_urls[0]
    manifest = sps_manifest(ns, "revoke-sp", app.client_id, vault)
    manifest["spec"]["deletionPolicy"] = "Revoke"
    secret_name = manifest["spec"]["keyVault"]["secretName"]
    kube.apply(manifest)
    current = current_of(kube, ns, "revoke-sp")
    before = latest_through_the_sdk(sandbox, vault, secret_name)
    assert before.version == current["keyVaultVersion"] and before.enabled

    kube.delete(SPS, ns, "revoke-sp")
    wait_for(lambda: kube.get(SPS, ns, "revoke-sp") is None, message="the sps to be gone")

    assert current["keyId"] not in sandbox.key_ids(app.tenant_id, app.client_id)
    after = latest_through_the_sdk(sandbox, vault, secret_name)
    assert after.version == current["keyVaultVersion"]  # kept, as the audit trail...
    assert after.enabled is False  # ...but no longer handed out
    state = sandbox.state("keyvault", 0)
    stored = sandbox.call(lambda: list(state.list_versions(secret_name)))
    assert stored and not any(v.enabled for v in stored)
    events = wait_for_events(kube, ns, "revoke-sp", {"Deleted"})
    deleted = [e["message"] for e in events if e["reason"] == "Deleted"]
    assert any("disabled 1 Key Vault version(s)" in m for m in deleted), deleted


def tracked(operator: OperatorProcess) -> dict[str, float]:
    """``rotator_tracked_objects`` by structure, from the operator's /metrics page."""
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as answer:
        page = answer.read().decode()
    found: dict[str, float] = {}
    for line in page.splitlines():
        if line.startswith("rotator_tracked_objects{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.split('structure="', 1)[1].split('"', 1)[0]] = float(value)
    return found


def test_created_and_deleted_objects_leave_nothing_in_the_operator(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    ns = allowed_namespace
    count = 4
    baseline = tracked(operator)
    assert {"memories", "wakers", "limiter_buckets", "limiter_app_locks"} <= set(baseline)
    ws = sandbox.stack.databricks_hosts[0]
    names = [f"hyg-{i}" for i in range(count)]
    for name in names:
        app = sandbox.call(lambda name=name: sandbox.stack.seed_application(f"{name}-{ns}"))
        kube.apply(sps_manifest(ns, name, app.client_id, sandbox.stack.keyvault_urls[0]))
    currents = {name: current_of(kube, ns, name) for name in names}
    for name in names:
        kube.apply(dsb_manifest(ns, name, ws, sps=name, scope=f"{name}-{ns}"[:60]))
    for name in names:
        wait_for(synced_to(kube, ns, name, currents[name]["keyId"]), timeout=90, message=name)
    busy = tracked(operator)
    assert busy["memories"] >= baseline.get("memories", 0) + 2 * count
    assert busy.get("databricks_clients", 0) >= 1

    for name in names:
        kube.delete(DSB, ns, name)
        kube.delete(SPS, ns, name)

    def gone() -> Any:
        left = [n for n in names if kube.get(SPS, ns, n) or kube.get(DSB, ns, n)]
        return not left

    wait_for(gone, timeout=90, message="every object to be deleted")

    def back() -> dict[str, float] | None:
        now = tracked(operator)
        grown = {k: v for k, v in now.items() if v > baseline.get(k, 0)}
        return None if grown else now

    wait_for(
        back,
        timeout=30,
        message=f"tracked structures back to {baseline}",
        diagnostics=lambda: f"tracked now: {tracked(operator)}",
    )
