"""Leader election against an in-memory Lease API with the API server's conflict rule, on a
manual clock: two replicas, exactly one leads; a cut-off leader stops before the standby
takes over; a clean stop hands over at once."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any, NoReturn

import pytest

from rotator import metrics
from rotator.core import leadership
from rotator.handlers import leading

TIMING = leadership.Timing()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


@dataclasses.dataclass
class Store:
    """One Lease object with resourceVersion semantics; ``down`` replicas cannot reach it."""

    raw: dict[str, Any] | None = None
    version: int = 0
    down: set[str] = dataclasses.field(default_factory=set)
    events: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def client(self, me: str) -> Client:
        return Client(self, me)


@dataclasses.dataclass
class Client:
    store: Store
    me: str

    def _check(self) -> None:
        if self.me in self.store.down:
            raise ConnectionError("API server unreachable")

    async def read(self) -> leading.Record:
        self._check()
        raw = self.store.raw
        return leading.Record(None) if raw is None else leading._record(dict(raw))

    async def write(self, previous: leading.Record, spec: dict[str, Any]) -> leading.Record:
        self._check()
        current = self.store.raw
        if (previous.raw is None) != (current is None) or (
            current is not None
            and previous.raw is not None
            and previous.raw["metadata"]["resourceVersion"]
            != current["metadata"]["resourceVersion"]
        ):
            raise leading.Conflict("the object has been modified")
        self.store.version += 1
        old_spec = (current or {}).get("spec") or {}
        self.store.raw = {
            "metadata": {"resourceVersion": str(self.store.version), "uid": "u1"},
            "spec": {**old_spec, **spec},
        }
        return leading._record(dict(self.store.raw))

    def event(self, record: leading.Record, reason: str, message: str) -> None:
        self.store.events.append((reason, message))


def elector(store: Store, me: str, clock: Clock) -> leading.Elector:
    return leading.Elector(
        store.client(me),
        me,
        TIMING,
        clock=clock,
        wall=lambda: dt.datetime(2026, 11, 27, tzinfo=dt.UTC) + dt.timedelta(seconds=clock.now),
        sleep=clock.sleep,
    )


async def test_exactly_one_leads_and_the_other_says_it_stands_by() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    await a.acquire()
    assert a.leading and store.raw is not None
    assert store.raw["spec"]["holderIdentity"] == "a"
    standby = asyncio.ensure_future(b.acquire())
    for _ in range(50):  # a keeps renewing for 100 s of manual time
        await a._try()
        await clock.sleep(2.0)
    assert not standby.done() and not b.leading
    assert ("StandingBy", "b is standing by; a leads") in store.events
    assert [r for r, _ in store.events].count("StandingBy") == 1  # said once, not every poll
    standby.cancel()


async def test_a_cut_off_leader_stops_before_the_standby_takes_over() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    await a.acquire()
    store.down.add("a")  # a loses the API server
    lost_at: list[float] = []
    took_at: list[float] = []

    async def keep_a() -> None:
        await a.keep()
        lost_at.append(clock.now)

    async def acquire_b() -> None:
        await b.acquire()
        took_at.append(clock.now)

    await asyncio.gather(keep_a(), acquire_b())
    assert lost_at[0] <= TIMING.renew_deadline.total_seconds() + TIMING.retry_period.total_seconds()
    assert took_at[0] >= TIMING.lease_duration.total_seconds()
    assert lost_at[0] < took_at[0]  # never two leaders at once
    assert store.raw is not None and store.raw["spec"]["holderIdentity"] == "b"
    assert store.raw["spec"]["leaseTransitions"] == 1
    assert b.leading


async def test_lead_exits_at_once_when_leadership_is_lost() -> None:
    store, clock = Store(), Clock()
    a = elector(store, "a", clock)
    started = asyncio.Event()

    async def work(stop: asyncio.Event) -> None:
        started.set()
        store.down.add("a")
        await asyncio.Event().wait()  # kopf: runs until stopped

    class Exited(Exception):
        pass

    def exit_now(code: int) -> NoReturn:
        raise Exited(code)

    with pytest.raises(Exited) as exited:
        await leading.lead(a, work, health=None, exit_now=exit_now)
    assert started.is_set() and exited.value.args == (1,)
    assert metrics.LEADER._value.get() == 0


async def test_a_clean_stop_releases_the_lease_for_the_standby() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)

    async def work(stop: asyncio.Event) -> None:
        await clock.sleep(1.0)  # kopf ran and was stopped (SIGTERM)

    await leading.lead(a, work, health=None)
    assert store.raw is not None and not store.raw["spec"]["holderIdentity"]
    await b.acquire()
    assert b.leading and clock.now < TIMING.lease_duration.total_seconds()
