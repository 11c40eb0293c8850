"""A Microsoft Entra ID token endpoint for the client-credentials grant with a client secret.

It serves what azure-identity 1.27 and MSAL ask for when pointed at it with
``authority="https://127.0.0.1:PORT"`` and ``disable_instance_discovery=True``:

  GET  /{tenant}/v2.0/.well-known/openid-configuration   entra.openidConfiguration (MSAL)
  GET  /{tenant}/.well-known/openid-configuration        entra.openidConfigurationV1
  POST /{tenant}/oauth2/v2.0/token                       entra.token

(the async ``azure.identity.aio`` credentials skip discovery and POST to the token URL).
Client secrets are checked against the password credentials of the shared
``graph.Directory``, on the application or its service principal. Failures answer in Entra's
shape (``error``, ``error_description`` beginning with the AADSTS code, ``error_codes``,
``timestamp``, ``trace_id``, ``correlation_id``): unknown tenant AADSTS90002, unknown client
AADSTS700016, wrong secret AADSTS7000215, expired secret AADSTS7000222. A new secret is
refused with AADSTS7000215 until ``Directory.propagation_delay`` seconds after it was made,
like the replication lag of real Entra; ``POST /_sandbox/config {"propagationDelay": s}``
changes it at runtime. The access token is a ``TokenAuthority`` JWT for the scope's resource.
"""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from aiohttp import web

from rotator.sandbox import graph, server, tokens

DIRECTORY_KEY: web.AppKey[graph.Directory] = web.AppKey("entra_directory", graph.Directory)
AUTHORITY_KEY: web.AppKey[tokens.TokenAuthority] = web.AppKey(
    "entra_authority", tokens.TokenAuthority
)


