"""DatabricksSecretBinding passes against fakes at our ports (workspace, Secret reader, status,
Key Vault, policies, events): what is written where, what is never called, and the status."""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import hashlib
import json
import logging
from typing import Any

import pytest

from rotator import metrics
from rotator.clouds import databricks
from rotator.core import errors, models, schedule, sensitive
from rotator.handlers import binding, ports, recording
from tests.handlers import fakes

HOST = "https://adb-1234567890123456.7.azuredatabricks.net"
VALUE = "s3cr3t-value-from-key-vault"
NEWER = "an0ther-secret-value"


class FakeWorkspace:
    """One workspace: scopes with values, jobs with settings, active runs; records calls."""

    def __init__(self) -> None:
        self.scopes: dict[str, databricks.ScopeInfo] = {}
        self.values: dict[tuple[str, str], str] = {}
        self.jobs: dict[int, dict[str, Any]] = {}
        self.runs: dict[int, list[int]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, errors.RotatorError] = {}
        self._next_run = 900

    def _call(self, *what: Any) -> None:
        self.calls.append(what)
        if what[0] in self.fail:
            raise self.fail[what[0]]

    async def get_scope(self, name: str) -> databricks.ScopeInfo | None:
        self._call("get_scope", name)
        return self.scopes.get(name)

    async def create_scope(self, name: str) -> None:
        self._call("create_scope", name)
        self.scopes[name] = databricks.ScopeInfo(name, "DATABRICKS")

    async def put_secret(self, scope: str, key: str, value: sensitive.SecretText) -> None:
        self._call("put_secret", scope, key)
        self.values[(scope, key)] = value.reveal()

    async def secret_digest(self, scope: str, key: str) -> bytes | None:
        self._call("secret_digest", scope, key)
        found = self.values.get((scope, key))
        return hashlib.sha256(found.encode()).digest() if found is not None else None

    async def resolve_job(self, *, job_id: int | None = None, job_name: str | None = None) -> int:
        self._call("resolve_job", job_id, job_name)
        if job_id is not None:
            return job_id
        for found, settings in self.jobs.items():
            if settings.get("name") == job_name:
                return found
        raise errors.NotFound(f"no job named {job_name!r}")

    async def get_job_settings(self, job_id: int) -> dict[str, Any]:
        self._call("get_job_settings", job_id)
        if job_id not in self.jobs:
            raise errors.NotFound(f"job {job_id} does not exist")
        return copy.deepcopy(self.jobs[job_id])

    async def update_job(self, job_id: int, new_settings: dict[str, Any]) -> None:
        self._call("update_job", job_id)
        settings = self.jobs[job_id]
        for field, key in (("tasks", "task_key"), ("job_clusters", "job_cluster_key")):
            for entry in new_settings.get(field, []):
                settings[field] = [e for e in settings[field] if e[key] != entry[key]] + [entry]

    async def active_runs(self, job_id: int) -> list[int]:
        self._call("active_runs", job_id)
        return list(self.runs.get(job_id, []))

    async def cancel_run(self, run_id: int) -> None:
        self._call("cancel_run", run_id)
        for job_id, runs in self.runs.items():
            if run_id in runs:
                # A continuous job restarts by itself: a new run replaces the cancelled one.
                self._next_run += 1
                self.runs[job_id] = [r for r in runs if r != run_id] + [self._next_run]

    def writes(self) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] in ("put_secret", "create_scope", "update_job")]


class FakeSecrets:
    def __init__(self, data: dict[tuple[str, str], str] | None = None) -> None:
        self.data = data or {}
        self.calls: list[tuple[str, str]] = []

    async def read(self, namespace: str, name: str, key: str) -> sensitive.SecretText:
        self.calls.append((name, key))
        if (name, key) not in self.data:
            raise errors.NotFound(f"Secret {namespace}/{name} does not exist")
        return sensitive.SecretText(self.data[(name, key)])


def dsb_body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "source": {"servicePrincipalSecretRef": {"name": fakes.NAME}},
        "workspace": {"host": HOST},
        "scope": {"name": "etl", "key": "client-secret", "create": True},
        "jobs": [],
    }
    base.update(spec)
    return {
        "apiVersion": "rotator.dev/v1alpha1",
        "kind": "DatabricksSecretBinding",
        "metadata": {"name": "etl-prod", "namespace": fakes.NS, "uid": "u-2", "generation": 1},
        "spec": base,
    }


