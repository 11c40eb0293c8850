"""Databricks error classification with databricks-sdk's own exceptions, and client setup."""

from __future__ import annotations

import pytest
import requests
from databricks.sdk import errors as dbx_errors

from rotator.clouds import databricks, settings
from rotator.core import errors, failures, reasons, sensitive

HOST = "https://adb-1234567890123456.7.azuredatabricks.net"


def classify(exc: BaseException) -> errors.RotatorError:
    return databricks.map_databricks_error(exc, action="update job 7", host=HOST)


def gave_up(cause: BaseException | None) -> TimeoutError:
    """What the SDK's retry loop raises at its deadline: TimeoutError from the last error."""
    try:
        raise TimeoutError("Timed out after 0:00:20") from cause
    except TimeoutError as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "kind", "reason", "retry_after"),
    [
        (
            dbx_errors.PermissionDenied("no", error_code="PERMISSION_DENIED"),
            errors.NotAuthorized,
            reasons.NOT_AUTHORIZED,
            None,
        ),
        (dbx_errors.Unauthenticated("who"), errors.NotAuthorized, reasons.NOT_AUTHORIZED, None),
        (
            dbx_errors.ResourceDoesNotExist("Job 7 does not exist."),
            errors.NotFound,
            reasons.NOT_FOUND,
            None,
        ),
        (
            dbx_errors.TooManyRequests("slow", retry_after_secs=9),
            errors.Throttled,
            reasons.THROTTLED,
            9.0,
        ),
        (
            dbx_errors.TemporarilyUnavailable("later"),
            errors.TransientError,
            reasons.TRANSIENT_ERROR,
            None,
        ),
        (dbx_errors.InternalError("boom"), errors.TransientError, reasons.TRANSIENT_ERROR, None),
        (
            dbx_errors.InvalidParameterValue("bad", error_code="INVALID_PARAMETER_VALUE"),
            errors.PermanentError,
            reasons.DATABRICKS_ERROR,
            None,
        ),
        (
            dbx_errors.BadRequest("Scope etl is read-only", error_code="BAD_REQUEST"),
            errors.PermanentError,
            reasons.DATABRICKS_ERROR,
            None,
        ),
        (
            gave_up(dbx_errors.TooManyRequests("slow", retry_after_secs=3)),
            errors.Throttled,
            reasons.THROTTLED,
            3.0,
        ),
        (
            gave_up(requests.ConnectionError("refused")),
            errors.TransientError,
            reasons.TRANSIENT_ERROR,
            None,
        ),
        (gave_up(None), errors.TransientError, reasons.TRANSIENT_ERROR, None),
        (requests.ConnectionError("refused"), errors.TransientError, reasons.TRANSIENT_ERROR, None),
        (ValueError("invalid host"), errors.PermanentError, reasons.DATABRICKS_ERROR, None),
    ],
)
def test_classification(
    exc: BaseException, kind: type[errors.RotatorError], reason: str, retry_after: float | None
) -> None:
    mapped = classify(exc)
    assert type(mapped) is kind
    assert getattr(mapped, "reason", None) == reason
    assert errors.retry_after(mapped) == retry_after
    assert HOST in str(mapped)


def test_gave_up_names_what_it_gave_up_on() -> None:
    assert "ConnectionError" in str(classify(gave_up(requests.ConnectionError("refused"))))


def test_adapter_needs_exactly_one_auth() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        databricks.DatabricksAdapter(HOST, settings.CloudSettings())


def test_config_keeps_every_setting_and_small_timeouts() -> None:
    """The probe-less Config subclass still knows the SDK's settings (token, timeouts)."""
    adapter = databricks.DatabricksAdapter(
        HOST,
        settings.CloudSettings(
            databricks_retry_timeout_seconds=7, databricks_http_timeout_seconds=3
        ),
        token=sensitive.SecretText("dapi-not-a-real-token"),
    )
    client = adapter._build()
    assert client.config.auth_type == "pat"
    assert client.config.retry_timeout_seconds == 7
    assert client.config.http_timeout_seconds == 3
    assert client.config.host == HOST


def test_501_is_permanent() -> None:
    mapped = classify(dbx_errors.NotImplemented("nope", error_code="NOT_IMPLEMENTED"))
    assert type(mapped) is errors.PermanentError and mapped.reason == reasons.DATABRICKS_ERROR


def test_an_unparsed_body_is_never_shown() -> None:
    # databricks-sdk puts a dump of the request (which may hold a secret) after this prefix.
    dump = "unable to parse response. Request log:```POST /api/2.0/secrets/put string_value=x```"
    mapped = classify(dbx_errors.InternalError(dump))
    assert "string_value" not in str(mapped) and "non-JSON" in str(mapped)
    assert errors.is_transient(mapped)


def test_the_answer_seen_on_the_wire_wins() -> None:
    seen = failures.Reply("databricks", 502, json=False, content_type="text/html")
    mapped = databricks.map_databricks_error(
        dbx_errors.DatabricksError("Bad Gateway", error_code="BAD_GATEWAY"),
        action="update job 7",
        host=HOST,
        seen=seen,
    )
    assert type(mapped) is errors.TransientError
    assert "HTTP 502 with a non-JSON body (text/html)" in str(mapped)
