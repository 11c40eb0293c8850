"""Every cloud call is counted by service, operation and outcome (a reason, never a message);
the bindings' Databricks clients are shared and closed once unused."""

from __future__ import annotations

import asyncio

import pytest

from rotator import metrics
from rotator.clouds import settings as cloud_settings
from rotator.core import errors, reasons, sensitive
from rotator.handlers import wiring


def value(operation: str, outcome: str) -> float:
    found = metrics.REGISTRY.get_sample_value(
        "rotator_cloud_calls_total",
        {"service": "graph", "operation": operation, "outcome": outcome},
    )
    return found or 0.0


async def test_counted_records_ok_and_error_reasons() -> None:
    async def ok() -> int:
        return 7

    async def throttled() -> int:
        raise errors.Throttled("Graph said 429", retry_after=3)

    before_ok = value("testOp", "ok")
    before_throttled = value("testOp", reasons.THROTTLED)
    assert await wiring.counted("graph", "testOp", ok()) == 7
    with pytest.raises(errors.Throttled):
        await wiring.counted("graph", "testOp", throttled())
    assert value("testOp", "ok") == before_ok + 1
    assert value("testOp", reasons.THROTTLED) == before_throttled + 1


HOST = "https://adb-1234567890123456.7.azuredatabricks.net"


async def test_adapter_cache_closes_a_client_once_no_binding_uses_it() -> None:
    cache = wiring.AdapterCache(cloud_settings.CloudSettings())
    token, rotated = sensitive.SecretText("dapi-1"), sensitive.SecretText("dapi-2")
    first = cache(HOST, token, user="ns/dsb:a")
    assert cache(HOST, token, user="ns/dsb:b") is first
    assert len(cache) == 1
    cache(HOST, rotated, user="ns/dsb:a")  # a's PAT was rotated: b still uses the old client
    assert len(cache) == 2
    cache(HOST, rotated, user="ns/dsb:b")  # now nobody does
    await asyncio.sleep(0)
    assert len(cache) == 1
    await cache.release("ns/dsb:a")
    assert len(cache) == 1
    await cache.release("ns/dsb:b")
    await cache.release("ns/dsb:b")  # twice (daemon end and DELETED): harmless
    assert len(cache) == 0
