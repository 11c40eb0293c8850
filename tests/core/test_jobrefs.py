"""ensure_secret_refs: which job_clusters/tasks entries change, and that only they are sent."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from rotator.core import jobrefs

REF = "{{secrets/etl/client-secret}}"
ENV = ["AZURE_CLIENT_SECRET"]
CONF = ["fs.azure.account.oauth2.client.secret"]


def cluster(**extra: Any) -> dict[str, Any]:
    return {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2", **extra}


def synced_cluster(**extra: Any) -> dict[str, Any]:
    return cluster(
        spark_env_vars={"AZURE_CLIENT_SECRET": REF, "OTHER": "x"},
        spark_conf={"fs.azure.account.oauth2.client.secret": REF, "spark.foo": "bar"},
        **extra,
    )


CASES: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
    ("no clusters at all", {"name": "j", "tasks": []}, None),
    (
        "already synced job cluster",
        {
            "name": "j",
            "job_clusters": [{"job_cluster_key": "main", "new_cluster": synced_cluster()}],
        },
        None,
    ),
    (
        "task on an existing cluster is left alone",
        {"tasks": [{"task_key": "t", "existing_cluster_id": "0101-abc"}]},
        None,
    ),
    (
        "task on a shared job cluster is left alone, the job cluster changes",
        {
            "name": "j",
            "max_concurrent_runs": 1,
            "job_clusters": [{"job_cluster_key": "main", "new_cluster": cluster()}],
            "tasks": [{"task_key": "t", "job_cluster_key": "main", "notebook_task": {"p": "/x"}}],
        },
        {
            "job_clusters": [
                {
                    "job_cluster_key": "main",
                    "new_cluster": cluster(
                        spark_env_vars={"AZURE_CLIENT_SECRET": REF},
                        spark_conf={"fs.azure.account.oauth2.client.secret": REF},
                    ),
                }
            ]
        },
    ),
    (
        "unrelated keys in the cluster and the task are kept",
        {
            "tasks": [
                {
                    "task_key": "t",
                    "depends_on": [{"task_key": "a"}],
                    "spark_python_task": {"python_file": "x.py"},
                    "new_cluster": cluster(
                        spark_env_vars={"AZURE_CLIENT_SECRET": "stale", "KEEP": "1"},
                        spark_conf={"spark.sql.shuffle.partitions": "8"},
                        custom_tags={"team": "data"},
                    ),
                }
            ]
        },
        {
            "tasks": [
                {
                    "task_key": "t",
                    "depends_on": [{"task_key": "a"}],
                    "spark_python_task": {"python_file": "x.py"},
                    "new_cluster": cluster(
                        spark_env_vars={"AZURE_CLIENT_SECRET": REF, "KEEP": "1"},
                        spark_conf={
                            "spark.sql.shuffle.partitions": "8",
                            "fs.azure.account.oauth2.client.secret": REF,
                        },
                        custom_tags={"team": "data"},
                    ),
                }
            ]
        },
    ),
    (
        "several clusters: only the ones that differ are sent",
        {
            "job_clusters": [
                {"job_cluster_key": "a", "new_cluster": synced_cluster()},
                {"job_cluster_key": "b", "new_cluster": cluster(num_workers=2)},
            ],
            "tasks": [
                {"task_key": "x", "new_cluster": synced_cluster()},
                {"task_key": "y", "new_cluster": cluster()},
                {"task_key": "z", "existing_cluster_id": "c"},
            ],
        },
        {
            "job_clusters": [
                {
                    "job_cluster_key": "b",
                    "new_cluster": cluster(
                        num_workers=2,
                        spark_env_vars={"AZURE_CLIENT_SECRET": REF},
                        spark_conf={"fs.azure.account.oauth2.client.secret": REF},
                    ),
                }
            ],
            "tasks": [
                {
                    "task_key": "y",
                    "new_cluster": cluster(
                        spark_env_vars={"AZURE_CLIENT_SECRET": REF},
                        spark_conf={"fs.azure.account.oauth2.client.secret": REF},
                    ),
                }
            ],
        },
    ),
]


@pytest.mark.parametrize(
    ("settings", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_ensure_secret_refs(settings: dict[str, Any], expected: dict[str, Any] | None) -> None:
    before = copy.deepcopy(settings)
    assert jobrefs.ensure_secret_refs(settings, "etl", "client-secret", ENV, CONF) == expected
    assert settings == before  # the input is never modified


def test_env_only_does_not_add_spark_conf() -> None:
    settings = {"job_clusters": [{"job_cluster_key": "m", "new_cluster": cluster()}]}
    result = jobrefs.ensure_secret_refs(settings, "etl", "client-secret", ENV, [])
    assert result is not None
    new_cluster = result["job_clusters"][0]["new_cluster"]
    assert new_cluster["spark_env_vars"] == {"AZURE_CLIENT_SECRET": REF}
    assert "spark_conf" not in new_cluster


def test_nothing_requested_changes_nothing() -> None:
    settings = {"job_clusters": [{"job_cluster_key": "m", "new_cluster": cluster()}]}
    assert jobrefs.ensure_secret_refs(settings, "etl", "client-secret", [], []) is None


def test_applying_the_result_converges() -> None:
    """Merging the returned entries back (as Databricks does) leaves nothing to change."""
    settings: dict[str, Any] = CASES[-1][1]
    update = jobrefs.ensure_secret_refs(settings, "etl", "client-secret", ENV, CONF)
    assert update is not None
    merged = copy.deepcopy(settings)
    for field, key in (("job_clusters", "job_cluster_key"), ("tasks", "task_key")):
        by_key = {e[key]: e for e in update.get(field, [])}
        merged[field] = [by_key.get(e[key], e) for e in merged[field]]
    assert jobrefs.ensure_secret_refs(merged, "etl", "client-secret", ENV, CONF) is None


def test_secret_ref_syntax() -> None:
    assert jobrefs.secret_ref("s", "k") == "{{secrets/s/k}}"
