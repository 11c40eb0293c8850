"""deletionPolicy: Retain leaves the secrets in use (current, retiring, a stored in-flight one)
and removes only an in-flight credential never stored; Revoke removes current, retiring and
in-flight. No policy: no cloud call at all."""

from __future__ import annotations

from rotator.core import errors, models, reasons, rotation
from rotator.handlers import deleting, reconciling
from tests.handlers import fakes
from tests.handlers.fakes import NAME, NS


async def issued(policy: str) -> fakes.World:
    w = fakes.world(fakes.sps_body(deletionPolicy=policy))
    await reconciling.reconcile(w.rt, NS, NAME)
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "again"}
    await reconciling.reconcile(w.rt, NS, NAME)
    return w


async def test_retain_makes_no_cloud_call_when_idle() -> None:
    w = await issued("Retain")
    before = w.cloud_calls()
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.cloud_calls() == before
    assert len(w.graph.passwords) == 2
    assert w.events.posted[-1][1] == reasons.DELETED


async def mid_rotation(policy: str) -> tuple[fakes.World, models.RotationJournal]:
    """Issued, then a second rotation stopped at Verify (minted and staged, not stored)."""
    w = await issued(policy)
    w.verifier.fail.append(errors.TransientError("Entra is unavailable"))
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "third"}
    await reconciling.reconcile(w.rt, NS, NAME)
    journal = w.api.status().rotation
    assert journal is not None and journal.step is models.Step.VERIFY
    assert journal.key_id in w.graph.passwords and journal.key_vault_version is None
    return w, journal


async def test_retain_removes_an_in_flight_credential_never_stored() -> None:
    """PRODUCT.md: no orphaned Graph credential beyond the next reconcile. Nobody uses a
    credential minted but not yet stored in Key Vault: Retain removes it, and only it."""
    w, journal = await mid_rotation("Retain")
    status = w.api.status()
    assert status.current is not None and len(status.retiring) == 1
    in_use = {status.current.key_id, status.retiring[0].key_id}
    vault_calls = list(w.vault.calls)
    graph_calls = len(w.graph.calls)
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.graph.calls[graph_calls:] == [("remove", journal.key_id)]
    assert set(w.graph.passwords) == in_use  # current and retiring are left alone
    assert w.vault.calls == vault_calls  # Key Vault is not touched
    assert w.api.status().rotation is None
    assert w.events.posted[-1][1] == reasons.DELETED
    assert "removed from Graph" in w.events.posted[-1][2]
    assert w.rt.memories == {}


async def test_retain_finds_an_unrecorded_mint_by_display_name() -> None:
    w = fakes.world(fakes.sps_body(deletionPolicy="Retain"))
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


async def test_retain_keeps_an_in_flight_secret_once_stored() -> None:
    """After Store the new secret is Key Vault's latest: consumers may hold it. Like current,
    Retain leaves it, and makes no cloud call."""
    w, journal = await mid_rotation("Retain")
    stored = journal.model_copy(
        update={
            "step": models.Step.STORE,
            "phase": models.Phase.DONE,
            "key_vault_version": "v9",
        }
    )
    w.api.body["status"] = w.api.status().model_copy(update={"rotation": stored}).to_dict()
    before = w.cloud_calls()
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.cloud_calls() == before
    assert journal.key_id in w.graph.passwords
    assert len(w.graph.passwords) == 3


async def test_retain_keeps_an_in_flight_secret_whose_store_landed() -> None:
    """Store Started: Key Vault's latest says whether the store landed. It did: the secret is
    kept (promoted, like the reconcile would) and not removed."""
    w, journal = await mid_rotation("Retain")
    w.verifier.fail.clear()
    # Let the rotation store, then pretend the process died before recording Store Done.
    await reconciling.reconcile(w.rt, NS, NAME)
    promoted = w.api.status()
    assert promoted.current is not None and promoted.current.key_id == journal.key_id
    landed = journal.model_copy(update={"step": models.Step.STORE, "phase": models.Phase.STARTED})
    w.api.body["status"] = (
        w.api.status()
        .model_copy(update={"rotation": landed, "current": None, "retiring": ()})
        .to_dict()
    )
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert ("remove", journal.key_id) not in w.graph.calls
    assert journal.key_id in w.graph.passwords
    assert "kept like current" in w.events.posted[-1][2]


