"""Tests for rotator.core.errors: classification, reasons, and that a masked value stays masked
inside a message."""

from __future__ import annotations

import pytest

from rotator.core import errors, reasons, sensitive

_VALUE = "s3cr3t~Value.With-Chars"


def test_secret_text_inside_an_exception_message_stays_masked() -> None:
    err = errors.PermanentError(
        f"could not store {sensitive.SecretText(_VALUE)}", reasons.GRAPH_ERROR
    )
    assert _VALUE not in str(err)
    assert _VALUE not in repr(err)


@pytest.mark.parametrize(
    ("exc", "transient", "reason"),
    [
        (errors.RotatorError("x"), False, reasons.TRANSIENT_ERROR),  # the base has one too
        (errors.TransientError("x"), True, reasons.TRANSIENT_ERROR),
        (errors.Throttled("x", 3), True, reasons.THROTTLED),
        (errors.ConcurrencyConflict("x"), True, reasons.CONCURRENCY_CONFLICT),
        (errors.PermanentError("x", reasons.GRAPH_ERROR), False, reasons.GRAPH_ERROR),
        (errors.NotFound("x"), False, reasons.NOT_FOUND),
        (errors.NotAuthorized("x"), False, reasons.NOT_AUTHORIZED),
        (errors.NotOwner("x"), False, reasons.NOT_AUTHORIZED),
        (errors.TooManyPasswords("x"), False, reasons.TOO_MANY_PASSWORDS),
        (errors.VerificationFailed("x", "propagation"), True, reasons.VERIFICATION_FAILED),
        (errors.VerificationFailed("x", "invalid"), False, reasons.VERIFICATION_FAILED),
        (errors.VerificationFailed("x", "expired"), False, reasons.VERIFICATION_FAILED),
        (errors.VerificationFailed("x", "tenant"), False, reasons.VERIFICATION_FAILED),
        (errors.SpecError("spec.a", "bad"), False, reasons.INVALID_SPEC),
    ],
)
def test_classification_and_reason(exc: errors.RotatorError, transient: bool, reason: str) -> None:
    assert errors.is_transient(exc) is transient
    assert exc.reason == reason
    assert reason in reasons.ALL


def test_retry_after_is_kept_and_never_negative() -> None:
    assert errors.retry_after(errors.Throttled("slow down", 7.5)) == 7.5
    assert errors.retry_after(errors.TransientError("x", -3)) == 0.0
    assert errors.retry_after(errors.PermanentError("x", reasons.GRAPH_ERROR)) is None
    assert errors.retry_after(ValueError("x")) is None
    assert not errors.is_transient(ValueError("x"))


def test_spec_error_names_every_field() -> None:
    err = errors.SpecError(
        "spec.rotation.renewBefore",
        "must be shorter than validity",
        (("spec.tenantId", "missing"),),
    )
    assert err.path == "spec.rotation.renewBefore"
    assert str(err) == (
        "spec.rotation.renewBefore: must be shorter than validity; spec.tenantId: missing"
    )
