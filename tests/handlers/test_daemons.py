"""The one daemon shell: it sleeps until due, wakes on demand, retries a pass that raised and
stops when told (with the ServicePrincipalSecret pass, and with a scripted one)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from rotator.core import models, schedule
from rotator.handlers import daemons, reconciling, waking
from tests.handlers import fakes
from tests.handlers.fakes import NAME, NS


class Stopped:
    """kopf's DaemonStopped as the loop uses it: truthiness and an awaitable wait()."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def __bool__(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


async def test_loop_issues_then_sleeps_until_woken_and_stops() -> None:
    w = fakes.world()
    stopped = Stopped()
    task = asyncio.ensure_future(reconciling.loop(w.rt, NS, NAME, stopped))
    for _ in range(200):
        await asyncio.sleep(0)
        if w.api.status().current is not None:
            break
    first = w.api.status().current
    assert first is not None
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "now"}
    w.rt.wakers.wake(waking.key(NS, NAME))
    for _ in range(200):
        await asyncio.sleep(0)
        current = w.api.status().current
        if current is not None and current.key_id != first.key_id:
            break
    assert w.api.status().current.key_id != first.key_id  # type: ignore[union-attr]
    stopped.set()
    await asyncio.wait_for(task, 1)


async def test_a_stalled_resource_with_past_due_times_does_not_spin() -> None:
    w = fakes.world()
    await reconciling.reconcile(w.rt, NS, NAME)
    w.api.body["spec"]["suspend"] = True
    w.clock.advance(dt.timedelta(days=89))  # past nextRotationTime, not yet expired
    wait = await reconciling.reconcile(w.rt, NS, NAME)
    # Not 0 (the due rotation is held back by suspend); the expiry is a day away, so the loop
    # sleeps for the longest requeue and looks again (a pure check) after that.
    assert wait == schedule.MAX_REQUEUE.total_seconds()


async def test_a_drift_check_that_falls_due_during_a_slow_pass_is_not_skipped() -> None:
    """A rotation slower than the time left to the drift check (a loaded machine): the check
    is due at once, not pushed back to the next rotation; the pass after it does not spin."""
    w = fakes.world(drift=dt.timedelta(seconds=5))
    verify = w.verifier.verify

    async def slow_verify(*args: Any, **kwargs: Any) -> None:
        w.clock.advance(dt.timedelta(seconds=10))
        await verify(*args, **kwargs)

    w.verifier.verify = slow_verify  # type: ignore[method-assign]
    wait = await reconciling.reconcile(w.rt, NS, NAME)
    assert w.api.status().current is not None
    assert wait == 0
    lists = w.graph.calls.count(("list", ""))
    wait = await reconciling.reconcile(w.rt, NS, NAME)
    assert w.graph.calls.count(("list", "")) == lists + 1  # the drift check ran
    assert wait == dt.timedelta(seconds=5).total_seconds()


async def test_a_pass_that_raises_is_retried_and_the_exit_hook_runs_once_stopped() -> None:
    w = fakes.world()
    stopped = Stopped()
    passes: list[str] = []
    exits: list[str] = []

    async def pass_() -> float | None:
        passes.append("pass")
        if len(passes) == 1:
            raise RuntimeError("the API server refused a status write")
        return None

    async def on_exit() -> None:
        exits.append("exit")

    obj = waking.key(NS, "scripted")
    task = asyncio.ensure_future(daemons.run(w.rt, obj, pass_, stopped, on_exit=on_exit))
    for _ in range(50):
        await asyncio.sleep(0)
    assert passes == ["pass"]  # backing off after the crash, not spinning
    w.rt.wakers.wake(obj)
    for _ in range(50):
        await asyncio.sleep(0)
    assert passes == ["pass", "pass"]
    assert exits == []
    stopped.set()
    await asyncio.wait_for(task, 1)
    assert exits == ["exit"]
