"""Consumers of a ServicePrincipalSecret: one index every sink kind registers into.

A consumer is any object that copies a ServicePrincipalSecret's current secret somewhere (a
Databricks scope today) and reports in its status what it holds: ``syncedKeyId``,
``syncedVersion``, ``lastSyncTime``. Retirement waits on consumers, not on one kind: every
consumer kind indexes itself into the one kopf index :data:`rotator.core.kinds.CONSUMERS_INDEX`
(kopf keeps one index per handler id, shared by every resource that registers under it, and
keys its entries by object uid), so a new sink only calls :func:`register` once.

What registering gives a consumer kind:

* its objects are indexed by the ServicePrincipalSecret they name (what retirement reads,
  :func:`reader`);
* when one of them changes (it synced), that ServicePrincipalSecret is woken: an old secret
  may be retired now;
* when a ServicePrincipalSecret's current secret (or vault) changes, every consumer of it is
  woken (:func:`source_changed`, one handler for all kinds).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import kopf

from rotator.core import kinds, models, retirement
from rotator.handlers import runtime, waking

#: The name of the ServicePrincipalSecret an object's spec names as its source (None: none).
SourceOf = Callable[[Mapping[str, Any]], str | None]
#: The runtime key (wakers, memory) of a consumer, from its namespace and name.
KeyOf = Callable[[str | None, str], str]


def entry(
    namespace: str | None,
    name: str,
    source: str | None,
    status: Mapping[str, Any],
    key: str,
) -> dict[tuple[str, str], retirement.ConsumerSync]:
    """The index entry of one consumer: (namespace, sps name) -> what it reports."""
    if not source or not namespace:
        return {}
    synced_at = status.get("lastSyncTime")
    try:
        when = models.parse_time(synced_at) if isinstance(synced_at, str) else None
    except ValueError:
        when = None
    return {
        (namespace, source): retirement.ConsumerSync(
            name=f"{namespace}/{name}",
            synced_key_id=status.get("syncedKeyId"),
            synced_version=status.get("syncedVersion"),
            synced_at=when,
            key=key,
        )
    }


def reader(index: Any) -> Callable[[str, str], Iterable[retirement.ConsumerSync]]:
    """What the consumers of sps ``(namespace, name)`` report, read from the kopf index."""

    def read(namespace: str, name: str) -> Iterable[retirement.ConsumerSync]:
        return tuple(index.get((namespace, name), ()))

    return read


def wake_consumers_of(rt: runtime.Runtime, index: Any, namespace: str, name: str) -> int:
    """Wake every consumer whose source is sps ``namespace/name``; how many were woken."""
    woken = 0
    for found in index.get((namespace, name), ()):
        rt.wakers.wake(found.key)
        woken += 1
    return woken


def source_fingerprint(body: Mapping[str, Any]) -> Hashable:
    """What a consumer reads from its source sps: a change of it must wake the consumers."""
    status = body.get("status") or {}
    current = status.get("current") if isinstance(status, Mapping) else None
    current = current if isinstance(current, Mapping) else {}
    spec = body.get("spec") or {}
    vault = spec.get("keyVault") if isinstance(spec, Mapping) else None
    vault = vault if isinstance(vault, Mapping) else {}
    return (
        current.get("keyId"),
        current.get("keyVaultVersion"),
        vault.get("vaultUrl"),
        vault.get("secretName"),
        bool((body.get("metadata") or {}).get("deletionTimestamp")),
    )


def register(plural: str, source_of: SourceOf, key_of: KeyOf) -> None:
    """Make ``plural`` (of our group) a consumer kind: index it, and wake its source on change.

    Called once by the kind's handler module, at import (so kopf sees the handlers before it
    starts). The handlers are async on purpose: kopf runs sync ones in a thread pool, and an
    asyncio.Event must be set from the loop's own thread.
    """

    @kopf.index(kinds.GROUP, kinds.VERSION, plural, id=kinds.CONSUMERS_INDEX)
    def index_consumer(
        namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
    ) -> dict[tuple[str, str], retirement.ConsumerSync]:
        return entry(namespace, name, source_of(spec), status, key_of(namespace, name))

    @kopf.on.event(kinds.GROUP, kinds.VERSION, plural, id=f"{plural}-consumer-changed")
    async def consumer_changed(namespace: str | None, spec: kopf.Spec, memo: Any, **_: Any) -> None:
        # A consumer synced (or changed): the secret it names may retire an old one now.
        rt = memo.get("runtime")
        source = source_of(spec)
        if isinstance(rt, runtime.Runtime) and source:
            rt.wakers.wake(waking.key(namespace, source))


@kopf.on.event(kinds.GROUP, kinds.VERSION, kinds.SPS, id="binding-source-changed")
async def source_changed(
    namespace: str | None, name: str, body: kopf.Body, type: str, memo: Any, **kwargs: Any
) -> None:
    """An sps's current secret (or vault) changed: wake the consumers that copy it."""
    rt = memo.get("runtime")
    index = kwargs.get(kinds.CONSUMERS_INDEX)
    if not isinstance(rt, runtime.Runtime) or index is None:
        return
    if type == "DELETED":
        # The sps's memory (where its last fingerprint lives) is forgotten with it; its
        # consumers look once more and find their source gone.
        wake_consumers_of(rt, index, namespace or "", name)
        return
    # What the sps looked like to us last time, kept in its memory; first sight (None) counts
    # as a change: a consumer may be waiting for a source that only now appears.
    memory = rt.memory(waking.key(namespace, name))
    fingerprint = source_fingerprint(body)
    if memory.source_seen != fingerprint:
        memory.source_seen = fingerprint
        wake_consumers_of(rt, index, namespace or "", name)
