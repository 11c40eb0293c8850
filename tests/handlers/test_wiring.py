"""Every cloud call is counted by service, operation and outcome (a reason, never a message)."""

from __future__ import annotations

import pytest

from rotator import metrics
from rotator.core import errors, reasons
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
