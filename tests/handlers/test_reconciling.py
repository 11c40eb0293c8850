"""The ServicePrincipalSecret lifecycle, one reconcile pass at a time, against fakes at our ports.

No sleeping: the clock is a ManualClock the tests move; the fakes record every cloud call.
"""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest

from rotator.core import errors, models, reasons, retirement, rotation, triggers
from rotator.handlers import reconciling
from tests.handlers import fakes
from tests.handlers.fakes import NAME, NS, SECRET

STAGING = SECRET + models.STAGING_SUFFIX


async def run(w: fakes.World) -> float | None:
    return await reconciling.reconcile(w.rt, NS, NAME)


def condition(w: fakes.World, type_: str) -> models.Condition | None:
    return next((c for c in w.api.status().conditions if c.type == type_), None)


async def test_first_issuance_runs_every_step_and_promotes() -> None:
    w = fakes.world()
    wait = await run(w)
    status = w.api.status()
    assert status.rotation is None
    assert status.current is not None
    key_id = status.current.key_id
    # Exactly the calls a rotation needs, in order.
    assert w.graph.writes() == [("add", "rotator-etl-sp-r0000001")]
    assert w.vault.calls == [("set", STAGING), ("set", SECRET), ("disable", STAGING)]
    assert w.verifier.calls == [fakes.CLIENT]
    # Key Vault's latest of the real name is the verified text, tagged with its keyId.
    latest = w.vault.versions[SECRET][-1][0]
    assert latest.tags["rotator.dev/key-id"] == key_id
    assert w.vault.value(SECRET) == w.graph.texts[key_id]
    assert not w.vault.versions[STAGING][-1][0].enabled
    assert status.current.key_vault_version == latest.version
    assert status.current.expires_at == fakes.T0 + dt.timedelta(days=90)
    assert status.next_rotation_time is not None
    assert fakes.T0 + dt.timedelta(days=60) <= status.next_rotation_time
    ready = condition(w, "Ready")
    assert ready is not None and ready.status == "True" and ready.reason == reasons.ISSUED
    assert condition(w, "Reconciling") is None and condition(w, "Stalled") is None
    assert w.events.reasons()[0] == reasons.NEVER_ISSUED
    assert w.events.reasons()[-1] == reasons.ROTATED
    assert wait is not None and 0 < wait <= 6 * 3600


async def test_journal_is_written_before_and_after_each_step() -> None:
    w = fakes.world()
    await run(w)
    journal = [
        (p["rotation"]["step"], p["rotation"]["phase"])
        for p in w.api.patches
        if p.get("rotation") is not None
    ]
    assert journal == [
        ("Plan", "Done"),
        ("Mint", "Started"),
        ("Mint", "Done"),
        ("Stage", "Started"),
        ("Stage", "Done"),
        ("Verify", "Started"),
        ("Verify", "Done"),
        ("Store", "Started"),
        ("Store", "Done"),
    ]
    # No secret value in any status write.
    text = next(iter(w.graph.texts.values()))
    assert all(text not in repr(p) for p in w.api.patches)
    assert all(text not in message for _, _, message in w.events.posted)


async def test_idle_resource_makes_no_cloud_call_until_the_drift_check() -> None:
    w = fakes.world()
    await run(w)
    before = w.cloud_calls()
    patches = len(w.api.patches)
    w.clock.advance(dt.timedelta(minutes=1))
    await run(w)
    assert w.cloud_calls() == before
    assert len(w.api.patches) == patches  # nothing changed, nothing written
    w.clock.advance(dt.timedelta(hours=2))
    await run(w)
    # The drift check lists Graph and reads Key Vault's latest; nothing is written.
    assert w.graph.calls[-1] == ("list", "")
    assert w.vault.calls[-1] == ("latest", SECRET)
    assert w.graph.writes() == [("add", "rotator-etl-sp-r0000001")]


async def test_policy_denial_stalls_with_zero_cloud_calls() -> None:
    w = fakes.world()
    w.policies.clear()
    assert await run(w) is None
    assert w.cloud_calls() == 0
    stalled = condition(w, "Stalled")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == reasons.NOT_AUTHORIZED
    assert ("Warning", reasons.NOT_AUTHORIZED) in [(t, r) for t, r, _ in w.events.posted]
    # Once a policy allows it, it issues without anyone editing the resource.
    w.policies.append(fakes.ALLOW_ALL)
    await run(w)
    assert w.api.status().current is not None
    assert condition(w, "Stalled") is None