def job(name: str, *, continuous: bool = False) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "name": name,
        "tags": {"team": "data"},
        "tasks": [
            {"task_key": "t", "new_cluster": {"spark_version": "15.4", "num_workers": 2}},
            {"task_key": "u", "existing_cluster_id": "c-1"},
        ],
    }
    if continuous:
        settings["continuous"] = {"pause_status": "UNPAUSED"}
    return settings


class Env:
    """A runtime with fakes, a source sps with a current secret in the vault, one binding."""

    def __init__(self, body: dict[str, Any] | None = None, *, source_ready: bool = True) -> None:
        self.w = fakes.world()
        self.workspace = FakeWorkspace()
        self.secrets = FakeSecrets()
        self.api = fakes.FakeApi(body or dsb_body())
        self.tokens: list[str | None] = []
        self.users: list[str] = []
        self.released: list[str] = []
        if source_ready:
            self.issue(VALUE, "key-1")
        self.ports = ports.BindingPorts(workspaces=self, secrets=self.secrets, bindings=self.api)

    def __call__(
        self, host: str, token: sensitive.SecretText | None, *, user: str
    ) -> FakeWorkspace:
        assert host == HOST
        self.tokens.append(token.reveal() if token is not None else None)
        self.users.append(user)
        return self.workspace

    async def release(self, user: str) -> None:
        self.released.append(user)

    def issue(self, value: str, key_id: str) -> str:
        """A new current secret of the source sps, stored as a new Key Vault version."""
        stored = self.w.vault.versions.setdefault(fakes.SECRET, [])
        version = f"v{len(stored) + 1}"
        props = fakes.keyvault.SecretVersion(fakes.SECRET, version, {}, True, None, None)
        stored.append((props, value))
        self.w.api.body["status"] = {
            "current": {
                "keyId": key_id,
                "expiresAt": "2027-02-24T05:00:00Z",
                "keyVaultVersion": version,
            }
        }
        return version

    async def run(self) -> float | None:
        return await binding.reconcile(self.w.rt, self.ports, fakes.NS, "etl-prod")

    def status(self) -> models.DatabricksSecretBindingStatus:
        return models.DatabricksSecretBindingStatus.from_dict(self.api.body.get("status"))

    def condition(self, type_: str) -> models.Condition | None:
        return next((c for c in self.status().conditions if c.type == type_), None)

    def everything_shown(self) -> str:
        """Every status patch and event, as text (for leak checks)."""
        return json.dumps(self.api.patches) + json.dumps(self.w.events.posted)


async def test_sync_from_sps_writes_the_current_version_and_records_it() -> None:
    env = Env()
    wait = await env.run()
    assert env.workspace.values == {("etl", "client-secret"): VALUE}
    assert ("create_scope", "etl") in env.workspace.calls
    status = env.status()
    assert (status.synced_version, status.synced_key_id) == ("v1", "key-1")
    assert status.last_sync_time == fakes.T0 and status.observed_generation == 1
    ready = env.condition("Ready")
    assert ready is not None and ready.status == "True" and ready.reason == "Synced"
    assert env.condition("Reconciling") is None and env.condition("Stalled") is None
    assert env.w.events.reasons() == ["Synced"]
    assert env.tokens == [None]  # the operator's own identity: no PAT
    assert env.users == [recording.binding_key(fakes.NS, "etl-prod")]
    assert wait == 3600.0  # woken by its source, or for the scope's drift check
    assert VALUE not in env.everything_shown()


async def test_up_to_date_binding_makes_no_call_and_no_write() -> None:
    env = Env()
    await env.run()
    calls, vault_calls, patches = (
        len(env.workspace.calls),
        len(env.w.vault.calls),
        len(env.api.patches),
    )
    await env.run()
    assert len(env.workspace.calls) == calls
    assert len(env.w.vault.calls) == vault_calls
    assert len(env.api.patches) == patches


