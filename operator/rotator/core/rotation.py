"""The rotation state machine as data: a journal in status, and the next action to take.

docs/design.md ("The rotation journal and staging") is the contract. A rotation is the fixed
list of :class:`Step` s Plan, Mint, Stage, Verify, Store, Promote. The handler writes
``begin(journal, step)`` to status *before* a step runs and ``complete(journal, step, result)``
*after* it succeeds; on every reconcile, and after any crash, it asks :func:`next_action` what
to do next, with the facts it gathered. Nothing here performs I/O, reads the clock or invents
ids: the rotation id comes from the caller (an injected random source), ``now`` is passed in.

The handler's loop, in outline::

    action = rotation.next_action(spec, journal, facts)
    Gather          -> read what it asks for, call again
    MintPassword    -> begin(MINT); addPassword (no SDK retry); complete(MINT, Minted(...))
    StageSecret     -> begin(STAGE); set_secret(staging name, text, tags); complete(STAGE, ...)
    VerifySecret    -> begin(VERIFY); acquire a token; complete(VERIFY, Verified())
    StoreSecret     -> begin(STORE); set_secret(real name, text, tags); complete(STORE, ...)
    Record          -> write action.journal to status (a resumed step proved to have landed)
    Promote         -> write promote(status, journal, ...); disable the staging version
    Replan          -> removePassword each of action.remove; write replan(journal, new id, ...)
    Abandon         -> removePassword each of action.remove; clear rotation; Stalled
    Idle            -> nothing in flight
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from typing import Final, Protocol

from rotator.core import facts, models, schedule

Step = models.Step
Phase = models.Phase
RotationJournal = models.RotationJournal

#: Every credential the operator mints has a displayName starting with this.
DISPLAY_NAME_PREFIX: Final = "rotator-"
#: Kept short: Graph shows it in the portal and some tenants cap displayName lengths.
MAX_DISPLAY_NAME: Final = 80
#: Rotation ids are 4 to 16 lowercase letters or digits (the caller draws them at random).
MAX_ROTATION_ID: Final = 16
#: Key Vault secret names are at most 127 characters.
MAX_SECRET_NAME: Final = 127
#: Replans of one rotation before giving up (each replan mints a fresh credential).
MAX_ATTEMPTS: Final = 5

_ROTATION_ID = re.compile(r"^[a-z0-9]{4,16}$")
_NAME_ROOM: Final = MAX_DISPLAY_NAME - len(DISPLAY_NAME_PREFIX) - 1 - MAX_ROTATION_ID
_ORDER: Final = tuple(Step)


# --- Names ---------------------------------------------------------------------------------


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def display_name_part(name: str) -> str:
    """The object-name part of the displayName: ``name``, or its head plus a hash if long.

    Independent of the rotation id's length, so ownership of a credential can be checked by
    recomputing it (:func:`rotator.core.retirement.minted_by`).
    """
    if len(name) <= _NAME_ROOM:
        return name
    return f"{name[: _NAME_ROOM - 9]}-{_short_hash(name)}"


def display_name(name: str, rotation_id: str) -> str:
    """``rotator-<name>-<id>``: unique per attempt, so a crashed addPassword is findable."""
    if not _ROTATION_ID.match(rotation_id):
        raise ValueError("a rotation id is 4 to 16 lowercase letters or digits")
    return f"{DISPLAY_NAME_PREFIX}{display_name_part(name)}-{rotation_id}"


class Named(Protocol):
    """A Graph credential as far as :func:`minted_by_attempt` looks at it."""

    @property
    def key_id(self) -> str: ...

    @property
    def display_name(self) -> str | None: ...


def minted_by_attempt(journal: RotationJournal, credentials: Iterable[Named]) -> tuple[str, ...]:
    """The keyIds of what an attempt's addPassword made, found by its displayName.

    The one rule for an attempt whose Mint result was not recorded (a crash, a timeout): its
    displayName is unique per attempt (:func:`display_name`), so whatever carries it is ours.
    """
    return tuple(c.key_id for c in credentials if c.display_name == journal.display_name)


def parse_display_name(value: str | None) -> tuple[str, str] | None:
    """``(name part, rotation id)`` of a displayName :func:`display_name` made, else None."""
    if value is None or not value.startswith(DISPLAY_NAME_PREFIX):
        return None
    head, sep, rotation_id = value[len(DISPLAY_NAME_PREFIX) :].rpartition("-")
    if not sep or not head or not _ROTATION_ID.match(rotation_id):
        return None
    return head, rotation_id


def staging_secret_name(secret_name: str) -> str:
    """``<secretName>-rotator-staging``, shortened with a hash to fit Key Vault's 127 chars.

    Consumers never read this name, so writing it never changes what they see.
    """
    suffix = models.STAGING_SUFFIX
    if len(secret_name) + len(suffix) <= MAX_SECRET_NAME:
        return secret_name + suffix
    keep = MAX_SECRET_NAME - len(suffix) - 9
    return f"{secret_name[:keep]}-{_short_hash(secret_name)}{suffix}"


def version_tags(journal: RotationJournal) -> dict[str, str]:
    """The tags the operator writes on staging and stored versions of this rotation."""
    if journal.key_id is None:
        raise ValueError("the rotation has not minted a credential yet")
    return {facts.TAG_KEY_ID: journal.key_id, facts.TAG_ROTATION_ID: journal.id}


# --- Step results --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Minted:
    """What addPassword returned (never the text itself)."""

    key_id: str
    hint: str | None = None


@dataclasses.dataclass(frozen=True)
class Staged:
    """The Key Vault version of the staging secret that holds the text."""

    version: str


@dataclasses.dataclass(frozen=True)
class Verified:
    """The secret authenticated."""


@dataclasses.dataclass(frozen=True)
class Stored:
    """The Key Vault version of the real secret name that now holds the text."""

    version: str


StepResult = Minted | Staged | Verified | Stored | None

_RESULT_OF: Final[dict[Step, type[object] | None]] = {
    Step.PLAN: None,
    Step.MINT: Minted,
    Step.STAGE: Staged,
    Step.VERIFY: Verified,
    Step.STORE: Stored,
    Step.PROMOTE: None,
}


# --- Actions -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Idle:
    """No rotation is in flight."""

    why: str = "no rotation in flight"


@dataclasses.dataclass(frozen=True)
class Gather:
    """Read these facts, then ask again."""

    graph_credentials: bool = False
    key_vault_latest: bool = False
    staging_latest: bool = False


@dataclasses.dataclass(frozen=True)
class MintPassword:
    """Call addPassword with this displayName and end time (SDK retry disabled)."""

    display_name: str
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class StageSecret:
    """Write the text held in memory to the staging secret with these tags."""

    secret_name: str
    key_id: str
    tags: dict[str, str]
    expires_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class VerifySecret:
    """Acquire a token with the new secret (text from memory, else from the staging version)."""

    key_id: str
    staging_secret_name: str
    staging_version: str
    timeout: dt.timedelta


@dataclasses.dataclass(frozen=True)
class StoreSecret:
    """Write the verified text to the real secret name: the only write consumers see."""

    secret_name: str
    staging_secret_name: str
    staging_version: str
    key_id: str
    expires_at: dt.datetime
    content_type: str | None
    tags: dict[str, str]


@dataclasses.dataclass(frozen=True)
class Record:
    """Write ``journal`` to status: a step that was Started is proven to have landed."""

    journal: RotationJournal
    why: str


@dataclasses.dataclass(frozen=True)
class Promote:
    """Write :func:`promote` to status, then disable the staging version."""

    key_vault_version: str
    staging_secret_name: str
    staging_version: str | None


@dataclasses.dataclass(frozen=True)
class Replan:
    """Remove these Graph credentials (keyIds), then write :func:`replan` with a new id."""

    remove: tuple[str, ...]
    why: str


@dataclasses.dataclass(frozen=True)
class Abandon:
    """Remove these Graph credentials, clear ``rotation``, report ``why`` (Stalled)."""

    remove: tuple[str, ...]
    why: str


Action = (
    Idle
    | Gather
    | MintPassword
    | StageSecret
    | VerifySecret
    | StoreSecret
    | Record
    | Promote
    | Replan
    | Abandon
)


# --- Journal transitions -------------------------------------------------------------------


def plan(
    spec: models.ServicePrincipalSecretSpec,
    meta: models.ResourceMeta,
    reason: str,
    rotation_id: str,
    now: dt.datetime,
    attempts: int = 1,
) -> RotationJournal:
    """A new journal at ``Plan/Done``: id, displayName, ``expiresAt = now + validity``."""
    now = now.replace(microsecond=0)
    return RotationJournal(
        id=rotation_id,
        reason=reason,
        step=Step.PLAN,
        phase=Phase.DONE,
        started_at=now,
        display_name=display_name(meta.name, rotation_id),
        expires_at=now + spec.rotation.validity,
        attempts=attempts,
        target=spec.target,
    )


def replan(
    journal: RotationJournal,
    spec: models.ServicePrincipalSecretSpec,
    meta: models.ResourceMeta,
    rotation_id: str,
    now: dt.datetime,
) -> RotationJournal:
    """The journal after a :class:`Replan`: same reason, a new id, one more attempt."""
    if rotation_id == journal.id:
        raise ValueError("a replan needs a new rotation id")
    return plan(spec, meta, journal.reason, rotation_id, now, attempts=journal.attempts + 1)


def start(
    status: models.ServicePrincipalSecretStatus,
    spec: models.ServicePrincipalSecretSpec,
    meta: models.ResourceMeta,
    reason: str,
    rotation_id: str,
    now: dt.datetime,
) -> models.ServicePrincipalSecretStatus:
    """Status with a new rotation planned and the current rotate annotation marked handled."""
    if status.rotation is not None:
        raise ValueError("a rotation is already in flight")
    journal = plan(spec, meta, reason, rotation_id, now)
    # Whatever started this rotation also satisfies a pending manual request: one new secret.
    return status.model_copy(update={"rotation": journal, "rotate_request": meta.rotate_request})


def _allowed_next(step: Step) -> tuple[Step, ...]:
    index = _ORDER.index(step)
    if index + 1 >= len(_ORDER):
        return ()
    following = _ORDER[index + 1]
    # Verify may be disabled in the spec; Store then follows Stage directly.
    return (following, Step.STORE) if following is Step.VERIFY else (following,)


def begin(journal: RotationJournal, step: Step) -> RotationJournal:
    """The journal to write *before* running ``step``.

    Legal when ``step`` follows a Done step, or repeats a Started one (a retry).
    """
    if journal.step is step and journal.phase is Phase.STARTED:
        return journal
    if journal.phase is not Phase.DONE or step not in _allowed_next(journal.step):
        raise ValueError(f"cannot begin {step} after {journal.step}/{journal.phase}")
    return journal.model_copy(update={"step": step, "phase": Phase.STARTED})


def begin_verify(
    journal: RotationJournal, now: dt.datetime, timeout: dt.timedelta
) -> RotationJournal:
    """:func:`begin` for Verify, with the absolute deadline fixed by its first attempt.

    The deadline lives in the journal (status), so neither a retry nor an operator restart
    gives Entra a fresh ``verify.timeout``.
    """
    begun = begin(journal, Step.VERIFY)
    if begun.verify_deadline is not None:
        return begun
    return begun.model_copy(update={"verify_deadline": now.replace(microsecond=0) + timeout})


def complete(journal: RotationJournal, step: Step, result: StepResult) -> RotationJournal:
    """The journal to write *after* ``step`` succeeded, carrying what it produced."""
    if journal.step is not step or journal.phase is not Phase.STARTED:
        raise ValueError(
            f"cannot complete {step}: the journal is at {journal.step}/{journal.phase}"
        )
    expected = _RESULT_OF[step]
    if (expected is None and result is not None) or (
        expected is not None and not isinstance(result, expected)
    ):
        raise TypeError(f"{step} produces {expected.__name__ if expected else 'nothing'}")
    update: dict[str, object] = {"phase": Phase.DONE}
    if isinstance(result, Minted):
        update |= {"key_id": result.key_id, "hint": result.hint}
    elif isinstance(result, Staged):
        update["staging_version"] = result.version
    elif isinstance(result, Stored):
        update["key_vault_version"] = result.version
    return journal.model_copy(update=update)


# --- Decisions -----------------------------------------------------------------------------


def _is_stored(journal: RotationJournal) -> bool:
    return journal.key_vault_version is not None or journal.step is Step.PROMOTE


def is_stored(journal: RotationJournal) -> bool:
    """Whether the journal records that the store landed: the new secret is the Key Vault
    latest, so consumers may already read it (it must be kept, never removed as an orphan)."""
    return _is_stored(journal)


def _ours(latest: facts.VaultLatest, journal: RotationJournal) -> bool:
    return latest.exists and latest.rotation_id == journal.id and latest.key_id == journal.key_id


def _discard(
    spec: models.ServicePrincipalSecretSpec,
    journal: RotationJournal,
    observed: facts.Facts,
    why: str,
    *,
    retry: bool,
) -> Action:
    """Drop this attempt without leaving an orphan; replan if ``retry`` and attempts remain."""
    if journal.step is Step.STORE and journal.phase is Phase.STARTED:
        # The store may have landed: then the secret is the Key Vault latest and must win.
        latest = observed.key_vault_latest
        if latest is None:
            return Gather(key_vault_latest=True)
        if _ours(latest, journal):
            return _record_stored(journal, latest)
    ids = observed.graph_key_ids
    if journal.key_id is not None:
        # Graph may already have lost it (someone removed it): then there is nothing to remove.
        gone = ids is not None and journal.key_id not in ids
        remove: tuple[str, ...] = () if gone else (journal.key_id,)
    elif journal.step is Step.MINT:
        # addPassword may have run: find what it made by our displayName, unique per attempt.
        creds = observed.graph_credentials
        if creds is None:
            return Gather(graph_credentials=True)
        remove = minted_by_attempt(journal, creds)
    else:
        remove = ()
    if retry and journal.attempts < MAX_ATTEMPTS:
        return Replan(remove, why)
    if retry:
        why = f"{why}; gave up after {journal.attempts} attempts"
    return Abandon(remove, why)


def _needs_staging(journal: RotationJournal, observed: facts.Facts) -> bool:
    """Whether a resumed journal relies on the staging version for the text it lost."""
    if not observed.resumed or observed.text_held or journal.staging_version is None:
        return False
    return journal.step in (Step.STAGE, Step.VERIFY, Step.STORE)


def _record_stored(journal: RotationJournal, latest: facts.VaultLatest) -> Record:
    assert latest.version is not None
    return Record(
        complete(begin(journal, Step.STORE), Step.STORE, Stored(latest.version)),
        "the Key Vault latest version carries this rotation's tags: the store landed",
    )


def _store(spec: models.ServicePrincipalSecretSpec, journal: RotationJournal) -> StoreSecret:
    assert journal.key_id is not None and journal.staging_version is not None
    return StoreSecret(
        secret_name=spec.key_vault.secret_name,
        staging_secret_name=staging_secret_name(spec.key_vault.secret_name),
        staging_version=journal.staging_version,
        key_id=journal.key_id,
        expires_at=journal.expires_at,
        content_type=spec.key_vault.content_type,
        tags={**spec.key_vault.tags, **version_tags(journal)},
    )


def _verify(spec: models.ServicePrincipalSecretSpec, journal: RotationJournal) -> VerifySecret:
    assert journal.key_id is not None and journal.staging_version is not None
    return VerifySecret(
        key_id=journal.key_id,
        staging_secret_name=staging_secret_name(spec.key_vault.secret_name),
        staging_version=journal.staging_version,
        timeout=spec.verify.timeout,
    )


def _stage(spec: models.ServicePrincipalSecretSpec, journal: RotationJournal) -> StageSecret:
    assert journal.key_id is not None
    return StageSecret(
        secret_name=staging_secret_name(spec.key_vault.secret_name),
        key_id=journal.key_id,
        tags=version_tags(journal),
        expires_at=journal.expires_at,
    )


def next_action(
    spec: models.ServicePrincipalSecretSpec,
    journal: RotationJournal | None,
    observed: facts.Facts,
) -> Action:
    """What the handler must do next for the in-flight rotation ``journal``.

    Resume rules (docs/design.md): Mint Started ⇒ remove whatever carries our displayName and
    replan; Stage Started ⇒ the staging secret's tags decide; Store Started ⇒ the Key Vault
    latest version's tags decide. A minted credential whose text is lost before it was staged
    is removed and the rotation replanned. Once the store landed, the only way is forward.
    """
    if journal is None:
        return Idle()
    step, phase = journal.step, journal.phase
    if _is_stored(journal):
        assert journal.key_vault_version is not None
        return Promote(
            key_vault_version=journal.key_vault_version,
            staging_secret_name=staging_secret_name(spec.key_vault.secret_name),
            staging_version=journal.staging_version,
        )
    if journal.target is not None and journal.target != spec.target:
        return _discard(
            spec, journal, observed, "the spec changed what this secret is for", retry=True
        )
    ids = observed.graph_key_ids
    if observed.resumed and journal.key_id is not None and ids is None:
        # Resuming: the credential the journal names may have been removed meanwhile (by a
        # person, or by an earlier process that gave up and was killed before recording it).
        # Waiting on it would wait for ever: Entra rejects a deleted secret with the same
        # AADSTS7000215 as one still propagating.
        return Gather(graph_credentials=True)
    if journal.key_id is not None and ids is not None and journal.key_id not in ids:
        # Someone removed the credential we minted: nothing to clean up, start again.
        return _discard(
            spec, journal, observed, "the new credential disappeared from Graph", retry=True
        )
    if _needs_staging(journal, observed):
        staging = observed.staging_latest
        if staging is None:
            return Gather(staging_latest=True)
        if not (_ours(staging, journal) and staging.enabled):
            # The only copy of the text is gone (deleted, disabled or overwritten): the
            # minted credential can never be stored, so remove it and start again.
            return _discard(
                spec,
                journal,
                observed,
                "the staged copy of the new secret is gone from Key Vault",
                retry=True,
            )
    if step is Step.PLAN:
        return MintPassword(journal.display_name, journal.expires_at)
    if step is Step.MINT:
        if phase is Phase.STARTED:
            return _discard(
                spec,
                journal,
                observed,
                "addPassword was interrupted before its result was recorded",
                retry=True,
            )
        if observed.text_held:
            return _stage(spec, journal)
        return _discard(
            spec, journal, observed, "the new secret's text was lost before staging", retry=True
        )
    if step is Step.STAGE and phase is Phase.STARTED:
        staging = observed.staging_latest
        if staging is None:
            return Gather(staging_latest=True)
        if _ours(staging, journal):
            assert staging.version is not None
            return Record(
                complete(journal, Step.STAGE, Staged(staging.version)),
                "the staging secret carries this rotation's tags: the stage landed",
            )
        if observed.text_held:
            return _stage(spec, journal)
        return _discard(
            spec,
            journal,
            observed,
            "the staging write did not land and the text was lost",
            retry=True,
        )
    if step is Step.STAGE:
        return _verify(spec, journal) if spec.verify.enabled else _store(spec, journal)
    if step is Step.VERIFY:
        # Verifying twice is harmless; Verify/Done goes on to Store.
        return _verify(spec, journal) if phase is Phase.STARTED else _store(spec, journal)
    # Store Started: the only step left before the store is proven.
    latest = observed.key_vault_latest
    if latest is None:
        return Gather(key_vault_latest=True)
    if _ours(latest, journal):
        return _record_stored(journal, latest)
    return _store(spec, journal)


def abandon(
    spec: models.ServicePrincipalSecretSpec,
    journal: RotationJournal,
    observed: facts.Facts,
    why: str,
) -> Action:
    """How to give up on ``journal`` after a permanent failure, without leaving an orphan.

    Returns :class:`Abandon` (remove the minted credential, clear ``rotation``), a
    :class:`Gather` when that cannot be decided yet, or — once the store landed — the
    :class:`Record` / :class:`Promote` that finishes the rotation instead: a verified secret
    that is already the Key Vault latest must be promoted, never revoked.
    """
    if _is_stored(journal):
        return next_action(spec, journal, observed)
    return _discard(spec, journal, observed, why, retry=False)


def promote(
    status: models.ServicePrincipalSecretStatus,
    spec: models.ServicePrincipalSecretSpec,
    meta: models.ResourceMeta,
    now: dt.datetime,
) -> models.ServicePrincipalSecretStatus:
    """Status after Promote: current ← new, old current → retiring, rotation cleared."""
    journal = status.rotation
    if journal is None or journal.key_id is None or journal.key_vault_version is None:
        raise ValueError("only a stored rotation can be promoted")
    now = now.replace(microsecond=0)
    current = models.CurrentSecret(
        key_id=journal.key_id,
        hint=journal.hint,
        display_name=journal.display_name,
        expires_at=journal.expires_at,
        key_vault_version=journal.key_vault_version,
        target=journal.target or spec.target,
    )
    retiring = list(status.retiring)
    old = status.current
    known = {r.key_id for r in retiring} | {current.key_id}
    if old is not None and old.key_id not in known:
        retiring.append(
            models.RetiringSecret(
                key_id=old.key_id,
                hint=old.hint,
                display_name=old.display_name,
                expires_at=old.expires_at,
                superseded_at=now,
            )
        )
    key = schedule.identity_key(meta.uid, meta.namespace, meta.name)
    return status.model_copy(
        update={
            "current": current,
            "retiring": tuple(retiring),
            "rotation": None,
            "last_rotation_time": now,
            "next_rotation_time": schedule.next_rotation_time(
                journal.expires_at, spec.rotation.renew_before, key
            ),
            "failures": 0,
            "last_error": "",
            "last_failure_time": None,
            "next_retry_time": None,
        }
    )
