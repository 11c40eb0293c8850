"""The binding's decisions: does it need a sync, and when does it next look at the cloud.

Pure, over a :class:`Snapshot` the shell gathers (the binding's status and generation, and what
this process remembers about it). Like the trigger chain (:mod:`rotator.core.triggers`),
whether to sync is an ordered chain of named predicates returning ``(reason, message,
violated)``; the first violated entry says why a sync is due. The checks a synced binding makes
on its own (the Key Vault source's latest version, the scope's value) are due once per
drift-check interval; after a restart the scope checks are spread over one interval
(:func:`rotator.core.schedule.spread`) so a restart does not read every scope at once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Final

from rotator.core import reasons, schedule


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """What the binding's decisions look at.

    generation          metadata.generation
    observed_generation status.observedGeneration
    synced_version      status.syncedVersion (and its keyId): what the consumers hold
    stalled             the Stalled condition is True
    last_sync_time      status.lastSyncTime
    failures            consecutive failed passes (this process's count)
    retry_pending       a retry time is set (a failure is being retried)
    source_checked      when the Key Vault source's latest version was last read (None: never)
    scope_checked       when the scope's value was last found right (None: not this process)
    keyvault_source     the source is a Key Vault secret (nobody tells us of a new version)
    interval            the drift-check interval
    now                 the time of the decision
    """

    generation: int | None
    observed_generation: int | None
    synced_version: str | None
    synced_key_id: str | None
    stalled: bool
    last_sync_time: dt.datetime | None
    failures: int
    retry_pending: bool
    source_checked: dt.datetime | None
    scope_checked: dt.datetime | None
    keyvault_source: bool
    interval: dt.timedelta
    now: dt.datetime


@dataclasses.dataclass(frozen=True)
class Source:
    """The source's current version, as resolved this pass."""

    version: str
    key_id: str | None = None


Result = tuple[str, str, bool]
Check = Callable[[Snapshot, Source], Result]
_OK: Final[Result] = ("", "", False)


def new_version(s: Snapshot, source: Source) -> Result:
    """The source has a version (or keyId) the consumers do not hold yet."""
    if (s.synced_version, s.synced_key_id) != (source.version, source.key_id):
        return (
            reasons.RECONCILING,
            f"Key Vault version {source.version} is not the one synced "
            f"({s.synced_version or 'none'})",
            True,
        )
    return _OK


def spec_changed(s: Snapshot, source: Source) -> Result:
    """The spec changed since the last sync (a new scope, job or workspace)."""
    if s.observed_generation != s.generation:
        return reasons.RECONCILING, f"generation {s.generation} has not been synced", True
    return _OK


def failing(s: Snapshot, source: Source) -> Result:
    """The last pass failed: try again."""
    if s.failures:
        return reasons.RECONCILING, f"retrying after {s.failures} failed pass(es)", True
    return _OK


def stalled(s: Snapshot, source: Source) -> Result:
    """Stalled: whatever stopped it may have been fixed outside (Databricks, Key Vault)."""
    if s.stalled:
        return reasons.RECONCILING, "stalled; trying again", True
    return _OK


#: Whether a sync is due; first violated entry wins.
CHAIN: Final[tuple[tuple[str, Check], ...]] = (
    ("new_version", new_version),  # the consumers must get the new secret
    ("spec_changed", spec_changed),  # the consumers changed
    ("failing", failing),  # a transient failure to retry
    ("stalled", stalled),  # a permanent one, retried rarely
)


def needs_sync(s: Snapshot, source: Source, chain: tuple[tuple[str, Check], ...] = CHAIN) -> Result:
    """Why the binding must sync now (``violated``), or ``("", "", False)``: up to date."""
    for _name, check in chain:
        found = check(s, source)
        if found[2]:
            return found
    return _OK


def source_check_due(s: Snapshot) -> bool:
    """Whether a Key-Vault-sourced binding should read the vault's latest version now."""
    if s.source_checked is None or s.retry_pending:
        return True
    if s.observed_generation != s.generation or s.failures:
        return True
    return s.now >= s.source_checked + s.interval


def scope_baseline(s: Snapshot, key: str) -> dt.datetime | None:
    """When the scope counts as last checked, for a process that has not checked it yet.

    One interval after the last sync, the last time the scope was known to be right; a binding
    synced longer ago than that is checked at a stable per-binding offset (``key``) within the
    next interval. None before a first sync (nothing to check) or once checked.
    """
    if s.scope_checked is not None or s.last_sync_time is None:
        return s.scope_checked
    due = s.last_sync_time + s.interval
    if due <= s.now:
        due = s.now + schedule.spread(key, s.interval)
    return due - s.interval


def scope_check_due(s: Snapshot) -> bool:
    """Whether the scope's value is due for its drift check (never before a first sync)."""
    return s.scope_checked is not None and s.now >= s.scope_checked + s.interval


def next_check(s: Snapshot) -> float | None:
    """Seconds until the next scope or Key Vault check is due (None: nothing to check yet)."""
    last = [s.scope_checked or s.last_sync_time]
    if s.keyvault_source:
        last.append(s.source_checked)
    due = [when + s.interval for when in last if when is not None]
    return max(1.0, (min(due) - s.now).total_seconds()) if due else None
