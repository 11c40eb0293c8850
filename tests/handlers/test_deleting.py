"""deletionPolicy: Retain touches nothing; Revoke removes current, retiring and in-flight."""

from __future__ import annotations

from rotator.core import models, reasons, rotation
from rotator.handlers import deleting, reconciling
from tests.handlers import fakes
from tests.handlers.fakes import NAME, NS


async def issued(policy: str) -> fakes.World:
    w = fakes.world(fakes.sps_body(deletionPolicy=policy))
    await reconciling.reconcile(w.rt, NS, NAME)
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "again"}
    await reconciling.reconcile(w.rt, NS, NAME)
    return w


async def test_retain_makes_no_cloud_call() -> None:
    w = await issued("Retain")
    before = w.cloud_calls()
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.cloud_calls() == before
    assert len(w.graph.passwords) == 2
    assert w.events.posted[-1][1] == reasons.DELETED


async def test_revoke_removes_current_and_retiring() -> None:
    w = await issued("Revoke")
    status = w.api.status()
    assert status.current is not None and len(status.retiring) == 1
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.graph.passwords == {}
    assert "removed 2 credential(s)" in w.events.posted[-1][2]
    assert w.rt.memories == {}


async def test_revoke_finds_an_unrecorded_mint_by_display_name() -> None:
    w = fakes.world(fakes.sps_body(deletionPolicy="Revoke"))
    meta = models.ResourceMeta.from_body(w.api.body)
    spec = models.ServicePrincipalSecretSpec.from_body(w.api.body)
    journal = rotation.begin(
        rotation.plan(spec, meta, reasons.NEVER_ISSUED, "abcd1234", fakes.T0), models.Step.MINT
    )
    w.graph.seed(journal.display_name)
    untouched = w.graph.seed("someone-else")
    w.api.body["status"] = models.ServicePrincipalSecretStatus(rotation=journal).to_dict()
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert list(w.graph.passwords) == [untouched]


async def test_revoke_denied_by_policy_makes_no_call() -> None:
    w = await issued("Revoke")
    w.policies.clear()
    before = w.cloud_calls()
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.cloud_calls() == before
    assert w.events.posted[-1][:2] == ("Warning", reasons.NOT_AUTHORIZED)


def test_credentials_to_revoke_lists_each_key_once() -> None:
    status = models.ServicePrincipalSecretStatus.from_dict(
        {
            "current": {"keyId": "a", "expiresAt": "2027-01-01T00:00:00Z"},
            "retiring": [{"keyId": "b", "supersededAt": "2026-01-01T00:00:00Z"}],
        }
    )
    assert deleting.credentials_to_revoke(status) == ["a", "b"]
