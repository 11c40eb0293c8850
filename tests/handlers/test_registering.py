"""The index entries the kopf shell keeps about bindings and other secrets."""

from __future__ import annotations

from typing import Any

from rotator.handlers import registering
from tests.handlers import fakes


def test_binding_entry_indexes_by_referenced_secret() -> None:
    entry = registering.binding_entry(
        "ns",
        "prod",
        {"source": {"servicePrincipalSecretRef": {"name": "etl-sp"}}},
        {"syncedKeyId": "k2", "syncedVersion": "v2", "lastSyncTime": "2026-11-26T05:00:00Z"},
    )
    [(key, sync)] = entry.items()
    assert key == ("ns", "etl-sp")
    assert sync.synced_key_id == "k2" and sync.name == "ns/prod"
    assert sync.synced_at is not None and sync.synced_at.year == 2026


def test_binding_with_a_key_vault_source_is_not_indexed() -> None:
    spec = {"source": {"keyVault": {"vaultUrl": "https://x", "secretName": "s"}}}
    assert registering.binding_entry("ns", "b", spec, {}) == {}


def test_secret_entry_lists_every_credential_it_accounts_for() -> None:
    entry = registering.secret_entry(
        "ns",
        "etl-sp",
        {"tenantId": "T", "application": {"clientId": "APP"}},
        {
            "current": {"keyId": "k1", "displayName": "rotator-etl-sp-a"},
            "retiring": [{"keyId": "k0"}],
            "rotation": {"displayName": "rotator-etl-sp-b"},
        },
    )
    assert entry == {
        ("t", "app"): ("ns/etl-sp", frozenset({"k1", "rotator-etl-sp-a", "k0", "rotator-etl-sp-b"}))
    }


def test_accounting_reader_excludes_the_asking_object() -> None:
    index = {("t", "app"): [("a/x", frozenset({"k1"})), ("b/x", frozenset({"k2"}))]}
    read = registering._accounting_reader(index)
    assert read("T", "APP", "a/x") == frozenset({"k2"})


async def test_a_deleted_secret_leaves_nothing_behind() -> None:
    w = fakes.world()
    memo = {"runtime": w.rt}
    obj = f"{fakes.NS}/{fakes.NAME}"
    meta: dict[str, Any] = {"generation": 3}
    w.rt.memory(obj)
    await registering.secret_changed(
        namespace=fakes.NS, name=fakes.NAME, meta=meta, type="MODIFIED", memo=memo
    )
    # The finalizer's removal (after the delete handler forgot the object), then the deletion.
    gone = {"generation": 3, "deletionTimestamp": "2026-11-26T05:00:00Z"}
    await registering.secret_changed(
        namespace=fakes.NS, name=fakes.NAME, meta=gone, type="MODIFIED", memo=memo
    )
    await registering.secret_changed(
        namespace=fakes.NS, name=fakes.NAME, meta=gone, type="DELETED", memo=memo
    )
    assert obj not in w.rt.memories
    # A re-created object of the same name is seen for the first time: no stale fingerprint.
    assert not w.rt.wakers.wake_if_changed(obj, (1, None, False))