class EntraError(Exception):
    """An OAuth error answer; the description never contains the secret."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description


def error_response(request: web.Request, failure: EntraError) -> web.Response:
    now = datetime.datetime.now(datetime.UTC)
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = str(uuid.uuid4())
    correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    # Real Entra appends these three lines to every description; clients show them as-is.
    description = (
        f"AADSTS{failure.code}: {failure.description} Trace ID: {trace_id} "
        f"Correlation ID: {correlation_id} Timestamp: {stamp}"
    )
    body = {
        "error": failure.error,
        "error_description": description,
        "error_codes": [failure.code],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"{request.url.origin()}/error?code={failure.code}",
    }
    return web.json_response(body, status=failure.status)


def _tenant_not_found(tenant_id: str) -> EntraError:
    return EntraError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant_id}' not found. Check to make sure you have the correct tenant ID and "
        "are signing into the correct cloud. Check with your subscription administrator, this "
        "may happen if there are no active subscriptions for the tenant.",
    )


def _tenant(request: web.Request) -> graph.Tenant:
    tenant_id = request.match_info["tenant"]
    tenant = request.app[DIRECTORY_KEY].tenant(tenant_id)
    if tenant is None:
        raise _tenant_not_found(tenant_id)
    return tenant


def openid_configuration(base: str, tenant_id: str, *, v2: bool = True) -> dict[str, Any]:
    """The discovery document; MSAL reads ``authorization_endpoint`` and ``token_endpoint``."""
    root = f"{base}/{tenant_id}"
    version = "/v2.0" if v2 else ""
    return {
        "token_endpoint": f"{root}/oauth2{version}/token",
        "token_endpoint_auth_methods_supported": [
            "client_secret_post",
            "private_key_jwt",
            "client_secret_basic",
        ],
        "jwks_uri": f"{root}/discovery{version}/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{root}/v2.0" if v2 else f"https://sts.windows.net/{tenant_id}/",
        "request_uri_parameter_supported": False,
        "authorization_endpoint": f"{root}/oauth2{version}/authorize",
        "device_authorization_endpoint": f"{root}/oauth2{version}/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{root}/oauth2{version}/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "azp", "appid", "oid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }


async def discovery(request: web.Request) -> web.Response:
    try:
        tenant = _tenant(request)
    except EntraError as failure:
        return error_response(request, failure)
    v2 = request.path.rstrip("/").endswith("v2.0/.well-known/openid-configuration")
    base = str(request.url.origin())
    return web.json_response(openid_configuration(base, tenant.tenant_id, v2=v2))


def _check_secret(
    directory: graph.Directory, tenant: graph.Tenant, client_id: str, secret: str
) -> None:
    """Raise the error real Entra gives for this client and secret, or return when valid."""
    holders = tenant.by_app_id(client_id)
    if not holders:
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory "
            f"'{tenant.tenant_id}'. This can happen if the application has not been installed "
            "by the administrator of the tenant or consented to by any user in the tenant. You "
            "may have sent your authentication request to the wrong tenant.",
        )
    matching = [p for obj in holders for p in obj.password_credentials if p.matches(secret)]
    now = directory.now()
    invalid = EntraError(
        401,
        "invalid_client",
        7000215,
        "Invalid client secret provided. Ensure the secret being sent in the request is the "
        f"client secret value, not the client secret ID, for a secret added to app "
        f"'{client_id}'.",
    )
    if not matching:
        raise invalid
    if all(p.end <= now for p in matching):
        raise EntraError(
            401,
            "invalid_client",
            7000222,
            f"The provided client secret keys for app '{client_id}' are expired. Visit the "
            "Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or "
            "consider using certificate credentials for added security: "
            "https://aka.ms/certCreds.",
        )
    clock = directory.clock()
    usable = [
        p
        for p in matching
        if p.end > now and p.start <= now and p.created + directory.propagation_delay <= clock
    ]
    if not usable:
        # Not yet replicated (or not yet started): real Entra cannot tell it from a wrong one.
        raise invalid


async def token(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY_KEY]
    try:
        tenant = _tenant(request)
        form = await request.post()
        grant_type = str(form.get("grant_type", ""))
        if grant_type != "client_credentials":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = str(form.get("client_id", "")).lower()
        if not client_id:
            raise EntraError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        scope = str(form.get("scope", ""))
        resource = tokens.resource_of_scope(scope)
        if resource is None:
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        known = any(tokens.same_resource(resource, known) for known in tokens.RESOURCES)
        if not (known or tokens.is_key_vault_resource(resource)):
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named "
                f"{tenant.tenant_id}. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant.",
            )
        secret = form.get("client_secret")
        if not isinstance(secret, str) or not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the "
                "'client_credentials' grant type.",
            )
        _check_secret(directory, tenant, client_id, secret)
    except EntraError as failure:
        return error_response(request, failure)
    authority = request.app[AUTHORITY_KEY]
    access_token = authority.issue(
        tenant_id=tenant.tenant_id, client_id=client_id, audience=resource.rstrip("/")
    )
    lifetime = int(authority.lifetime)
    return web.json_response(
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
    )


def entra_fault_body(status: int, code: str, message: str) -> dict[str, Any]:
    """An injected fault in Entra's own shape: ``code`` "AADSTS90002" becomes that AADSTS error;
    a 429 or 5xx without one is ``temporarily_unavailable`` (the OAuth "busy" error)."""
    if code.startswith("AADSTS") and code[6:].isdigit():
        return {
            "error": "invalid_request" if status == 400 else "invalid_client",
            "error_description": f"{code}: {message}",
            "error_codes": [int(code[6:])],
        }
    busy = status == 429 or status >= 500
    return {
        "error": "temporarily_unavailable" if busy else code,
        "error_description": message,
        "error_codes": [],
    }


async def configure(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY_KEY]
    body = await request.json()
    if "propagationDelay" in body:
        directory.propagation_delay = float(body["propagationDelay"])
    return web.json_response({"propagationDelay": directory.propagation_delay})


def make_app(
    directory: graph.Directory, *, authority: tokens.TokenAuthority, seed: int = 0
) -> web.Application:
    """The token endpoint over ``directory``, minting tokens with ``authority``."""
    app = server.make_app(directory.render, seed=seed, fault_body=entra_fault_body)
    app[DIRECTORY_KEY] = directory
    app[AUTHORITY_KEY] = authority
    app.router.add_get(
        "/{tenant}/v2.0/.well-known/openid-configuration",
        discovery,
        name="entra.openidConfiguration",
        allow_head=False,
    )
    app.router.add_get(
        "/{tenant}/.well-known/openid-configuration",
        discovery,
        name="entra.openidConfigurationV1",
        allow_head=False,
    )
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token, name="entra.token")
    app.router.add_post("/_sandbox/config", configure)
    return app