async def test_policy_enforcement_can_be_turned_off() -> None:
    w = fakes.world(enforce=False)
    w.policies.clear()
    await run(w)
    assert w.api.status().current is not None


async def test_suspend_makes_no_cloud_calls_and_says_so() -> None:
    w = fakes.world()
    await run(w)
    w.api.body["spec"]["suspend"] = True
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "now"}
    before = w.cloud_calls()
    w.clock.advance(dt.timedelta(days=80))
    await run(w)
    assert w.cloud_calls() == before
    ready = condition(w, "Ready")
    assert ready is not None and ready.reason == reasons.SUSPENDED and ready.status == "True"


async def test_manual_annotation_rotates_once() -> None:
    w = fakes.world()
    await run(w)
    first = w.api.status().current
    assert first is not None
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "2026-11-26-a"}
    await run(w)
    status = w.api.status()
    assert status.current is not None and status.current.key_id != first.key_id
    assert status.rotate_request == "2026-11-26-a"
    assert [r.key_id for r in status.retiring] == [first.key_id]
    adds = len([c for c in w.graph.calls if c[0] == "add"])
    await run(w)
    assert len([c for c in w.graph.calls if c[0] == "add"]) == adds


async def test_scheduled_rotation_then_revocation_after_overlap() -> None:
    w = fakes.world()
    await run(w)
    first = w.api.status()
    assert first.current is not None and first.next_rotation_time is not None
    w.clock.set(first.next_rotation_time)
    await run(w)
    second = w.api.status()
    assert second.current is not None and second.current.key_id != first.current.key_id
    [old] = second.retiring
    # No bindings: retireAt = supersededAt + overlap (+ 1 s: status keeps whole seconds).
    assert old.retire_at == old.superseded_at + dt.timedelta(hours=24, seconds=1)
    assert first.current.key_id in w.graph.passwords
    w.clock.set(old.retire_at)
    await run(w)
    assert w.api.status().retiring == ()
    assert first.current.key_id not in w.graph.passwords
    assert ("remove", first.current.key_id) in w.graph.calls
    assert reasons.REVOKED in w.events.reasons()


async def test_old_secret_waits_for_every_binding() -> None:
    w = fakes.world()
    await run(w)
    first = w.api.status().current
    assert first is not None
    w.bindings.append(retirement.ConsumerSync(f"{NS}/prod", synced_key_id=first.key_id))
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "x"}
    await run(w)
    [old] = w.api.status().retiring
    assert old.retire_at is None  # the binding still has the old secret
    w.clock.advance(dt.timedelta(days=3))
    await run(w)
    assert first.key_id in w.graph.passwords
    current = w.api.status().current
    assert current is not None
    synced = w.clock.now()
    w.bindings[0] = retirement.ConsumerSync(
        f"{NS}/prod", synced_key_id=current.key_id, synced_at=synced
    )
    await run(w)
    [old] = w.api.status().retiring
    assert old.retire_at == synced + dt.timedelta(hours=24, seconds=1)
    w.clock.advance(dt.timedelta(hours=24, seconds=1))
    await run(w)
    assert first.key_id not in w.graph.passwords


async def test_verification_failure_never_reaches_key_vault_and_stalls() -> None:
    w = fakes.world()
    w.verifier.fail.append(errors.VerificationFailed("tenant not found", kind="tenant"))
    await run(w)
    status = w.api.status()
    assert status.current is None and status.rotation is None
    assert SECRET not in w.vault.versions  # only the staging name was ever written
    assert w.graph.passwords == {}  # the minted credential was removed
    stalled = condition(w, "Stalled")
    assert stalled is not None and stalled.reason == reasons.VERIFICATION_FAILED
    # Not retried until the user changes something.
    calls = w.cloud_calls()
    w.clock.advance(dt.timedelta(minutes=30))
    await run(w)
    assert w.cloud_calls() == calls
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "retry"}
    await run(w)
    assert w.api.status().current is not None
    assert condition(w, "Stalled") is None


