"""The Databricks emulator: the jobs/update merge rules as a table, run life cycles, the wire."""

from __future__ import annotations

import base64
import hashlib
import pathlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from rotator.sandbox import databricks, server, tls

PAT = "dapi-unit"
AUTH = {"Authorization": f"Bearer {PAT}"}
ADMIN = databricks.Principal("admin@sandbox.local", admin=True, aad=False)

CURRENT: dict[str, Any] = {
    "name": "nightly",
    "schedule": {"quartz_cron_expression": "0 0 2 * * ?", "timezone_id": "UTC"},
    "tags": {"team": "data"},
    "job_clusters": [
        {"job_cluster_key": "main", "new_cluster": {"spark_conf": {"a": "1"}, "num_workers": 2}},
        {"job_cluster_key": "side", "new_cluster": {"num_workers": 1}},
    ],
    "tasks": [
        {"task_key": "one", "job_cluster_key": "main"},
        {"task_key": "two", "job_cluster_key": "side"},
    ],
}


@pytest.mark.parametrize(
    ("new_settings", "remove", "expected_changes"),
    [
        # a top-level field is replaced whole; the others are kept
        ({"tags": {"owner": "rotator"}}, [], {"tags": {"owner": "rotator"}}),
        # a matching job cluster is replaced whole: no deep merge of new_cluster
        (
            {"job_clusters": [{"job_cluster_key": "main", "new_cluster": {"num_workers": 5}}]},
            [],
            {
                "job_clusters": [
                    {"job_cluster_key": "main", "new_cluster": {"num_workers": 5}},
                    CURRENT["job_clusters"][1],
                ]
            },
        ),
        # a new task key is appended, existing ones are kept in place
        (
            {"tasks": [{"task_key": "three"}, {"task_key": "one", "description": "d"}]},
            [],
            {
                "tasks": [
                    {"task_key": "one", "description": "d"},
                    CURRENT["tasks"][1],
                    {"task_key": "three"},
                ]
            },
        ),
        # fields_to_remove: a top-level field and one keyed entry
        ({}, ["schedule", "tasks/two"], {"schedule": None, "tasks": [CURRENT["tasks"][0]]}),
        # removing an absent top-level field is harmless
        ({}, ["trigger"], {}),
    ],
)
def test_merge_job_settings(
    new_settings: dict[str, Any], remove: list[str], expected_changes: dict[str, Any]
) -> None:
    expected = {**CURRENT, **expected_changes}
    expected = {k: v for k, v in expected.items() if v is not None}
    merged = databricks.merge_job_settings(CURRENT, new_settings, remove)
    assert merged == expected
    assert CURRENT["job_clusters"][0]["new_cluster"] == {"spark_conf": {"a": "1"}, "num_workers": 2}


@pytest.mark.parametrize("remove", [["tasks/nope"], ["schedule/quartz_cron_expression"]])
def test_merge_rejects_bad_removals(remove: list[str]) -> None:
    with pytest.raises(databricks.DatabricksError) as caught:
        databricks.merge_job_settings(CURRENT, {}, remove)
    assert (caught.value.status, caught.value.error_code) == (400, "INVALID_PARAMETER_VALUE")


@pytest.mark.parametrize(
    "settings",
    [
        {"tasks": [{"task_key": "a"}, {"task_key": "a"}]},
        {"tasks": [{"description": "no key"}]},
        {"tasks": [{"task_key": "a", "job_cluster_key": "undefined"}]},
        {"job_clusters": [{"job_cluster_key": "c"}, {"job_cluster_key": "c"}]},
        {"continuous": {"pause_status": "UNPAUSED"}, "schedule": {"quartz_cron_expression": "x"}},
        {"max_concurrent_runs": -1},
    ],
)
def test_invalid_settings_are_rejected(settings: dict[str, Any]) -> None:
    with pytest.raises(databricks.DatabricksError):
        databricks.validate_job_settings(settings)


def test_continuous_job_keeps_one_active_run() -> None:
    state = databricks.DatabricksState()
    job = state.create_job(ADMIN, {"name": "s", "continuous": {"pause_status": "UNPAUSED"}})
    (first,) = state.active_runs(job.job_id)
    state.finish_run(first.run_id, "FAILED")  # ends by itself: the next run starts
    (second,) = state.active_runs(job.job_id)
    assert second.run_id != first.run_id
    state.update_job(job.job_id, {"continuous": {"pause_status": "PAUSED"}}, [])
    assert state.active_runs(job.job_id) == []  # pausing stops the job; nothing restarts
    assert state.runs[second.run_id].state_message == "The job was paused."
    one_off = state.run_now(ADMIN, job.job_id)  # "Run now" works on a paused continuous job
    assert one_off.trigger == "ONE_TIME"
    state.finish_run(one_off.run_id)
    state.update_job(job.job_id, {"continuous": {"pause_status": "UNPAUSED"}}, [])
    assert len(state.active_runs(job.job_id)) == 1
    state.delete_job(job.job_id)
    assert state.active_runs() == []


def test_continuous_restart_waits_for_the_configured_delay() -> None:
    now = [1_800_000_000.0]
    state = databricks.DatabricksState(continuous_restart_delay=30, clock=lambda: now[0])
    job = state.create_job(ADMIN, {"name": "s", "continuous": {}})  # pause_status defaults
    (first,) = state.active_runs(job.job_id)
    state.cancel_run(first.run_id)
    now[0] += 29
    state.tick()
    assert state.active_runs(job.job_id) == []
    now[0] += 1
    state.tick()
    (second,) = state.active_runs(job.job_id)
    assert second.trigger == "CONTINUOUS"


