"""The invariants, as a pure ledger: samples in, violations out. No I/O, no clock reads.

``probing`` samples every member (a ServicePrincipalSecret, its Graph credentials and every
place a consumer reads its secret: Key Vault's latest version, each bound Databricks scope)
and feeds :meth:`Ledger.observe` with the time of the sample. The ledger counts:

- lost: a place whose value does not authenticate (no live credential has that text, or the
  Key Vault latest is disabled), outside a declared repair window;
- expired samples: a place whose value authenticates only with an expired credential, or
  whose Key Vault version is past its ``exp``;
- orphans: a credential with a ``rotator-`` displayName that no status accounts for (current,
  retiring, in-flight rotation) for longer than the grace (beyond the next reconcile);
- premature revocations: a credential gone from Graph while a place still held it at the
  previous sample, or less than the overlap after the last place stopped holding it.

Out-of-band edits open repair windows (:meth:`Ledger.suspend`): their places are not counted
until they authenticate again or the grace has passed (then they count), and credentials the
suite deleted itself (:meth:`Ledger.forget`) are never premature revocations.

Rotation counts (rotations, duplicate writes, double rotations) come from Key Vault's version
history after the run (:func:`rotations`, :func:`duplicate_writes`, :func:`double_rotations`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence

OK = "ok"
INVALID = "invalid"  # no live credential has this text: consumers fail to authenticate
EXPIRED = "expired"
DISABLED = "disabled"  # Key Vault latest disabled: consumers cannot read it
ABSENT = "absent"  # nothing there yet (before first issuance or first sync)

PREFIX = "rotator-"


@dataclasses.dataclass(frozen=True)
class Credential:
    key_id: str
    display_name: str
    end: float  # epoch seconds


@dataclasses.dataclass(frozen=True)
class Place:
    """Where a consumer reads the secret, what is there (a keyId, never a value), verdict."""

    where: str  # "keyvault" or "scope <host> <scope>"
    key_id: str | None  # the credential whose text is there; None when none has it
    verdict: str


@dataclasses.dataclass(frozen=True)
class Probe:
    """One member at one instant."""

    member: str
    credentials: tuple[Credential, ...]
    places: tuple[Place, ...]


@dataclasses.dataclass(frozen=True)
class Stored:
    """One Key Vault version of a member's real secret name (not staging)."""

    created: float
    rotation_id: str | None
    key_id: str | None


@dataclasses.dataclass
class _Window:
    prefix: str  # places whose ``where`` starts with this ("" = every place)
    until: float
    # The edit lands after the window opens: a sample in between still sees every place OK,
    # which must not close the window before the disturbance was even seen.
    broken: bool = False


class Ledger:
    """Violations seen so far; feed it samples in time order."""

    def __init__(self, *, orphan_grace: float, overlap: float) -> None:
        self.orphan_grace = orphan_grace
        self.overlap = overlap
        self.lost: set[tuple[str, str, str]] = set()
        self.expired_samples = 0
        self.orphans: set[tuple[str, str]] = set()
        self.premature: set[tuple[str, str]] = set()
        self.samples = 0
        self.notes: list[str] = []
        self._windows: dict[str, list[_Window]] = {}
        self._forgotten: set[tuple[str, str]] = set()
        self._unaccounted: dict[tuple[str, str], float] = {}
        self._last_in_place: dict[tuple[str, str], float] = {}
        self._previous: dict[str, tuple[float, frozenset[str]]] = {}

    # -- declared disturbances -------------------------------------------------------------

    def suspend(self, member: str, prefix: str, now: float, grace: float) -> None:
        """An edit broke ``member``'s places under ``prefix`` on purpose: do not count them
        until they authenticate again, or until ``now + grace`` (then they count)."""
        self._windows.setdefault(member, []).append(_Window(prefix, now + grace))

    def forget(self, member: str, key_id: str) -> None:
        """The suite itself deleted this credential: its removal is not a revocation."""
        self._forgotten.add((member, key_id))

    def repairing(self, member: str) -> bool:
        return bool(self._windows.get(member))

    # -- samples ----------------------------------------------------------------------------

    def observe(
        self, now: float, probes: Iterable[Probe], accounted: Mapping[str, frozenset[str] | None]
    ) -> None:
        """One sample of every member; ``accounted[member]`` is None when status was unknown."""
        self.samples += 1
        for probe in probes:
            self._places(now, probe)
            self._revocations(now, probe)
            known = accounted.get(probe.member)
            if known is not None:
                self._orphans(now, probe, known)

    def _note(self, text: str) -> None:
        if len(self.notes) < 50:
            self.notes.append(text)

    def _places(self, now: float, probe: Probe) -> None:
        windows = self._windows.get(probe.member, [])
        for window in list(windows):
            covered = [p for p in probe.places if p.where.startswith(window.prefix)]
            healthy = all(p.verdict == OK for p in covered)
            window.broken = window.broken or not healthy
            if (window.broken and healthy) or now >= window.until:
                windows.remove(window)
        for place in probe.places:
            if place.key_id is not None:
                self._last_in_place[(probe.member, place.key_id)] = now
            if any(place.where.startswith(w.prefix) for w in windows):
                continue
            if place.verdict in (INVALID, DISABLED):
                key = (probe.member, place.where, place.key_id or "-")
                if key not in self.lost:
                    self._note(f"{now:.0f} lost: {probe.member} {place.where} {place.verdict}")
                self.lost.add(key)
            elif place.verdict == EXPIRED:
                self.expired_samples += 1
                self._note(f"{now:.0f} expired: {probe.member} {place.where}")

    def _revocations(self, now: float, probe: Probe) -> None:
        keys = frozenset(c.key_id for c in probe.credentials)
        previous = self._previous.get(probe.member)
        self._previous[probe.member] = (now, keys)
        if previous is None:
            return
        before, had = previous
        overlap = self.overlap
        for key_id in had - keys:
            if (probe.member, key_id) in self._forgotten:
                continue
            last = self._last_in_place.get((probe.member, key_id))
            if last is None:
                continue  # never reached a consumer: removing it is clean-up
            # Removed in (before, now]; consumers stopped holding it after ``last``. In a
            # place at the previous sample, or gone from every place less than the overlap
            # before the sample that saw the removal: premature for sure.
            if last >= before or now - last < overlap:
                self.premature.add((probe.member, key_id))
                self._note(
                    f"{now:.0f} premature revocation: {probe.member} {key_id[:8]} "
                    f"last in a place {now - last:.1f}s before"
                )

    def _orphans(self, now: float, probe: Probe, accounted: frozenset[str]) -> None:
        present = {c.key_id for c in probe.credentials if c.display_name.startswith(PREFIX)}
        for member, key in list(self._unaccounted):
            if member == probe.member and (key not in present or key in accounted):
                del self._unaccounted[(member, key)]
        for key_id in present - accounted:
            first = self._unaccounted.setdefault((probe.member, key_id), now)
            if now - first > self.orphan_grace and (probe.member, key_id) not in self.orphans:
                self.orphans.add((probe.member, key_id))
                self._note(f"{now:.0f} orphan: {probe.member} {key_id[:8]}")

    def final_orphans(
        self, probes: Iterable[Probe], accounted: Mapping[str, frozenset[str] | None]
    ) -> None:
        """After the run settled: every unaccounted ``rotator-`` credential left is an orphan."""
        for probe in probes:
            known = accounted.get(probe.member)
            if known is None:
                continue
            for c in probe.credentials:
                if c.display_name.startswith(PREFIX) and c.key_id not in known:
                    if (probe.member, c.key_id) not in self.orphans:
                        self._note(f"final orphan: {probe.member} {c.key_id[:8]}")
                    self.orphans.add((probe.member, c.key_id))


