"""Storms and abuse, through the reconcile pass with fakes at our ports: the per-object rotation
limit (RotationStorm) and a ``rotator.dev/rotate`` value the operator refuses to act on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from rotator import settings as operator_settings
from rotator.core import models, reasons
from rotator.handlers import reconciling
from tests.handlers import fakes
from tests.handlers.fakes import NAME, NS

MINUTE = dt.timedelta(minutes=1)


async def run(w: fakes.World) -> float | None:
    return await reconciling.reconcile(w.rt, NS, NAME)


def stalled(w: fakes.World) -> models.Condition | None:
    return next((c for c in w.api.status().conditions if c.type == "Stalled"), None)


def adds(w: fakes.World) -> int:
    return len([c for c in w.graph.calls if c[0] == "add"])


def storm_events(w: fakes.World) -> list[str]:
    return [m for t, r, m in w.events.posted if (t, r) == ("Warning", reasons.ROTATION_STORM)]


async def request(w: fakes.World, value: str) -> float | None:
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: value}
    return await run(w)


def with_limit(w: fakes.World, limit: int) -> None:
    w.rt.config = dataclasses.replace(w.rt.config, max_rotations_per_hour=limit)


async def test_the_seventh_rotation_in_an_hour_is_held_without_a_cloud_call_then_resumes() -> None:
    w = fakes.world(drift=dt.timedelta(days=1))  # no drift check wakes it in between
    assert w.rt.config.max_rotations_per_hour == 6  # the default
    first = w.clock.now()
    await run(w)  # 1: NeverIssued
    for n in range(2, 7):  # 2..6: ManualRequest, a minute apart
        w.clock.advance(MINUTE)
        await request(w, f"r{n}")
    assert adds(w) == 6
    status = w.api.status()
    assert len(status.recent_rotations) == 6
    assert status.recent_rotations[0] == first.replace(microsecond=0)
    assert stalled(w) is None

    w.clock.advance(MINUTE)
    calls = w.cloud_calls()
    wait = await request(w, "r7")
    assert w.cloud_calls() == calls  # no Graph, Key Vault or token call at all
    assert adds(w) == 6
    status = w.api.status()
    assert status.rotation is None and status.rotate_request == "r6"  # r7 not handled yet
    held = stalled(w)
    assert held is not None and held.status == "True" and held.reason == reasons.ROTATION_STORM
    until = first + dt.timedelta(hours=1)
    assert models.format_time(until) in held.message and "r7" not in held.message
    assert "--max-rotations-per-hour=6" in held.message
    ready = next(c for c in status.conditions if c.type == "Ready")
    assert ready.status == "True"  # the current secret still works
    assert len(storm_events(w)) == 1
    # The loop wakes by itself exactly when the window frees up; nothing must change.
    assert wait == (until - w.clock.now()).total_seconds()

    # A pass during the hold (another annotation value, a restart) changes nothing and does
    # not repeat the event: the history is in status, not in memory.
    w.rt.memories.clear()
    w.clock.advance(10 * MINUTE)
    patches = len(w.api.patches)
    await request(w, "r8")
    assert adds(w) == 6 and w.cloud_calls() == calls
    assert len(w.api.patches) == patches
    assert len(storm_events(w)) == 1

    w.clock.set(until)
    await run(w)
    status = w.api.status()
    assert adds(w) == 7
    assert status.rotate_request == "r8" and status.rotation is None
    assert stalled(w) is None
    assert len(status.recent_rotations) == 7  # limit + 1 kept
    assert status.recent_rotations[-1] == until


async def test_the_limit_is_the_operators_setting() -> None:
    w = fakes.world()
    with_limit(w, 2)
    await run(w)
    w.clock.advance(MINUTE)
    await request(w, "a")
    w.clock.advance(MINUTE)
    await request(w, "b")
    assert adds(w) == 2
    held = stalled(w)
    assert held is not None and held.reason == reasons.ROTATION_STORM


async def test_expiry_wins_once_per_window() -> None:
    # A one-hour schedule with a limit of 1: the scheduled rotation of a secret that would
    # otherwise expire is allowed beyond the limit, once.
    body = fakes.sps_body(rotation={"validity": "1h", "renewBefore": "50m", "overlap": "1m"})
    w = fakes.world(body)
    with_limit(w, 1)
    await run(w)  # NeverIssued: the one rotation of this window
    w.clock.advance(2 * MINUTE)
    await request(w, "a")  # held: not critical yet
    held = stalled(w)
    assert held is not None and held.reason == reasons.ROTATION_STORM
    assert adds(w) == 1
    current = w.api.status().current
    assert current is not None
    # Critical from the trigger chain's urgent point: expiresAt - min(verify.timeout 5m +
    # 2 x 10m backoff cap, renewBefore / 2) = expiresAt - 25m. The hold ends then.
    critical = current.expires_at - 25 * MINUTE
    assert models.format_time(critical) in held.message
    w.clock.set(critical)
    await run(w)
    assert adds(w) == 2  # the exception
    assert "allowed beyond the limit" in storm_events(w)[-1]
    assert stalled(w) is None
    # The exception is used: the next critical moment falls inside the same window... the
    # new secret expires an hour later, so the window frees first and nothing expires.
    renewed = w.api.status().current
    assert renewed is not None and renewed.expires_at > critical + dt.timedelta(minutes=59)


async def test_a_storm_of_annotation_changes_mints_at_most_the_limit_per_hour() -> None:
    w = fakes.world()
    await run(w)
    for n in range(59):  # an annotation loop, one change a minute for an hour
        w.clock.advance(MINUTE)
        await request(w, f"loop-{n}")
    assert adds(w) == 6  # 1 issuance + 5 requests, then held until the first leaves
    assert len(storm_events(w)) == 1
    w.clock.advance(MINUTE)  # an hour after the issuance: one start left the window
    await request(w, "loop-59")
    assert adds(w) == 7


async def test_a_huge_rotate_annotation_is_refused_never_copied() -> None:
    w = fakes.world()
    await run(w)
    huge = "x" * 200_000
    calls = w.cloud_calls()
    await request(w, huge)
    assert w.cloud_calls() == calls  # no rotation
    status = w.api.status()
    assert status.rotate_request is None
    assert all(huge not in repr(p) for p in w.api.patches)
    assert all(huge[:64] not in m for _, _, m in w.events.posted)
    held = stalled(w)
    assert held is not None and held.reason == reasons.INVALID_SPEC
    assert "at most 63 characters, got 200000" in held.message
    invalid = [m for t, r, m in w.events.posted if r == reasons.INVALID_SPEC]
    assert len(invalid) == 1
    # The refusal stays visible, posts no second event, and the schedule still runs.
    next_time = status.next_rotation_time
    assert next_time is not None
    w.clock.set(next_time)
    await run(w)
    assert adds(w) == 2
    assert w.api.status().rotate_request is None
    assert len([r for _, r, _ in w.events.posted if r == reasons.INVALID_SPEC]) == 1
    held = stalled(w)
    assert held is not None and held.reason == reasons.INVALID_SPEC
    # A valid value rotates and clears the condition.
    await request(w, "fixed")
    assert adds(w) == 3
    assert w.api.status().rotate_request == "fixed"
    assert stalled(w) is None


async def test_an_annotation_with_a_control_character_is_refused() -> None:
    w = fakes.world()
    await run(w)
    await request(w, "line\nbreak")
    assert adds(w) == 1
    held = stalled(w)
    assert held is not None and "printable ASCII" in held.message


async def test_long_error_messages_are_bounded_in_status() -> None:
    w = fakes.world()
    from rotator.core import errors

    w.graph.fail_add.append((errors.TransientError("Graph said " + "z" * 5000), False))
    await run(w)
    status = w.api.status()
    assert len(status.last_error) <= models.MAX_MESSAGE
    reconciling_ = next(c for c in status.conditions if c.type == "Reconciling")
    assert len(reconciling_.message) <= models.MAX_MESSAGE
    assert all(len(m) <= 64 * 1024 for _, _, m in w.events.posted)


def test_default_limit_is_six_an_hour() -> None:
    config = operator_settings.OperatorConfig(clusterwide=True)
    assert config.max_rotations_per_hour == 6
