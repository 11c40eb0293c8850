"""Per-object wake-ups: an event wakes a sleeping daemon; status echoes do not."""

from __future__ import annotations

import asyncio

from rotator.handlers import waking


async def test_sleep_times_out_when_nobody_wakes() -> None:
    wakers = waking.Wakers()
    assert await wakers.sleep("ns/a", 0.01) is False


async def test_wake_ends_the_sleep_early() -> None:
    wakers = waking.Wakers()
    sleeping = asyncio.ensure_future(wakers.sleep("ns/a", 60))
    await asyncio.sleep(0)
    wakers.wake("ns/a")
    assert await asyncio.wait_for(sleeping, 1) is True


async def test_a_wake_before_the_sleep_is_not_lost() -> None:
    wakers = waking.Wakers()
    wakers.wake("ns/a")
    assert await wakers.sleep("ns/a", 60) is True
    assert await wakers.sleep("ns/a", 0.01) is False


def test_only_a_changed_fingerprint_wakes() -> None:
    wakers = waking.Wakers()
    assert wakers.wake_if_changed("ns/a", (1, None)) is False  # first sight
    assert wakers.wake_if_changed("ns/a", (1, None)) is False  # a status echo
    assert wakers.wake_if_changed("ns/a", (1, "now")) is True  # the rotate annotation


async def test_wake_all_reaches_every_known_object() -> None:
    wakers = waking.Wakers()
    sleepers = [asyncio.ensure_future(wakers.sleep(k, 60)) for k in ("a/x", "b/y")]
    await asyncio.sleep(0)
    wakers.wake_all()
    assert await asyncio.wait_for(asyncio.gather(*sleepers), 1) == [True, True]


async def test_a_wake_from_another_thread_reaches_the_sleeper() -> None:
    # kopf runs sync handlers in worker threads.
    wakers = waking.Wakers()
    sleeping = asyncio.ensure_future(wakers.sleep("ns/a", 60))
    await asyncio.sleep(0)
    await asyncio.to_thread(wakers.wake, "ns/a")
    assert await asyncio.wait_for(sleeping, 1) is True