async def test_new_source_version_is_synced_and_restarts_continuous_jobs() -> None:
    body = dsb_body(
        jobs=[
            {"jobName": "stream", "env": ["AZURE_CLIENT_SECRET"], "restart": "IfRunning"},
            {"jobName": "keep", "env": ["AZURE_CLIENT_SECRET"], "restart": "Never"},
        ]
    )
    env = Env(body)
    env.workspace.jobs = {7: job("stream", continuous=True), 8: job("keep", continuous=True)}
    env.workspace.runs = {7: [70], 8: [80]}
    await env.run()
    first = {j.job_name: j for j in env.status().jobs}
    assert first["stream"].changed and first["stream"].restarted_runs == 1
    assert first["keep"].changed and first["keep"].restarted_runs == 0
    assert env.workspace.runs[8] == [80]
    ref = "{{secrets/etl/client-secret}}"
    cluster = env.workspace.jobs[7]["tasks"][-1]["new_cluster"]
    assert cluster == {
        "spark_version": "15.4",
        "num_workers": 2,
        "spark_env_vars": {"AZURE_CLIENT_SECRET": ref},
    }
    assert env.workspace.jobs[7]["tags"] == {"team": "data"}

    env.issue(NEWER, "key-2")
    updates = sum(1 for c in env.workspace.calls if c[0] == "update_job")
    await env.run()
    assert env.workspace.values[("etl", "client-secret")] == NEWER
    second = {j.job_name: j for j in env.status().jobs}
    assert not second["stream"].changed and second["stream"].restarted_runs == 1
    assert sum(1 for c in env.workspace.calls if c[0] == "update_job") == updates
    assert env.workspace.runs[8] == [80]
    assert env.status().synced_key_id == "key-2"
    assert env.w.events.reasons().count("RunsRestarted") == 2
    assert NEWER not in env.everything_shown() and VALUE not in env.everything_shown()


async def test_non_continuous_job_is_not_cancelled_and_says_why() -> None:
    env = Env(dsb_body(jobs=[{"jobId": 5, "sparkConf": ["a.b"], "restart": "IfRunning"}]))
    env.workspace.jobs = {5: job("batch")}
    env.workspace.runs = {5: [55]}
    await env.run()
    assert ("cancel_run", 55) not in env.workspace.calls
    (only,) = env.status().jobs
    assert only.job_id == 5 and only.restarted_runs == 0 and "not a continuous job" in only.message


async def test_policy_denial_stalls_with_one_event_and_no_cloud_call() -> None:
    env = Env()
    env.w.policies.clear()
    assert await env.run() is None
    stalled = env.condition("Stalled")
    assert stalled is not None and stalled.reason == "NotAuthorized"
    assert env.workspace.calls == [] and env.w.vault.calls == [] and env.tokens == []
    await env.run()
    assert env.w.events.posted and all(t == "Warning" for t, _, _ in env.w.events.posted)
    assert env.w.events.reasons() == ["NotAuthorized"]
    assert env.status().synced_version is None


async def test_keyvault_backed_scope_is_checked_and_never_written() -> None:
    env = Env(dsb_body(scope={"name": "kv", "key": fakes.SECRET}))
    env.workspace.scopes["kv"] = databricks.ScopeInfo(
        "kv", "AZURE_KEYVAULT", keyvault_dns=fakes.VAULT.upper() + "/"
    )
    await env.run()
    assert env.workspace.writes() == []
    assert ("read", fakes.SECRET) not in env.w.vault.calls  # the value is not even read
    assert env.status().synced_version == "v1"


@pytest.mark.parametrize(
    ("dns", "key", "says"),
    [
        ("https://another.vault.azure.net/", fakes.SECRET, "another.vault.azure.net"),
        (fakes.VAULT + "/", "other-name", "set scope.key"),
    ],
)
async def test_keyvault_backed_scope_of_another_vault_or_name_stalls(
    dns: str, key: str, says: str
) -> None:
    env = Env(dsb_body(scope={"name": "kv", "key": key}))
    env.workspace.scopes["kv"] = databricks.ScopeInfo("kv", "AZURE_KEYVAULT", keyvault_dns=dns)
    await env.run()
    stalled = env.condition("Stalled")
    assert stalled is not None and stalled.reason == "DatabricksError" and says in stalled.message
    assert env.workspace.writes() == []
    assert env.status().synced_version is None


async def test_missing_scope_without_create_stalls() -> None:
    env = Env(dsb_body(scope={"name": "etl", "key": "k", "create": False}))
    await env.run()
    stalled = env.condition("Stalled")
    assert stalled is not None and stalled.reason == "NotFound"
    assert env.workspace.writes() == []


