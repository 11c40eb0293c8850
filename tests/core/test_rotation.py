"""Tests for rotator.core.rotation: names, journal transitions, and resume from every step.

The resume table walks every step x phase with the observations that matter and checks the
action against the safety table in docs/design.md. A crash simulation then runs a whole
rotation against a toy Graph + Key Vault, crashing before/after every effect, and checks the
guarantees: Key Vault's latest is always a verified, valid secret; no orphan is left; the
rotation always ends with the new secret current.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from typing import Any

import pytest

from rotator.core import facts, models, reasons, retirement, rotation, schedule
from tests.core import factories as f

S, P = models.Step, models.Phase
SPEC = f.sps_spec()
META = f.meta()
STAGING = "etl-sp-client-secret-rotator-staging"
OURS = {facts.TAG_KEY_ID: "new-key", facts.TAG_ROTATION_ID: "abcd1234"}
OTHER = {facts.TAG_KEY_ID: "old-key", facts.TAG_ROTATION_ID: "0ld0ld00"}


def journal_at(step: models.Step, phase: models.Phase, **extra: Any) -> models.RotationJournal:
    """A journal at (step, phase) carrying what the steps before it produced."""
    j = rotation.plan(SPEC, META, reasons.EXPIRING, "abcd1234", f.T0)
    index = list(S).index(step)
    fields: dict[str, Any] = {"step": step, "phase": phase}
    produced = [
        (S.MINT, {"key_id": "new-key", "hint": "abc"}),
        (S.STAGE, {"staging_version": "stg-1"}),
        (S.STORE, {"key_vault_version": "kv-2"}),
    ]
    for made_by, values in produced:
        done = list(S).index(made_by) < index or (made_by is step and phase is P.DONE)
        if done:
            fields |= values
    return j.model_copy(update=fields | extra)


# --- Names ----------------------------------------------------------------------------------


def test_display_name_and_parse() -> None:
    name = rotation.display_name("etl-sp", "7d1f2c9a")
    assert name == "rotator-etl-sp-7d1f2c9a"
    assert rotation.parse_display_name(name) == ("etl-sp", "7d1f2c9a")


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "etl-sp-7d1f2c9a",
        "rotator-",
        "rotator-7d1f2c9a",
        "rotator-x-UPPER1",
        "rotator-x-a",
    ],
)
def test_parse_display_name_refuses_foreign_names(value: str | None) -> None:
    assert rotation.parse_display_name(value) is None


@pytest.mark.parametrize("length", [1, 55, 56, 253])
def test_display_name_fits_and_stays_unique(length: int) -> None:
    a, b = "a" * length, "a" * (length - 1) + "b"
    name = rotation.display_name(a, "f" * rotation.MAX_ROTATION_ID)
    assert len(name) <= rotation.MAX_DISPLAY_NAME
    assert rotation.display_name_part(a) != rotation.display_name_part(b)


@pytest.mark.parametrize("bad", ["", "abc", "ABCD1234", "abcd-123", "a" * 17])
def test_rotation_id_format(bad: str) -> None:
    with pytest.raises(ValueError, match="rotation id"):
        rotation.display_name("x", bad)


@pytest.mark.parametrize(
    ("secret_name", "expected_len"),
    [("s", 17), ("s" * 111, 127), ("s" * 112, 127), ("s" * 127, 127)],
)
def test_staging_name_fits_key_vault(secret_name: str, expected_len: int) -> None:
    staged = rotation.staging_secret_name(secret_name)
    assert len(staged) == expected_len
    assert staged.endswith("-rotator-staging")
    assert models.normalize_url(f.VAULT)  # the vault is irrelevant: same vault, other name
    assert rotation.staging_secret_name(secret_name) == staged  # deterministic


def test_staging_name_of_long_names_differ() -> None:
    assert rotation.staging_secret_name("s" * 120 + "a") != rotation.staging_secret_name(
        "s" * 120 + "b"
    )
    assert rotation.staging_secret_name("etl") == "etl-rotator-staging"


# --- Journal transitions ------------------------------------------------------------------


def test_plan() -> None:
    j = rotation.plan(
        SPEC, META, reasons.MANUAL_REQUEST, "abcd1234", f.T0 + dt.timedelta(microseconds=7)
    )
    assert (j.step, j.phase, j.attempts) == (S.PLAN, P.DONE, 1)
    assert j.display_name == "rotator-etl-sp-abcd1234"
    assert j.expires_at == f.T0 + dt.timedelta(days=90)
    assert j.started_at == f.T0
    assert j.target == SPEC.target
    assert j.key_id is None


def test_start_marks_manual_request_handled() -> None:
    meta = f.meta(**{models.ROTATE_ANNOTATION: "please"})
    status = rotation.start(
        models.ServicePrincipalSecretStatus(), SPEC, meta, reasons.MANUAL_REQUEST, "abcd1234", f.T0
    )
    assert status.rotate_request == "please"
    assert status.rotation is not None
    with pytest.raises(ValueError, match="already in flight"):
        rotation.start(status, SPEC, meta, reasons.EXPIRING, "ffff0000", f.T0)


def test_replan_needs_a_new_id_and_counts_attempts() -> None:
    j = journal_at(S.MINT, P.STARTED)
    again = rotation.replan(j, SPEC, META, "ffff0000", f.T0 + dt.timedelta(hours=1))
    assert again.attempts == 2
    assert again.display_name == "rotator-etl-sp-ffff0000"
    assert again.reason == j.reason
    assert again.expires_at == f.T0 + dt.timedelta(days=90, hours=1)
    with pytest.raises(ValueError, match="new rotation id"):
        rotation.replan(j, SPEC, META, j.id, f.T0)


def test_begin_and_complete_walk_the_steps() -> None:
    j = rotation.plan(SPEC, META, reasons.EXPIRING, "abcd1234", f.T0)
    results: list[tuple[models.Step, rotation.StepResult]] = [
        (S.MINT, rotation.Minted("k", "abc")),
        (S.STAGE, rotation.Staged("stg-1")),
        (S.VERIFY, rotation.Verified()),
        (S.STORE, rotation.Stored("kv-2")),
    ]
    for step, result in results:
        j = rotation.begin(j, step)
        assert (j.step, j.phase) == (step, P.STARTED)
        assert rotation.begin(j, step) == j  # a retry of a started step is legal
        j = rotation.complete(j, step, result)
        assert (j.step, j.phase) == (step, P.DONE)
    assert (j.key_id, j.hint, j.staging_version, j.key_vault_version) == (
        "k",
        "abc",
        "stg-1",
        "kv-2",
    )


def test_verify_may_be_skipped_but_nothing_else() -> None:
    staged = journal_at(S.STAGE, P.DONE)
    assert rotation.begin(staged, S.STORE).step is S.STORE
    with pytest.raises(ValueError, match="cannot begin"):
        rotation.begin(journal_at(S.PLAN, P.DONE), S.STAGE)
    with pytest.raises(ValueError, match="cannot begin"):
        rotation.begin(journal_at(S.MINT, P.STARTED), S.STAGE)
    with pytest.raises(ValueError, match="cannot begin"):
        rotation.begin(journal_at(S.STORE, P.DONE), S.MINT)


@pytest.mark.parametrize(
    ("journal", "step", "result", "error"),
    [
        (journal_at(S.MINT, P.DONE), S.MINT, rotation.Minted("k"), ValueError),
        (journal_at(S.MINT, P.STARTED), S.STAGE, rotation.Staged("v"), ValueError),
        (journal_at(S.MINT, P.STARTED), S.MINT, rotation.Staged("v"), TypeError),
        (journal_at(S.VERIFY, P.STARTED), S.VERIFY, None, TypeError),
        (journal_at(S.STORE, P.STARTED), S.STORE, rotation.Verified(), TypeError),
    ],
)
def test_complete_refuses_wrong_step_or_result(
    journal: models.RotationJournal,
    step: models.Step,
    result: rotation.StepResult,
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        rotation.complete(journal, step, result)


# --- Resume from every step ----------------------------------------------------------------

CRED_OURS = facts.GraphCredential("minted-1", "rotator-etl-sp-abcd1234")
CRED_OTHER = facts.GraphCredential("old-key", "rotator-etl-sp-0ld0ld00")
CRED_NEW = facts.GraphCredential("new-key", "rotator-etl-sp-abcd1234")
GRAPH_WITH_NEW = (CRED_OTHER, CRED_NEW)
LATEST_OURS = facts.VaultLatest("kv-9", OURS)
LATEST_OTHER = facts.VaultLatest("kv-1", OTHER)
STAGED_OURS = facts.VaultLatest("stg-9", OURS)
STAGED_OTHER = facts.VaultLatest("stg-0", OTHER)
ABSENT = facts.VaultLatest(None)


@dataclasses.dataclass(frozen=True)
class Case:
    state: tuple[models.Step, models.Phase]
    observed: facts.Facts
    expect: type[object]
    check: dict[str, Any] = dataclasses.field(default_factory=dict)


RESUME = [
    # Plan: nothing exists outside status yet -> mint.
    Case(
        (S.PLAN, P.DONE),
        facts.Facts(),
        rotation.MintPassword,
        {"display_name": "rotator-etl-sp-abcd1234"},
    ),
    Case((S.PLAN, P.STARTED), facts.Facts(), rotation.MintPassword),
    # Mint Started: addPassword may have run. Look at Graph first.
    Case((S.MINT, P.STARTED), facts.Facts(), rotation.Gather, {"graph_credentials": True}),
    # ... ours is there: remove it and replan (its text was never staged).
    Case(
        (S.MINT, P.STARTED),
        facts.Facts(graph_credentials=(CRED_OTHER, CRED_OURS)),
        rotation.Replan,
        {"remove": ("minted-1",)},
    ),
    # ... not there: nothing to remove, replan with a new id anyway.
    Case(
        (S.MINT, P.STARTED),
        facts.Facts(graph_credentials=(CRED_OTHER,)),
        rotation.Replan,
        {"remove": ()},
    ),
    # Mint Done: the text is in memory -> stage; lost (restart) -> remove and replan.
    Case(
        (S.MINT, P.DONE),
        facts.Facts(text_held=True),
        rotation.StageSecret,
        {"secret_name": STAGING, "tags": OURS},
    ),
    Case((S.MINT, P.DONE), facts.Facts(), rotation.Replan, {"remove": ("new-key",)}),
    # Stage Started: the staging secret's tags decide.
    Case(
        (S.STAGE, P.STARTED), facts.Facts(text_held=True), rotation.Gather, {"staging_latest": True}
    ),
    Case((S.STAGE, P.STARTED), facts.Facts(staging_latest=STAGED_OURS), rotation.Record),
    Case(
        (S.STAGE, P.STARTED),
        facts.Facts(staging_latest=STAGED_OTHER, text_held=True),
        rotation.StageSecret,
    ),
    Case(
        (S.STAGE, P.STARTED),
        facts.Facts(staging_latest=STAGED_OTHER),
        rotation.Replan,
        {"remove": ("new-key",)},
    ),
    Case(
        (S.STAGE, P.STARTED),
        facts.Facts(staging_latest=ABSENT),
        rotation.Replan,
        {"remove": ("new-key",)},
    ),
    # Stage Done -> verify (from the staging version; no text in memory needed).
    Case(
        (S.STAGE, P.DONE),
        facts.Facts(),
        rotation.VerifySecret,
        {"staging_version": "stg-1", "staging_secret_name": STAGING},
    ),
    # Verify: verifying twice is harmless.
    Case((S.VERIFY, P.STARTED), facts.Facts(), rotation.VerifySecret, {"key_id": "new-key"}),
    Case(
        (S.VERIFY, P.DONE),
        facts.Facts(),
        rotation.StoreSecret,
        {"staging_version": "stg-1", "tags": OURS},
    ),
    # Store Started: the Key Vault latest version's tags decide.
    Case((S.STORE, P.STARTED), facts.Facts(), rotation.Gather, {"key_vault_latest": True}),
    Case((S.STORE, P.STARTED), facts.Facts(key_vault_latest=LATEST_OURS), rotation.Record),
    Case((S.STORE, P.STARTED), facts.Facts(key_vault_latest=LATEST_OTHER), rotation.StoreSecret),
    Case((S.STORE, P.STARTED), facts.Facts(key_vault_latest=ABSENT), rotation.StoreSecret),
    # Stored: the only way is forward, whatever else is observed.
    Case(
        (S.STORE, P.DONE),
        facts.Facts(),
        rotation.Promote,
        {"key_vault_version": "kv-2", "staging_version": "stg-1"},
    ),
    Case((S.STORE, P.DONE), facts.Facts(graph_credentials=(CRED_OTHER,)), rotation.Promote),
    Case((S.PROMOTE, P.STARTED), facts.Facts(), rotation.Promote),
    # The minted credential vanished from Graph before the store: replan, nothing to remove.
    Case(
        (S.STAGE, P.DONE),
        facts.Facts(graph_credentials=(CRED_OTHER,)),
        rotation.Replan,
        {"remove": ()},
    ),
    Case((S.VERIFY, P.DONE), facts.Facts(graph_credentials=GRAPH_WITH_NEW), rotation.StoreSecret),
]


@pytest.mark.parametrize(
    "case", RESUME, ids=lambda c: f"{c.state[0]}-{c.state[1]}-{type(c.observed).__name__}"
)
def test_resume(case: Case) -> None:
    journal = journal_at(*case.state)
    action = rotation.next_action(SPEC, journal, case.observed)
    assert type(action) is case.expect
    for name, value in case.check.items():
        assert getattr(action, name) == value


def test_every_step_and_phase_is_covered_by_the_resume_table() -> None:
    covered = {c.state for c in RESUME}
    reachable = set(itertools.product(S, P)) - {(S.PROMOTE, P.DONE)}  # Promote clears the journal
    assert reachable <= covered


def test_record_after_proven_stage_carries_the_version() -> None:
    action = rotation.next_action(
        SPEC, journal_at(S.STAGE, P.STARTED), facts.Facts(staging_latest=STAGED_OURS)
    )
    assert isinstance(action, rotation.Record)
    assert (action.journal.step, action.journal.phase) == (S.STAGE, P.DONE)
    assert action.journal.staging_version == "stg-9"


def test_record_after_proven_store_carries_the_version() -> None:
    action = rotation.next_action(
        SPEC, journal_at(S.STORE, P.STARTED), facts.Facts(key_vault_latest=LATEST_OURS)
    )
    assert isinstance(action, rotation.Record)
    assert (action.journal.step, action.journal.phase) == (S.STORE, P.DONE)
    assert action.journal.key_vault_version == "kv-9"


def test_tags_of_another_rotation_with_our_key_do_not_count() -> None:
    foreign = facts.VaultLatest(
        "kv-9", {facts.TAG_KEY_ID: "new-key", facts.TAG_ROTATION_ID: "zzzz9999"}
    )
    action = rotation.next_action(
        SPEC, journal_at(S.STORE, P.STARTED), facts.Facts(key_vault_latest=foreign)
    )
    assert isinstance(action, rotation.StoreSecret)


def test_verify_disabled_skips_to_store() -> None:
    spec = f.sps_spec(verify={"enabled": False})
    action = rotation.next_action(spec, journal_at(S.STAGE, P.DONE), facts.Facts())
    assert isinstance(action, rotation.StoreSecret)


def test_store_carries_user_tags_content_type_and_expiry() -> None:
    spec = f.sps_spec(
        keyVault={
            "vaultUrl": f.VAULT,
            "secretName": "etl-sp-client-secret",
            "contentType": "text/plain",
            "tags": {"team": "data"},
        }
    )
    action = rotation.next_action(spec, journal_at(S.VERIFY, P.DONE), facts.Facts())
    assert isinstance(action, rotation.StoreSecret)
    assert action.tags == {"team": "data", **OURS}
    assert action.content_type == "text/plain"
    assert action.expires_at == f.T0 + dt.timedelta(days=90)
    assert action.secret_name == "etl-sp-client-secret"


def test_no_journal_is_idle() -> None:
    assert isinstance(rotation.next_action(SPEC, None, facts.Facts()), rotation.Idle)


@pytest.mark.parametrize("state", [(S.PLAN, P.DONE), (S.MINT, P.DONE), (S.VERIFY, P.DONE)])
def test_spec_change_mid_flight_discards_before_store(
    state: tuple[models.Step, models.Phase],
) -> None:
    spec = f.sps_spec(keyVault={"vaultUrl": f.VAULT, "secretName": "renamed"})
    action = rotation.next_action(spec, journal_at(*state), facts.Facts(text_held=True))
    assert isinstance(action, rotation.Replan)
    assert action.remove == (() if state[0] is S.PLAN else ("new-key",))


def test_spec_change_after_store_still_promotes() -> None:
    spec = f.sps_spec(keyVault={"vaultUrl": f.VAULT, "secretName": "renamed"})
    assert isinstance(
        rotation.next_action(spec, journal_at(S.STORE, P.DONE), facts.Facts()), rotation.Promote
    )


def test_replans_stop_after_max_attempts() -> None:
    journal = journal_at(S.MINT, P.DONE, attempts=rotation.MAX_ATTEMPTS)
    action = rotation.next_action(SPEC, journal, facts.Facts())
    assert isinstance(action, rotation.Abandon)
    assert action.remove == ("new-key",)
    assert "gave up after 5 attempts" in action.why


# --- Abandon after a permanent failure ------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "observed", "expect", "remove"),
    [
        ((S.PLAN, P.DONE), facts.Facts(), rotation.Abandon, ()),
        ((S.MINT, P.STARTED), facts.Facts(), rotation.Gather, None),
        (
            (S.MINT, P.STARTED),
            facts.Facts(graph_credentials=(CRED_OURS,)),
            rotation.Abandon,
            ("minted-1",),
        ),
        ((S.MINT, P.DONE), facts.Facts(), rotation.Abandon, ("new-key",)),
        ((S.STAGE, P.DONE), facts.Facts(), rotation.Abandon, ("new-key",)),
        ((S.VERIFY, P.STARTED), facts.Facts(), rotation.Abandon, ("new-key",)),
        ((S.STORE, P.STARTED), facts.Facts(), rotation.Gather, None),
        (
            (S.STORE, P.STARTED),
            facts.Facts(key_vault_latest=LATEST_OTHER),
            rotation.Abandon,
            ("new-key",),
        ),
        # The verified secret already is Key Vault's latest: never revoke it, finish instead.
        ((S.STORE, P.STARTED), facts.Facts(key_vault_latest=LATEST_OURS), rotation.Record, None),
        ((S.STORE, P.DONE), facts.Facts(), rotation.Promote, None),
    ],
)
def test_abandon(
    state: tuple[models.Step, models.Phase],
    observed: facts.Facts,
    expect: type[object],
    remove: tuple[str, ...] | None,
) -> None:
    action = rotation.abandon(SPEC, journal_at(*state), observed, "verification failed")
    assert type(action) is expect
    if remove is not None:
        assert isinstance(action, rotation.Abandon)
        assert action.remove == remove
        assert action.why == "verification failed"


# --- Promote ------------------------------------------------------------------------------


def test_promote_moves_current_to_retiring_and_reschedules() -> None:
    old = models.CurrentSecret(
        key_id="old-key",
        hint="xyz",
        display_name="rotator-etl-sp-0ld0ld00",
        expires_at=f.T0 + dt.timedelta(days=20),
        key_vault_version="kv-1",
        target=SPEC.target,
    )
    status = models.ServicePrincipalSecretStatus(
        current=old, rotation=journal_at(S.STORE, P.DONE), failures=2, last_error="x"
    )
    now = f.T0 + dt.timedelta(minutes=3, microseconds=5)
    after = rotation.promote(status, SPEC, META, now)
    assert after.rotation is None
    assert after.current is not None
    assert (after.current.key_id, after.current.key_vault_version, after.current.hint) == (
        "new-key",
        "kv-2",
        "abc",
    )
    assert after.current.expires_at == f.T0 + dt.timedelta(days=90)
    assert after.current.target == SPEC.target
    assert [r.key_id for r in after.retiring] == ["old-key"]
    assert after.retiring[0].superseded_at == f.T0 + dt.timedelta(minutes=3)
    assert after.retiring[0].retire_at is None
    assert after.last_rotation_time == f.T0 + dt.timedelta(minutes=3)
    assert after.next_rotation_time == schedule.next_rotation_time(
        f.T0 + dt.timedelta(days=90), dt.timedelta(days=30), "uid-1"
    )
    assert (after.failures, after.last_error) == (0, "")


def test_promote_twice_does_not_duplicate_retiring() -> None:
    status = models.ServicePrincipalSecretStatus(rotation=journal_at(S.STORE, P.DONE))
    after = rotation.promote(status, SPEC, META, f.T0)
    assert after.retiring == ()
    with pytest.raises(ValueError, match="only a stored rotation"):
        rotation.promote(after, SPEC, META, f.T0)


def test_promote_refuses_an_unstored_rotation() -> None:
    status = models.ServicePrincipalSecretStatus(rotation=journal_at(S.VERIFY, P.DONE))
    with pytest.raises(ValueError, match="only a stored rotation"):
        rotation.promote(status, SPEC, META, f.T0)


# --- Crash simulation: a whole rotation, crashing before and after every effect -------------


class Crash(Exception):
    """The process died here."""


@dataclasses.dataclass
class World:
    """A toy Graph application, Key Vault and operator process; ``op`` is where it may crash."""

    crash_at: frozenset[int]
    graph: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    vault: dict[str, list[tuple[str, str, dict[str, str]]]] = dataclasses.field(
        default_factory=dict
    )
    verified: set[str] = dataclasses.field(default_factory=set)
    memory: dict[str, str] = dataclasses.field(default_factory=dict)
    status: models.ServicePrincipalSecretStatus = dataclasses.field(
        default_factory=models.ServicePrincipalSecretStatus
    )
    ops: int = 0
    mints: int = 0
    counter: int = 0

    def op(self) -> None:
        self.check_consumers_are_safe()
        self.ops += 1
        if self.ops in self.crash_at:
            raise Crash

    def fresh(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter:04d}"

    def check_consumers_are_safe(self) -> None:
        versions = self.vault.get(SPEC.key_vault.secret_name)
        assert versions, "consumers lost the secret"
        text = versions[-1][1]
        assert text in self.verified, "Key Vault's latest is an unverified secret"
        assert text in {t for _, t in self.graph.values()}, "Key Vault's latest was revoked"

    def write(self, **update: Any) -> None:
        self.op()  # a crash before the status write means it never happened
        self.status = self.status.model_copy(update=update)

    def add_password(self, display_name: str) -> tuple[str, str]:
        self.op()
        key, text = self.fresh("key-"), self.fresh("text-")
        self.mints += 1
        self.graph[key] = (display_name, text)
        self.op()  # the "503 after Graph created it" case: the result is lost
        return key, text

    def remove_password(self, key: str) -> None:
        self.op()
        self.graph.pop(key, None)

    def set_secret(self, name: str, text: str, tags: dict[str, str]) -> str:
        self.op()
        version = self.fresh("v-")
        self.vault.setdefault(name, []).append((version, text, dict(tags)))
        self.op()
        return version

    def read(self, name: str, version: str) -> str:
        return next(t for v, t, _ in self.vault[name] if v == version)

    def latest(self, name: str) -> facts.VaultLatest:
        versions = self.vault.get(name)
        if not versions:
            return facts.VaultLatest(None)
        return facts.VaultLatest(versions[-1][0], versions[-1][2])

    def credentials(self) -> tuple[facts.GraphCredential, ...]:
        return tuple(facts.GraphCredential(k, dn) for k, (dn, _) in self.graph.items())

    def authenticates(self, text: str) -> bool:
        self.op()
        ok = text in {t for _, t in self.graph.values()}
        if ok:
            self.verified.add(text)
        return ok


def _held(world: World) -> facts.Facts:
    journal = world.status.rotation
    return facts.Facts(text_held=journal is not None and journal.key_id in world.memory)


def reconcile(world: World) -> None:
    """The handler's loop, as rotation.py's docstring describes it."""
    observed = _held(world)
    for _ in range(100):
        journal = world.status.rotation
        action = rotation.next_action(SPEC, journal, observed)
        if isinstance(action, rotation.Idle):
            return
        assert journal is not None
        if isinstance(action, rotation.Gather):
            observed = dataclasses.replace(
                observed,
                graph_credentials=world.credentials()
                if action.graph_credentials
                else observed.graph_credentials,
                key_vault_latest=world.latest(SPEC.key_vault.secret_name)
                if action.key_vault_latest
                else observed.key_vault_latest,
                staging_latest=world.latest(STAGING)
                if action.staging_latest
                else observed.staging_latest,
            )
            continue
        if isinstance(action, rotation.MintPassword):
            world.write(rotation=rotation.begin(journal, S.MINT))
            key, text = world.add_password(action.display_name)
            world.memory[key] = text
            world.write(
                rotation=rotation.complete(world.status.rotation, S.MINT, rotation.Minted(key))
            )  # type: ignore[arg-type]
        elif isinstance(action, rotation.StageSecret):
            world.write(rotation=rotation.begin(journal, S.STAGE))
            version = world.set_secret(action.secret_name, world.memory[action.key_id], action.tags)
            world.write(
                rotation=rotation.complete(world.status.rotation, S.STAGE, rotation.Staged(version))
            )  # type: ignore[arg-type]
        elif isinstance(action, rotation.VerifySecret):
            world.write(rotation=rotation.begin(journal, S.VERIFY))
            text = world.read(action.staging_secret_name, action.staging_version)
            assert world.authenticates(text)
            world.write(
                rotation=rotation.complete(world.status.rotation, S.VERIFY, rotation.Verified())
            )  # type: ignore[arg-type]
        elif isinstance(action, rotation.StoreSecret):
            world.write(rotation=rotation.begin(journal, S.STORE))
            text = world.read(action.staging_secret_name, action.staging_version)
            assert text in world.verified, "about to store an unverified secret"
            version = world.set_secret(action.secret_name, text, action.tags)
            world.write(
                rotation=rotation.complete(world.status.rotation, S.STORE, rotation.Stored(version))
            )  # type: ignore[arg-type]
        elif isinstance(action, rotation.Record):
            world.write(rotation=action.journal)
        elif isinstance(action, rotation.Promote):
            promoted = rotation.promote(world.status, SPEC, META, f.T0)
            world.write(**{k: getattr(promoted, k) for k in type(promoted).model_fields})
        elif isinstance(action, rotation.Replan):
            for key in action.remove:
                world.remove_password(key)
            world.write(rotation=rotation.replan(journal, SPEC, META, world.fresh("r"), f.T0))
        else:
            pytest.fail(f"unexpected {action}")
        observed = _held(world)
    pytest.fail("the rotation did not converge")


def _world(crash_at: frozenset[int]) -> World:
    world = World(crash_at=crash_at)
    world.graph["old-key"] = ("rotator-etl-sp-0ld0ld00", "old-text")
    world.vault[SPEC.key_vault.secret_name] = [("v-old", "old-text", OTHER)]
    world.verified.add("old-text")
    current = models.CurrentSecret(
        key_id="old-key",
        expires_at=f.T0 + dt.timedelta(days=20),
        key_vault_version="v-old",
        target=SPEC.target,
    )
    world.status = rotation.start(
        models.ServicePrincipalSecretStatus(current=current),
        SPEC,
        META,
        reasons.EXPIRING,
        "abcd1234",
        f.T0,
    )
    return world


def _run(crash_at: frozenset[int]) -> World:
    world = _world(crash_at)
    for _ in range(len(crash_at) + 1):
        try:
            reconcile(world)
            break
        except Crash:
            world.memory.clear()  # the new process remembers nothing but status
    else:
        pytest.fail("still crashing")
    return world


def _assert_finished_cleanly(world: World) -> None:
    status = world.status
    assert status.rotation is None
    assert status.current is not None
    assert status.current.key_id != "old-key"
    assert [r.key_id for r in status.retiring] == ["old-key"]
    # Key Vault's latest is the new, verified secret, recorded in status.
    latest = world.latest(SPEC.key_vault.secret_name)
    assert latest.version == status.current.key_vault_version
    assert latest.key_id == status.current.key_id
    # No orphan: Graph holds exactly the old secret and the new one.
    assert set(world.graph) == {"old-key", status.current.key_id}

    assert retirement.orphans(world.credentials(), status, META.name) == ()


def test_clean_run_takes_every_step_once() -> None:
    world = _run(frozenset())
    _assert_finished_cleanly(world)
    assert world.mints == 1
    assert len(world.vault[STAGING]) == 1


def test_crash_at_every_point_is_safe() -> None:
    clean = _run(frozenset())
    assert clean.ops > 10
    replanned = 0
    for point in range(1, clean.ops + 1):
        world = _run(frozenset({point}))
        _assert_finished_cleanly(world)
        replanned += world.mints > 1
    # Crashes between addPassword and staging lose the text: those runs must have replanned.
    assert replanned >= 3


def test_two_crashes_anywhere_are_safe() -> None:
    total = _run(frozenset()).ops
    for first in range(1, total + 1, 2):
        for gap in (1, 3, 7):
            _assert_finished_cleanly(_run(frozenset({first, first + gap})))


# --- Resuming checks the world first ------------------------------------------------------

STAGED_DISABLED = facts.VaultLatest("stg-9", OURS, enabled=False)
RESUMED = [
    # Nothing minted yet: nothing to check.
    Case((S.PLAN, P.DONE), facts.Facts(resumed=True), rotation.MintPassword),
    # A keyId in the journal: Graph first.
    Case(
        (S.VERIFY, P.STARTED),
        facts.Facts(resumed=True),
        rotation.Gather,
        {"graph_credentials": True},
    ),
    # ... gone (removed by a person, or by a process that gave up and died): replan.
    Case(
        (S.VERIFY, P.STARTED),
        facts.Facts(resumed=True, graph_credentials=(CRED_OTHER,)),
        rotation.Replan,
        {"remove": ()},
    ),
    # ... there, and the text is not in memory: the staging copy must still be there.
    Case(
        (S.VERIFY, P.STARTED),
        facts.Facts(resumed=True, graph_credentials=GRAPH_WITH_NEW),
        rotation.Gather,
        {"staging_latest": True},
    ),
    Case(
        (S.VERIFY, P.STARTED),
        facts.Facts(resumed=True, graph_credentials=GRAPH_WITH_NEW, staging_latest=STAGED_OURS),
        rotation.VerifySecret,
    ),
    Case(
        (S.VERIFY, P.STARTED),
        facts.Facts(resumed=True, graph_credentials=GRAPH_WITH_NEW, staging_latest=ABSENT),
        rotation.Replan,
        {"remove": ("new-key",)},
    ),
    Case(
        (S.VERIFY, P.DONE),
        facts.Facts(resumed=True, graph_credentials=GRAPH_WITH_NEW, staging_latest=STAGED_DISABLED),
        rotation.Replan,
        {"remove": ("new-key",)},
    ),
    Case(
        (S.STAGE, P.DONE),
        facts.Facts(resumed=True, graph_credentials=GRAPH_WITH_NEW, staging_latest=STAGED_OTHER),
        rotation.Replan,
        {"remove": ("new-key",)},
    ),
    # The text is still in memory: the staging copy is not needed.
    Case(
        (S.VERIFY, P.STARTED),
        facts.Facts(resumed=True, text_held=True, graph_credentials=GRAPH_WITH_NEW),
        rotation.VerifySecret,
    ),
    # Store Started with the staging copy gone: the store may have landed, and then it wins.
    Case(
        (S.STORE, P.STARTED),
        facts.Facts(resumed=True, graph_credentials=GRAPH_WITH_NEW, staging_latest=ABSENT),
        rotation.Gather,
        {"key_vault_latest": True},
    ),
    Case(
        (S.STORE, P.STARTED),
        facts.Facts(
            resumed=True,
            graph_credentials=GRAPH_WITH_NEW,
            staging_latest=ABSENT,
            key_vault_latest=LATEST_OURS,
        ),
        rotation.Record,
    ),
    # Stored: the only way is forward, nothing is gathered.
    Case((S.STORE, P.DONE), facts.Facts(resumed=True), rotation.Promote),
]


@pytest.mark.parametrize("case", RESUMED, ids=lambda c: f"{c.state[0]}-{c.state[1]}")
def test_resume_checks_what_the_journal_names(case: Case) -> None:
    action = rotation.next_action(SPEC, journal_at(*case.state), case.observed)
    assert type(action) is case.expect
    for name, value in case.check.items():
        assert getattr(action, name) == value


def test_verify_deadline_is_fixed_by_the_first_attempt() -> None:
    journal = journal_at(S.STAGE, P.DONE)
    first = rotation.begin_verify(journal, f.T0, dt.timedelta(minutes=5))
    assert first.step is S.VERIFY and first.phase is P.STARTED
    assert first.verify_deadline == f.T0 + dt.timedelta(minutes=5)
    again = rotation.begin_verify(first, f.T0 + dt.timedelta(minutes=4), dt.timedelta(minutes=5))
    assert again.verify_deadline == first.verify_deadline
    replanned = rotation.replan(first, SPEC, META, "efgh5678", f.T0 + dt.timedelta(minutes=6))
    assert replanned.verify_deadline is None


@pytest.mark.parametrize(
    ("listed", "found"),
    [
        ((), ()),
        ((facts.GraphCredential("a", "rotator-etl-sp-abcd1234"),), ("a",)),
        # another attempt of the same object, another object, another tool, no name at all
        ((facts.GraphCredential("b", "rotator-etl-sp-ffff0000"),), ()),
        ((facts.GraphCredential("c", "rotator-other-abcd1234"),), ()),
        ((facts.GraphCredential("d", "manual"), facts.GraphCredential("e")), ()),
        # a retried addPassword may have made two: both are ours
        (
            (
                facts.GraphCredential("a", "rotator-etl-sp-abcd1234"),
                facts.GraphCredential("x", "manual"),
                facts.GraphCredential("a2", "rotator-etl-sp-abcd1234"),
            ),
            ("a", "a2"),
        ),
    ],
)
def test_minted_by_attempt_is_found_by_its_display_name(
    listed: tuple[facts.GraphCredential, ...], found: tuple[str, ...]
) -> None:
    journal = journal_at(models.Step.MINT, models.Phase.STARTED)
    journal = journal.model_copy(update={"display_name": "rotator-etl-sp-abcd1234"})
    assert rotation.minted_by_attempt(journal, listed) == found
