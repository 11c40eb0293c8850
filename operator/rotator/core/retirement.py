"""Retirement: when superseded secrets may be revoked, and which credentials are orphans.

A retiring secret gets ``retireAt`` once every DatabricksSecretBinding that references its
ServicePrincipalSecret reports the *current* secret (by Graph keyId, or by Key Vault version):
``retireAt = max(supersededAt, when the last binding synced) + overlap``. With no bindings,
``retireAt = supersededAt + overlap`` (other consumers read Key Vault's latest, which has been
the new secret since supersededAt). Once set, ``retireAt`` does not move: the decision was
made when every consumer had the new secret.

An orphan is a Graph credential whose displayName says this object minted it
(``rotator-<name>-<id>``) but that no record accounts for: not current, not retiring, not the
in-flight rotation (which, before Mint is recorded, is known only by its displayName).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable

from rotator.core import facts, models, rotation


@dataclasses.dataclass(frozen=True)
class ConsumerSync:
    """What one consumer of this secret (a binding, or any other sink) reports in its status."""

    name: str  # namespace/name, for messages
    synced_key_id: str | None = None
    synced_version: str | None = None
    synced_at: dt.datetime | None = None
    key: str = ""  # the consumer's runtime key, to wake it (not part of any decision)


@dataclasses.dataclass(frozen=True)
class Plan:
    """The retirement decision.

    retiring  the new ``status.retiring`` (retireAt filled in where now decidable; secrets
              that Graph no longer lists dropped)
    revoke    keyIds to removePassword now (then drop them with :func:`without`)
    waiting   bindings that do not have the current secret yet (names), for messages
    forgotten keyIds dropped because Graph no longer has them
    """

    retiring: tuple[models.RetiringSecret, ...]
    revoke: tuple[str, ...]
    waiting: tuple[str, ...]
    forgotten: tuple[str, ...]


def _has_current(binding: ConsumerSync, current: models.CurrentSecret) -> bool:
    if binding.synced_key_id is not None:
        return binding.synced_key_id == current.key_id
    return (
        binding.synced_version is not None and binding.synced_version == current.key_vault_version
    )


def plan(
    status: models.ServicePrincipalSecretStatus,
    bindings: Iterable[ConsumerSync],
    overlap: dt.timedelta,
    now: dt.datetime,
    graph_key_ids: frozenset[str] | None = None,
) -> Plan:
    """Decide retireAt for each retiring secret and which are due for revocation at ``now``."""
    bindings = tuple(bindings)
    current = status.current
    waiting: tuple[str, ...] = ()
    all_synced_at: dt.datetime | None = None
    if current is not None:
        waiting = tuple(sorted(b.name for b in bindings if not _has_current(b, current)))
        if not waiting:
            times = [b.synced_at or now for b in bindings]
            all_synced_at = max(times) if times else None
    retiring: list[models.RetiringSecret] = []
    revoke: list[str] = []
    forgotten: list[str] = []
    for old in status.retiring:
        if graph_key_ids is not None and old.key_id not in graph_key_ids:
            forgotten.append(old.key_id)  # already gone: nothing to revoke, nothing to wait for
            continue
        if old.retire_at is None and current is not None and not waiting:
            start = (
                old.superseded_at
                if all_synced_at is None
                else max(old.superseded_at, all_synced_at)
            )
            old = old.model_copy(update={"retire_at": _ceil_second(start + overlap) + _SLACK})
        if old.retire_at is not None and now >= old.retire_at:
            revoke.append(old.key_id)
        retiring.append(old)
    return Plan(tuple(retiring), tuple(revoke), waiting, tuple(forgotten))


#: Status keeps whole seconds: a binding that reports "synced at 12:00:07" may have written
#: the scope at 12:00:07.9. Retiring one second later keeps the overlap whole (a chaos run
#: measured a revocation 14.9 s after the scope last held the old secret, overlap 15 s).
_SLACK = dt.timedelta(seconds=1)


def _ceil_second(when: dt.datetime) -> dt.datetime:
    whole = when.replace(microsecond=0)
    return whole if whole == when else whole + dt.timedelta(seconds=1)


def next_retire_time(retiring: Iterable[models.RetiringSecret]) -> dt.datetime | None:
    """The earliest retireAt, for the handler's requeue delay."""
    times = [r.retire_at for r in retiring if r.retire_at is not None]
    return min(times) if times else None


def without(
    status: models.ServicePrincipalSecretStatus, key_ids: Iterable[str]
) -> models.ServicePrincipalSecretStatus:
    """Status after revoking (or forgetting) ``key_ids``: they leave ``retiring``."""
    gone = set(key_ids)
    return status.model_copy(
        update={"retiring": tuple(r for r in status.retiring if r.key_id not in gone)}
    )


def minted_by(display_name: str | None, name: str) -> bool:
    """Whether ``display_name`` is ``rotator-<name>-<id>`` for this object's ``name``."""
    parsed = rotation.parse_display_name(display_name)
    return parsed is not None and parsed[0] == rotation.display_name_part(name)


def orphans(
    credentials: Iterable[facts.GraphCredential],
    status: models.ServicePrincipalSecretStatus,
    name: str,
) -> tuple[facts.GraphCredential, ...]:
    """Credentials this object minted that no record accounts for: remove them.

    Never the in-flight rotation's: before its Mint is recorded it is matched by displayName,
    after by keyId. Credentials minted by other tools (no ``rotator-<name>-`` displayName) are
    never touched.
    """
    known: set[str] = {r.key_id for r in status.retiring}
    if status.current is not None:
        known.add(status.current.key_id)
    in_flight = status.rotation
    if in_flight is not None and in_flight.key_id is not None:
        known.add(in_flight.key_id)
    found = []
    for cred in credentials:
        if cred.key_id in known or not minted_by(cred.display_name, name):
            continue
        if (
            in_flight is not None
            and in_flight.key_id is None
            and (cred.display_name == in_flight.display_name)
        ):
            continue
        found.append(cred)
    return tuple(found)
