"""The sandbox token authority: issue, verify, audience and expiry checks."""

from __future__ import annotations

import jwt
import pytest

from rotator.sandbox import tokens


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_issued_token_verifies_for_its_audience_with_claims() -> None:
    authority = tokens.TokenAuthority(clock=FakeClock(1_000_000.0))
    token = authority.issue(tenant_id="t1", client_id="c1", audience=tokens.GRAPH)
    claims = authority.verify(token, tokens.GRAPH)
    assert claims is not None
    assert (claims["tid"], claims["appid"], claims["azp"]) == ("t1", "c1", "c1")
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["exp"] - claims["iat"] == 3600


def test_trailing_slash_of_audience_is_ignored() -> None:
    authority = tokens.TokenAuthority()
    token = authority.issue(tenant_id="t", client_id="c", audience="https://vault.azure.net/")
    assert authority.verify(token, tokens.KEY_VAULT) is not None


@pytest.mark.parametrize("other", [tokens.KEY_VAULT, tokens.AZURE_DATABRICKS])
def test_token_for_another_audience_is_refused(other: str) -> None:
    authority = tokens.TokenAuthority()
    token = authority.issue(tenant_id="t", client_id="c", audience=tokens.GRAPH)
    assert authority.verify(token, other) is None
    assert authority.verifier()(token, other) is False
    assert authority.verifier()(token, tokens.GRAPH) is True


def test_expired_token_is_refused() -> None:
    clock = FakeClock(1_000_000.0)
    authority = tokens.TokenAuthority(clock=clock, lifetime=60)
    token = authority.issue(tenant_id="t", client_id="c", audience=tokens.GRAPH)
    clock.now += 59
    assert authority.verify(token, tokens.GRAPH) is not None
    clock.now += 1
    assert authority.verify(token, tokens.GRAPH) is None


def test_token_of_another_authority_or_garbage_is_refused() -> None:
    mine, theirs = tokens.TokenAuthority(), tokens.TokenAuthority()
    forged = theirs.issue(tenant_id="t", client_id="c", audience=tokens.GRAPH)
    assert mine.verify(forged, tokens.GRAPH) is None
    assert mine.verify("not-a-jwt", tokens.GRAPH) is None
    unsigned = jwt.encode({"aud": tokens.GRAPH, "exp": 2**40}, key="", algorithm="none")
    assert mine.verify(unsigned, tokens.GRAPH) is None


def test_resource_of_scope_and_bearer_parsing() -> None:
    assert tokens.resource_of_scope("https://graph.microsoft.com/.default") == tokens.GRAPH
    assert (
        tokens.resource_of_scope(f"{tokens.AZURE_DATABRICKS}/.default offline_access")
        == tokens.AZURE_DATABRICKS
    )
    assert tokens.resource_of_scope("User.Read") is None
    assert tokens.bearer_of("Bearer abc") == "abc"
    assert tokens.bearer_of("bearer  abc ") == "abc"
    assert tokens.bearer_of("Basic abc") is None
    assert tokens.bearer_of(None) is None
    assert tokens.bearer_of("Bearer ") is None


def test_a_clock_ahead_of_the_wall_clock_still_verifies() -> None:
    # Emulator tests run a fake clock in the future; PyJWT must not compare iat with time.time().
    authority = tokens.TokenAuthority(clock=FakeClock(4_000_000_000.0))
    token = authority.issue(tenant_id="t", client_id="c", audience=tokens.GRAPH)
    assert authority.verify(token, tokens.GRAPH) is not None


@pytest.mark.parametrize(
    ("host", "resource"),
    [
        ("kv-data-eng.vault.azure.net", "https://vault.azure.net"),
        ("KV.vault.azure.net:443", "https://vault.azure.net"),
        ("127.0.0.1:8443", "https://0.0.1:8443"),
        ("localhost:8443", tokens.KEY_VAULT),
    ],
)
def test_a_vault_names_the_parent_domain_of_its_host(host: str, resource: str) -> None:
    assert tokens.key_vault_resource(host) == resource
    assert tokens.is_key_vault_resource(resource)


def test_the_sdks_own_challenge_check_accepts_a_loopback_vaults_resource() -> None:
    # The operator keeps the SDK's verify_challenge_resource on against the emulators too.
    from azure.keyvault.secrets._shared import challenge_auth_policy as policy

    vault = "https://127.0.0.1:8443/secrets/s?api-version=7.6"
    policy._validate_challenge_resource(
        tokens.key_vault_resource("127.0.0.1:8443") + "/.default", vault
    )
    with pytest.raises(ValueError, match="does not match"):
        policy._validate_challenge_resource(tokens.KEY_VAULT + "/.default", vault)


def test_unknown_resources_are_not_key_vault() -> None:
    assert not tokens.is_key_vault_resource("https://0.0.2:8443")
    assert not tokens.is_key_vault_resource("https://evil.example")
