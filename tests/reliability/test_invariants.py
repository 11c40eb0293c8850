"""The chaos suite's ledger and rotation counts: samples in, violations out (pure)."""

from __future__ import annotations

from reliability.invariants import OK, Credential, Place, Probe, Stored

from reliability import figures, invariants

M = "ns/a"


def probe(creds: dict[str, str], places: list[tuple[str, str | None, str]]) -> Probe:
    return Probe(
        M,
        tuple(Credential(k, name, 0.0) for k, name in creds.items()),
        tuple(Place(w, k, v) for w, k, v in places),
    )


def ledger() -> invariants.Ledger:
    return invariants.Ledger(orphan_grace=30.0, overlap=15.0)


def test_a_place_that_stops_authenticating_is_lost_once() -> None:
    book = ledger()
    broken = probe({"k1": "rotator-a-1"}, [("keyvault", None, invariants.INVALID)])
    book.observe(0.0, [broken], {M: frozenset({"k1"})})
    book.observe(1.0, [broken], {M: frozenset({"k1"})})
    assert book.lost == {(M, "keyvault", "-")}


def test_a_repair_window_hides_damage_until_repaired_or_late() -> None:
    book = ledger()
    book.suspend(M, "scope", 0.0, grace=10.0)
    broken = probe({}, [("scope h s", None, invariants.INVALID), ("keyvault", "k", OK)])
    book.observe(1.0, [broken], {M: None})
    assert book.lost == set()
    book.observe(12.0, [broken], {M: None})  # past the grace: it counts
    assert book.lost == {(M, "scope h s", "-")}
    # Seen broken, then repaired before the grace: the window closes, later damage counts.
    healthy = probe({}, [("scope h s", "k", OK)])
    book = ledger()
    book.suspend(M, "scope", 0.0, grace=100.0)
    book.observe(1.0, [broken], {M: None})
    book.observe(2.0, [healthy], {M: None})
    book.observe(3.0, [broken], {M: None})
    assert book.lost == {(M, "scope h s", "-")}
    # A sample between opening the window and the edit landing (all still OK) does not
    # close it: the edit's damage is the repair's to undo, not a loss.
    book = ledger()
    book.suspend(M, "scope", 0.0, grace=100.0)
    book.observe(0.5, [healthy], {M: None})
    book.observe(1.0, [broken], {M: None})
    assert book.lost == set()


def test_expired_values_are_counted_per_sample() -> None:
    book = ledger()
    old = probe({"k": "rotator-a-1"}, [("keyvault", "k", invariants.EXPIRED)])
    book.observe(0.0, [old], {M: frozenset({"k"})})
    book.observe(1.0, [old], {M: frozenset({"k"})})
    assert book.expired_samples == 2


def test_orphans_only_beyond_the_grace_and_not_when_accounted() -> None:
    book = ledger()
    minted = probe({"k1": "rotator-a-1", "k2": "rotator-a-2", "x": "someone-else"}, [])
    book.observe(0.0, [minted], {M: frozenset({"k1"})})
    book.observe(20.0, [minted], {M: frozenset({"k1"})})
    assert book.orphans == set()
    book.observe(20.5, [minted], {M: None})  # status unknown: no verdict
    book.observe(31.0, [minted], {M: frozenset({"k1"})})
    assert book.orphans == {(M, "k2")}
    # Accounted for in time (the journal recorded it): never an orphan.
    book = ledger()
    book.observe(0.0, [minted], {M: frozenset({"k1"})})
    book.observe(10.0, [minted], {M: frozenset({"k1", "k2"})})
    book.observe(40.0, [minted], {M: frozenset({"k1", "k2"})})
    assert book.orphans == set()