async def test_failed_job_keeps_synced_fields_behind() -> None:
    env = Env(dsb_body(jobs=[{"jobName": "missing", "env": ["X"]}]))
    wait = await env.run()
    status = env.status()
    assert status.synced_key_id is None and status.synced_version is None
    assert status.failures == 1 and "missing" in status.last_error
    (only,) = status.jobs
    assert only.job_name == "missing" and "no job named" in only.message
    assert wait == env.w.rt.config.drift_check_interval.total_seconds()
    # The value itself did reach the scope; only the record waits for the jobs.
    assert env.workspace.values == {("etl", "client-secret"): VALUE}


async def test_transient_failure_retries_with_backoff_and_recovers() -> None:
    env = Env()
    env.workspace.fail["put_secret"] = errors.TransientError("workspace busy", retry_after=30)
    labels = {"reason": "TransientError", "kind": "transient"}
    counted = metrics.REGISTRY.get_sample_value("rotator_failures_total", labels) or 0.0
    wait = await env.run()
    assert metrics.REGISTRY.get_sample_value("rotator_failures_total", labels) == counted + 1
    assert wait is not None and wait >= 30
    reconciling = env.condition("Reconciling")
    assert reconciling is not None and reconciling.reason == "TransientError"
    assert env.status().synced_key_id is None
    env.workspace.fail.clear()
    env.w.clock.advance(dt.timedelta(seconds=wait))
    await env.run()
    status = env.status()
    assert status.synced_key_id == "key-1" and status.failures == 0 and status.last_error == ""
    assert env.condition("Reconciling") is None


async def test_source_without_current_secret_waits_without_cloud_calls() -> None:
    env = Env(source_ready=False)
    assert await env.run() is None
    ready = env.condition("Ready")
    assert ready is not None and ready.status == "False" and ready.reason == "SourceNotReady"
    assert env.workspace.calls == [] and env.w.vault.calls == []


async def test_keyvault_source_reads_latest_once_per_drift_interval() -> None:
    env = Env(dsb_body(source={"keyVault": {"vaultUrl": fakes.VAULT, "secretName": fakes.SECRET}}))
    wait = await env.run()
    assert env.workspace.values[("etl", "client-secret")] == VALUE
    assert env.status().synced_key_id is None and env.status().synced_version == "v1"
    assert wait == 3600.0
    calls = len(env.w.vault.calls)
    await env.run()  # woken early: not due, no call at all
    assert len(env.w.vault.calls) == calls
    env.issue(NEWER, "ignored")
    env.w.clock.advance(dt.timedelta(hours=1))
    await env.run()
    assert env.workspace.values[("etl", "client-secret")] == NEWER
    assert env.status().synced_version == "v2"


async def test_pat_from_secret_is_used_and_a_missing_one_stalls() -> None:
    auth = {"host": HOST, "auth": {"patSecretRef": {"name": "dbx-pat", "key": "token"}}}
    env = Env(dsb_body(workspace=auth))
    env.secrets.data[("dbx-pat", "token")] = "dapi-123"
    await env.run()
    assert env.tokens == ["dapi-123"]
    assert "dapi-123" not in env.everything_shown()

    missing = Env(dsb_body(workspace=auth))
    await missing.run()
    stalled = missing.condition("Stalled")
    assert stalled is not None and stalled.reason == "NotFound" and "dbx-pat" in stalled.message
    assert missing.tokens == [] and missing.workspace.calls == []


async def test_invalid_spec_stalls() -> None:
    env = Env(dsb_body(scope={"name": "bad scope!", "key": "k"}))
    await env.run()
    stalled = env.condition("Stalled")
    assert (
        stalled is not None and stalled.reason == "InvalidSpec" and "spec.scope" in stalled.message
    )
    assert env.workspace.calls == []


# --- drift of the scope's value ----------------------------------------------------------------

TAMPERED = "typed-in-by-hand-0xdeadbeef"


def repaired_count() -> float:
    value = metrics.REGISTRY.get_sample_value(
        "rotator_drift_repaired_total", {"what": "databricks_scope_value"}
    )
    return value or 0.0


