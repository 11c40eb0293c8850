"""Per-object wake-ups: an event wakes a sleeping daemon; status echoes do not; an object's
entry exists from its daemon's start until it is forgotten, and nothing else makes one."""

from __future__ import annotations

import asyncio

from rotator.handlers import waking


async def test_sleep_times_out_when_nobody_wakes() -> None:
    wakers = waking.Wakers()
    assert await wakers.sleep("ns/a", 0.01) is False


async def test_wake_ends_the_sleep_early() -> None:
    wakers = waking.Wakers()
    wakers.register("ns/a")
    sleeping = asyncio.ensure_future(wakers.sleep("ns/a", 60))
    await asyncio.sleep(0)
    wakers.wake("ns/a")
    assert await asyncio.wait_for(sleeping, 1) is True


async def test_a_wake_before_the_sleep_is_not_lost() -> None:
    wakers = waking.Wakers()
    wakers.register("ns/a")
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
    for k in ("a/x", "b/y"):
        wakers.register(k)
    sleepers = [asyncio.ensure_future(wakers.sleep(k, 60)) for k in ("a/x", "b/y")]
    await asyncio.sleep(0)
    wakers.wake_all()
    assert await asyncio.wait_for(asyncio.gather(*sleepers), 1) == [True, True]


async def test_a_wake_from_another_thread_reaches_the_sleeper() -> None:
    # kopf runs sync handlers in worker threads.
    wakers = waking.Wakers()
    wakers.register("ns/a")
    sleeping = asyncio.ensure_future(wakers.sleep("ns/a", 60))
    await asyncio.sleep(0)
    await asyncio.to_thread(wakers.wake, "ns/a")
    assert await asyncio.wait_for(sleeping, 1) is True


async def test_entries_exist_only_between_register_and_forget() -> None:
    wakers = waking.Wakers()
    wakers.wake("ns/never-started")  # e.g. a binding naming an sps that does not exist
    assert len(wakers) == 0
    for i in range(5):
        wakers.register(f"ns/o{i}")
        wakers.wake_if_changed(f"ns/o{i}", (1, None))
        wakers.wake(f"ns/o{i}")
    assert len(wakers) == 5
    for i in range(5):
        wakers.forget(f"ns/o{i}")
    assert len(wakers) == 0
    # A daemon finishing after its object was forgotten does not bring the entry back.
    assert await wakers.sleep("ns/o0", 0.01) is False
    wakers.wake_all()
    assert len(wakers) == 0
