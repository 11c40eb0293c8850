"""An Azure Key Vault emulator for secrets, shaped by what azure-keyvault-secrets 4.12 sends.

One app is one vault: the stack starts one instance per vault, each on its own port, and the
vault's base URL is whatever origin the client used. The REST surface is the secrets subset of
the data plane (api-version 2026-04-01 and the older versions the SDK can pin):

  PUT    /secrets/{name}                      set: always a new version
  GET    /secrets/{name}/{version}            get (empty version = the latest)
  PATCH  /secrets/{name}/{version}            update properties (empty version = the latest)
  GET    /secrets/{name}/versions             list versions (no values)
  GET    /secrets                             list secrets (no values)
  DELETE /secrets/{name}                      soft delete
  GET    /deletedsecrets[/{name}]             list / get deleted secrets
  POST   /deletedsecrets/{name}/recover       recover
  DELETE /deletedsecrets/{name}               purge

Behaviour copied from the real service because the operator depends on it: the 401 challenge
the SDK's ``ChallengeAuthPolicy`` expects (its resource is the parent domain of the vault's host,
:func:`rotator.sandbox.tokens.key_vault_resource`, so the SDK's resource check passes), "latest"
being the newest version even when it is disabled (reads then fail with 403), expired and
not-yet-valid versions still readable (the service treats ``exp``/``nbf`` as advisory for
secrets), names case-insensitive, soft delete blocking re-creation with 409, and the error body
``{"error": {"code", "message"}}``.

Values never leave through the state endpoint or the request log: the state shows a SHA-256
digest of each version's value so tests can compare without seeing it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from rotator.sandbox import server, tokens

AUDIENCE = tokens.KEY_VAULT  # the public cloud's; a vault names its own (tokens.key_vault_resource)
DEFAULT_TENANT = "00000000-0000-0000-0000-0000000000aa"
DEFAULT_AUTHORITY = "https://login.microsoftonline.com"
# Every version azure-keyvault-secrets 4.12 can be pinned to (its ApiVersion enum).
API_VERSIONS = frozenset(
    {"2026-04-01", "2025-07-01", "7.6", "7.5", "7.4", "7.3", "7.2", "7.1", "7.0", "2016-10-01"}
)
NAME_PATTERN = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
MAX_CONTENT_TYPE = 255
MAX_PAGE = 25
RECOVERY_LEVEL = "Recoverable+Purgeable"
NOT_FOUND_HINT = (
    " If you recently deleted this secret you may be able to recover it using the correct"
    " recovery command. For help resolving this issue, please see"
    " https://go.microsoft.com/fwlink/?linkid=2125182"
)

VerifyToken = Callable[[str, str], bool]


class KeyVaultError(Exception):
    """A service error: HTTP status, Key Vault error code, message and optional inner code."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.inner = inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def _bad(message: str) -> KeyVaultError:
    return KeyVaultError(400, "BadParameter", message)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclasses.dataclass
class SecretVersion:
    """One version of a secret: its value and the attributes set on it."""

    version: str
    value: str = dataclasses.field(repr=False)
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int


@dataclasses.dataclass
class Secret:
    """A named secret: its versions in creation order (the last is "latest")."""

    name: str  # the casing used when it was first created; lookups ignore case
    versions: list[SecretVersion] = dataclasses.field(default_factory=list)
    deleted_date: int | None = None
    scheduled_purge_date: int | None = None

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]

    def version(self, version: str) -> SecretVersion | None:
        for v in self.versions:
            if v.version == version.lower():
                return v
        return None


