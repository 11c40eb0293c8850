"""Reasons: the documented vocabulary of condition reasons and event reasons.

Every constant is a CamelCase word (kstatus and ``kubectl describe`` expect that) and is used
both as a condition ``reason`` and as an event ``reason``, so an SRE who sees one can grep for
the other. Adding a reason is an API change: document it here with one line.
"""

from __future__ import annotations

from typing import Final

# --- Lifecycle of a ServicePrincipalSecret -------------------------------------------------
ISSUED: Final = "Issued"  # a verified secret is current and stored as the Key Vault latest
ROTATING: Final = "Rotating"  # a rotation is in flight (the journal in status.rotation)
ROTATED: Final = "Rotated"  # a rotation finished: a new secret was promoted to current

# --- Why a rotation starts (the trigger chain, rotator.core.triggers) ----------------------
NEVER_ISSUED: Final = "NeverIssued"  # no current secret recorded in status yet
EXPIRING: Final = "Expiring"  # now is at or past nextRotationTime
MANUAL_REQUEST: Final = "ManualRequest"  # the rotator.dev/rotate annotation has a new value
SPEC_CHANGED: Final = "SpecChanged"  # tenant/app/owner/vault/secretName changed: re-issue
DRIFT_DETECTED: Final = "DriftDetected"  # current secret gone from Graph, or KV latest not ours
EXPIRED: Final = "Expired"  # the current secret is past its expiresAt (Ready is False)
EXPIRING_WITHOUT_REPLACEMENT: Final = "ExpiringWithoutReplacement"  # near expiry, unreplaced

# --- Retirement and cleanup (rotator.core.retirement) --------------------------------------
RETIRING: Final = "Retiring"  # an old secret waits for consumers and overlap before revoke
REVOKED: Final = "Revoked"  # an old secret was removed from Graph (removePassword)
RETIRED: Final = REVOKED  # alias: retiring a secret means revoking it
ORPHAN_REMOVED: Final = "OrphanRemoved"  # a rotator- credential no record accounts for was removed

# --- Failures -----------------------------------------------------------------------------
NOT_AUTHORIZED: Final = "NotAuthorized"  # no RotationPolicy grants it, or Graph/KV/DBX said 403
INVALID_SPEC: Final = "InvalidSpec"  # the spec fails validation; the message names the field
INVALID_STATUS: Final = "InvalidStatus"  # status was edited into a shape the operator cannot read
VERIFICATION_FAILED: Final = "VerificationFailed"  # the new secret did not authenticate
GRAPH_ERROR: Final = "GraphError"  # Microsoft Graph failed (after retries) or refused
KEY_VAULT_ERROR: Final = "KeyVaultError"  # Azure Key Vault failed (after retries) or refused
DATABRICKS_ERROR: Final = "DatabricksError"  # the Databricks workspace failed or refused
NOT_FOUND: Final = "NotFound"  # a referenced object (app, vault secret, job, scope) is missing
TOO_MANY_PASSWORDS: Final = "TooManyPasswords"  # Graph refuses another password on the app
CONCURRENCY_CONFLICT: Final = "ConcurrencyConflict"  # Graph 409: concurrent write to the app
THROTTLED: Final = "Throttled"  # a cloud API said 429 / Retry-After; we back off
TRANSIENT_ERROR: Final = "TransientError"  # a temporary failure; retried with backoff
SOURCE_NOT_READY: Final = "SourceNotReady"  # a binding's source sps has no current secret yet
ROTATION_STORM: Final = "RotationStorm"  # too many rotations this hour: held until the window frees

# --- Steady states and bindings -----------------------------------------------------------
SUSPENDED: Final = "Suspended"  # spec.suspend is true: no rotation, no cloud writes
SYNCED: Final = "Synced"  # a binding copied the current version into its Databricks scope
JOB_UPDATED: Final = "JobUpdated"  # a Databricks job's settings were rewritten to the secret ref
RUNS_RESTARTED: Final = "RunsRestarted"  # active runs were cancelled so they restart with it
DELETED: Final = "Deleted"  # the resource was deleted and its deletionPolicy applied
RECONCILING: Final = "Reconciling"  # generic: work is in progress towards the spec

#: Every reason, for tests and for docs generation.
ALL: Final[frozenset[str]] = frozenset(
    {
        ISSUED,
        ROTATING,
        ROTATED,
        NEVER_ISSUED,
        EXPIRING,
        MANUAL_REQUEST,
        SPEC_CHANGED,
        DRIFT_DETECTED,
        EXPIRED,
        EXPIRING_WITHOUT_REPLACEMENT,
        RETIRING,
        REVOKED,
        ORPHAN_REMOVED,
        NOT_AUTHORIZED,
        INVALID_SPEC,
        INVALID_STATUS,
        VERIFICATION_FAILED,
        GRAPH_ERROR,
        KEY_VAULT_ERROR,
        DATABRICKS_ERROR,
        NOT_FOUND,
        TOO_MANY_PASSWORDS,
        CONCURRENCY_CONFLICT,
        THROTTLED,
        TRANSIENT_ERROR,
        SOURCE_NOT_READY,
        ROTATION_STORM,
        SUSPENDED,
        SYNCED,
        JOB_UPDATED,
        RUNS_RESTARTED,
        DELETED,
        RECONCILING,
    }
)
