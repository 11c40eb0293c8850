"""Access tokens for the sandbox: one signing key per stack, shared by every emulator.

The Entra emulator mints tokens here; Graph, Key Vault and Databricks emulators check them
here. Real Entra signs RS256 with published keys; the sandbox only needs tokens that are
unforgeable by a client that never authenticated and that carry the claims the emulators
decide on (``tid``, ``appid``/``azp``, ``aud``, ``exp``), so HS256 with a random per-stack key
is enough and keeps verification free of key discovery.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import jwt

# The resources the emulators serve, as Entra names them in `aud`.
GRAPH = "https://graph.microsoft.com"
KEY_VAULT = "https://vault.azure.net"
AZURE_DATABRICKS = "2ff814a6-3304-4ab8-85cb-cd0e6f879c1d"
RESOURCES = (GRAPH, KEY_VAULT, AZURE_DATABRICKS)

ALGORITHM = "HS256"
DEFAULT_LIFETIME = 3600.0


def resource_of_scope(scope: str) -> str | None:
    """The resource of a client-credentials scope (``<resource>/.default``), else None."""
    for item in scope.split():
        if item.endswith("/.default"):
            return item[: -len("/.default")]
    return None


def key_vault_resource(vault_host: str) -> str:
    """The resource a vault's 401 challenge names for requests to ``vault_host`` (``host[:port]``).

    Key Vault names the parent domain of the vault's host (``kv1.vault.azure.net`` →
    ``https://vault.azure.net``), and the SDK refuses a challenge whose resource is not a parent
    of the vault's host (its ``verify_challenge_resource``, on by default). The same rule gives a
    vault on a loopback address ``127.0.0.1:8443`` → ``https://0.0.1:8443``, which that check
    accepts: the operator talks to the emulators with its production verification on, and no
    switch in production code relaxes it.
    """
    _, dot, parent = vault_host.lower().partition(".")
    if not dot:
        return KEY_VAULT  # "localhost:8443" has no parent domain: name the public resource
    return "https://" + parent.removesuffix(":443")


_LOOPBACK_VAULT_RESOURCE = re.compile(r"https://0\.0\.1(:\d+)?/?")


def is_key_vault_resource(resource: str) -> bool:
    """Key Vault's public resource, or the one a vault on ``127.0.0.1:<port>`` names."""
    return same_resource(resource, KEY_VAULT) or bool(_LOOPBACK_VAULT_RESOURCE.fullmatch(resource))


def same_resource(left: str, right: str) -> bool:
    """Entra treats ``https://vault.azure.net`` and ``https://vault.azure.net/`` alike."""
    return left.rstrip("/") == right.rstrip("/")


@dataclasses.dataclass
class TokenAuthority:
    """Issues and verifies the sandbox's bearer tokens.

    ``clock`` returns epoch seconds; tests pass their own to age tokens without sleeping.
    """

    key: bytes = dataclasses.field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    lifetime: float = DEFAULT_LIFETIME
    clock: Callable[[], float] = time.time
    issuer_base: str = "https://sts.windows.net"

    def issue(self, *, tenant_id: str, client_id: str, audience: str) -> str:
        """A signed access token for ``client_id`` of ``tenant_id`` to call ``audience``."""
        now = int(self.clock())
        claims: dict[str, Any] = {
            "aud": audience.rstrip("/"),
            "iss": f"{self.issuer_base}/{tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + int(self.lifetime),
            "tid": tenant_id,
            # v1 tokens carry `appid`, v2 tokens `azp`; consumers read either, so send both.
            "appid": client_id,
            "azp": client_id,
            "oid": client_id,
            "sub": client_id,
            "idtyp": "app",
            "uti": uuid.uuid4().hex,
            "ver": "1.0",
        }
        return jwt.encode(claims, self.key, algorithm=ALGORITHM)

    def verify(self, token: str, audience: str) -> dict[str, Any] | None:
        """The token's claims when it is ours, unexpired and for ``audience``; else None."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=[ALGORITHM],
                # Audience and expiry are checked below against our own clock, so a test
                # clock can age tokens; PyJWT would compare against the wall clock.
                options={
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidTokenError:
            return None
        if not same_resource(str(claims.get("aud", "")), audience):
            return None
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= self.clock():
            return None
        return claims

    def verifier(self) -> Callable[[str, str], bool]:
        """``verify_token(token, audience) -> bool`` for emulators that only need yes/no."""

        def verify_token(token: str, audience: str) -> bool:
            return self.verify(token, audience) is not None

        return verify_token


def bearer_of(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
