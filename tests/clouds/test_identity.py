"""Verification outcomes by AADSTS code, the backoff schedule and the Databricks auth header."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.credentials import AccessToken

from rotator.clouds import identity, settings
from rotator.core import errors, sensitive


@pytest.mark.parametrize(
    ("message", "code", "kind", "transient"),
    [
        (
            "Microsoft Entra ID error '(invalid_client) AADSTS7000215: Invalid client secret "
            "provided.'",
            "7000215",
            "propagation",
            True,
        ),
        (
            "(invalid_client) AADSTS7000222: The provided client secret keys are expired.",
            "7000222",
            "expired",
            False,
        ),
        ("(invalid_request) AADSTS90002: Tenant 'x' not found.", "90002", "tenant", False),
        ("(unauthorized_client) AADSTS700016: Application not found", "700016", "tenant", False),
        ("(invalid_client) AADSTS7000216: something else", "7000216", "invalid", False),
        ("no code at all", None, "invalid", False),
    ],
)
def test_classification(message: str, code: str | None, kind: str, transient: bool) -> None:
    assert identity.aadsts_code(message) == code
    failure = identity.verification_error(code, "tenant-1", "client-1")
    assert failure.kind == kind
    assert errors.is_transient(failure) is transient
    assert "client-1" in str(failure) and "tenant-1" in str(failure)


def test_backoff_grows_and_is_capped() -> None:
    low = [identity.backoff_delay(n, rng=lambda: 0.0) for n in range(8)]
    high = [identity.backoff_delay(n, rng=lambda: 1.0) for n in range(8)]
    assert low == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0, 15.0]
    assert high == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


class FakeSyncCredential:
    """Our boundary: a TokenCredential as azure-identity defines it."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("token-for-databricks", 2_000_000_000)


def test_databricks_strategy_sends_an_entra_token_for_azure_databricks() -> None:
    credential = FakeSyncCredential()
    strategy = identity.DatabricksCredentials(credential)  # type: ignore[arg-type]
    headers = strategy(None)()  # type: ignore[arg-type]
    assert headers == {"Authorization": "Bearer token-for-databricks"}
    assert credential.scopes == [("2ff814a6-3304-4ab8-85cb-cd0e6f879c1d/.default",)]


def test_explicit_authority_needs_the_operator_secret() -> None:
    with pytest.raises(ValueError, match="AZURE_CLIENT_SECRET"):
        identity.async_credential(settings.CloudSettings(authority_host="https://127.0.0.1:1"))


def test_settings_from_env_wrap_the_secret() -> None:
    loaded = settings.CloudSettings.from_env(
        {
            "ROTATOR_AUTHORITY_HOST": "https://127.0.0.1:8443",
            "AZURE_TENANT_ID": "t",
            "AZURE_CLIENT_ID": "c",
            "AZURE_CLIENT_SECRET": "operator-secret-value",
        }
    )
    assert loaded.authority == "https://127.0.0.1:8443"
    assert isinstance(loaded.client_secret, sensitive.SecretText)
    assert "operator-secret-value" not in repr(loaded)
    assert settings.CloudSettings.from_env({}).authority == settings.PUBLIC_AUTHORITY