async def test_retain_denied_by_policy_mid_rotation_makes_no_call() -> None:
    w, journal = await mid_rotation("Retain")
    w.policies.clear()
    before = w.cloud_calls()
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.cloud_calls() == before
    assert journal.key_id in w.graph.passwords
    assert w.events.posted[-1][:2] == ("Warning", reasons.NOT_AUTHORIZED)


async def test_revoke_removes_current_and_retiring() -> None:
    w = await issued("Revoke")
    status = w.api.status()
    assert status.current is not None and len(status.retiring) == 1
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.graph.passwords == {}
    assert "removed 2 credential(s)" in w.events.posted[-1][2]
    assert w.rt.memories == {}


def _enabled(w: fakes.World, name: str) -> dict[str, bool]:
    return {props.version: props.enabled for props, _ in w.vault.versions.get(name, [])}


async def test_revoke_disables_the_key_vault_latest_once_its_secret_is_revoked() -> None:
    """Key Vault's latest must not hand out, enabled, a secret Graph no longer accepts."""
    w = await issued("Revoke")
    status = w.api.status()
    assert status.current is not None
    latest = status.current.key_vault_version
    assert _enabled(w, fakes.SECRET)[latest] is True
    graph_calls, vault_calls = len(w.graph.calls), len(w.vault.calls)
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.vault.versions[fakes.SECRET][-1][0].version == latest  # still the latest...
    assert _enabled(w, fakes.SECRET)[latest] is False  # ...but disabled
    assert w.vault.calls[vault_calls:] == [("disable", fakes.SECRET)]
    # Graph first: both removals happened before the one Key Vault write.
    assert [c[0] for c in w.graph.calls[graph_calls:]] == ["remove", "remove"]
    assert "disabled 1 Key Vault version(s)" in w.events.posted[-1][2]


async def test_revoke_mid_rotation_disables_the_staging_and_stored_versions() -> None:
    w, journal = await mid_rotation("Revoke")
    staging = rotation.staging_secret_name(fakes.SECRET)
    assert journal.staging_version is not None
    assert _enabled(w, staging)[journal.staging_version] is True  # Promote never ran
    # Say the store landed too: the stored version is the latest, holding the new secret.
    stored = w.vault.versions[fakes.SECRET]
    stored.append((fakes.keyvault.SecretVersion(fakes.SECRET, "v9", {}, True, None, None), "x"))
    journal = journal.model_copy(
        update={"step": models.Step.STORE, "phase": models.Phase.DONE, "key_vault_version": "v9"}
    )
    status = w.api.status().model_copy(update={"rotation": journal})
    w.api.body["status"] = status.to_dict()
    assert status.current is not None and status.current.key_vault_version is not None
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert w.graph.passwords == {}
    enabled = _enabled(w, fakes.SECRET)
    assert enabled["v9"] is False and enabled[status.current.key_vault_version] is False
    assert _enabled(w, staging)[journal.staging_version] is False


async def test_a_revoke_interrupted_before_key_vault_is_finished_by_the_retry() -> None:
    """Revoked in Graph, then Key Vault failed (or the process died): the finalizer stays,
    kopf runs the handler again, and the retry completes it from the same status."""
    w = await issued("Revoke")
    status = w.api.status()
    assert status.current is not None and status.current.key_vault_version is not None
    failing = w.vault.disable

    async def unavailable(vault: str, name: str, version: str) -> None:
        raise errors.TransientError("Key Vault is unavailable")

    w.vault.disable = unavailable  # type: ignore[method-assign]
    try:
        await deleting.delete(w.rt, NS, NAME, w.api.body)
    except errors.TransientError:
        pass
    else:
        raise AssertionError("the failure must reach kopf, which keeps the finalizer")
    assert w.graph.passwords == {}  # revoked already
    assert _enabled(w, fakes.SECRET)[status.current.key_vault_version] is True
    w.vault.disable = failing  # type: ignore[method-assign]
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert _enabled(w, fakes.SECRET)[status.current.key_vault_version] is False
    assert w.events.posted[-1][1] == reasons.DELETED


async def test_a_version_deleted_by_hand_is_skipped() -> None:
    w = await issued("Revoke")
    w.vault.versions[fakes.SECRET].clear()
    await deleting.delete(w.rt, NS, NAME, w.api.body)
    assert "disabled 0 Key Vault version(s)" in w.events.posted[-1][2]


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