class KeyVaultState:
    """The contents of one vault, and the identity it answers challenges with.

    ``authority`` and ``tenant_id`` form the challenge's authorization URI. The SDK only takes the
    tenant from it (the first path segment) and passes it to the credential as ``tenant_id``; the
    host is not used, so pointing ``authority`` at the Entra emulator is cosmetic but honest.
    """

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT,
        authority: str = DEFAULT_AUTHORITY,
        recoverable_days: int = 90,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tenant_id = tenant_id
        self.authority = authority
        self.recoverable_days = recoverable_days
        self.clock = clock
        self.secrets: dict[str, Secret] = {}
        self.deleted: dict[str, Secret] = {}

    @property
    def authorization_uri(self) -> str:
        return f"{self.authority.rstrip('/')}/{self.tenant_id}"

    def challenge(self, host: str) -> str:
        """The ``WWW-Authenticate`` value for a request to ``host`` (its ``Host`` header)."""
        resource = tokens.key_vault_resource(host)
        return f'Bearer authorization="{self.authorization_uri}", resource="{resource}"'

    def _now(self) -> int:
        return int(self.clock())

    def _purge_due(self) -> None:
        # The service purges a soft-deleted secret when its retention ends; do it lazily.
        now = self._now()
        for key in [k for k, s in self.deleted.items() if (s.scheduled_purge_date or 0) <= now]:
            del self.deleted[key]

    def _live(self, name: str) -> Secret:
        _check_name(name)
        self._purge_due()
        secret = self.secrets.get(name.lower())
        if secret is None:
            raise KeyVaultError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault." + NOT_FOUND_HINT,
            )
        return secret

    def _deleted(self, name: str) -> Secret:
        _check_name(name)
        self._purge_due()
        secret = self.deleted.get(name.lower())
        if secret is None:
            raise KeyVaultError(404, "SecretNotFound", "Deleted Secret not found")
        return secret

    def _version(self, secret: Secret, version: str) -> SecretVersion:
        if not version:
            return secret.latest
        found = secret.version(version)
        if found is None:
            raise KeyVaultError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {secret.name}/{version} was not found in this key vault."
                + NOT_FOUND_HINT,
            )
        return found

    # -- operations -------------------------------------------------------------------------

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str | None = None,
        tags: dict[str, str] | None = None,
        enabled: bool = True,
        not_before: int | None = None,
        expires: int | None = None,
    ) -> tuple[Secret, SecretVersion]:
        _check_name(name)
        if not isinstance(value, str):
            raise _bad("The parameter 'value' is required and must be a string.")
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise _bad(f"The secret value exceeds the maximum size of {MAX_VALUE_BYTES} bytes.")
        _check_properties(content_type, tags)
        self._purge_due()
        if name.lower() in self.deleted:
            raise KeyVaultError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name"
                " cannot be reused; in this state, the secret can only be recovered or purged.",
                inner="ObjectIsDeletedButRecoverable",
            )
        secret = self.secrets.setdefault(name.lower(), Secret(name=name))
        now = self._now()
        version = SecretVersion(
            version=uuid.uuid4().hex,
            value=value,
            content_type=content_type,
            tags=dict(tags) if tags is not None else None,
            enabled=enabled,
            not_before=not_before,
            expires=expires,
            created=now,
            updated=now,
        )
        secret.versions.append(version)
        return secret, version

    def get_secret(self, name: str, version: str = "") -> tuple[Secret, SecretVersion]:
        secret = self._live(name)
        found = self._version(secret, version)
        if not found.enabled:
            raise KeyVaultError(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner="SecretDisabled",
            )
        return secret, found

    def update_secret(
        self, name: str, version: str, patch: dict[str, Any]
    ) -> tuple[Secret, SecretVersion]:
        secret = self._live(name)
        found = self._version(secret, version)
        content_type = patch.get("contentType", found.content_type)
        tags = patch.get("tags", found.tags)
        _check_properties(content_type, tags)
        attributes = patch.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise _bad("The parameter 'attributes' must be an object.")
        found.content_type = content_type
        found.tags = dict(tags) if tags is not None else None
        if "enabled" in attributes and attributes["enabled"] is not None:
            found.enabled = bool(attributes["enabled"])
        if "nbf" in attributes:
            found.not_before = _epoch(attributes["nbf"], "nbf")
        if "exp" in attributes:
            found.expires = _epoch(attributes["exp"], "exp")
        found.updated = self._now()
        return secret, found

    def delete_secret(self, name: str) -> Secret:
        secret = self._live(name)
        del self.secrets[name.lower()]
        now = self._now()
        secret.deleted_date = now
        secret.scheduled_purge_date = now + self.recoverable_days * 86400
        self.deleted[name.lower()] = secret
        return secret

    def get_deleted(self, name: str) -> Secret:
        return self._deleted(name)

    def recover(self, name: str) -> Secret:
        secret = self._deleted(name)
        del self.deleted[name.lower()]
        secret.deleted_date = None
        secret.scheduled_purge_date = None
        self.secrets[name.lower()] = secret
        return secret

    def purge(self, name: str) -> None:
        self._deleted(name)
        del self.deleted[name.lower()]

    def list_secrets(self) -> list[Secret]:
        self._purge_due()
        return sorted(self.secrets.values(), key=lambda s: s.name.lower())

    def list_versions(self, name: str) -> list[SecretVersion]:
        return list(self._live(name).versions)

    def list_deleted(self) -> list[Secret]:
        self._purge_due()
        return sorted(self.deleted.values(), key=lambda s: s.name.lower())

    # -- the state endpoint: never a value ----------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        def render(secret: Secret) -> dict[str, Any]:
            return {
                "name": secret.name,
                "latest": secret.latest.version,
                "deletedDate": secret.deleted_date,
                "scheduledPurgeDate": secret.scheduled_purge_date,
                "versions": [
                    {
                        "version": v.version,
                        "sha256": _digest(v.value),
                        "enabled": v.enabled,
                        "nbf": v.not_before,
                        "exp": v.expires,
                        "contentType": v.content_type,
                        "tags": v.tags,
                        "created": v.created,
                        "updated": v.updated,
                    }
                    for v in secret.versions
                ],
            }

        return {
            "tenantId": self.tenant_id,
            "authorizationUri": self.authorization_uri,
            "secrets": {s.name: render(s) for s in self.secrets.values()},
            "deleted": {s.name: render(s) for s in self.deleted.values()},
        }


