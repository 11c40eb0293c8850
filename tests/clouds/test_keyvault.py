"""Key Vault error classification, with azure-core's own exceptions over real responses."""

from __future__ import annotations

import io
import json

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.rest import HttpRequest
from azure.core.rest._requests_basic import RestRequestsTransportResponse

from rotator.clouds import keyvault
from rotator.core import errors, reasons

VAULT = "https://kv-data-eng.vault.azure.net"


def response(status: int, code: str, message: str, **headers: str) -> RestRequestsTransportResponse:
    """An HTTP response as azure-core's requests transport hands it to the SDK."""
    raw = requests.Response()
    raw.status_code = status
    raw.reason = "reason"
    raw.raw = io.BytesIO(json.dumps({"error": {"code": code, "message": message}}).encode())
    raw.headers.update({"Content-Type": "application/json", **headers})
    request = HttpRequest("GET", f"{VAULT}/secrets/etl")
    answer = RestRequestsTransportResponse(request=request, internal_response=raw)
    answer.read()  # as the SDK's pipeline does before raising
    return answer


def http_error(
    status: int,
    code: str,
    message: str = "msg",
    cls: type[HttpResponseError] = HttpResponseError,
    **headers: str,
) -> HttpResponseError:
    return cls(response=response(status, code, message, **headers))


def classify(exc: BaseException) -> errors.RotatorError:
    return keyvault.map_keyvault_error(exc, action="store", vault=VAULT, name="etl")


@pytest.mark.parametrize(
    ("exc", "kind", "reason", "retry_after"),
    [
        (
            http_error(
                409,
                "Conflict",
                "Secret etl is currently in a deleted but recoverable state, and its name cannot "
                "be reused; in this state, the secret can only be recovered or purged.",
                ResourceExistsError,
            ),
            errors.PermanentError,
            reasons.KEY_VAULT_ERROR,
            None,
        ),
        (
            http_error(403, "Forbidden", "no access"),
            errors.NotAuthorized,
            reasons.NOT_AUTHORIZED,
            None,
        ),
        (
            http_error(401, "Unauthorized", "token", ClientAuthenticationError),
            errors.NotAuthorized,
            reasons.NOT_AUTHORIZED,
            None,
        ),
        (
            http_error(404, "SecretNotFound", "nope", ResourceNotFoundError),
            errors.NotFound,
            reasons.NOT_FOUND,
            None,
        ),
        (
            http_error(429, "Throttled", "slow down", **{"Retry-After": "12"}),
            errors.Throttled,
            reasons.THROTTLED,
            12.0,
        ),
        (
            http_error(500, "InternalError", "boom"),
            errors.TransientError,
            reasons.TRANSIENT_ERROR,
            None,
        ),
        (
            http_error(503, "Unavailable", "later", **{"Retry-After": "4"}),
            errors.TransientError,
            reasons.TRANSIENT_ERROR,
            4.0,
        ),
        (
            http_error(400, "BadParameter", "bad"),
            errors.PermanentError,
            reasons.KEY_VAULT_ERROR,
            None,
        ),
        (
            ServiceRequestError("connection refused"),
            errors.TransientError,
            reasons.TRANSIENT_ERROR,
            None,
        ),
        (
            ClientAuthenticationError("credential unavailable"),
            errors.TransientError,
            reasons.TRANSIENT_ERROR,
            None,
        ),
    ],
)
def test_classification(
    exc: BaseException, kind: type[errors.RotatorError], reason: str, retry_after: float | None
) -> None:
    mapped = classify(exc)
    assert type(mapped) is kind
    assert getattr(mapped, "reason", None) == reason
    assert errors.retry_after(mapped) == retry_after


def test_soft_deleted_name_tells_the_user_to_recover_or_purge() -> None:
    mapped = classify(
        http_error(409, "Conflict", "Secret etl is currently in a deleted but recoverable state")
    )
    assert "recover" in str(mapped)
    assert "purge" in str(mapped)
    assert "'etl'" in str(mapped)
    assert not errors.is_transient(mapped)


def test_forbidden_names_the_role() -> None:
    assert "Key Vault Secrets Officer" in str(classify(http_error(403, "Forbidden")))


def test_disabled_refusal_is_told_apart_from_missing_rights() -> None:
    disabled = http_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
    denied = http_error(403, "Forbidden", "The user does not have secrets get permission.")
    assert keyvault._is_disabled_refusal(disabled)
    assert not keyvault._is_disabled_refusal(denied)


async def test_a_ca_bundle_is_loaded_once_not_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    import certifi

    from rotator.clouds import settings as cloud_settings

    loads: list[str | None] = []
    create = ssl.create_default_context

    def counting(*args: object, cafile: str | None = None, **kwargs: object) -> ssl.SSLContext:
        loads.append(cafile)
        return create(cafile=cafile)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    settings = cloud_settings.CloudSettings(ca_bundle=certifi.where())
    async with keyvault.KeyVaultAdapter(object(), settings) as adapter:  # type: ignore[arg-type]
        clients = [adapter._client(VAULT), adapter._client("https://kv-other.vault.azure.net")]
        transports = [c._client._client._pipeline._transport for c in clients]
        # Each client's aiohttp session verifies with the one context: nothing left for
        # azure-core to build per request from a file path.
        for transport in transports:
            assert transport.session.connector._ssl is adapter._ssl
            assert transport.connection_config.verify is True
    assert loads == [certifi.where()]


def html_error(status: int) -> HttpResponseError:
    raw = requests.Response()
    raw.status_code = status
    raw.reason = "reason"
    raw.raw = io.BytesIO(b"<html><body><h1>Service Unavailable</h1></body></html>")
    raw.headers.update({"Content-Type": "text/html"})
    answer = RestRequestsTransportResponse(
        request=HttpRequest("GET", f"{VAULT}/secrets/etl"), internal_response=raw
    )
    answer.read()
    return HttpResponseError(response=answer)


def test_an_html_answer_is_summarized_and_classified_by_status() -> None:
    transient = classify(html_error(503))
    assert type(transient) is errors.TransientError
    assert "HTTP 503 with a non-JSON body (text/html)" in str(transient)
    assert "<" not in str(transient)
    assert type(classify(html_error(400))) is errors.PermanentError


def test_a_disabled_version_is_not_a_missing_role() -> None:
    mapped = classify(
        http_error(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
    )
    assert type(mapped) is errors.PermanentError and "disabled" in str(mapped)
