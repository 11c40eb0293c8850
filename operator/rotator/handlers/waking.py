"""Wake-ups: each ServicePrincipalSecret's daemon sleeps until it is due or until woken.

The daemon computes when it must look again (next rotation, a retiring secret's retireAt, a
retry backoff, the drift check) and sleeps until then. Watch events wake it early: a spec or
``rotator.dev/rotate`` change of the object itself, a binding that reports a sync, a
RotationPolicy or namespace label change. A wake-up only runs the pure decision; it makes a
cloud call only if the decision needs one.
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

    def _event(self, obj: str) -> asyncio.Event:
        if obj not in self._events:
            self._events[obj] = asyncio.Event()
        return self._events[obj]

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
        """Make the object's daemon look again now (safe from any thread)."""
        self._set(self._event(obj))

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
        event = self._event(obj)
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