def test_revocation_while_a_place_held_it_or_within_the_overlap_is_premature() -> None:
    book = ledger()
    both = {"old": "rotator-a-1", "new": "rotator-a-2"}
    book.observe(0.0, [probe(both, [("scope h s", "old", OK)])], {})
    book.observe(
        1.0, [probe({"new": "rotator-a-2"}, [("scope h s", "old", invariants.INVALID)])], {}
    )
    assert (M, "old") in book.premature
    # Synced at 1 s, revoked after 20 s (overlap 15 s): fine.
    book = ledger()
    book.observe(0.0, [probe(both, [("scope h s", "old", OK)])], {})
    book.observe(1.0, [probe(both, [("scope h s", "new", OK)])], {})
    book.observe(21.0, [probe({"new": "rotator-a-2"}, [("scope h s", "new", OK)])], {})
    assert book.premature == set()
    # ... but revoked 5 s after the last place let go of it: premature.
    book = ledger()
    book.observe(0.0, [probe(both, [("scope h s", "old", OK)])], {})
    book.observe(1.0, [probe(both, [("scope h s", "new", OK)])], {})
    book.observe(6.0, [probe({"new": "rotator-a-2"}, [("scope h s", "new", OK)])], {})
    assert book.premature == {(M, "old")}
    # The suite deleted it itself, or it never reached a consumer: not a revocation.
    book = ledger()
    book.forget(M, "old")
    book.observe(0.0, [probe(both, [("scope h s", "old", OK)])], {})
    book.observe(1.0, [probe({"new": "rotator-a-2"}, [])], {})
    assert book.premature == set()


def test_rotation_counts_from_key_vault_history() -> None:
    stored = [
        Stored(10.0, "r1", "k1"),
        Stored(20.0, "r2", "k2"),
        Stored(21.0, "r2", "k2"),  # Store ran twice for r2
        Stored(100.0, "r3", "k3"),
    ]
    assert invariants.rotations(stored) == 3
    assert invariants.duplicate_writes(stored) == 1
    # One trigger explains r1, one explains r2; r3 has none: a long member rotated on its own.
    episodes: list[tuple[float, float | None]] = [(9.0, 12.0), (19.0, 25.0)]
    assert invariants.double_rotations(stored, episodes, scheduled=False) == 1
    # Scheduled members may rotate alone, but not twice within the gap without a trigger.
    assert invariants.double_rotations(stored, episodes, scheduled=True) == 0
    twice = [Stored(10.0, "r1", "k1"), Stored(15.0, "r2", "k2")]
    assert invariants.double_rotations(twice, [], scheduled=True) == 1
    assert invariants.double_rotations(twice, [(8.0, 30.0)], scheduled=False) == 1


def test_accounted_for_reads_current_retiring_and_rotation() -> None:
    status = {
        "current": {"keyId": "a"},
        "retiring": [{"keyId": "b"}],
        "rotation": {"keyId": "c", "step": "Stage"},
    }
    assert invariants.accounted_for(status) == {"a", "b", "c"}
    assert invariants.accounted_for(None) == frozenset()


def test_slopes_and_failures() -> None:
    points = [(0.0, 100.0), (60.0, 101.0), (120.0, 102.0)]
    assert round(figures.slope_per_minute(points), 6) == 1.0
    assert figures.ends(points, window=1) == (100.0, 102.0)
    fig = figures.Figures(crash_points_tested=14, rotations=250, soak_minutes=31.0)
    assert figures.failures(fig, full=True) == []
    fig.orphans = 1
    assert figures.failures(fig, full=False) == ["orphans = 1"]


def test_back_to_back_episodes_with_whole_second_timestamps() -> None:
    """Key Vault floors ``created``: a rotation stored at 20.6 reads 20, after the previous
    episode ended at 18.5 and the next began at 19.5: it is the next one's, not a double."""
    stored = [Stored(16.0, "r1", "k1"), Stored(20.0, "r2", "k2")]
    episodes: list[tuple[float, float | None]] = [(8.3, 18.5), (19.5, 21.0)]
    assert invariants.double_rotations(stored, episodes, scheduled=False) == 0


def test_two_rotations_in_one_trigger_count_once_for_a_scheduled_member() -> None:
    stored = [Stored(100.0, "r1", "k1"), Stored(101.0, "r2", "k2")]
    assert invariants.double_rotations(stored, [(95.0, 101.5)], scheduled=True) == 1