def _check_name(name: str) -> None:
    if not NAME_PATTERN.match(name):
        raise _bad(f"The request URI contains an invalid name: {name}")


def _check_properties(content_type: Any, tags: Any) -> None:
    if content_type is not None and (
        not isinstance(content_type, str) or len(content_type) > MAX_CONTENT_TYPE
    ):
        raise _bad(f"The parameter 'contentType' must be a string of at most {MAX_CONTENT_TYPE}.")
    if tags is None:
        return
    if not isinstance(tags, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        raise _bad("The parameter 'tags' must map strings to strings.")
    if len(tags) > MAX_TAGS:
        raise _bad(f"The number of tags exceeds the maximum of {MAX_TAGS}.")
    for key, value in tags.items():
        if len(key) > MAX_TAG_NAME or len(value) > MAX_TAG_VALUE:
            raise _bad(
                f"Tag names are limited to {MAX_TAG_NAME} characters"
                f" and tag values to {MAX_TAG_VALUE}."
            )


def _epoch(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(f"The attribute '{field}' must be a Unix time in seconds.")
    return int(value)


# -- rendering ---------------------------------------------------------------------------------


def _attributes(state: KeyVaultState, v: SecretVersion) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "enabled": v.enabled,
        "created": v.created,
        "updated": v.updated,
        "recoveryLevel": RECOVERY_LEVEL,
        "recoverableDays": state.recoverable_days,
    }
    if v.not_before is not None:
        attributes["nbf"] = v.not_before
    if v.expires is not None:
        attributes["exp"] = v.expires
    return attributes


def _properties(state: KeyVaultState, v: SecretVersion) -> dict[str, Any]:
    body: dict[str, Any] = {"attributes": _attributes(state, v)}
    if v.content_type is not None:
        body["contentType"] = v.content_type
    if v.tags is not None:
        body["tags"] = v.tags
    return body


def _bundle(
    base: str, state: KeyVaultState, secret: Secret, v: SecretVersion, *, with_value: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": f"{base}/secrets/{secret.name}/{v.version}"}
    if with_value:
        body["value"] = v.value
    body.update(_properties(state, v))
    return body


def _deleted_bundle(base: str, state: KeyVaultState, secret: Secret) -> dict[str, Any]:
    body = _bundle(base, state, secret, secret.latest, with_value=False)
    body.update(
        {
            "recoveryId": f"{base}/deletedsecrets/{secret.name}",
            "deletedDate": secret.deleted_date,
            "scheduledPurgeDate": secret.scheduled_purge_date,
        }
    )
    return body


def _deleted_item(base: str, state: KeyVaultState, secret: Secret) -> dict[str, Any]:
    body = _deleted_bundle(base, state, secret)
    body["id"] = f"{base}/secrets/{secret.name}"
    return body


# -- HTTP --------------------------------------------------------------------------------------

STATE_KEY: web.AppKey[KeyVaultState] = web.AppKey("keyvault_state", KeyVaultState)
VERIFY_KEY: web.AppKey[VerifyToken | None] = web.AppKey("keyvault_verify")


def _base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _error(exc: KeyVaultError, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(exc.body(), status=exc.status, headers=headers)


def _unauthorized(request: web.Request, message: str) -> web.Response:
    # Key Vault sends the challenge on every 401, not only on the first unauthenticated request.
    exc = KeyVaultError(401, "Unauthorized", message)
    challenge = request.app[STATE_KEY].challenge(request.host)
    return _error(exc, headers={"WWW-Authenticate": challenge})


def _check_auth(request: web.Request) -> web.Response | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _unauthorized(request, "AKV10000: Request is missing a Bearer or PoP token.")
    verify = request.app[VERIFY_KEY]
    if verify is not None and not verify(token.strip(), tokens.key_vault_resource(request.host)):
        # Never echo the token: it is a credential.
        return _unauthorized(request, "AKV10022: Invalid token: it failed validation.")
    return None


def _check_api_version(request: web.Request) -> None:
    version = request.query.get("api-version")
    if not version:
        raise _bad("The 'api-version' query parameter is missing.")
    if version not in API_VERSIONS:
        raise _bad(f"The specified version ({version}) is not recognized.")


def _page_size(request: web.Request) -> int:
    raw = request.query.get("maxresults")
    if raw is None:
        return MAX_PAGE
    try:
        size = int(raw)
    except ValueError:
        raise _bad("The parameter 'maxresults' must be an integer.") from None
    if not 1 <= size <= MAX_PAGE:
        raise _bad(f"The parameter 'maxresults' must be between 1 and {MAX_PAGE}.")
    return size


def _page(request: web.Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    size = _page_size(request)
    try:
        start = int(request.query.get("$skiptoken", "0"))
    except ValueError:
        raise _bad("The parameter '$skiptoken' is not valid.") from None
    chunk = items[start : start + size]
    next_link = None
    if start + size < len(items):
        next_link = (
            f"{_base(request)}{request.path}?api-version={request.query['api-version']}"
            f"&$skiptoken={start + size}&maxresults={size}"
        )
    return {"value": chunk, "nextLink": next_link}


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise _bad("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    return body


Op = Callable[[web.Request, KeyVaultState], Any]


def _route(op: Op) -> server.Handler:
    """Authenticate, check the api-version, run the operation, map service errors to bodies."""

    async def handler(request: web.Request) -> web.StreamResponse:
        denied = _check_auth(request)
        if denied is not None:
            return denied
        state = request.app[STATE_KEY]
        try:
            _check_api_version(request)
            result = await op(request, state)
        except KeyVaultError as exc:
            return _error(exc)
        if result is None:
            return web.Response(status=204)
        return web.json_response(result)

    return handler


async def _set(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    body = await _json_body(request)
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise _bad("The parameter 'attributes' must be an object.")
    enabled = attributes.get("enabled")
    secret, version = state.set_secret(
        request.match_info["name"],
        body.get("value"),  # type: ignore[arg-type]  # validated by set_secret
        content_type=body.get("contentType"),
        tags=body.get("tags"),
        enabled=True if enabled is None else bool(enabled),
        not_before=_epoch(attributes.get("nbf"), "nbf"),
        expires=_epoch(attributes.get("exp"), "exp"),
    )
    return _bundle(_base(request), state, secret, version, with_value=True)


async def _get(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    version = request.match_info.get("version", "")
    secret, found = state.get_secret(request.match_info["name"], version)
    return _bundle(_base(request), state, secret, found, with_value=True)


async def _update(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    body = await _json_body(request)
    version = request.match_info.get("version", "")
    secret, found = state.update_secret(request.match_info["name"], version, body)
    return _bundle(_base(request), state, secret, found, with_value=False)


async def _versions(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    name = request.match_info["name"]
    versions = state.list_versions(name)
    secret = state.secrets[name.lower()]
    base = _base(request)
    items = [
        {"id": f"{base}/secrets/{secret.name}/{v.version}", **_properties(state, v)}
        for v in versions
    ]
    return _page(request, items)


async def _list(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    base = _base(request)
    items = [
        {"id": f"{base}/secrets/{s.name}", **_properties(state, s.latest)}
        for s in state.list_secrets()
    ]
    return _page(request, items)


async def _delete(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    secret = state.delete_secret(request.match_info["name"])
    return _deleted_bundle(_base(request), state, secret)


async def _get_deleted(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    secret = state.get_deleted(request.match_info["name"])
    return _deleted_bundle(_base(request), state, secret)


async def _list_deleted(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    base = _base(request)
    return _page(request, [_deleted_item(base, state, s) for s in state.list_deleted()])


async def _recover(request: web.Request, state: KeyVaultState) -> dict[str, Any]:
    secret = state.recover(request.match_info["name"])
    return _bundle(_base(request), state, secret, secret.latest, with_value=False)


async def _purge(request: web.Request, state: KeyVaultState) -> None:
    state.purge(request.match_info["name"])


def make_app(
    state: KeyVaultState, *, verify_token: VerifyToken | None, seed: int = 0
) -> web.Application:
    """The vault's app: sandbox shell (log, faults, /_sandbox/state) plus the secrets API.

    ``verify_token(token, audience)`` checks bearer tokens (audience: the resource the challenge
    names, :func:`rotator.sandbox.tokens.key_vault_resource` of the request's host);
    None accepts any bearer token, as Lowkey Vault does.
    """
    app = server.make_app(state.snapshot, seed=seed)
    app[STATE_KEY] = state
    app[VERIFY_KEY] = verify_token
    r = app.router
    r.add_get("/secrets", _route(_list), name="keyvault.getSecrets")
    r.add_put("/secrets/{name}", _route(_set), name="keyvault.setSecret")
    r.add_delete("/secrets/{name}", _route(_delete), name="keyvault.deleteSecret")
    r.add_get("/secrets/{name}/versions", _route(_versions), name="keyvault.getSecretVersions")
    # The SDK asks for the latest version as "/secrets/x/" (empty version): one route, one name.
    r.add_get("/secrets/{name}/{version:[^/]*}", _route(_get), name="keyvault.getSecret")
    r.add_patch("/secrets/{name}/{version:[^/]*}", _route(_update), name="keyvault.updateSecret")
    r.add_get("/deletedsecrets", _route(_list_deleted), name="keyvault.getDeletedSecrets")
    r.add_get("/deletedsecrets/{name}", _route(_get_deleted), name="keyvault.getDeletedSecret")
    r.add_delete("/deletedsecrets/{name}", _route(_purge), name="keyvault.purgeDeletedSecret")
    r.add_post(
        "/deletedsecrets/{name}/recover", _route(_recover), name="keyvault.recoverDeletedSecret"
    )
    return app
