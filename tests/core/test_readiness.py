"""Readiness (pure): the Ready chain, table-driven; status patches carry only what changed."""

from __future__ import annotations

import datetime as dt

import pytest

from rotator.core import conditions, models, readiness, reasons
from tests.core import factories


def test_diff_patch_keeps_only_changes_and_clears_with_null() -> None:
    old = {"failures": 1, "lastError": "x", "rotation": {"id": "a"}}
    new = {"failures": 1, "lastError": "", "rotation": None, "current": None}
    assert readiness.diff_patch(old, new) == {"lastError": "", "rotation": None}


def test_ready_signal() -> None:
    spec = factories.sps_spec()
    none = models.ServicePrincipalSecretStatus()
    assert readiness.ready_signal(none, spec, factories.T0)[1].reason == reasons.NEVER_ISSUED
    issued = models.ServicePrincipalSecretStatus(
        current=models.CurrentSecret(key_id="k", expires_at=factories.T0 + dt.timedelta(days=1))
    )
    assert readiness.ready_signal(issued, spec, factories.T0) == (
        True,
        conditions.Signal(reasons.ISSUED, "secret k is current, expires 2026-11-27T05:00:00Z"),
    )
    later = factories.T0 + dt.timedelta(days=2)
    ready, signal = readiness.ready_signal(issued, spec, later)
    assert not ready and signal.reason == reasons.EXPIRED


def test_rendered_conditions_carry_observed_generation() -> None:
    status = readiness.render(
        models.ServicePrincipalSecretStatus(), None, generation=4, now=factories.T0
    )
    assert status.observed_generation == 4
    assert [c.observed_generation for c in status.conditions] == [4]


def test_ready_signal_near_expiry_without_a_replacement() -> None:
    spec = factories.sps_spec()
    expires = factories.T0 + dt.timedelta(days=1)
    issued = models.ServicePrincipalSecretStatus(
        current=models.CurrentSecret(key_id="k", expires_at=expires)
    )
    margin = dt.timedelta(minutes=25)  # verify.timeout 5m + 2 x the 10-minute backoff cap
    before = readiness.ready_signal(issued, spec, expires - margin - dt.timedelta(seconds=1))
    assert before[1].reason == reasons.ISSUED
    ready, signal = readiness.ready_signal(issued, spec, expires - margin)
    assert ready is True  # the secret still works: consumers are fine for now
    assert signal.reason == reasons.EXPIRING_WITHOUT_REPLACEMENT
    assert "no verified replacement" in signal.message
    assert readiness.ready_signal(issued, spec, expires)[1].reason == reasons.EXPIRED


EXPIRES = factories.T0 + dt.timedelta(days=1)
MARGIN = dt.timedelta(minutes=25)  # verify.timeout 5m + 2 x the 10-minute backoff cap
ISSUED = models.ServicePrincipalSecretStatus(
    current=models.CurrentSecret(key_id="k", expires_at=EXPIRES)
)
NONE = models.ServicePrincipalSecretStatus()
SPEC = factories.sps_spec()
SUSPENDED = factories.sps_spec(suspend=True)


@pytest.mark.parametrize(
    ("status", "spec", "now", "ready", "reason"),
    [
        # never_issued wins over everything, with or without a spec
        (NONE, SPEC, factories.T0, False, reasons.NEVER_ISSUED),
        (NONE, None, factories.T0, False, reasons.NEVER_ISSUED),
        (NONE, SUSPENDED, factories.T0, False, reasons.NEVER_ISSUED),
        # expired beats suspended and at-risk
        (ISSUED, SPEC, EXPIRES, False, reasons.EXPIRED),
        (ISSUED, SUSPENDED, EXPIRES, False, reasons.EXPIRED),
        (ISSUED, None, EXPIRES + dt.timedelta(days=1), False, reasons.EXPIRED),
        # suspended is said before at-risk; both still Ready
        (ISSUED, SUSPENDED, EXPIRES - MARGIN, True, reasons.SUSPENDED),
        (ISSUED, SUSPENDED, factories.T0, True, reasons.SUSPENDED),
        (ISSUED, SPEC, EXPIRES - MARGIN, True, reasons.EXPIRING_WITHOUT_REPLACEMENT),
        # without a spec there is no margin to judge by: Issued until it expires
        (ISSUED, None, EXPIRES - MARGIN, True, reasons.ISSUED),
        (ISSUED, SPEC, EXPIRES - MARGIN - dt.timedelta(seconds=1), True, reasons.ISSUED),
        (ISSUED, SPEC, factories.T0, True, reasons.ISSUED),
    ],
)
def test_the_ready_chain(
    status: models.ServicePrincipalSecretStatus,
    spec: models.ServicePrincipalSecretSpec | None,
    now: dt.datetime,
    ready: bool,
    reason: str,
) -> None:
    assert readiness.ready_signal(status, spec, now)[0] is ready
    assert readiness.ready_signal(status, spec, now)[1].reason == reason


def test_every_chain_entry_is_named_after_its_check() -> None:
    assert [name for name, check, _ in readiness.CHAIN] == [
        check.__name__ for _, check, _ in readiness.CHAIN
    ]


def test_a_rotation_in_flight_is_reconciling_unless_suspended_or_stalled() -> None:
    journal = models.RotationJournal(
        id="r1",
        reason=reasons.EXPIRING,
        step="Mint",
        phase="Started",
        started_at=factories.T0,
        display_name="rotator-r1",
        expires_at=EXPIRES + dt.timedelta(days=90),
    )
    status = ISSUED.model_copy(update={"rotation": journal})
    rendered = readiness.render(status, SPEC, generation=2, now=factories.T0)
    found = conditions.find(rendered.conditions, conditions.RECONCILING)
    assert found is not None and found.status == "True" and found.reason == reasons.ROTATING
    quiet = readiness.render(status, SUSPENDED, generation=2, now=factories.T0)
    found = conditions.find(quiet.conditions, conditions.RECONCILING)
    assert found is None or found.status != "True"


def test_a_binding_is_synced_with_its_version() -> None:
    signal = readiness.synced(models.DatabricksSecretBindingStatus(synced_version="v7"))
    assert signal.reason == reasons.SYNCED
    assert "v7" in signal.message