async def test_graph_503_after_creating_leaves_no_orphan_and_no_second_secret() -> None:
    w = fakes.world()
    w.graph.fail_add.append((errors.TransientError("Graph 503", retry_after=7.0), True))
    wait = await run(w)
    assert wait is not None and wait >= 7.0  # Retry-After honoured
    status = w.api.status()
    assert status.rotation is not None and status.rotation.step is models.Step.MINT
    assert status.failures == 1
    reconciling_ = condition(w, "Reconciling")
    assert reconciling_ is not None and reconciling_.status == "True"
    w.clock.advance(dt.timedelta(seconds=wait))
    await run(w)
    status = w.api.status()
    assert status.current is not None
    # The credential minted by the failed call was found by displayName and removed.
    assert list(w.graph.passwords) == [status.current.key_id]
    assert status.failures == 0 and status.last_error == ""


async def test_resume_after_restart_reads_the_text_back_from_staging() -> None:
    w = fakes.world()
    w.verifier.fail.append(errors.TransientError("token endpoint unreachable"))
    await run(w)
    assert w.api.status().rotation is not None
    # A restart: the process memory (and the minted text) is gone.
    w.rt.memories.clear()
    w.clock.advance(dt.timedelta(minutes=1))
    await run(w)
    status = w.api.status()
    assert status.current is not None
    assert ("read", STAGING) in w.vault.calls
    assert len([c for c in w.graph.calls if c[0] == "add"]) == 1


async def test_restart_after_mint_started_removes_the_orphan_and_replans() -> None:
    w = fakes.world()
    # The process died between addPassword and recording its result.
    meta = models.ResourceMeta.from_body(w.api.body)
    spec = models.ServicePrincipalSecretSpec.from_body(w.api.body)
    journal = rotation.begin(
        rotation.plan(spec, meta, reasons.NEVER_ISSUED, "dead0001", fakes.T0), models.Step.MINT
    )
    orphan = w.graph.seed(journal.display_name)
    w.api.body["status"] = models.ServicePrincipalSecretStatus(rotation=journal).to_dict()
    await run(w)
    status = w.api.status()
    assert status.current is not None
    assert orphan not in w.graph.passwords
    assert status.current.display_name != journal.display_name


async def test_drift_current_secret_gone_from_graph_rotates() -> None:
    w = fakes.world()
    await run(w)
    current = w.api.status().current
    assert current is not None
    del w.graph.passwords[current.key_id]
    w.clock.advance(dt.timedelta(hours=2))
    await run(w)
    assert reasons.DRIFT_DETECTED in w.events.reasons()
    assert w.api.status().current is not None
    assert w.api.status().current.key_id != current.key_id  # type: ignore[union-attr]


async def test_orphans_of_this_resource_are_removed_but_not_others() -> None:
    w = fakes.world(accounted=frozenset({"rotator-etl-sp-other01"}))
    await run(w)
    mine = w.graph.seed("rotator-etl-sp-lost0001")
    theirs = w.graph.seed("rotator-etl-sp-other01")  # same name, another namespace's sps
    foreign = w.graph.seed("terraform-managed")
    w.clock.advance(dt.timedelta(hours=2))
    await run(w)
    assert mine not in w.graph.passwords
    assert theirs in w.graph.passwords and foreign in w.graph.passwords
    assert reasons.ORPHAN_REMOVED in w.events.reasons()


async def test_invalid_spec_stalls_without_cloud_calls() -> None:
    w = fakes.world(fakes.sps_body(rotation={"validity": "1d", "renewBefore": "2d"}))
    await run(w)
    assert w.cloud_calls() == 0
    stalled = condition(w, "Stalled")
    assert stalled is not None and stalled.reason == reasons.INVALID_SPEC
    assert "renewBefore" in stalled.message


@pytest.mark.parametrize("verify", [True, False])
async def test_verify_disabled_skips_the_token(verify: bool) -> None:
    w = fakes.world(fakes.sps_body(verify={"enabled": verify}))
    await run(w)
    assert w.api.status().current is not None
    assert len(w.verifier.calls) == (1 if verify else 0)


