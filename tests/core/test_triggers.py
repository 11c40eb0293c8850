"""Tests for rotator.core.triggers: the chain, entry by entry, and its short-circuits."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from rotator.core import facts, models, reasons, rotation, triggers
from tests.core import factories as f

SPEC = f.sps_spec()
EXPIRES = f.T0 + dt.timedelta(days=60)
NEXT = f.T0 + dt.timedelta(days=30, minutes=7)
CURRENT = models.CurrentSecret(
    key_id="k1", expires_at=EXPIRES, key_vault_version="v1", target=SPEC.target
)
STATUS = models.ServicePrincipalSecretStatus(
    current=CURRENT, next_rotation_time=NEXT, rotate_request="r1"
)
OURS = {facts.TAG_KEY_ID: "k1", facts.TAG_ROTATION_ID: "abcd1234"}


def make(
    *,
    spec: models.ServicePrincipalSecretSpec = SPEC,
    status: models.ServicePrincipalSecretStatus = STATUS,
    annotations: dict[str, str] | None = None,
    observed: facts.Facts = facts.Facts(),  # noqa: B008 - frozen, shared safely
    now: dt.datetime = f.T0,
) -> triggers.Input:
    meta = f.meta(**(annotations or {}))
    return triggers.Input(spec=spec, status=status, meta=meta, facts=observed, now=now)


def status_with(**update: Any) -> models.ServicePrincipalSecretStatus:
    return STATUS.model_copy(update=update)


CASES: list[tuple[str, triggers.Input, str, bool]] = [
    ("up to date", make(), reasons.ISSUED, False),
    (
        "never issued",
        make(status=models.ServicePrincipalSecretStatus()),
        reasons.NEVER_ISSUED,
        True,
    ),
    (
        "just before the scheduled time",
        make(now=NEXT - dt.timedelta(seconds=1)),
        reasons.ISSUED,
        False,
    ),
    ("at the scheduled time", make(now=NEXT), reasons.EXPIRING, True),
    ("past expiry", make(now=EXPIRES + dt.timedelta(days=1)), reasons.EXPIRING, True),
    (
        "no nextRotationTime recorded: recomputed from expiresAt",
        make(status=status_with(next_rotation_time=None), now=EXPIRES - dt.timedelta(days=29)),
        reasons.EXPIRING,
        True,
    ),
    (
        "no nextRotationTime recorded, not due",
        make(status=status_with(next_rotation_time=None), now=EXPIRES - dt.timedelta(days=31)),
        reasons.ISSUED,
        False,
    ),
    (
        "annotation already handled",
        make(annotations={models.ROTATE_ANNOTATION: "r1"}),
        reasons.ISSUED,
        False,
    ),
    (
        "annotation changed",
        make(annotations={models.ROTATE_ANNOTATION: "r2"}),
        reasons.MANUAL_REQUEST,
        True,
    ),
    (
        "annotation set, never handled",
        make(status=status_with(rotate_request=None), annotations={models.ROTATE_ANNOTATION: "x"}),
        reasons.MANUAL_REQUEST,
        True,
    ),
    (
        "secret name changed",
        make(spec=f.sps_spec(keyVault={"vaultUrl": f.VAULT, "secretName": "other"})),
        reasons.SPEC_CHANGED,
        True,
    ),
    (
        "credential owner changed",
        make(
            spec=f.sps_spec(
                application={"clientId": f.CLIENT_ID, "credentialOwner": "servicePrincipal"}
            )
        ),
        reasons.SPEC_CHANGED,
        True,
    ),
    (
        "rotation timing changed: no new secret needed",
        make(spec=f.sps_spec(rotation={"validity": "30d", "renewBefore": "10d"})),
        reasons.ISSUED,
        False,
    ),
    (
        "legacy status without target: no spec-change verdict",
        make(
            status=status_with(current=CURRENT.model_copy(update={"target": None})),
            spec=f.sps_spec(tenantId=f.CLIENT_ID),
        ),
        reasons.ISSUED,
        False,
    ),
    ("graph not gathered", make(observed=facts.Facts()), reasons.ISSUED, False),
    (
        "graph lists the current key",
        make(
            observed=facts.Facts(
                graph_credentials=(facts.GraphCredential("k1"), facts.GraphCredential("k0"))
            )
        ),
        reasons.ISSUED,
        False,
    ),
    (
        "current key gone from graph",
        make(observed=facts.Facts(graph_credentials=(facts.GraphCredential("k0"),))),
        reasons.DRIFT_DETECTED,
        True,
    ),
    (
        "graph lists nothing",
        make(observed=facts.Facts(graph_credentials=())),
        reasons.DRIFT_DETECTED,
        True,
    ),
    (
        "key vault latest is ours",
        make(observed=facts.Facts(key_vault_latest=facts.VaultLatest("v1", OURS))),
        reasons.ISSUED,
        False,
    ),
    (
        "key vault latest untagged but same version",
        make(observed=facts.Facts(key_vault_latest=facts.VaultLatest("v1"))),
        reasons.ISSUED,
        False,
    ),
    (
        "key vault latest is someone else's",
        make(observed=facts.Facts(key_vault_latest=facts.VaultLatest("v2"))),
        reasons.DRIFT_DETECTED,
        True,
    ),
    (
        "key vault latest tagged with another key",
        make(
            observed=facts.Facts(key_vault_latest=facts.VaultLatest("v1", {facts.TAG_KEY_ID: "k9"}))
        ),
        reasons.DRIFT_DETECTED,
        True,
    ),
    (
        "key vault secret deleted",
        make(observed=facts.Facts(key_vault_latest=facts.VaultLatest(None))),
        reasons.DRIFT_DETECTED,
        True,
    ),
    (
        "key vault latest disabled",
        make(observed=facts.Facts(key_vault_latest=facts.VaultLatest("v1", OURS, enabled=False))),
        reasons.DRIFT_DETECTED,
        True,
    ),
]


@pytest.mark.parametrize(("name", "given", "reason", "violated"), CASES, ids=[c[0] for c in CASES])
def test_chain(name: str, given: triggers.Input, reason: str, violated: bool) -> None:
    verdict = triggers.evaluate(given)
    assert (verdict.reason, verdict.violated) == (reason, violated), verdict.message
    assert verdict.message


def test_manual_request_beats_the_schedule() -> None:
    verdict = triggers.evaluate(make(now=NEXT, annotations={models.ROTATE_ANNOTATION: "r2"}))
    assert verdict.reason == reasons.MANUAL_REQUEST
    assert "'r2'" in verdict.message


def test_suspend_short_circuits_every_trigger() -> None:
    suspended = f.sps_spec(suspend=True)
    verdict = triggers.evaluate(make(spec=suspended, status=models.ServicePrincipalSecretStatus()))
    assert (verdict.reason, verdict.violated) == (reasons.SUSPENDED, False)
    verdict = triggers.evaluate(make(spec=suspended, now=EXPIRES))
    assert verdict.violated is False


def test_in_flight_rotation_short_circuits() -> None:
    journal = rotation.plan(SPEC, f.meta(), reasons.EXPIRING, "abcd1234", f.T0)
    verdict = triggers.evaluate(make(status=status_with(rotation=journal), now=EXPIRES))
    assert (verdict.reason, verdict.violated) == (reasons.ROTATING, False)


def test_chain_entries_are_named_and_ordered() -> None:
    names = [name for name, _ in triggers.CHAIN]
    assert names[0] == "never_issued"
    assert names[-1] == "expiring"
    assert len(set(names)) == len(names)
    for name, trigger in triggers.CHAIN:
        assert trigger.__name__ == name
        assert trigger(make()) == ("", "", False)  # a healthy secret violates nothing


def test_custom_chain_is_honoured() -> None:
    def always(_: triggers.Input) -> triggers.Result:
        return "Custom", "because", True

    verdict = triggers.evaluate(make(), chain=(("always", always),))
    assert dataclasses.astuple(verdict) == ("Custom", "because", True)


# --- Expiry always wins: the margin and the supersede chain --------------------------------


@pytest.mark.parametrize(
    ("rotation_", "verify", "margin"),
    [
        ({"validity": "90d", "renewBefore": "30d"}, {"enabled": True, "timeout": "5m"}, 25),
        ({"validity": "90d", "renewBefore": "30d"}, {"enabled": False}, 20),
        ({"validity": "90d", "renewBefore": "30d"}, {"enabled": True, "timeout": "1h"}, 80),
        # Never more than half of renewBefore: the scheduled rotation keeps its first half.
        ({"validity": "2m", "renewBefore": "1m"}, {"enabled": True, "timeout": "5m"}, 0.5),
    ],
)
def test_expiry_margin(rotation_: dict[str, str], verify: dict[str, Any], margin: float) -> None:
    spec = f.sps_spec(rotation=rotation_ | {"overlap": "10s"}, verify=verify)
    assert triggers.expiry_margin(spec) == dt.timedelta(minutes=margin)


URGENT = EXPIRES - triggers.expiry_margin(SPEC)  # 25 minutes before expiry


def in_flight(started: dt.datetime, **update: Any) -> models.ServicePrincipalSecretStatus:
    journal = rotation.plan(SPEC, f.meta(), reasons.EXPIRING, "abcd1234", started)
    return status_with(rotation=journal.model_copy(update=update))


SUPERSEDE: list[tuple[str, triggers.Input, str]] = [
    ("idle: nothing to supersede", make(now=URGENT), ""),
    ("in flight, far from expiry", make(status=in_flight(NEXT), now=NEXT), ""),
    (
        "in flight since the schedule, at the margin",
        make(status=in_flight(NEXT), now=URGENT),
        reasons.EXPIRING_WITHOUT_REPLACEMENT,
    ),
    (
        "a fresh one inside the margin, young",
        make(status=in_flight(URGENT), now=URGENT + dt.timedelta(minutes=12)),
        "",
    ),
    (
        "a fresh one inside the margin, has used half of it",
        make(status=in_flight(URGENT), now=URGENT + dt.timedelta(minutes=12, seconds=30)),
        reasons.EXPIRING_WITHOUT_REPLACEMENT,
    ),
    (
        "past expiry",
        make(status=in_flight(NEXT), now=EXPIRES + dt.timedelta(hours=1)),
        reasons.EXPIRING_WITHOUT_REPLACEMENT,
    ),
    (
        "a new rotate request, far from expiry",
        make(status=in_flight(NEXT), annotations={models.ROTATE_ANNOTATION: "r2"}, now=NEXT),
        reasons.MANUAL_REQUEST,
    ),
    (
        "the handled rotate request",
        make(status=in_flight(NEXT), annotations={models.ROTATE_ANNOTATION: "r1"}, now=NEXT),
        "",
    ),
    (
        "stored: promoted, never superseded",
        make(
            status=in_flight(
                NEXT,
                step=models.Step.STORE,
                phase=models.Phase.DONE,
                key_id="k2",
                key_vault_version="v2",
            ),
            annotations={models.ROTATE_ANNOTATION: "r2"},
            now=URGENT,
        ),
        "",
    ),
    (
        "suspended",
        make(spec=f.sps_spec(suspend=True), status=in_flight(NEXT), now=URGENT),
        "",
    ),
]


@pytest.mark.parametrize(("name", "given", "reason"), SUPERSEDE, ids=[c[0] for c in SUPERSEDE])
def test_supersede(name: str, given: triggers.Input, reason: str) -> None:
    verdict = triggers.supersede(given)
    assert verdict.violated is bool(reason)
    assert verdict.reason == reason


def test_at_risk_from_the_margin_on() -> None:
    assert not triggers.at_risk(SPEC, STATUS, URGENT - dt.timedelta(seconds=1))
    assert triggers.at_risk(SPEC, STATUS, URGENT)
    assert triggers.at_risk(SPEC, STATUS, EXPIRES + dt.timedelta(days=1))
    assert not triggers.at_risk(SPEC, models.ServicePrincipalSecretStatus(), EXPIRES)
