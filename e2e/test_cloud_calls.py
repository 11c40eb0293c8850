"""Each rotation makes exactly the cloud calls it needs, counted from the emulators' request logs.

Issuance:   Graph getApplication x1 (appId → objectId, cached afterwards), addPassword x1;
            Key Vault setSecret x2 (staging, then the real name), updateSecret x1 (disable
            staging); Entra token xN for verification; no reads of the value back.
Rotation:   the same minus the lookup; after the overlap, removePassword x1 of the old secret.
Idle:       nothing at all until the drift check.

Key Vault's 401 challenge (the SDK's first, bodiless request to a vault) is not a call that
does anything and is not counted.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from typing import Any

import pytest

from e2e import operator_harness as h
from e2e.test_sps_scenarios import (
    SPS,
    Target,
    app_requests,
    seed_target,
    vault_requests,
    wait_ready,
)

pytest_plugins = ["e2e.operator_harness"]

pytestmark = pytest.mark.e2e


def calls(sandbox: h.Sandbox, t: Target, since: float) -> Counter[str]:
    """Operations about this test's app and secret (and every Entra token) after ``since``."""
    mine = [*app_requests(sandbox, t), *vault_requests(sandbox, t)]
    tokens = [e for e in sandbox.requests("entra.token")]
    found: Counter[str] = Counter()
    for entry in (*mine, *tokens):
        if float(entry["time"]) > since and entry.get("status") != 401:
            name = entry["operation"]
            if name.startswith("keyvault.") and "-rotator-staging" in entry["path"]:
                name += "(staging)"
            found[name] += 1
    return found


def now_of(sandbox: h.Sandbox) -> float:
    entries: list[Any] = sandbox.requests()
    return float(entries[-1]["time"]) if entries else 0.0


@pytest.mark.timeout(180)
def test_each_rotation_makes_exactly_the_needed_calls(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    start = now_of(sandbox)
    kube.apply(t.manifest(rotation={"validity": "1d", "renewBefore": "12h", "overlap": "5s"}))
    first = wait_ready(kube, t)["current"]["keyId"]
    issued = calls(sandbox, t, start)
    tokens = issued.pop("entra.token", 0)
    assert issued == Counter(
        {
            "graph.getApplication": 1,
            "graph.addPassword": 1,
            "keyvault.setSecret(staging)": 1,
            "keyvault.setSecret": 1,
            "keyvault.updateSecret(staging)": 1,
        }
    )
    assert 1 <= tokens <= 3  # verification (and at most a token refresh of the operator's own)

    start = now_of(sandbox)
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": "count"}}})
    wait_ready(kube, t, other_than=first)
    h.wait_for(
        lambda: not (kube.status(SPS, t.ns, t.name).get("retiring") or []),
        timeout=60,
        message="the old secret to be revoked after the overlap",
    )
    rotated = calls(sandbox, t, start)
    tokens = rotated.pop("entra.token", 0)
    assert rotated == Counter(
        {
            "graph.addPassword": 1,
            "keyvault.setSecret(staging)": 1,
            "keyvault.setSecret": 1,
            "keyvault.updateSecret(staging)": 1,
            "graph.removePassword": 1,
        }
    )
    assert 1 <= tokens <= 3

    # Idle: no cloud call for this resource between drift checks (default: hourly).
    start = now_of(sandbox)
    time.sleep(5)
    idle = calls(sandbox, t, start)
    idle.pop("entra.token", None)
    assert idle == Counter()

    # The same story in Prometheus metrics, with bounded labels and no secret anywhere.
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as answer:
        text = answer.read().decode()
    assert 'rotator_rotations_total{reason="ManualRequest",result="succeeded"}' in text
    assert 'rotator_cloud_calls_total{operation="addPassword",outcome="ok",service="graph"}' in text
    assert f'rotator_secret_seconds_until_expiry{{name="{t.name}",namespace="{t.ns}"}}' in text
    for secret in sandbox.minted_secrets():
        assert secret not in text
