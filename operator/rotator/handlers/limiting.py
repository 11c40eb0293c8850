"""Being gentle with shared APIs: per-tenant Graph write rate, per-app write lock, global bound.

* :class:`TokenBucket` — ``rate`` writes per second per tenant with a small burst; a caller
  waits (asyncio) for a token, never spins, never blocks the loop.
* :class:`Limits.app_lock` — one Graph write at a time per (tenant, application): two writes to
  one app at once get 409 ``Directory_ConcurrencyViolation``, and two ServicePrincipalSecrets
  may target the same app.
* :class:`Limits.rotation_slot` — at most ``--max-concurrent-rotations`` rotations in flight.

Time and sleep are injected so tests run without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from rotator import metrics


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

    @contextlib.asynccontextmanager
    async def graph_write(self, tenant: str, app: str) -> AsyncIterator[None]:
        """Hold the app's write lock and one token of the tenant's bucket for one Graph write."""
        async with self.app_lock(tenant, app):
            await self.bucket(tenant).acquire()
            yield

    @contextlib.asynccontextmanager
    async def rotation_slot(self) -> AsyncIterator[None]:
        """One of the ``--max-concurrent-rotations`` slots, for the length of a rotation."""
        async with self._slots:
            metrics.ROTATIONS_IN_FLIGHT.inc()
            try:
                yield
            finally:
                metrics.ROTATIONS_IN_FLIGHT.dec()