OBJECT = "66666666-7777-8888-9999-000000000000"


def by_object_id(owner: str = "servicePrincipal") -> dict[str, object]:
    return fakes.sps_body(application={"objectId": OBJECT, "credentialOwner": owner})


@pytest.mark.parametrize("owner", ["application", "servicePrincipal"])
async def test_object_id_only_spec_is_verified_with_the_client_id_graph_shows(owner: str) -> None:
    w = fakes.world(by_object_id(owner))
    w.graph.client_id = "abcdef01-2222-3333-4444-555555555555"
    await run(w)
    status = w.api.status()
    assert status.current is not None and status.rotation is None
    ready = condition(w, "Ready")
    assert ready is not None and ready.status == "True" and ready.reason == reasons.ISSUED
    assert condition(w, "Stalled") is None
    # Resolved by the object the spec names, then used for the token request.
    assert ("resolve", f"{owner}/{OBJECT}") in w.graph.calls
    assert w.verifier.calls == ["abcdef01-2222-3333-4444-555555555555"]
    assert w.vault.value(SECRET) is not None


async def test_client_id_spec_does_not_look_the_client_id_up() -> None:
    w = fakes.world()
    await run(w)
    assert w.api.status().current is not None
    assert not [c for c in w.graph.calls if c[0] == "resolve"]
    assert w.verifier.calls == [fakes.CLIENT]


async def test_client_id_look_up_failing_transiently_retries_before_verify() -> None:
    w = fakes.world(by_object_id())
    w.graph.fail_resolve.append(errors.Throttled("Graph throttled the request", 3.0))
    wait = await run(w)
    status = w.api.status()
    assert status.current is None and status.rotation is not None
    # Verify never started: the journal still stands at the staged secret.
    assert (status.rotation.step, status.rotation.phase) == (models.Step.STAGE, models.Phase.DONE)
    assert w.verifier.calls == [] and SECRET not in w.vault.versions
    assert wait is not None and wait >= 3.0
    reconciling = condition(w, "Reconciling")
    assert reconciling is not None and reconciling.reason == reasons.THROTTLED
    w.clock.advance(dt.timedelta(seconds=wait))
    await run(w)
    assert w.api.status().current is not None
    assert w.verifier.calls == [fakes.CLIENT]
    assert w.graph.writes() == [("add", "rotator-etl-sp-r0000001")]  # one secret, no re-mint


async def test_client_id_look_up_refused_removes_the_new_credential_and_stalls() -> None:
    w = fakes.world(by_object_id())
    w.graph.fail_resolve.append(errors.NotOwner("the operator may not read the client id"))
    await run(w)
    status = w.api.status()
    assert status.current is None and status.rotation is None
    assert w.graph.passwords == {} and SECRET not in w.vault.versions
    stalled = condition(w, "Stalled")
    assert stalled is not None and stalled.reason == reasons.NOT_AUTHORIZED
    assert w.verifier.calls == []


async def test_promote_finishes_when_the_staging_version_is_already_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = fakes.world()
    disable = w.vault.disable

    async def unreachable(vault: str, name: str, version: str) -> None:
        raise errors.TransientError("Key Vault unreachable")

    monkeypatch.setattr(w.vault, "disable", unreachable)
    await run(w)
    journal = w.api.status().rotation
    assert journal is not None and journal.key_vault_version is not None  # stored, not promoted
    # Meanwhile someone deleted the staging secret (it is only a working copy).
    del w.vault.versions[STAGING]
    monkeypatch.setattr(w.vault, "disable", disable)
    w.clock.advance(dt.timedelta(minutes=1))
    await run(w)
    status = w.api.status()
    assert status.rotation is None
    assert status.current is not None
    assert status.current.key_vault_version == journal.key_vault_version
    assert condition(w, "Stalled") is None


