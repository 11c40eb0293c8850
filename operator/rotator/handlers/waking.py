"""Wake-ups: each object's daemon sleeps until it is due or until woken.

The daemon computes when it must look again (next rotation, a retiring secret's retireAt, a
retry backoff, the drift check) and sleeps until then. Watch events wake it early: a spec or
``rotator.dev/rotate`` change of the object itself, a binding that reports a sync, a
RotationPolicy or namespace label change. A wake-up only runs the pure decision; it makes a
cloud call only if the decision needs one.

Only objects whose daemon is running have an entry (:meth:`Wakers.register`, done by
:meth:`rotator.handlers.runtime.Runtime.memory` when the daemon starts), and it is dropped with
the object (:meth:`Wakers.forget`). Waking an object nobody registered does nothing: its
daemon, when it starts, begins with a pass anyway; and a binding that names a
ServicePrincipalSecret which does not exist must not leave an entry behind for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Hashable


def key(namespace: str | None, name: str) -> str:
    """The object key used by every per-object map: ``namespace/name``."""
    return f"{namespace or ''}/{name}"


class Wakers:
    """One :class:`asyncio.Event` per object, plus what the last wake-up was about."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._seen: dict[str, Hashable] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self, obj: str) -> None:
        """Make ``obj`` wakeable: its daemon started (a wake-up from now on is never lost)."""
        if obj not in self._events:
            self._events[obj] = asyncio.Event()

    def __len__(self) -> int:
        """How many objects have an entry (the ``rotator_tracked_objects`` gauge, tests)."""
        return len(self._events.keys() | self._seen.keys())

    def _set(self, event: asyncio.Event) -> None:
        # kopf runs sync handlers in worker threads; an asyncio.Event must be set from its
        # loop's thread, or the sleeper may never notice.
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is not None:
                self._loop.call_soon_threadsafe(event.set)
                return
        event.set()

    def wake(self, obj: str) -> None:
        """Make the object's daemon look again now (safe from any thread; unknown: nothing)."""
        event = self._events.get(obj)
        if event is not None:
            self._set(event)

    def wake_all(self) -> None:
        """Every known object looks again (a policy or namespace changed)."""
        for event in list(self._events.values()):
            self._set(event)

    def wake_if_changed(self, obj: str, fingerprint: Hashable) -> bool:
        """Wake ``obj`` when ``fingerprint`` differs from the one seen last (not on first sight).

        The daemon patches status itself; waking on those echoes would make every status write
        trigger another reconcile. Only what a user changes (generation, annotations) wakes.
        """
        previous = self._seen.get(obj)
        self._seen[obj] = fingerprint
        if previous is not None and previous != fingerprint:
            self.wake(obj)
            return True
        return False

    async def sleep(self, obj: str, seconds: float | None) -> bool:
        """Sleep up to ``seconds`` (None: until woken); True if woken early."""
        self._loop = asyncio.get_running_loop()
        # A daemon still finishing after its object was forgotten sleeps on an event of its
        # own: nobody wakes a deleted object, and it must not come back into the map.
        event = self._events.get(obj) or asyncio.Event()
        woken = False
        if not event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout=seconds)
        woken = event.is_set()
        event.clear()
        return woken

    def forget(self, obj: str) -> None:
        """Drop a deleted object's state."""
        self._events.pop(obj, None)
        self._seen.pop(obj, None)
