"""The runtime every handler shares: configuration, adapters, limits, clock, per-object memory.

Built once by the start-up handler (:mod:`rotator.handlers.registering`) and kept in kopf's
``memo``; unit tests build one with fakes at the :mod:`rotator.handlers.ports` boundary.
Per-object memory lives only in this process: what must survive a restart is in status.

Everything kept per object, tenant, application or workspace is dropped when it goes away:
:meth:`Runtime.forget` (called when an object is deleted, and when its daemon ends) drops its
memory and wake-up entry and prunes the limiter's idle entries. :meth:`Runtime.sizes` counts
what is held; ``rotator_tracked_objects`` shows it, so a leak is visible in production.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar, cast

from rotator import settings as operator_settings
from rotator.clouds import settings as cloud_settings
from rotator.core import clocks, retirement, sensitive
from rotator.handlers import limiting, policing, ports, waking

T = TypeVar("T")


def new_rotation_id() -> str:
    """8 random lowercase hex characters: unique per attempt, part of the Graph displayName."""
    return secrets.token_hex(4)


@dataclasses.dataclass
class Memory:
    """What one process remembers about one object between wake-ups (never persisted).

    texts             secret text minted by a rotation (by rotation id) until it is stored;
                      after a restart it is read back from the staging version instead
    drift_checked     when Graph and Key Vault were last compared with status
    retry_at          when to retry after a transient failure
    stalled_on        (generation, rotate annotation) a permanent failure happened at: no new
                      rotation is started until the user changes one of them (or expiry nears)
    seen              this process has reconciled the object once (the first pass honours a
                      retry time that an earlier process wrote to status)
    lock              held by the daemon while it reconciles; the delete handler waits for it

    Bindings only:
    failures          consecutive failed passes (backoff, and one event per streak)
    scope_checked     when the Databricks scope's value was last compared with the source
    source_digest     (Key Vault version, SHA-256 of its value): spares a Key Vault read per
                      drift check; in memory only, never logged, never in status
    unreadable        why the scope's value could not be read back (the event said so once)
    source_seen       (of a ServicePrincipalSecret) what its bindings read from it, last seen
    """

    texts: dict[str, sensitive.SecretText] = dataclasses.field(default_factory=dict)
    drift_checked: dt.datetime | None = None
    retry_at: dt.datetime | None = None
    stalled_on: tuple[int, str | None] | None = None
    seen: bool = False
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    failures: int = 0
    scope_checked: dt.datetime | None = None
    source_digest: tuple[str, bytes] | None = dataclasses.field(default=None, repr=False)
    unreadable: str | None = None
    source_seen: Hashable = None


@dataclasses.dataclass
class Runtime:
    """Everything a handler needs besides the object itself."""

    config: operator_settings.OperatorConfig
    cloud: cloud_settings.CloudSettings
    graph: ports.Graph
    vault: ports.Vault
    verifier: ports.Verifier
    status: ports.StatusWriter
    events: ports.Events
    limits: limiting.Limits
    police: policing.Police
    clock: clocks.Clock
    wakers: waking.Wakers = dataclasses.field(default_factory=waking.Wakers)
    new_id: Callable[[], str] = new_rotation_id
    #: (namespace, sps name) -> what the consumers of it report (a kopf index).
    consumers_of: Callable[[str, str], Iterable[retirement.ConsumerSync]] = lambda _ns, _n: ()
    #: (tenant, application, this object's key) -> keyIds and displayNames that OTHER
    #: ServicePrincipalSecrets of the same application account for (a kopf index).
    accounted_elsewhere: Callable[[str, str, str], frozenset[str]] = lambda _t, _a, _k: frozenset()
    memories: dict[str, Memory] = dataclasses.field(default_factory=dict)
    #: More structures to count in :meth:`sizes` (the bindings' Databricks clients).
    tracked: dict[str, Callable[[], int]] = dataclasses.field(default_factory=dict)
    #: What a kind builds for itself on first use (a sink's ports), by kind: kept here, with
    #: everything else the process holds, rather than in a module global.
    attached: dict[str, object] = dataclasses.field(default_factory=dict)

    def attach(self, kind: str, build: Callable[[], T]) -> T:
        """What ``kind`` keeps for the process, built by ``build`` on first use."""
        found = self.attached.get(kind)
        if found is None:
            found = self.attached[kind] = build()
        return cast(T, found)

    def memory(self, obj: str) -> Memory:
        """The memory of object ``obj`` (``namespace/name``), created on first use.

        Its daemon calls this first, which also makes the object wakeable.
        """
        found = self.memories.get(obj)
        if found is None:
            found = self.memories[obj] = Memory()
            self.wakers.register(obj)
        return found

    def forget(self, obj: str) -> None:
        """Drop everything about a deleted object (and whatever limiter entry is idle now)."""
        self.memories.pop(obj, None)
        self.wakers.forget(obj)
        self.limits.prune()

    def sizes(self) -> dict[str, int]:
        """Entries held per structure; all 0 once every object is gone and nothing runs."""
        return {
            "memories": len(self.memories),
            "wakers": len(self.wakers),
            **self.limits.sizes(),
            **{name: size() for name, size in self.tracked.items()},
        }
