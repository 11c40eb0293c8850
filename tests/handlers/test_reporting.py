"""Status patches carry only what changed; Ready tells issued, expired and suspended apart."""

from __future__ import annotations

import datetime as dt

from rotator.core import models, reasons
from rotator.handlers import reporting
from tests.handlers import fakes


def test_diff_patch_keeps_only_changes_and_clears_with_null() -> None:
    old = {"failures": 1, "lastError": "x", "rotation": {"id": "a"}}
    new = {"failures": 1, "lastError": "", "rotation": None, "current": None}
    assert reporting.diff_patch(old, new) == {"lastError": "", "rotation": None}


def test_ready_signal() -> None:
    spec = models.ServicePrincipalSecretSpec.from_body(fakes.sps_body())
    none = models.ServicePrincipalSecretStatus()
    assert reporting.ready_signal(none, spec, fakes.T0)[1].reason == reasons.NEVER_ISSUED
    issued = models.ServicePrincipalSecretStatus(
        current=models.CurrentSecret(key_id="k", expires_at=fakes.T0 + dt.timedelta(days=1))
    )
    assert reporting.ready_signal(issued, spec, fakes.T0) == (
        True,
        reporting.conditions.Signal(
            reasons.ISSUED, "secret k is current, expires 2026-11-27T05:00:00Z"
        ),
    )
    later = fakes.T0 + dt.timedelta(days=2)
    ready, signal = reporting.ready_signal(issued, spec, later)
    assert not ready and signal.reason == reasons.EXPIRED


def test_rendered_conditions_carry_observed_generation() -> None:
    status = reporting.render_conditions(
        models.ServicePrincipalSecretStatus(), None, generation=4, now=fakes.T0
    )
    assert status.observed_generation == 4
    assert [c.observed_generation for c in status.conditions] == [4]


def test_ready_signal_near_expiry_without_a_replacement() -> None:
    spec = models.ServicePrincipalSecretSpec.from_body(fakes.sps_body())
    expires = fakes.T0 + dt.timedelta(days=1)
    issued = models.ServicePrincipalSecretStatus(
        current=models.CurrentSecret(key_id="k", expires_at=expires)
    )
    margin = dt.timedelta(minutes=25)  # verify.timeout 5m + 2 x the 10-minute backoff cap
    before = reporting.ready_signal(issued, spec, expires - margin - dt.timedelta(seconds=1))
    assert before[1].reason == reasons.ISSUED
    ready, signal = reporting.ready_signal(issued, spec, expires - margin)
    assert ready is True  # the secret still works: consumers are fine for now
    assert signal.reason == reasons.EXPIRING_WITHOUT_REPLACEMENT
    assert "no verified replacement" in signal.message
    assert reporting.ready_signal(issued, spec, expires)[1].reason == reasons.EXPIRED
