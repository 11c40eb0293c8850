"""Tests for rotator.core.retirement: when retiring secrets are revoked, and orphan detection."""

from __future__ import annotations

import datetime as dt

import pytest

from rotator.core import facts, models, reasons, retirement, rotation
from tests.core import factories as f

H = dt.timedelta(hours=1)
OVERLAP = dt.timedelta(hours=24)
# retireAt = start + overlap + 1 s: status keeps whole seconds (core.retirement._SLACK).
WAIT = OVERLAP + dt.timedelta(seconds=1)
SUPERSEDED = f.T0
CURRENT = models.CurrentSecret(key_id="k2", expires_at=f.T0 + 90 * 24 * H, key_vault_version="v2")
OLD = models.RetiringSecret(key_id="k1", superseded_at=SUPERSEDED)


def status(*retiring: models.RetiringSecret) -> models.ServicePrincipalSecretStatus:
    return models.ServicePrincipalSecretStatus(current=CURRENT, retiring=retiring)


def synced(
    name: str, key: str | None = "k2", version: str | None = None, at: dt.datetime | None = None
) -> retirement.ConsumerSync:
    return retirement.ConsumerSync(
        name=name, synced_key_id=key, synced_version=version, synced_at=at
    )


@pytest.mark.parametrize(
    ("bindings", "now", "retire_at", "revoke", "waiting"),
    [
        # No bindings: eligible overlap after it was superseded.
        ((), f.T0 + H, SUPERSEDED + WAIT, (), ()),
        ((), SUPERSEDED + WAIT, SUPERSEDED + WAIT, ("k1",), ()),
        # Every binding has the current keyId: overlap counts from the last sync.
        (
            (synced("a", at=f.T0 + H), synced("b", at=f.T0 + 2 * H)),
            f.T0 + 3 * H,
            f.T0 + 2 * H + WAIT,
            (),
            (),
        ),
        # ... or from now, when a binding does not say when it synced.
        ((synced("a"),), f.T0 + 3 * H, f.T0 + 3 * H + WAIT, (), ()),
        # A sync reported before the supersede does not shorten the overlap.
        ((synced("a", at=f.T0 - H),), f.T0 + H, SUPERSEDED + WAIT, (), ()),
        # Key-Vault-sourced bindings report a version instead of a keyId.
        ((synced("a", key=None, version="v2", at=f.T0 + H),), f.T0 + H, f.T0 + H + WAIT, (), ()),
        # One binding still has the old secret: no retireAt, nothing revoked, it is named.
        ((synced("a", at=f.T0), synced("ns/b", key="k1")), f.T0 + 100 * H, None, (), ("ns/b",)),
        ((synced("a", key=None, version="v1"),), f.T0 + 100 * H, None, (), ("a",)),
        ((synced("never-synced", key=None),), f.T0 + 100 * H, None, (), ("never-synced",)),
    ],
)
def test_plan_table(
    bindings: tuple[retirement.ConsumerSync, ...],
    now: dt.datetime,
    retire_at: dt.datetime | None,
    revoke: tuple[str, ...],
    waiting: tuple[str, ...],
) -> None:
    plan = retirement.plan(status(OLD), bindings, OVERLAP, now)
    assert plan.retiring[0].retire_at == retire_at
    assert plan.revoke == revoke
    assert plan.waiting == waiting
    assert plan.forgotten == ()


def test_retire_at_once_set_does_not_move() -> None:
    fixed = OLD.model_copy(update={"retire_at": f.T0 + 5 * H})
    lagging = (synced("a", key="k1"),)
    plan = retirement.plan(status(fixed), lagging, OVERLAP, f.T0 + 5 * H)
    assert plan.retiring[0].retire_at == f.T0 + 5 * H
    assert plan.revoke == ("k1",)


def test_secrets_graph_no_longer_lists_are_forgotten() -> None:
    other = models.RetiringSecret(key_id="k0", superseded_at=SUPERSEDED - 48 * H)
    plan = retirement.plan(
        status(other, OLD), (), OVERLAP, f.T0 + 48 * H, graph_key_ids=frozenset({"k1", "k2"})
    )
    assert plan.forgotten == ("k0",)
    assert [r.key_id for r in plan.retiring] == ["k1"]
    assert plan.revoke == ("k1",)


def test_without_current_nothing_gets_a_retire_time() -> None:
    empty = models.ServicePrincipalSecretStatus(retiring=(OLD,))
    plan = retirement.plan(empty, (), OVERLAP, f.T0 + 1000 * H)
    assert plan.retiring[0].retire_at is None
    assert plan.revoke == ()


def test_without_and_next_retire_time() -> None:
    a = OLD.model_copy(update={"retire_at": f.T0 + 9 * H})
    b = models.RetiringSecret(key_id="k0", superseded_at=f.T0, retire_at=f.T0 + 4 * H)
    c = models.RetiringSecret(key_id="k9", superseded_at=f.T0)
    assert retirement.next_retire_time((a, b, c)) == f.T0 + 4 * H
    assert retirement.next_retire_time((c,)) is None
    assert [r.key_id for r in retirement.without(status(a, b, c), ["k0", "nope"]).retiring] == [
        "k1",
        "k9",
    ]


# --- Orphans ------------------------------------------------------------------------------

NAME = "etl-sp"


def cred(key: str, display: str | None) -> facts.GraphCredential:
    return facts.GraphCredential(key_id=key, display_name=display)


def in_flight(key: str | None) -> models.RotationJournal:
    journal = rotation.plan(f.sps_spec(), f.meta(NAME), reasons.EXPIRING, "abcd1234", f.T0)
    return journal.model_copy(update={"key_id": key})


@pytest.mark.parametrize(
    ("credential", "rotation_journal", "orphan"),
    [
        (cred("k2", "rotator-etl-sp-aaaa1111"), None, False),  # current
        (cred("k1", "rotator-etl-sp-bbbb2222"), None, False),  # retiring
        (cred("kx", "rotator-etl-sp-cccc3333"), None, True),  # ours, unaccounted
        (cred("kx", "manual secret"), None, False),  # not minted by rotator
        (cred("kx", None), None, False),
        (cred("kx", "rotator-etl-cccc3333"), None, False),  # another object's (named etl)
        (cred("kx", "rotator-etl-sp-prod-cccc3333"), None, False),  # another object's
        (cred("kx", "rotator-etl-sp-abcd1234"), in_flight(None), False),  # Mint in flight
        (cred("kx", "rotator-etl-sp-abcd1234"), in_flight("kx"), False),  # Mint recorded
        # Once the mint is recorded, a second credential with the same displayName is an orphan.
        (cred("ky", "rotator-etl-sp-abcd1234"), in_flight("kx"), True),
    ],
)
def test_orphans(
    credential: facts.GraphCredential, rotation_journal: models.RotationJournal | None, orphan: bool
) -> None:
    st = models.ServicePrincipalSecretStatus(
        current=CURRENT, retiring=(OLD,), rotation=rotation_journal
    )
    found = retirement.orphans((credential,), st, NAME)
    assert (found == (credential,)) is orphan


def test_minted_by_long_names() -> None:
    long = "n" * 200
    assert retirement.minted_by(rotation.display_name(long, "abcd1234"), long)
    assert not retirement.minted_by(rotation.display_name(long, "abcd1234"), long[:-1])
