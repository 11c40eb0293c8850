"""The binding's decisions (pure), table-driven: does it need a sync, is a check due, when next."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest

from rotator.core import reasons, schedule, syncing
from tests.core import factories

T0 = factories.T0
HOUR = dt.timedelta(hours=1)
SYNCED = syncing.Snapshot(
    generation=3,
    observed_generation=3,
    synced_version="v1",
    synced_key_id="k1",
    stalled=False,
    last_sync_time=T0,
    failures=0,
    retry_pending=False,
    source_checked=T0,
    scope_checked=T0,
    keyvault_source=False,
    interval=HOUR,
    now=T0 + dt.timedelta(minutes=10),
)
SOURCE = syncing.Source("v1", "k1")


def snap(**changes: Any) -> syncing.Snapshot:
    return dataclasses.replace(SYNCED, **changes)


@pytest.mark.parametrize(
    ("snapshot", "source", "why"),
    [
        (SYNCED, SOURCE, ""),  # up to date: no sync, no cloud call
        (SYNCED, syncing.Source("v2", "k1"), "new_version"),
        (SYNCED, syncing.Source("v1", "k2"), "new_version"),  # same version, new keyId
        (SYNCED, syncing.Source("v1"), "new_version"),  # a keyVault source has no keyId
        (snap(synced_version=None, synced_key_id=None), SOURCE, "new_version"),  # never synced
        (snap(observed_generation=2), SOURCE, "spec_changed"),
        (snap(failures=1), SOURCE, "failing"),
        (snap(stalled=True), SOURCE, "stalled"),
        # the first violated entry names it
        (snap(observed_generation=2, failures=4, stalled=True), SOURCE, "spec_changed"),
        (snap(failures=1, stalled=True), syncing.Source("v9", "k9"), "new_version"),
    ],
)
def test_needs_sync(snapshot: syncing.Snapshot, source: syncing.Source, why: str) -> None:
    reason, message, violated = syncing.needs_sync(snapshot, source)
    assert violated is bool(why)
    if why:
        fired = [name for name, check in syncing.CHAIN if check(snapshot, source)[2]]
        assert fired[0] == why
        assert reason == reasons.RECONCILING and message
    else:
        assert (reason, message) == ("", "")


def test_every_chain_entry_is_named_after_its_check() -> None:
    assert [name for name, _ in syncing.CHAIN] == [check.__name__ for _, check in syncing.CHAIN]


@pytest.mark.parametrize(
    ("snapshot", "due"),
    [
        (snap(keyvault_source=True), False),  # read 10 minutes ago
        (snap(keyvault_source=True, now=T0 + HOUR), True),  # an interval later
        (snap(keyvault_source=True, source_checked=None), True),  # never read by us
        (snap(keyvault_source=True, retry_pending=True), True),  # a failure to retry
        (snap(keyvault_source=True, failures=2), True),
        (snap(keyvault_source=True, observed_generation=2), True),  # a new spec
    ],
)
def test_source_check_due(snapshot: syncing.Snapshot, due: bool) -> None:
    assert syncing.source_check_due(snapshot) is due


@pytest.mark.parametrize(
    ("snapshot", "baseline"),
    [
        (SYNCED, T0),  # already checked by this process: kept
        (snap(scope_checked=None, last_sync_time=None), None),  # never synced: nothing to check
        # first seen after a restart, synced recently: due one interval after the sync
        (snap(scope_checked=None), T0),
        # synced long ago: spread over the next interval by a stable per-binding offset
        (
            snap(scope_checked=None, last_sync_time=T0 - 5 * HOUR),
            SYNCED.now + schedule.spread("ns/dsb:a", HOUR) - HOUR,
        ),
    ],
)
def test_scope_baseline(snapshot: syncing.Snapshot, baseline: dt.datetime | None) -> None:
    assert syncing.scope_baseline(snapshot, "ns/dsb:a") == baseline


def test_a_restart_spreads_the_scope_checks_over_one_interval() -> None:
    old = snap(scope_checked=None, last_sync_time=T0 - 5 * HOUR)
    baselines = {syncing.scope_baseline(old, f"ns/dsb:{n}") for n in range(50)}
    assert all(b is not None and old.now - HOUR <= b < old.now for b in baselines)
    assert len(baselines) > 40  # not all at once


@pytest.mark.parametrize(
    ("snapshot", "due"),
    [
        (SYNCED, False),
        (snap(now=T0 + HOUR), True),
        (snap(scope_checked=None), False),  # no baseline yet (never synced)
    ],
)
def test_scope_check_due(snapshot: syncing.Snapshot, due: bool) -> None:
    assert syncing.scope_check_due(snapshot) is due


@pytest.mark.parametrize(
    ("snapshot", "seconds"),
    [
        (SYNCED, 50 * 60.0),  # the scope check, an interval after the last one
        (snap(scope_checked=None), 50 * 60.0),  # falls back to the last sync
        (snap(scope_checked=None, last_sync_time=None), None),  # nothing to check: until woken
        # a keyVault source read earlier than the scope was checked: the source check first
        (
            snap(keyvault_source=True, source_checked=T0 - dt.timedelta(minutes=30)),
            20 * 60.0,
        ),
        (snap(keyvault_source=True, source_checked=None), 50 * 60.0),
        (snap(now=T0 + 2 * HOUR), 1.0),  # overdue: soon, but never a spin
    ],
)
def test_next_check(snapshot: syncing.Snapshot, seconds: float | None) -> None:
    assert syncing.next_check(snapshot) == seconds