def test_cancelling_a_finished_run_is_a_no_op() -> None:
    state = databricks.DatabricksState()
    job = state.create_job(ADMIN, {"name": "b"})
    run = state.run_now(ADMIN, job.job_id)
    state.finish_run(run.run_id)
    assert state.cancel_run(run.run_id).result_state == "SUCCESS"


@pytest.fixture
def state() -> databricks.DatabricksState:
    s = databricks.DatabricksState(tenant_id="tenant-7", authority="https://login.example/")
    s.add_pat(PAT)
    return s


@pytest.fixture
async def http(
    tmp_path: pathlib.Path, state: databricks.DatabricksState
) -> AsyncIterator[aiohttp.ClientSession]:
    ca = tls.SandboxCA(tmp_path)
    app = databricks.make_app(state, verify_token=lambda token, audience: token == "aad-ok")
    running = await server.serve(app, ca.server_context())
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=str(ca.bundle_path)))
    async with aiohttp.ClientSession(base_url=running.url, connector=connector) as session:
        yield session
    await running.stop()


async def test_credentials(http: aiohttp.ClientSession) -> None:
    r = await http.get("/api/2.0/secrets/scopes/list")
    assert r.status == 401
    assert (await r.json())["error_code"] == "UNAUTHENTICATED"
    r = await http.get("/api/2.0/secrets/scopes/list", headers={"Authorization": "Bearer nope-1"})
    assert r.status == 403
    body = await r.json()
    assert body["message"] == "Invalid access token."
    assert "nope-1" not in str(body)
    r = await http.get("/api/2.0/secrets/scopes/list", headers={"Authorization": "Bearer aad-ok"})
    assert r.status == 200


async def test_discovery_endpoints_need_no_credentials(
    http: aiohttp.ClientSession, state: databricks.DatabricksState
) -> None:
    meta = await (await http.get("/.well-known/databricks-config")).json()
    assert meta["workspace_id"] == str(state.workspace_id)
    assert meta["cloud"] == "azure"
    r = await http.get("/aad/auth", allow_redirects=False)
    assert r.status == 302
    assert r.headers["Location"].startswith("https://login.example/tenant-7/oauth2/authorize")


async def test_secret_values_stay_out_of_state_and_bytes_values_round_trip(
    http: aiohttp.ClientSession,
) -> None:
    await http.post("/api/2.0/secrets/scopes/create", json={"scope": "etl"}, headers=AUTH)
    raw = b"\x00\xffbinary"
    r = await http.post(
        "/api/2.0/secrets/put",
        json={"scope": "etl", "key": "k", "bytes_value": base64.b64encode(raw).decode()},
        headers=AUTH,
    )
    assert r.status == 200
    got = await (await http.get("/api/2.0/secrets/get?scope=etl&key=k", headers=AUTH)).json()
    assert base64.b64decode(got["value"]) == raw
    snapshot = await (await http.get("/_sandbox/state")).json()
    assert snapshot["scopes"]["etl"]["keys"]["k"]["sha256"] == hashlib.sha256(raw).hexdigest()
    assert got["value"] not in str(snapshot)

    r = await http.post(
        "/api/2.0/secrets/put",
        json={"scope": "etl", "key": "k", "string_value": "a", "bytes_value": "YQ=="},
        headers=AUTH,
    )
    assert (r.status, (await r.json())["error_code"]) == (400, "INVALID_PARAMETER_VALUE")


async def test_runs_list_pages(http: aiohttp.ClientSession) -> None:
    created = await http.post(
        "/api/2.2/jobs/create", json={"name": "b", "max_concurrent_runs": 10}, headers=AUTH
    )
    job = await created.json()
    for _ in range(3):
        await http.post("/api/2.2/jobs/run-now", json={"job_id": job["job_id"]}, headers=AUTH)
    query = f"/api/2.2/jobs/runs/list?job_id={job['job_id']}&limit=2"
    page = await (await http.get(query, headers=AUTH)).json()
    assert len(page["runs"]) == 2
    assert page["has_more"] is True
    rest = await (
        await http.get(f"{query}&page_token={page['next_page_token']}", headers=AUTH)
    ).json()
    assert len(rest["runs"]) == 1
    assert "next_page_token" not in rest
    ids = [r["run_id"] for r in page["runs"] + rest["runs"]]
    assert ids == sorted(ids, reverse=True)  # newest first


async def test_finish_control_route_and_fault_shape(http: aiohttp.ClientSession) -> None:
    job = await (
        await http.post(
            "/api/2.2/jobs/create",
            json={"name": "s", "continuous": {"pause_status": "UNPAUSED"}},
            headers=AUTH,
        )
    ).json()
    runs = await (
        await http.get(f"/api/2.2/jobs/runs/list?job_id={job['job_id']}", headers=AUTH)
    ).json()
    (first,) = runs["runs"]
    finished = await (await http.post(f"/_sandbox/runs/{first['run_id']}/finish", json={})).json()
    assert finished["state"]["result_state"] == "SUCCESS"
    active = await (
        await http.get(
            f"/api/2.2/jobs/runs/list?job_id={job['job_id']}&active_only=true", headers=AUTH
        )
    ).json()
    assert [r["run_id"] for r in active["runs"]] != [first["run_id"]]

    await http.post(
        "/_sandbox/faults",
        json={"operation": "databricks.jobsGet", "kind": "status", "status": 429, "count": 1},
    )
    r = await http.get(f"/api/2.2/jobs/get?job_id={job['job_id']}", headers=AUTH)
    assert r.status == 429
    assert (await r.json())["error_code"] == "REQUEST_LIMIT_EXCEEDED"
