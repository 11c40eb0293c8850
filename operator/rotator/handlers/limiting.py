"""Being gentle with shared APIs: per-tenant Graph write rate, per-app write lock, global bound,
and ``Retry-After`` held per tenant.

* :class:`TokenBucket` — ``rate`` writes per second per tenant with a small burst; a caller
  waits (asyncio) for a token, never spins, never blocks the loop.
* :class:`Limits.app_lock` — one Graph write at a time per (tenant, application): two writes to
  one app at once get 409 ``Directory_ConcurrencyViolation``, and two ServicePrincipalSecrets
  may target the same app.
* :class:`Limits.rotation_slot` — at most ``--max-concurrent-rotations`` rotations in flight.
* The tenant hold — Graph throttles per application (the operator is one) per tenant, so a
  :class:`~rotator.core.errors.Throttled` with ``retry_after`` from ANY Graph call of a tenant
  holds EVERY Graph call of that tenant, reads (:meth:`Limits.graph_read`) and writes
  (:meth:`Limits.graph_write`), until Retry-After has passed; other tenants are not held.

Entries are per tenant and per (tenant, application), created on first use and dropped again
once idle (:meth:`Limits.prune`): nobody inside a Graph call of that tenant or app, the bucket
full again, the hold over. An idle entry carries no state, so dropping it changes nothing, and
a fleet whose objects come and go does not grow these maps for ever.

Waiting for a tenant's hold never occupies a rotation slot: a rotation that meets a held
tenant gives its slot back while it waits and queues for one again afterwards, so a throttled
tenant cannot starve the others of ``--max-concurrent-rotations``. (The order is: rotation
slot, then app lock, then hold, then the tenant's token; only the slot is given back, since
the app lock and token are per tenant anyway.)

Time and sleep are injected so tests run without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from rotator import metrics
from rotator.core import errors

logger = logging.getLogger(__name__)


class TokenBucket:
    """A token bucket: ``rate`` tokens per second, at most ``burst`` saved up."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._burst = max(1.0, burst if burst is not None else rate)
        self._tokens = self._burst
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        # Waiters queue in order, so a burst of callers is served first come, first served.
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._updated) * self._rate)
        self._updated = now

    def full(self) -> bool:
        """Whether the bucket has its whole burst again and nobody waits (it paces no one)."""
        if self._lock.locked():
            return False
        self._refill()
        return self._tokens >= self._burst

    def until_full(self) -> float:
        """Seconds until the bucket has its whole burst again."""
        self._refill()
        return max(0.0, (self._burst - self._tokens) / self._rate)

    async def acquire(self) -> float:
        """Take one token, waiting as long as needed; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            self._refill()
            while self._tokens < 1.0:
                delay = (1.0 - self._tokens) / self._rate
                await self._sleep(delay)
                waited += delay
                self._refill()
            self._tokens -= 1.0
        return waited


@dataclasses.dataclass
class _Slot:
    """The rotation slot the current task holds (``taken`` is False while given back)."""

    taken: bool = True


#: The slot of the rotation running in this task (a task's context is its own).
_SLOT: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("rotation_slot", default=None)


class Limits:
    """The operator-wide limits, shared by every handler through the runtime."""

    def __init__(
        self,
        *,
        max_concurrent_rotations: int,
        graph_writes_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._slots = asyncio.Semaphore(max_concurrent_rotations)
        self._rate = graph_writes_per_second
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, TokenBucket] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        #: tenant -> monotonic time before which no Graph call of that tenant is made.
        self._not_before: dict[str, float] = {}
        #: Callers inside (or waiting in) a Graph call, per tenant and per (tenant, app). An
        #: entry is dropped only when nobody uses it: a lock dropped while a woken waiter has
        #: yet to take it would let a newcomer build a second lock for the same app.
        self._tenant_users: dict[str, int] = {}
        self._app_users: dict[tuple[str, str], int] = {}

    def bucket(self, tenant: str) -> TokenBucket:
        """The Graph write bucket of ``tenant`` (created on first use)."""
        key = tenant.lower()
        if key not in self._buckets:
            self._buckets[key] = TokenBucket(self._rate, clock=self._clock, sleep=self._sleep)
        return self._buckets[key]

    def app_lock(self, tenant: str, app: str) -> asyncio.Lock:
        """The write lock of one application in one tenant."""
        key = (tenant.lower(), app.lower())
        if key not in self._locks:
            self._locks[key] = asyncio.Lock()
        return self._locks[key]

    def hold(self, tenant: str, seconds: float) -> None:
        """No Graph call of ``tenant`` for ``seconds`` from now (never shortens a hold)."""
        key = tenant.lower()
        until = self._clock() + max(0.0, seconds)
        if until > self._not_before.get(key, float("-inf")):
            self._not_before[key] = until
            logger.info("Graph throttled tenant %s: holding its calls for %.1fs", key, seconds)
            self._prune_later(key, seconds)

    def held_for(self, tenant: str) -> float:
        """Seconds until ``tenant``'s Graph calls may go again (0 when not held)."""
        until = self._not_before.get(tenant.lower())
        return 0.0 if until is None else max(0.0, until - self._clock())

    def sizes(self) -> dict[str, int]:
        """How many entries each map holds (the ``rotator_tracked_objects`` gauge, tests)."""
        return {
            "limiter_buckets": len(self._buckets),
            "limiter_app_locks": len(self._locks),
            "limiter_holds": len(self._not_before),
        }

    def prune(self) -> None:
        """Drop every idle entry: unused locks, unused full buckets, holds that are over."""
        for tenant in {*self._buckets, *self._not_before}:
            self._prune_tenant(tenant)
        for key in list(self._locks):
            if not self._app_users.get(key):
                del self._locks[key]

    def _prune_tenant(self, tenant: str) -> None:
        if self._tenant_users.get(tenant):
            return
        if self.held_for(tenant) <= 0:
            self._not_before.pop(tenant, None)
        bucket = self._buckets.get(tenant)
        # A bucket that is not full yet still paces the tenant: a new one would grant a burst.
        if bucket is not None:
            if bucket.full():
                del self._buckets[tenant]
            else:
                self._prune_later(tenant, bucket.until_full())

    def _prune_later(self, tenant: str, seconds: float) -> None:
        """Look at ``tenant``'s entries again once they may be idle (nobody else may come)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on the event loop: the next prune or call takes care of it
        # A little late on purpose: on time, the bucket may be a rounding error short of full.
        loop.call_later(seconds + 0.05, self._prune_tenant, tenant)

    @contextlib.contextmanager
    def _using(self, tenant: str, app: str | None = None) -> Iterator[None]:
        """Count a caller of ``tenant`` (and ``app``) while inside; prune after the last."""
        key = tenant.lower()
        app_key = (key, app.lower()) if app is not None else None
        self._tenant_users[key] = self._tenant_users.get(key, 0) + 1
        if app_key is not None:
            self._app_users[app_key] = self._app_users.get(app_key, 0) + 1
        try:
            yield
        finally:
            if app_key is not None:
                self._app_users[app_key] -= 1
                if not self._app_users[app_key]:
                    del self._app_users[app_key]
                    self._locks.pop(app_key, None)
            self._tenant_users[key] -= 1
            if not self._tenant_users[key]:
                del self._tenant_users[key]
                self._prune_tenant(key)

    async def _until_released(self, tenant: str) -> None:
        """Wait out ``tenant``'s hold, giving this task's rotation slot back meanwhile."""
        if self.held_for(tenant) <= 0:
            return
        slot = _SLOT.get()
        if slot is not None and slot.taken:
            slot.taken = False
            self._slots.release()
            metrics.ROTATIONS_IN_FLIGHT.dec()
        try:
            # A hold may be extended while we sleep (another call throttled): look again.
            while (remaining := self.held_for(tenant)) > 0:
                await self._sleep(remaining)
        finally:
            if slot is not None and not slot.taken:
                await self._slots.acquire()
                slot.taken = True
                metrics.ROTATIONS_IN_FLIGHT.inc()

    @contextlib.contextmanager
    def _watch(self, tenant: str) -> Iterator[None]:
        """Turn a Throttled with Retry-After from the call inside into a hold of the tenant."""
        try:
            yield
        except errors.Throttled as exc:
            if exc.retry_after is not None:
                self.hold(tenant, exc.retry_after)
            raise

    @contextlib.asynccontextmanager
    async def graph_read(self, tenant: str) -> AsyncIterator[None]:
        """One Graph read of ``tenant``: after its hold (if any); a throttle starts one."""
        with self._using(tenant):
            await self._until_released(tenant)
            with self._watch(tenant):
                yield

    @contextlib.asynccontextmanager
    async def graph_write(self, tenant: str, app: str) -> AsyncIterator[None]:
        """One Graph write: the app's write lock, the tenant's hold, then one of its tokens."""
        with self._using(tenant, app):
            async with self.app_lock(tenant, app):
                await self._until_released(tenant)
                await self.bucket(tenant).acquire()
                # The bucket may have made us wait, and a hold may have begun meanwhile.
                await self._until_released(tenant)
                with self._watch(tenant):
                    yield

    @contextlib.asynccontextmanager
    async def rotation_slot(self) -> AsyncIterator[None]:
        """One of the ``--max-concurrent-rotations`` slots, for the length of a rotation.

        Given back while the rotation waits for a throttled tenant (:meth:`_until_released`).
        """
        await self._slots.acquire()
        slot = _Slot()
        token = _SLOT.set(slot)
        metrics.ROTATIONS_IN_FLIGHT.inc()
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # closed from another context: nothing to undo
                _SLOT.reset(token)
            if slot.taken:
                self._slots.release()
                metrics.ROTATIONS_IN_FLIGHT.dec()