async def test_a_stall_whose_cleanup_failed_is_finished_without_minting_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = fakes.world()
    w.graph.fail_add.append((errors.TooManyPasswords("the app holds too many passwords"), False))
    list_passwords = w.graph.list_passwords

    async def unreachable(*_: object) -> list[object]:
        raise errors.TransientError("Graph unreachable")

    # addPassword is refused for good, and the look for what it may have made fails.
    monkeypatch.setattr(w.graph, "list_passwords", unreachable)
    await run(w)
    assert w.api.status().rotation is not None
    monkeypatch.setattr(w.graph, "list_passwords", list_passwords)
    w.clock.advance(dt.timedelta(hours=2))
    await run(w)
    status = w.api.status()
    assert status.rotation is None
    assert [c for c in w.graph.writes() if c[0] == "add"] == [("add", "rotator-etl-sp-r0000001")]
    stalled = condition(w, "Stalled")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == reasons.TOO_MANY_PASSWORDS


async def test_a_stalled_resource_stays_stalled_on_later_passes() -> None:
    w = fakes.world()
    w.verifier.fail.append(errors.VerificationFailed("tenant not found", kind="tenant"))
    await run(w)
    w.clock.advance(dt.timedelta(minutes=30))
    await run(w)
    stalled = condition(w, "Stalled")
    assert stalled is not None and stalled.status == "True"
    assert stalled.reason == reasons.VERIFICATION_FAILED
    # Never dropped and re-added in between: its transition time is the first stall's.
    assert stalled.last_transition_time == fakes.T0


async def test_graph_retry_after_holds_the_other_secrets_of_the_tenant() -> None:
    """Graph throttles the operator (one application) per tenant: after a 429 with Retry-After
    for one ServicePrincipalSecret, the others of that tenant make no Graph call, read or
    write, until Retry-After has passed (benchmarks finding 3)."""
    a = fakes.world()
    other = fakes.sps_body()
    other["metadata"].update(name="other-sp", uid="uid-2")
    b = fakes.world(other)
    # One operator: one limiter and one clock for both objects.
    b.rt.limits, b.rt.clock, b.clock = a.rt.limits, a.clock, a.clock
    seen: list[tuple[str, dt.datetime]] = []
    for name in ("list_passwords", "add_password", "remove_password"):
        method = getattr(b.graph, name)

        async def timed(*args: object, _m: object = method, _n: str = name) -> object:
            seen.append((_n, a.clock.now()))
            return await _m(*args)  # type: ignore[operator]

        setattr(b.graph, name, timed)

    a.graph.fail_add.append((errors.Throttled("Graph throttled addPassword (429)", 30.0), False))
    wait = await run(a)
    assert wait is not None and wait >= 30
    throttled_at = a.clock.now()
    # The other object's first issuance: its addPassword waits for the window.
    await reconciling.reconcile(b.rt, NS, "other-sp")
    assert b.api.status().current is not None
    assert [n for n, _ in seen] == ["add_password"]
    assert seen[0][1] >= throttled_at + dt.timedelta(seconds=30)
    # A throttled READ holds the tenant too: the other object's drift check waits for it.
    a.clock.set(throttled_at + dt.timedelta(seconds=wait))
    await run(a)
    assert a.api.status().current is not None

    async def throttled_list(*_: object) -> list[object]:
        raise errors.Throttled("Graph throttled the read (429)", 20.0)

    a.graph.list_passwords = throttled_list  # type: ignore[assignment,method-assign]
    a.clock.advance(dt.timedelta(hours=2))  # both drift checks are due
    await run(a)
    read_throttled_at = a.clock.now()
    await reconciling.reconcile(b.rt, NS, "other-sp")
    assert [n for n, _ in seen] == ["add_password", "list_passwords"]
    assert seen[1][1] >= read_throttled_at + dt.timedelta(seconds=20)
    assert b.graph.writes() == [("add", "rotator-other-sp-r0000001")]


async def test_first_issuance_schedules_the_drift_check_within_one_interval() -> None:
    """After the pass that promoted the first secret, the next wake-up is the object's drift
    check, at a stable per-object offset within one interval; it lists Graph and reads Key
    Vault's latest, and writes nothing when nothing drifted (benchmarks finding 4)."""
    interval = dt.timedelta(hours=1)
    w = fakes.world(drift=interval)
    wait = await run(w)
    assert w.api.status().current is not None
    expected = reconciling.first_drift_check(w.rt, f"{NS}/{NAME}", fakes.T0) - fakes.T0
    assert wait == expected.total_seconds()
    assert 0 < wait <= interval.total_seconds()
    calls = (list(w.graph.calls), list(w.vault.calls))
    writes = len(w.api.patches)
    w.clock.advance(dt.timedelta(seconds=wait - 1))
    await run(w)
    assert (w.graph.calls, w.vault.calls) == calls  # not due yet: no cloud call
    w.clock.advance(dt.timedelta(seconds=1))
    wait = await run(w)
    assert w.graph.calls == [*calls[0], ("list", "")]
    assert w.vault.calls == [*calls[1], ("latest", SECRET)]
    assert w.graph.writes() == [("add", "rotator-etl-sp-r0000001")]
    assert len(w.api.patches) == writes
    assert wait == interval.total_seconds()  # and then once per interval


