"""Token bucket and per-app locks, with an injected clock and sleep (no real waiting)."""

from __future__ import annotations

import asyncio

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