async def test_an_overwritten_scope_value_is_written_back_at_the_drift_check(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env = Env()
    await env.run()
    env.workspace.values[("etl", "client-secret")] = TAMPERED
    calls, before = len(env.workspace.calls), repaired_count()
    env.w.clock.advance(dt.timedelta(minutes=59))
    assert await env.run() == 60.0  # not due yet: no call at all
    assert len(env.workspace.calls) == calls
    env.w.clock.advance(dt.timedelta(minutes=1))
    assert await env.run() == 3600.0
    assert env.workspace.values[("etl", "client-secret")] == VALUE
    assert env.workspace.calls[calls:] == [
        ("get_scope", "etl"),
        ("secret_digest", "etl", "client-secret"),
        ("get_scope", "etl"),
        ("put_secret", "etl", "client-secret"),
    ]
    type_, reason, message = env.w.events.posted[-1]
    assert (type_, reason) == ("Warning", "DriftDetected")
    assert "'client-secret'" in message and "'etl'" in message and "v1" in message
    assert repaired_count() == before + 1
    # The record is the binding's own sync: a repair does not move lastSyncTime.
    assert env.status().last_sync_time == fakes.T0
    shown = env.everything_shown() + caplog.text
    for value in (VALUE, TAMPERED):
        for form in (value, base64.b64encode(value.encode()).decode()):
            assert form not in shown
    digest = hashlib.sha256(VALUE.encode()).hexdigest()
    assert digest[:16] not in shown


async def test_an_intact_scope_costs_one_read_per_interval_and_no_key_vault_call() -> None:
    env = Env()
    await env.run()
    calls, vault_calls, events = len(env.workspace.calls), len(env.w.vault.calls), 1
    for _ in range(3):
        env.w.clock.advance(dt.timedelta(hours=1))
        assert await env.run() == 3600.0
    assert (
        env.workspace.calls[calls:]
        == [
            ("get_scope", "etl"),
            ("secret_digest", "etl", "client-secret"),
        ]
        * 3
    )
    # The digest of the value written at the sync is kept: Key Vault is not read again.
    assert len(env.w.vault.calls) == vault_calls
    assert len(env.w.events.posted) == events


async def test_after_a_restart_the_check_is_due_from_the_last_sync_and_reads_key_vault() -> None:
    env = Env()
    await env.run()
    env.w.rt.memories.clear()  # a new process
    env.w.clock.advance(dt.timedelta(minutes=10))
    calls, vault_calls = len(env.workspace.calls), len(env.w.vault.calls)
    assert await env.run() == 3000.0  # an idle restart makes no call
    assert len(env.workspace.calls) == calls
    env.w.clock.advance(dt.timedelta(minutes=50))
    await env.run()
    assert env.workspace.calls[calls:] == [
        ("get_scope", "etl"),
        ("secret_digest", "etl", "client-secret"),
    ]
    assert env.w.vault.calls[vault_calls:] == [("read", fakes.SECRET)]


async def test_a_missing_key_or_scope_is_restored() -> None:
    env = Env()
    await env.run()
    del env.workspace.values[("etl", "client-secret")]
    env.w.clock.advance(dt.timedelta(hours=1))
    await env.run()
    assert env.workspace.values[("etl", "client-secret")] == VALUE
    assert "is missing from secret scope" in env.w.events.posted[-1][2]
    del env.workspace.scopes["etl"]
    env.workspace.values.clear()
    env.w.clock.advance(dt.timedelta(hours=1))
    await env.run()
    assert "etl" in env.workspace.scopes and env.workspace.values
    assert "no longer exists" in env.w.events.posted[-1][2]


async def test_a_keyvault_backed_scope_repointed_elsewhere_stalls_and_is_never_written() -> None:
    env = Env(dsb_body(scope={"name": "kv", "key": fakes.SECRET}))
    env.workspace.scopes["kv"] = databricks.ScopeInfo(
        "kv", "AZURE_KEYVAULT", keyvault_dns=fakes.VAULT + "/"
    )
    await env.run()
    assert env.status().synced_version == "v1"
    env.w.clock.advance(dt.timedelta(hours=1))
    calls = len(env.workspace.calls)
    await env.run()  # still the source vault: a look at the scope, nothing else
    assert env.workspace.calls[calls:] == [("get_scope", "kv")]
    env.workspace.scopes["kv"] = databricks.ScopeInfo(
        "kv", "AZURE_KEYVAULT", keyvault_dns="https://kv-elsewhere.vault.azure.net/"
    )
    env.w.clock.advance(dt.timedelta(hours=1))
    await env.run()
    stalled = env.condition("Stalled")
    assert stalled is not None and "kv-elsewhere" in stalled.message
    assert env.workspace.writes() == [] and env.workspace.values == {}


async def test_a_failed_drift_check_is_retried_as_a_sync() -> None:
    env = Env()
    await env.run()
    env.workspace.values[("etl", "client-secret")] = TAMPERED
    env.workspace.fail["secret_digest"] = errors.TransientError("Databricks is unavailable")
    env.w.clock.advance(dt.timedelta(hours=1))
    await env.run()
    ready = env.condition("Ready")
    assert ready is not None and ready.status == "False" and env.status().failures == 1
    del env.workspace.fail["secret_digest"]
    env.w.clock.advance(dt.timedelta(minutes=5))
    await env.run()
    assert env.workspace.values[("etl", "client-secret")] == VALUE
    assert env.status().failures == 0


# --- what a binding leaves behind --------------------------------------------------------------


class Stopped:
    """kopf's DaemonStopped as the loop uses it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


async def test_a_deleted_binding_leaves_nothing_in_memory() -> None:
    """N bindings run, fail, sync and are deleted: memory, wake-ups and failure counts of each
    go when its daemon ends, and so does its claim on the Databricks client."""
    env = Env()
    rt = env.w.rt
    names = [f"b{i}" for i in range(5)]

    async def pass_(rt_: Any, port: ports.BindingPorts, namespace: str, name: str) -> float | None:
        body = dsb_body()
        body["metadata"]["name"] = name
        env.api.body = body
        if name == "b0":
            env.workspace.fail["get_scope"] = errors.TransientError("flaky")
        else:
            env.workspace.fail.clear()
        return await binding.reconcile(rt_, port, namespace, name)

    stops = {n: Stopped() for n in names}
    tasks = [
        asyncio.ensure_future(binding.loop(rt, env.ports, fakes.NS, n, stops[n], pass_=pass_))
        for n in names
    ]
    for _ in range(50):
        await asyncio.sleep(0)
    keys = {recording.binding_key(fakes.NS, n) for n in names}
    assert keys <= set(rt.memories)
    assert rt.memory(recording.binding_key(fakes.NS, "b0")).failures == 1
    for n in names:
        stops[n].set()
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert not keys & set(rt.memories)
    assert rt.sizes()["wakers"] == 0 and rt.sizes()["memories"] == 0
    assert sorted(env.released) == sorted(keys)


async def test_after_a_long_restart_first_checks_are_spread_over_one_interval() -> None:
    env = Env()
    await env.run()
    env.w.rt.memories.clear()  # a new process, five hours later
    env.w.clock.advance(dt.timedelta(hours=5))
    calls = len(env.workspace.calls)
    offset = schedule.spread(recording.binding_key(fakes.NS, "etl-prod"), dt.timedelta(hours=1))
    assert offset >= dt.timedelta(minutes=1)  # this binding's place in the interval
    assert await env.run() == offset.total_seconds()
    assert len(env.workspace.calls) == calls  # not every binding at once at start-up
    env.w.clock.advance(offset)
    await env.run()
    assert env.workspace.calls[calls:] == [
        ("get_scope", "etl"),
        ("secret_digest", "etl", "client-secret"),
    ]


async def test_a_value_databricks_will_not_give_back_skips_the_check_without_stalling() -> None:
    """``secrets/get`` refused (no READ, or not served outside notebooks): one Warning, the
    binding stays Ready, nothing is rewritten, and the next intervals say nothing new."""
    env = Env()
    await env.run()
    env.workspace.fail["secret_digest"] = errors.PermanentError(
        "Databricks refused to read secret 'client-secret' (BAD_REQUEST)", "DatabricksError"
    )
    for _ in range(3):
        env.w.clock.advance(dt.timedelta(hours=1))
        assert await env.run() == 3600.0
    warnings = [e for e in env.w.events.posted if e[0] == "Warning"]
    assert len(warnings) == 1 and "check is skipped" in warnings[0][2]
    ready = env.condition("Ready")
    assert ready is not None and ready.status == "True"
    assert env.workspace.writes() == [
        ("create_scope", "etl"),
        ("put_secret", "etl", "client-secret"),
    ]
