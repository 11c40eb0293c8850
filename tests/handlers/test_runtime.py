"""The shared runtime holds nothing about an object once it is gone: per-object memory,
wake-ups and the limiter's per-tenant and per-app entries all shrink back to empty."""

from __future__ import annotations

import asyncio
import datetime as dt

from rotator import metrics
from rotator.handlers import deleting, reconciling
from tests.handlers import fakes
from tests.handlers.fakes import NS


async def test_objects_created_and_deleted_leave_every_structure_empty() -> None:
    w = fakes.world(fakes.sps_body(deletionPolicy="Revoke"))
    names = [f"etl-sp-{i}" for i in range(6)]
    bodies = {}
    for name in names:
        body = fakes.sps_body(deletionPolicy="Revoke")
        body["metadata"]["name"] = name
        w.api.body = body
        w.rt.wakers.wake_if_changed(f"{NS}/{name}", (1, None, False))  # its watch events
        await reconciling.reconcile(w.rt, NS, name)
        assert w.api.status().current is not None
        bodies[name] = w.api.body
    sizes = w.rt.sizes()
    assert sizes["memories"] == len(names) and sizes["wakers"] == len(names)
    assert sizes["limiter_buckets"] == 1  # one tenant
    for name in names:
        w.api.body = bodies[name]
        await deleting.delete(w.rt, NS, name, bodies[name])
    # The last revocation took a token: the bucket goes once it has its burst back.
    w.clock.advance(dt.timedelta(seconds=1))
    await asyncio.sleep(0.3)  # the limiter looks again once its bucket is full
    assert w.rt.sizes() == {
        "memories": 0,
        "wakers": 0,
        "limiter_buckets": 0,
        "limiter_app_locks": 0,
        "limiter_holds": 0,
    }


def test_the_gauge_reads_the_runtime_live() -> None:
    w = fakes.world()
    metrics.track_sizes(w.rt.sizes)
    try:
        w.rt.memory("ns/a")
        w.rt.memory("ns/b")
        read = metrics.REGISTRY.get_sample_value
        assert read("rotator_tracked_objects", {"structure": "memories"}) == 2
        assert read("rotator_tracked_objects", {"structure": "wakers"}) == 2
        w.rt.forget("ns/a")
        w.rt.forget("ns/b")
        assert read("rotator_tracked_objects", {"structure": "memories"}) == 0
    finally:
        metrics.track_sizes(lambda: {})


def test_what_a_kind_attaches_is_built_once_and_kept_in_the_runtime() -> None:
    rt = fakes.world().rt
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    first = rt.attach("databrickssecretbindings", build)
    assert rt.attach("databrickssecretbindings", build) is first
    assert built == [first]
    assert rt.attached == {"databrickssecretbindings": first}