async def test_a_burst_of_first_issuances_spreads_its_drift_checks_over_the_interval() -> None:
    """500 objects issued at once: ~8 drift checks in any minute of the next hour, not none
    for 54 minutes (the first checks used to fall in the last tenth of the interval)."""
    interval = dt.timedelta(hours=1)
    waits = []
    for i in range(60):
        body = fakes.sps_body()
        body["metadata"].update(name=f"sp-{i}", uid=f"uid-{i}")
        w = fakes.world(body, drift=interval)
        wait = await reconciling.reconcile(w.rt, NS, f"sp-{i}")
        assert w.api.status().current is not None
        assert wait is not None and 0 <= wait <= interval.total_seconds()
        waits.append(wait)
    assert len(set(waits)) > 50  # per object, not one time for all
    # Every quarter of the interval gets some of the first checks (expected 15 each).
    quarters = [0] * 4
    for wait in waits:
        quarters[min(int(wait // 900), 3)] += 1
    assert min(quarters) >= 5, quarters


# --- Expiry always wins, resume checks the world, deadlines in status --------------------


def restart(w: fakes.World) -> None:
    """An operator restart: every per-process memory (and minted text) is gone."""
    w.rt.memories.clear()


async def issue_then_reach_rotation_time(w: fakes.World) -> models.CurrentSecret:
    await run(w)
    status = w.api.status()
    assert status.current is not None and status.next_rotation_time is not None
    w.clock.advance(status.next_rotation_time - w.clock.now())
    return status.current


async def test_the_chaos_run_chain_no_longer_lets_the_secret_expire() -> None:
    """The chain a chaos run found (throttled verify, a killed process that had removed the
    new credential, restarts, an in-flight rotation blocking the expiry trigger): the secret
    is replaced long before it expires, and nothing is left behind."""
    w = fakes.world()
    first = await issue_then_reach_rotation_time(w)
    # 1. The verification token request is throttled: transient, the journal stays at Verify.
    w.verifier.fail.append(errors.Throttled("Entra said 429", retry_after=30))
    await run(w)
    journal = w.api.status().rotation
    assert journal is not None and journal.step is models.Step.VERIFY and journal.key_id
    assert w.api.status().next_retry_time is not None
    # 2. A process removed the new credential and was killed before recording that.
    w.graph.passwords.pop(journal.key_id)
    # 3. Verifying it looks like propagation, and the operator is killed while it waits,
    # more often than verify.timeout.
    w.verifier.kill_while_rejected = True
    for _ in range(5):
        restart(w)
        w.clock.advance(dt.timedelta(minutes=2))
        with contextlib.suppress(fakes.Killed):
            await run(w)
    status = w.api.status()
    # Resume looked at Graph, saw the credential gone and minted a fresh one.
    assert status.rotation is None
    assert status.current is not None and status.current.key_id != first.key_id
    assert status.current.key_id in w.graph.passwords
    assert w.clock.now() < first.expires_at
    assert w.vault.value(SECRET) == w.graph.texts[status.current.key_id]
    assert condition(w, "Stalled") is None
    assert set(w.graph.passwords) == {first.key_id, status.current.key_id}  # no orphan


async def test_verify_deadline_is_kept_in_status_across_restarts() -> None:
    """Entra keeps refusing the new secret (AADSTS7000215) and the operator is killed during
    the wait, every 2 minutes: each restart waits only for what is left of verify.timeout,
    and at the deadline one last refusal is final."""
    w = fakes.world()
    await issue_then_reach_rotation_time(w)
    w.verifier.fail.append(fakes.Killed())
    started = w.clock.now()
    with contextlib.suppress(fakes.Killed):
        await run(w)
    journal = w.api.status().rotation
    assert journal is not None and journal.verify_deadline == started + dt.timedelta(minutes=5)
    for _ in range(2):
        restart(w)
        w.verifier.fail.append(fakes.Killed())
        w.clock.advance(dt.timedelta(minutes=2))
        with contextlib.suppress(fakes.Killed):
            await run(w)
    restart(w)
    w.verifier.fail.append(errors.VerificationFailed("AADSTS7000215", kind="propagation"))
    w.clock.advance(dt.timedelta(minutes=2))
    await run(w)
    # The budget handed to Entra shrank with every restart; at the deadline, one last try.
    assert w.verifier.within[-4:] == [300.0, 180.0, 60.0, 0.0]
    status = w.api.status()
    assert status.rotation is None  # given up (and cleaned up), not waiting for ever
    assert journal.key_id not in w.graph.passwords
    stalled = condition(w, "Stalled")
    assert stalled is not None and stalled.reason == reasons.VERIFICATION_FAILED


async def test_a_throttled_token_endpoint_at_the_verify_deadline_is_not_a_verdict() -> None:
    w = fakes.world()
    await issue_then_reach_rotation_time(w)
    w.verifier.fail.append(errors.Throttled("Entra said 429", retry_after=30))
    await run(w)
    w.clock.advance(dt.timedelta(minutes=6))  # past the deadline
    w.verifier.fail.append(errors.Throttled("Entra said 429", retry_after=30))
    await run(w)
    journal = w.api.status().rotation
    assert journal is not None and journal.key_id in w.graph.passwords  # kept, not "invalid"
    assert condition(w, "Stalled") is None
    w.clock.advance(dt.timedelta(minutes=1))
    await run(w)  # Entra answers again: the same credential is verified and promoted
    status = w.api.status()
    assert status.current is not None and status.current.key_id == journal.key_id


async def test_restart_honours_the_retry_time_kept_in_status() -> None:
    w = fakes.world()
    await issue_then_reach_rotation_time(w)
    w.verifier.fail.append(errors.Throttled("Entra said 429", retry_after=120))
    await run(w)
    retry = w.api.status().next_retry_time
    assert retry is not None and retry >= w.clock.now() + dt.timedelta(seconds=119)
    restart(w)
    calls = w.cloud_calls()
    wait = await run(w)
    assert w.cloud_calls() == calls  # a restart does not retry before Retry-After
    assert wait is not None and wait >= 119
    w.clock.advance(dt.timedelta(seconds=wait))
    await run(w)
    assert w.api.status().rotation is None
    assert w.api.status().next_retry_time is None


async def test_a_stall_gives_way_near_expiry() -> None:
    w = fakes.world()
    first = await issue_then_reach_rotation_time(w)
    w.verifier.fail.append(errors.VerificationFailed("tenant not found", kind="tenant"))
    await run(w)
    assert w.api.status().rotation is None and condition(w, "Stalled") is not None
    spec = models.ServicePrincipalSecretSpec.from_body(w.api.body)
    wait = await run(w)
    urgent = first.expires_at - triggers.expiry_margin(spec)
    # Stalled, it still wakes by itself when the secret is at risk.
    assert wait is not None and w.clock.now() + dt.timedelta(seconds=wait) <= urgent
    adds = len([c for c in w.graph.calls if c[0] == "add"])
    w.clock.advance(urgent - w.clock.now() - dt.timedelta(seconds=1))
    await run(w)
    assert len([c for c in w.graph.calls if c[0] == "add"]) == adds  # the stall holds
    w.clock.advance(dt.timedelta(seconds=1))
    await run(w)
    status = w.api.status()
    assert status.current is not None and status.current.key_id != first.key_id
    assert reasons.EXPIRING_WITHOUT_REPLACEMENT in w.events.reasons()
    ready = condition(w, "Ready")
    assert ready is not None and ready.reason == reasons.ISSUED


async def test_a_stuck_rotation_is_superseded_near_expiry() -> None:
    w = fakes.world()
    first = await issue_then_reach_rotation_time(w)
    w.verifier.fail.append(errors.TransientError("token endpoint unreachable"))
    await run(w)
    stuck = w.api.status().rotation
    assert stuck is not None and stuck.key_id in w.graph.passwords
    spec = models.ServicePrincipalSecretSpec.from_body(w.api.body)
    w.clock.advance(first.expires_at - triggers.expiry_margin(spec) - w.clock.now())
    await run(w)
    status = w.api.status()
    assert status.current is not None and status.current.key_id not in (first.key_id, stuck.key_id)
    assert stuck.key_id not in w.graph.passwords  # never stored: removed, not left behind
    assert reasons.EXPIRING_WITHOUT_REPLACEMENT in w.events.reasons()


async def test_a_new_rotate_request_supersedes_a_stuck_rotation() -> None:
    w = fakes.world()
    await issue_then_reach_rotation_time(w)
    w.verifier.fail.append(errors.TransientError("token endpoint unreachable"))
    await run(w)
    stuck = w.api.status().rotation
    assert stuck is not None
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "now-please"}
    await run(w)
    status = w.api.status()
    assert status.rotation is None and status.rotate_request == "now-please"
    assert status.current is not None and status.current.key_id != stuck.key_id
    assert stuck.key_id not in w.graph.passwords
    superseded = [m for _, r, m in w.events.posted if r == reasons.MANUAL_REQUEST]
    assert any(f"abandoning rotation {stuck.id}" in m for m in superseded)


async def test_a_stored_rotation_is_promoted_not_superseded() -> None:
    w = fakes.world()
    first = await issue_then_reach_rotation_time(w)
    spec = models.ServicePrincipalSecretSpec.from_body(w.api.body)
    # A journal whose store landed, left behind by a killed process.
    journal = rotation.plan(
        spec, models.ResourceMeta.from_body(w.api.body), "Expiring", "dead0002", w.clock.now()
    )
    key_id = w.graph.seed(journal.display_name)
    journal = journal.model_copy(
        update={
            "step": models.Step.STORE,
            "phase": models.Phase.DONE,
            "key_id": key_id,
            "staging_version": "s1",
            "key_vault_version": "v9",
        }
    )
    status = w.api.status().model_copy(update={"rotation": journal})
    w.api.body["status"] = status.to_dict()
    w.api.body["metadata"]["annotations"] = {models.ROTATE_ANNOTATION: "again"}
    w.clock.advance(first.expires_at - triggers.expiry_margin(spec) - w.clock.now())
    await run(w)
    assert key_id in w.graph.passwords
    assert first.key_id in [r.key_id for r in w.api.status().retiring]


async def test_near_expiry_a_permanent_failure_is_retried_with_growing_backoff() -> None:
    w = fakes.world()
    first = await issue_then_reach_rotation_time(w)
    spec = models.ServicePrincipalSecretSpec.from_body(w.api.body)
    w.clock.advance(first.expires_at - triggers.expiry_margin(spec) - w.clock.now())
    waits = []
    for _ in range(4):
        w.verifier.fail.append(errors.VerificationFailed("tenant not found", kind="tenant"))
        wait = await run(w)
        assert wait is not None
        waits.append(wait)
        w.clock.advance(dt.timedelta(seconds=wait))
    assert waits == sorted(waits) and waits[-1] >= 4 * waits[0]  # spread over the margin
    assert len([c for c in w.graph.calls if c[0] == "add"]) == 1 + 4  # one mint per attempt
    assert w.api.status().current == first  # still the old one; nothing was left behind
    assert set(w.graph.passwords) == {first.key_id}


async def test_a_streak_of_transient_failures_posts_one_warning() -> None:
    """The event policy both kinds share: one Warning per streak, not one per retry."""
    w = fakes.world(by_object_id())
    for _ in range(3):
        w.graph.fail_resolve.append(errors.Throttled("Graph throttled the request", 3.0))
    for _ in range(3):
        wait = await run(w)
        assert wait is not None
        w.clock.advance(dt.timedelta(seconds=wait))
    assert w.api.status().failures == 3
    assert w.events.reasons().count(reasons.THROTTLED) == 1
    await run(w)
    assert w.api.status().current is not None
