"""Point a Databricks job's clusters at a secret scope: pure dict manipulation, no I/O.

``jobs.update`` replaces top-level fields and replaces each matching ``job_clusters`` entry
(by ``job_cluster_key``) and ``tasks`` entry (by ``task_key``) *whole*, and Databricks offers
no ETag. So the handler reads the settings, asks :func:`ensure_secret_refs` what must change,
and writes only the changed entries, each complete; when nothing changes it writes nothing,
which keeps a reconcile of an already-synced job free of writes.

The value written is a secret *reference* (``{{secrets/<scope>/<key>}}``), resolved by
Databricks when a cluster starts; the secret itself never passes through here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

# One place for the reference syntax Databricks resolves at cluster start.
_REF_TEMPLATE = "{{{{secrets/{scope}/{key}}}}}"


def secret_ref(scope: str, key: str) -> str:
    """The Databricks secret reference for ``scope``/``key``: ``{{secrets/scope/key}}``."""
    return _REF_TEMPLATE.format(scope=scope, key=key)


def _ensure_in_cluster(
    cluster: dict[str, Any], ref: str, env_names: Iterable[str], conf_keys: Iterable[str]
) -> bool:
    """Set the references in one ``new_cluster`` dict in place; True when anything changed."""
    changed = False
    for field, names in (("spark_env_vars", env_names), ("spark_conf", conf_keys)):
        wanted = list(names)
        if not wanted:
            continue
        current = cluster.get(field)
        values: dict[str, Any] = dict(current) if isinstance(current, Mapping) else {}
        missing = [name for name in wanted if values.get(name) != ref]
        if missing:
            values.update(dict.fromkeys(missing, ref))
            cluster[field] = values
            changed = True
    return changed


def _changed_entries(
    entries: Any, ref: str, env_names: tuple[str, ...], conf_keys: tuple[str, ...]
) -> list[dict[str, Any]]:
    """Complete copies of the entries whose ``new_cluster`` needed a change."""
    if not isinstance(entries, list):
        return []
    changed: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("new_cluster"), Mapping):
            # Tasks on an existing_cluster_id or a shared job_cluster_key have no cluster of
            # their own to change; the shared job cluster is handled through job_clusters.
            continue
        candidate = copy.deepcopy(dict(entry))
        if _ensure_in_cluster(candidate["new_cluster"], ref, env_names, conf_keys):
            changed.append(candidate)
    return changed


def ensure_secret_refs(
    settings: Mapping[str, Any],
    scope: str,
    key: str,
    env_names: Iterable[str],
    spark_conf_keys: Iterable[str],
) -> dict[str, Any] | None:
    """The ``new_settings`` for ``jobs.update`` that make every job cluster reference the secret.

    For every ``job_clusters[].new_cluster`` and ``tasks[].new_cluster`` in ``settings`` (the
    job's settings as ``jobs.get`` returns them), each name in ``env_names`` must map to
    ``{{secrets/<scope>/<key>}}`` in ``spark_env_vars`` and each key in ``spark_conf_keys`` in
    ``spark_conf``. Returns ``{"job_clusters": [...], "tasks": [...]}`` holding only the
    entries that change, each complete (Databricks replaces a matching entry whole), or None
    when the job already references the secret everywhere. ``settings`` is never modified.
    """
    ref = secret_ref(scope, key)
    envs = tuple(dict.fromkeys(env_names))
    confs = tuple(dict.fromkeys(spark_conf_keys))
    if not envs and not confs:
        return None
    new_settings: dict[str, Any] = {}
    for field in ("job_clusters", "tasks"):
        changed = _changed_entries(settings.get(field), ref, envs, confs)
        if changed:
            new_settings[field] = changed
    return new_settings or None
