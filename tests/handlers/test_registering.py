"""The kopf shell: the index entries it keeps about other secrets, and its static registry."""

from __future__ import annotations

import pathlib
from typing import Any

from rotator.handlers import registering
from tests.handlers import fakes


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


def test_every_handler_module_is_registered_statically() -> None:
    """No importlib look-ups hide a handler module from import-linter and from readers."""
    handlers = pathlib.Path(registering.__file__).parent
    with_kopf = {
        path.stem
        for path in handlers.glob("*.py")
        if "@kopf." in path.read_text() or "kopf.index(" in path.read_text()
    }
    registered = {m.__name__.rpartition(".")[2] for m in registering.register()}
    assert with_kopf == registered | {"registering"}
    assert all("importlib" not in p.read_text() for p in handlers.glob("*.py"))
