"""The consumers index: every sink kind indexes itself by the secret it copies, and wake-ups
flow both ways (a consumer synced: wake the secret; the secret changed: wake its consumers)."""

from __future__ import annotations

from typing import Any

import kopf

from rotator.core import kinds, retirement
from rotator.handlers import binding, consuming, recording, waking
from tests.handlers import fakes


def test_a_consumer_is_indexed_by_the_secret_it_names() -> None:
    spec = {"source": {"servicePrincipalSecretRef": {"name": "etl-sp"}}}
    entry = consuming.entry(
        "ns",
        "prod",
        binding._source_of(spec),
        {"syncedKeyId": "k2", "syncedVersion": "v2", "lastSyncTime": "2026-11-26T05:00:00Z"},
        recording.binding_key("ns", "prod"),
    )
    [(key, sync)] = entry.items()
    assert key == ("ns", "etl-sp")
    assert sync.synced_key_id == "k2" and sync.name == "ns/prod"
    assert sync.synced_at is not None and sync.synced_at.year == 2026
    assert sync.key == recording.binding_key("ns", "prod")


def test_a_binding_with_a_key_vault_source_is_no_consumer() -> None:
    spec = {"source": {"keyVault": {"vaultUrl": "https://x", "secretName": "s"}}}
    assert binding._source_of(spec) is None
    assert consuming.entry("ns", "b", binding._source_of(spec), {}, "ns/dsb:b") == {}


def test_an_unreadable_sync_time_is_no_time() -> None:
    [sync] = consuming.entry("ns", "b", "sp", {"lastSyncTime": "yesterday"}, "k").values()
    assert sync.synced_at is None


def test_source_change_wakes_exactly_the_consumers_of_that_sps() -> None:
    rt = fakes.world().rt
    keys = {name: recording.binding_key("ns", name) for name in ("a", "b", "c")}
    index = {
        ("ns", "sp"): [
            retirement.ConsumerSync("ns/a", key=keys["a"]),
            retirement.ConsumerSync("ns/b", key=keys["b"]),
        ],
        ("ns", "other"): [retirement.ConsumerSync("ns/c", key=keys["c"])],
    }
    for key in keys.values():  # their daemons run
        rt.memory(key)
    assert consuming.wake_consumers_of(rt, index, "ns", "sp") == 2
    events = rt.wakers._events
    assert events[keys["a"]].is_set() and events[keys["b"]].is_set()
    assert not events[keys["c"]].is_set()
    # A binding's key never collides with an sps of the same name.
    assert recording.binding_key("ns", "sp") != waking.key("ns", "sp")


async def test_a_source_fingerprint_is_kept_in_the_sps_memory_and_goes_with_it() -> None:
    rt = fakes.world().rt
    index: dict[tuple[str, str], list[Any]] = {}
    memo = {"runtime": rt}
    body = fakes.sps_body()
    body["status"] = {"current": {"keyId": "k1", "keyVaultVersion": "v1"}}
    kwargs = {kinds.CONSUMERS_INDEX: index}
    await consuming.source_changed(
        namespace=fakes.NS, name=fakes.NAME, body=body, type="ADDED", memo=memo, **kwargs
    )
    obj = waking.key(fakes.NS, fakes.NAME)
    assert rt.memory(obj).source_seen == consuming.source_fingerprint(body)
    rt.forget(obj)  # the sps's delete handler
    await consuming.source_changed(
        namespace=fakes.NS, name=fakes.NAME, body=body, type="DELETED", memo=memo, **kwargs
    )
    assert rt.sizes()["memories"] == 0 and rt.sizes()["wakers"] == 0


def test_the_binding_kind_registered_itself_into_the_one_consumers_index() -> None:
    handlers = kopf.get_default_registry()._indexing.get_all_handlers()
    found = {(h.id, h.selector.group, h.selector.any_name) for h in handlers if h.selector}
    assert (kinds.CONSUMERS_INDEX, kinds.GROUP, kinds.DSB) in found


def test_source_fingerprint_follows_current_secret_and_vault_only() -> None:
    body = fakes.sps_body()
    body["status"] = {"current": {"keyId": "k1", "keyVaultVersion": "v1"}, "failures": 0}
    before = consuming.source_fingerprint(body)
    body["status"]["failures"] = 3
    assert consuming.source_fingerprint(body) == before
    body["status"]["current"]["keyVaultVersion"] = "v2"
    assert consuming.source_fingerprint(body) != before
