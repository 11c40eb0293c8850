"""Builders of valid CR bodies and statuses for the core tests; each test changes one thing."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from rotator.core import models

T0 = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)
TENANT = "00000000-0000-0000-0000-0000000000aa"
CLIENT_ID = "11111111-2222-3333-4444-555555555555"
VAULT = "https://kv-data-eng.vault.azure.net"
WORKSPACE = "https://adb-1234567890123456.7.azuredatabricks.net"


def sps_spec_dict(**overrides: Any) -> dict[str, Any]:
    """A valid ServicePrincipalSecret spec (the example in PRODUCT.md)."""
    spec: dict[str, Any] = {
        "tenantId": TENANT,
        "application": {"clientId": CLIENT_ID, "credentialOwner": "application"},
        "rotation": {"validity": "90d", "renewBefore": "30d", "overlap": "24h"},
        "keyVault": {"vaultUrl": VAULT, "secretName": "etl-sp-client-secret"},
        "verify": {"enabled": True, "timeout": "5m"},
        "suspend": False,
        "deletionPolicy": "Retain",
    }
    spec.update(overrides)
    return spec


def dsb_spec_dict(**overrides: Any) -> dict[str, Any]:
    """A valid DatabricksSecretBinding spec (the example in PRODUCT.md)."""
    spec: dict[str, Any] = {
        "source": {"servicePrincipalSecretRef": {"name": "etl-sp"}},
        "workspace": {"host": WORKSPACE},
        "scope": {"name": "etl", "key": "client-secret", "create": True},
        "jobs": [
            {
                "jobName": "nightly-etl",
                "env": ["AZURE_CLIENT_SECRET"],
                "sparkConf": ["fs.azure.account.oauth2.client.secret"],
                "restart": "IfRunning",
            }
        ],
    }
    spec.update(overrides)
    return spec


def rpol_spec_dict(**overrides: Any) -> dict[str, Any]:
    """A valid RotationPolicy spec (the example in PRODUCT.md)."""
    spec: dict[str, Any] = {
        "namespaces": ["data-eng"],
        "tenants": [TENANT],
        "applications": [CLIENT_ID],
        "keyVaults": [VAULT],
        "databricksWorkspaces": [WORKSPACE],
        "maxValidity": "180d",
    }
    spec.update(overrides)
    return spec


def set_path(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with dotted ``path`` set (``...`` as value deletes the key)."""
    data = copy.deepcopy(data)
    node: Any = data
    *parents, last = path.split(".")
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is ...:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


def sps_spec(**overrides: Any) -> models.ServicePrincipalSecretSpec:
    return models.ServicePrincipalSecretSpec.from_spec(sps_spec_dict(**overrides))


def meta(name: str = "etl-sp", uid: str = "uid-1", **annotations: str) -> models.ResourceMeta:
    return models.ResourceMeta(
        name=name, namespace="data-eng", uid=uid, generation=3, annotations=annotations
    )
