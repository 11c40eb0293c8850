"""Storms and abuse against the real API server and the emulators: the per-object rotation
limit (the operator's default, 6 an hour) counted in the Graph emulator's request log, and a
``rotator.dev/rotate`` annotation far too long to act on.

A hostile chaos run found both: a 1m/59s schedule rotated 22 times in 47 s (the CRD now refuses
it: tests/manifests/invalid/), and a 200 KB annotation was copied verbatim into status.
"""

from __future__ import annotations

import time

import pytest

from e2e import operator_harness as h
from e2e.test_sps_scenarios import SPS, Target, app_requests, seed_target, sps_status, wait_ready

pytest_plugins = ["e2e.operator_harness"]

pytestmark = pytest.mark.e2e

LIMIT = 6  # rotator run's default --max-rotations-per-hour


def request(kube: h.Kube, t: Target, value: str) -> None:
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": value}}})


def minted(sandbox: h.Sandbox, t: Target) -> int:
    return len(app_requests(sandbox, t, "graph.addPassword"))


def stalled_reason(kube: h.Kube, t: Target) -> str | None:
    stalled = h.condition(kube.get(SPS, t.ns, t.name), "Stalled")
    return stalled.get("reason") if stalled.get("status") == "True" else None


def wait_stalled(kube: h.Kube, t: Target, reason: str, timeout: float = 60.0) -> dict[str, str]:
    h.wait_for(
        lambda: stalled_reason(kube, t) == reason,
        timeout=timeout,
        message=f"Stalled {reason}",
    )
    return h.condition(kube.get(SPS, t.ns, t.name), "Stalled")


@pytest.mark.timeout(420)
def test_an_annotation_storm_mints_at_most_the_limit_per_hour(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    key = wait_ready(kube, t)["current"]["keyId"]
    for n in range(2, LIMIT + 1):  # the issuance and five manual rotations: the whole budget
        request(kube, t, f"storm-{n}")
        status = wait_ready(kube, t, other_than=key)
        assert status["rotateRequest"] == f"storm-{n}"
        key = status["current"]["keyId"]
    assert minted(sandbox, t) == LIMIT

    request(kube, t, "storm-7")
    held = wait_stalled(kube, t, "RotationStorm")
    assert f"--max-rotations-per-hour={LIMIT}" in held["message"]
    # Keep asking, from an annotation loop and across a kill -9 of the operator: the history
    # is in status, so nothing more is minted within the hour.
    for n in range(8, 12):
        request(kube, t, f"storm-{n}")
    time.sleep(3)
    operator.restart()
    request(kube, t, "storm-12")
    time.sleep(5)
    assert minted(sandbox, t) == LIMIT
    status = sps_status(kube, t)
    assert status["rotateRequest"] == f"storm-{LIMIT}"
    assert len(status["recentRotations"]) == LIMIT
    assert status.get("rotation") is None
    assert status["current"]["keyId"] == key
    assert stalled_reason(kube, t) == "RotationStorm"
    assert h.condition(kube.get(SPS, t.ns, t.name), "Ready")["status"] == "True"
    events = h.wait_for_events(kube, t.ns, t.name, ["RotationStorm"])
    storms = [e for e in events if e.get("reason") == "RotationStorm"]
    assert storms and all(e.get("type") == "Warning" for e in storms)


@pytest.mark.timeout(180)
def test_a_200kb_rotate_annotation_is_refused_and_never_copied(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    key = wait_ready(kube, t)["current"]["keyId"]
    huge = "x" * 200_000
    request(kube, t, huge)
    held = wait_stalled(kube, t, "InvalidSpec")
    assert "at most 63 characters, got 200000" in held["message"]
    time.sleep(3)
    assert minted(sandbox, t) == 1
    status = sps_status(kube, t)
    assert "rotateRequest" not in status
    assert huge[:64] not in str(status)
    assert all(huge[:64] not in str(e) for e in kube.events_for(t.ns, t.name))
    assert status["current"]["keyId"] == key
    # A valid value is acted on again, and the condition goes away.
    request(kube, t, "after-the-flood")
    status = wait_ready(kube, t, other_than=key)
    assert status["rotateRequest"] == "after-the-flood"
    h.wait_for(lambda: stalled_reason(kube, t) is None, message="Stalled cleared")
