"""Errors every layer raises and the handlers branch on.

Two families decide what the shell does with a failure:

* :class:`TransientError` — retry with backoff; honour ``retry_after`` (seconds) when the
  service sent ``Retry-After``.
* :class:`PermanentError` — stop retrying, set ``Stalled`` with ``reason`` and a message a
  human can act on.

Messages are shown in status, events and logs, so they must never contain a secret value:
carry secret text only inside :class:`rotator.core.sensitive.SecretText`, whose
``str``/``repr`` are masked.
"""

from __future__ import annotations

from typing import Literal

from rotator.core import reasons


class RotatorError(Exception):
    """Base of every error the operator raises on purpose. ``str(err)`` is the message.

    ``reason`` (a :mod:`reasons` constant) is what conditions, events and metrics call it;
    every error has one, so the shell never has to guess.
    """

    def __init__(self, message: str, reason: str = reasons.TRANSIENT_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class TransientError(RotatorError):
    """Temporary: retry with backoff. ``retry_after`` (seconds) comes from ``Retry-After``."""

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        reason: str = reasons.TRANSIENT_ERROR,
    ) -> None:
        super().__init__(message, reason)
        if retry_after is not None and retry_after < 0:
            retry_after = 0.0
        self.retry_after = retry_after


class PermanentError(RotatorError):
    """Retrying will not help: ``Stalled`` with ``reason`` (a :mod:`reasons` constant)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message, reason)


class ConcurrencyConflict(TransientError):
    """Graph 409 ``Directory_ConcurrencyViolation``: another write to the same app; retry."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after, reason=reasons.CONCURRENCY_CONFLICT)


class Throttled(TransientError):
    """HTTP 429 (or 503 with ``Retry-After``): back off at least ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after, reason=reasons.THROTTLED)


class NotFound(PermanentError):
    """A referenced object does not exist (application, vault secret, job, scope)."""

    def __init__(self, message: str, reason: str = reasons.NOT_FOUND) -> None:
        super().__init__(message, reason)


class NotAuthorized(PermanentError):
    """403 from a cloud API, or no RotationPolicy grants the request."""

    def __init__(self, message: str, reason: str = reasons.NOT_AUTHORIZED) -> None:
        super().__init__(message, reason)


class NotOwner(NotAuthorized):
    """Graph ``Authorization_RequestDenied`` under ``Application.ReadWrite.OwnedBy``.

    The operator's identity must be an owner of the application (or hold
    ``Application.ReadWrite.All``); the message should say which.
    """


class TooManyPasswords(PermanentError):
    """Graph 400 ``TooManyAppPasswords``: the app holds too many passwords for another one."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reasons.TOO_MANY_PASSWORDS)


VerificationKind = Literal["propagation", "invalid", "expired", "tenant"]


class VerificationFailed(PermanentError):
    """The new secret did not authenticate.

    ``kind``:
      propagation  AADSTS7000215 right after minting: Entra has not replicated it yet. This
                   one is *retryable* (``transient`` is True) until ``verify.timeout`` has
                   passed since the Verify step started; only then is it permanent.
      invalid      the tenant says the secret is wrong
      expired      the secret is already expired (clock skew or a lifetime policy)
      tenant       the tenant/application does not exist or is disabled
    """

    def __init__(self, message: str, kind: VerificationKind) -> None:
        super().__init__(message, reasons.VERIFICATION_FAILED)
        self.kind: VerificationKind = kind

    @property
    def transient(self) -> bool:
        """Whether retrying later (within ``verify.timeout``) may succeed."""
        return self.kind == "propagation"


class SpecError(PermanentError):
    """The spec is invalid. ``path`` is the field (``spec.rotation.renewBefore``).

    ``problem`` says what is wrong in words a user can act on; ``also`` carries further
    ``(path, problem)`` pairs when several fields are wrong, so one status update names all.
    """

    def __init__(self, path: str, problem: str, also: tuple[tuple[str, str], ...] = ()) -> None:
        self.path = path
        self.problem = problem
        self.also = also
        parts = [f"{path}: {problem}", *(f"{p}: {m}" for p, m in also)]
        super().__init__("; ".join(parts), reasons.INVALID_SPEC)


def is_transient(exc: BaseException) -> bool:
    """True when a retry with backoff may succeed (transient errors, propagation delays)."""
    if isinstance(exc, TransientError):
        return True
    return isinstance(exc, VerificationFailed) and exc.transient


def retry_after(exc: BaseException) -> float | None:
    """The delay the service asked for, in seconds, if any."""
    return exc.retry_after if isinstance(exc, TransientError) else None
