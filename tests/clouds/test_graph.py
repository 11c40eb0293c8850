"""Graph error classification, with msgraph's own ODataError objects (no network)."""

from __future__ import annotations

import httpx
import pytest
from kiota_abstractions.api_error import APIError
from msgraph.generated.models.o_data_errors.main_error import MainError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from rotator.clouds import graph
from rotator.core import errors, reasons, sensitive

APP = graph.AppRef(client_id="11111111-2222-3333-4444-555555555555")
TENANT = "00000000-0000-0000-0000-0000000000aa"


def odata(status: int, code: str, message: str = "msg", **headers: str) -> ODataError:
    return ODataError(
        error=MainError(code=code, message=message),
        response_status_code=status,
        response_headers=httpx.Headers(headers),
    )


def classify(exc: BaseException, owner: graph.Owner = "application") -> errors.RotatorError:
    return graph.map_graph_error(
        exc, action="add a password to", tenant=TENANT, app=APP, owner=owner
    )


@pytest.mark.parametrize(
    ("exc", "kind", "reason", "retry_after"),
    [
        (odata(403, "Authorization_RequestDenied"), errors.NotOwner, reasons.NOT_AUTHORIZED, None),
        (
            odata(400, "TooManyAppPasswords"),
            errors.TooManyPasswords,
            reasons.TOO_MANY_PASSWORDS,
            None,
        ),
        (
            odata(400, "CredentialInvalidLifetimeAsPerAppPolicy"),
            errors.PermanentError,
            reasons.GRAPH_ERROR,
            None,
        ),
        (
            odata(409, "Directory_ConcurrencyViolation", **{"Retry-After": "2"}),
            errors.ConcurrencyConflict,
            reasons.CONCURRENCY_CONFLICT,
            2.0,
        ),
        (
            odata(429, "TooManyRequests", **{"Retry-After": "30"}),
            errors.Throttled,
            reasons.THROTTLED,
            30.0,
        ),
        (
            odata(503, "ServiceUnavailable", **{"retry-after": "5"}),
            errors.Throttled,
            reasons.THROTTLED,
            5.0,
        ),
        (odata(503, "ServiceUnavailable"), errors.TransientError, reasons.TRANSIENT_ERROR, None),
        (odata(504, "GatewayTimeout"), errors.TransientError, reasons.TRANSIENT_ERROR, None),
        (odata(404, "Request_ResourceNotFound"), errors.NotFound, reasons.NOT_FOUND, None),
        (
            odata(401, "InvalidAuthenticationToken"),
            errors.NotAuthorized,
            reasons.NOT_AUTHORIZED,
            None,
        ),
        (odata(400, "Request_BadRequest"), errors.PermanentError, reasons.GRAPH_ERROR, None),
        (APIError("no body", 502, {}), errors.TransientError, reasons.TRANSIENT_ERROR, None),
        (httpx.ConnectError("refused"), errors.TransientError, reasons.TRANSIENT_ERROR, None),
        (httpx.ReadTimeout("slow"), errors.TransientError, reasons.TRANSIENT_ERROR, None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_classification(
    exc: BaseException, kind: type[errors.RotatorError], reason: str, retry_after: float | None
) -> None:
    mapped = classify(exc)
    assert type(mapped) is kind
    assert getattr(mapped, "reason", None) == reason
    assert errors.retry_after(mapped) == retry_after


def test_transient_and_permanent_families() -> None:
    assert errors.is_transient(classify(odata(409, "Directory_ConcurrencyViolation")))
    assert not errors.is_transient(classify(odata(400, "TooManyAppPasswords")))
    assert not errors.is_transient(classify(odata(403, "Authorization_RequestDenied")))


def test_not_owner_message_names_the_missing_ownership() -> None:
    mapped = classify(odata(403, "Authorization_RequestDenied"), owner="servicePrincipal")
    text = str(mapped)
    assert "owner of that service principal" in text
    assert "Application.ReadWrite.OwnedBy" in text
    assert APP.client_id is not None and APP.client_id in text
    assert TENANT in text


def test_service_message_is_kept_short_and_on_one_line() -> None:
    mapped = classify(odata(400, "Request_BadRequest", "line one\nline two " + "x" * 2000))
    assert "\n" not in str(mapped)
    assert len(str(mapped)) < 700


def test_our_own_errors_pass_through() -> None:
    original = errors.NotFound("gone")
    assert classify(original) is original


@pytest.mark.parametrize(
    ("client_id", "object_id"), [(None, None), ("a", "b")], ids=["neither", "both"]
)
def test_app_ref_needs_exactly_one_id(client_id: str | None, object_id: str | None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        graph.AppRef(client_id=client_id, object_id=object_id)


def test_minted_secret_repr_hides_the_text() -> None:
    minted = graph.MintedSecret(
        key_id="k", hint="abc", text=sensitive.SecretText("abc8Q~supersecret"), end=None
    )
    assert "supersecret" not in repr(minted)
    assert "supersecret" not in str(minted)


def test_an_html_answer_is_summarized_never_echoed() -> None:
    page = APIError("no body", 502, httpx.Headers({"Content-Type": "text/html; charset=utf-8"}))
    mapped = classify(page)
    assert type(mapped) is errors.TransientError
    assert "HTTP 502 with a non-JSON body (text/html)" in str(mapped)
    denied = classify(APIError("no body", 400, httpx.Headers({"Content-Type": "text/html"})))
    assert type(denied) is errors.PermanentError and denied.reason == reasons.GRAPH_ERROR