def accounted_for(status: Mapping[str, object] | None) -> frozenset[str]:
    """The keyIds a ServicePrincipalSecret status accounts for: current, retiring, rotation."""
    status = status or {}
    keys: set[str] = set()
    current = status.get("current")
    if isinstance(current, dict) and current.get("keyId"):
        keys.add(str(current["keyId"]))
    for item in status.get("retiring") or ():  # type: ignore[attr-defined]
        if isinstance(item, dict) and item.get("keyId"):
            keys.add(str(item["keyId"]))
    rotation = status.get("rotation")
    if isinstance(rotation, dict) and rotation.get("keyId"):
        keys.add(str(rotation["keyId"]))
    return frozenset(keys)


# --- rotations from Key Vault's history ------------------------------------------------------


def _firsts(stored: Sequence[Stored]) -> list[tuple[float, str]]:
    """(created, rotation id) of the first version each rotation stored, in time order."""
    seen: dict[str, float] = {}
    for item in stored:
        if item.rotation_id and item.rotation_id not in seen:
            seen[item.rotation_id] = item.created
    return sorted((t, r) for r, t in seen.items())


def rotations(stored: Sequence[Stored]) -> int:
    """Rotations that reached consumers: distinct rotation ids stored under the real name."""
    return len(_firsts(stored))


def duplicate_writes(stored: Sequence[Stored]) -> int:
    """Versions that repeat a rotation id already stored: the Store step ran twice."""
    seen: set[str] = set()
    duplicates = 0
    for item in stored:
        if item.rotation_id is None:
            continue
        if item.rotation_id in seen:
            duplicates += 1
        seen.add(item.rotation_id)
    return duplicates


def double_rotations(
    stored: Sequence[Stored],
    episodes: Sequence[tuple[float, float | None]],
    *,
    scheduled: bool,
    gap: float = 30.0,
) -> int:
    """Rotations beyond one per trigger.

    ``episodes`` are the suite's triggers, (start, end or None while open); each may explain
    one rotation. Key Vault's ``created`` is whole seconds (floored), so a rotation stored at
    ``c`` happened in ``[c, c + 1)`` and belongs to an episode when ``start - 1 < c <= end``
    (the first such episode with no rotation yet, when two touch). A member without scheduled
    rotations (long validity) has every rotation outside all episodes unexplained: a double.
    One with scheduled rotations may rotate on its own (a rotation no episode explains), but
    never within ``gap`` seconds of the rotation before it.
    """
    firsts = _firsts(stored)
    hits = [0] * len(episodes)
    owned: list[bool] = []
    for created, _ in firsts:
        matching = [
            k
            for k, (start, end) in enumerate(episodes)
            if start - 1 < created and (end is None or created <= end)
        ]
        owned.append(bool(matching))
        if matching:
            owner = next((k for k in matching if hits[k] == 0), matching[0])
            hits[owner] += 1
    extra = sum(max(0, n - 1) for n in hits)
    if not scheduled:
        return extra + owned.count(False)
    # A rotation no trigger explains is a scheduled one: a double when it follows the one
    # before within the gap (counted once: one inside an episode is counted above).
    for index in range(1, len(firsts)):
        if not owned[index] and firsts[index][0] - firsts[index - 1][0] < gap:
            extra += 1
    return extra
