"""Token bucket and per-app locks, with an injected clock and sleep (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from rotator.core import errors
from rotator.handlers import limiting


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    t = FakeTime()
    bucket = limiting.TokenBucket(2.0, clock=t.clock, sleep=t.sleep)
    waits = [await bucket.acquire() for _ in range(4)]
    assert waits[:2] == [0.0, 0.0]
    assert waits[2] == 0.5 and waits[3] == 0.5
    assert t.now == 1.0


async def test_bucket_refills_while_idle_but_not_beyond_burst() -> None:
    t = FakeTime()
    bucket = limiting.TokenBucket(1.0, burst=2, clock=t.clock, sleep=t.sleep)
    await bucket.acquire()
    await bucket.acquire()
    t.now += 100
    assert [await bucket.acquire() for _ in range(3)] == [0.0, 0.0, 1.0]


async def test_buckets_are_per_tenant_and_case_insensitive() -> None:
    t = FakeTime()
    limits = limiting.Limits(
        max_concurrent_rotations=1, graph_writes_per_second=1.0, clock=t.clock, sleep=t.sleep
    )
    assert limits.bucket("TENANT") is limits.bucket("tenant")
    assert limits.bucket("a") is not limits.bucket("b")
    assert limits.app_lock("T", "App") is limits.app_lock("t", "app")


async def test_graph_writes_to_one_app_are_serialized() -> None:
    limits = limiting.Limits(max_concurrent_rotations=4, graph_writes_per_second=1000.0)
    inside = 0
    most = 0

    async def write() -> None:
        nonlocal inside, most
        async with limits.graph_write("t", "app"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(write() for _ in range(5)))
    assert most == 1


async def test_rotation_slots_bound_concurrency() -> None:
    limits = limiting.Limits(max_concurrent_rotations=2, graph_writes_per_second=1.0)
    inside = 0
    most = 0

    async def rotate() -> None:
        nonlocal inside, most
        async with limits.rotation_slot():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(rotate() for _ in range(6)))
    assert most == 2


def _throttled(retry_after: float | None = 30.0) -> errors.Throttled:
    return errors.Throttled("Graph throttled the request (429)", retry_after)


async def test_a_throttled_graph_call_holds_every_graph_call_of_its_tenant() -> None:
    """Graph throttles per application per tenant: one 429 with Retry-After holds the tenant's
    reads and writes (of any object, any app) until it has passed; other tenants go on."""
    t = FakeTime()
    limits = limiting.Limits(
        max_concurrent_rotations=4, graph_writes_per_second=100.0, clock=t.clock, sleep=t.sleep
    )
    with pytest.raises(errors.Throttled):
        async with limits.graph_write("tenant-a", "app-1"):
            raise _throttled(30.0)
    assert limits.held_for("TENANT-A") == 30.0
    # Another tenant is not held.
    async with limits.graph_read("tenant-b"):
        assert t.now == 0.0
    async with limits.graph_write("tenant-b", "app-9"):
        assert t.now == 0.0
    # A read of another application of the throttled tenant waits out the window...
    async with limits.graph_read("tenant-a"):
        assert t.now == 30.0
    # ...and so does a write; a throttled read holds the tenant as well.
    with pytest.raises(errors.Throttled):
        async with limits.graph_read("tenant-a"):
            raise _throttled(10.0)
    async with limits.graph_write("tenant-a", "app-2"):
        assert t.now == 40.0
    assert t.slept == [30.0, 10.0]


async def test_a_hold_is_never_shortened_and_needs_retry_after() -> None:
    t = FakeTime()
    limits = limiting.Limits(
        max_concurrent_rotations=1, graph_writes_per_second=1.0, clock=t.clock, sleep=t.sleep
    )
    limits.hold("t", 30.0)
    limits.hold("t", 5.0)
    assert limits.held_for("t") == 30.0
    # A Throttled without Retry-After (and any other error) holds nobody: that object backs off.
    other = limiting.Limits(
        max_concurrent_rotations=1, graph_writes_per_second=1.0, clock=t.clock, sleep=t.sleep
    )
    for error in (_throttled(None), errors.TransientError("503", 20.0)):
        with pytest.raises(errors.TransientError):
            async with other.graph_read("t"):
                raise error
    assert other.held_for("t") == 0.0


async def test_waiting_for_a_throttled_tenant_gives_the_rotation_slot_back() -> None:
    """With one slot, a rotation of a throttled tenant must not keep another tenant's rotation
    out for the whole Retry-After window: it gives its slot back while it waits."""
    t = FakeTime()
    released = asyncio.Event()

    async def sleep(seconds: float) -> None:
        t.slept.append(seconds)
        await released.wait()  # the hold lasts until the test says so
        t.now += seconds

    limits = limiting.Limits(
        max_concurrent_rotations=1, graph_writes_per_second=100.0, clock=t.clock, sleep=sleep
    )
    limits.hold("tenant-a", 30.0)
    order: list[str] = []

    async def rotate(tenant: str) -> None:
        async with limits.rotation_slot():
            order.append(f"{tenant} in")
            async with limits.graph_write(tenant, "app"):
                order.append(f"{tenant} write")

    waiting = asyncio.ensure_future(rotate("tenant-a"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert order == ["tenant-a in"] and t.slept == [30.0]
    await asyncio.wait_for(rotate("tenant-b"), 1)  # the only slot is free for another tenant
    assert order == ["tenant-a in", "tenant-b in", "tenant-b write"]
    released.set()
    await asyncio.wait_for(waiting, 1)
    assert order[-1] == "tenant-a write"
    # Every slot is back: two rotations can take the one slot in turn without waiting.
    await asyncio.wait_for(rotate("tenant-b"), 1)


async def test_a_slot_given_back_during_a_cancelled_wait_is_not_released_twice() -> None:
    t = FakeTime()
    forever = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await forever.wait()

    limits = limiting.Limits(
        max_concurrent_rotations=1, graph_writes_per_second=100.0, clock=t.clock, sleep=sleep
    )
    limits.hold("t", 30.0)

    async def rotate() -> None:
        async with limits.rotation_slot(), limits.graph_read("t"):
            pass

    waiting = asyncio.ensure_future(rotate())
    for _ in range(5):
        await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inside = 0
    most = 0

    async def other() -> None:
        nonlocal inside, most
        async with limits.rotation_slot():
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    await asyncio.gather(*(other() for _ in range(3)))
    assert most == 1


async def test_entries_are_dropped_once_idle_and_the_limits_still_hold() -> None:
    """Per-tenant and per-app entries go when nobody uses them: many tenants and apps come and
    go without the maps growing, and dropping an entry never loosens a limit."""
    t = FakeTime()
    limits = limiting.Limits(
        max_concurrent_rotations=4, graph_writes_per_second=1.0, clock=t.clock, sleep=t.sleep
    )
    empty = {"limiter_buckets": 0, "limiter_app_locks": 0, "limiter_holds": 0}
    for i in range(20):
        async with limits.graph_write(f"tenant-{i % 4}", f"app-{i}"):
            pass
        async with limits.graph_read(f"tenant-{i % 4}"):
            pass
    # Every app lock went with its last writer; the 4 buckets still pace their tenants.
    assert limits.sizes() == {**empty, "limiter_buckets": 4}
    t.now += 1.0  # each bucket has its burst back: it paces no one any more
    limits.prune()
    assert limits.sizes() == empty

    # A bucket that is not full again is kept: a new one would grant a fresh burst.
    await limits.bucket("t").acquire()
    limits.prune()
    assert limits.sizes()["limiter_buckets"] == 1
    async with limits.graph_write("t", "app"):
        assert t.slept[-1] == 1.0  # still paced by the same bucket
    # A hold outlives the call that was throttled, and goes once it is over.
    with pytest.raises(errors.Throttled):
        async with limits.graph_write("t", "app"):
            raise _throttled(30.0)
    limits.prune()
    assert limits.sizes() == {**empty, "limiter_buckets": 1, "limiter_holds": 1}
    t.now += 30.0
    limits.prune()
    assert limits.sizes() == empty


async def test_an_app_lock_with_waiters_is_kept_until_the_last_one_leaves() -> None:
    """The first writer leaving must not drop the lock a woken waiter is about to take: a
    newcomer would build a second lock and two writes to one app would overlap."""
    limits = limiting.Limits(max_concurrent_rotations=4, graph_writes_per_second=1000.0)
    inside = 0
    most = 0

    async def write() -> None:
        nonlocal inside, most
        async with limits.graph_write("t", "app"):
            inside += 1
            most = max(most, inside)
            await asyncio.sleep(0)
            inside -= 1

    first = [asyncio.ensure_future(write()) for _ in range(3)]
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(write()) for _ in range(3)]  # while the others hand over
    await asyncio.gather(*first, *later)
    assert most == 1
    assert limits.sizes()["limiter_app_locks"] == 0
