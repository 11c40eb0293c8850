"""A Microsoft Graph v1.0 emulator for the calls the operator makes on applications.

It serves what msgraph-sdk 1.65 sends and parses (the shapes come from its generated models):

  GET  /v1.0/applications/{id}                      graph.getApplication   ($select honoured)
  GET  /v1.0/applications(appId='{appId}')          graph.getApplication
  GET  /v1.0/servicePrincipals/{id}                 graph.getServicePrincipal
  GET  /v1.0/servicePrincipals(appId='{appId}')     graph.getServicePrincipal
  POST /v1.0/{applications|servicePrincipals}{/id|(appId='…')}/addPassword     graph.addPassword
  POST /v1.0/{applications|servicePrincipals}{/id|(appId='…')}/removePassword  graph.removePassword

The directory (tenants → applications and service principals with their password
credentials and owners) is a plain in-memory object shared with the Entra token emulator,
which checks client secrets against it. The caller's tenant and identity come from the
bearer token (Graph URLs carry no tenant); only owners may read or write an object, as with
the ``Application.ReadWrite.OwnedBy`` permission. Secret text lives only in memory: it is
returned once by ``addPassword`` and never rendered in the state, the log or an error.

Control endpoints, besides those of ``rotator.sandbox.server``:

  POST /_sandbox/applications   seed an application (and its service principal, passwords)
  POST /_sandbox/config         {"maxPasswords", "maxLifetimeSeconds", "writeSeconds"}
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hmac
import re
import secrets
import string
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from aiohttp import web

from rotator.sandbox import server, tokens

Kind = Literal["application", "servicePrincipal"]

GRAPH_ROOT = "https://graph.microsoft.com/v1.0"
DEFAULT_MAX_PASSWORDS = 10
DEFAULT_WRITE_SECONDS = 0.05
DEFAULT_PASSWORD_LIFETIME = datetime.timedelta(days=730)  # Graph's default: two years

# Entra client secrets look like `abc8Q~` + 34 characters; the first three are the hint.
_SECRET_ALPHABET = string.ascii_letters + string.digits + "_-.~"


def new_secret_text() -> str:
    head = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(3))
    tail = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(34))
    return f"{head}8Q~{tail}"


def graph_datetime(moment: datetime.datetime) -> str:
    """Graph's rendering: UTC, ``Z``, seven fractional digits when there is a fraction."""
    moment = moment.astimezone(datetime.UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_datetime(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    moment = datetime.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


@dataclasses.dataclass
class PasswordCredential:
    """One client secret. ``created`` (epoch seconds) drives the propagation delay."""

    key_id: str
    display_name: str | None
    start: datetime.datetime
    end: datetime.datetime
    created: float
    secret_text: str = dataclasses.field(repr=False)

    @property
    def hint(self) -> str:
        return self.secret_text[:3]

    def to_json(self) -> dict[str, Any]:
        """The Graph representation, without ``secretText`` (Graph never shows it again)."""
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": graph_datetime(self.end),
            "hint": self.hint,
            "keyId": self.key_id,
            "secretText": None,
            "startDateTime": graph_datetime(self.start),
        }

    def matches(self, text: str) -> bool:
        return hmac.compare_digest(self.secret_text.encode(), text.encode())


@dataclasses.dataclass
class DirectoryObject:
    """An application or a service principal: the objects that can hold passwords."""

    kind: Kind
    object_id: str
    app_id: str
    display_name: str
    owners: set[str] = dataclasses.field(default_factory=set)  # appIds of owning clients
    password_credentials: list[PasswordCredential] = dataclasses.field(default_factory=list)
    writing: bool = False  # a write is in flight: another one is a concurrency violation

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.object_id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "passwordCredentials": [p.to_json() for p in self.password_credentials],
            "keyCredentials": [],
            "deletedDateTime": None,
        }
        if self.kind == "application":
            body["signInAudience"] = "AzureADMyOrg"
        else:
            body["appDisplayName"] = self.display_name
            body["accountEnabled"] = True
            body["servicePrincipalType"] = "Application"
        return body


@dataclasses.dataclass
class Tenant:
    tenant_id: str
    applications: dict[str, DirectoryObject] = dataclasses.field(default_factory=dict)
    service_principals: dict[str, DirectoryObject] = dataclasses.field(default_factory=dict)

    def collection(self, kind: Kind) -> dict[str, DirectoryObject]:
        return self.applications if kind == "application" else self.service_principals

    def find(
        self, kind: Kind, *, object_id: str | None = None, app_id: str | None = None
    ) -> DirectoryObject | None:
        objects = self.collection(kind)
        if object_id is not None:
            return objects.get(object_id.lower())
        for obj in objects.values():
            if app_id is not None and obj.app_id.lower() == app_id.lower():
                return obj
        return None

    def by_app_id(self, app_id: str) -> list[DirectoryObject]:
        """The application and service principal of a client id, as Entra sees them."""
        return [
            obj
            for obj in (
                self.find("application", app_id=app_id),
                self.find("servicePrincipal", app_id=app_id),
            )
            if obj is not None
        ]


@dataclasses.dataclass
class Directory:
    """Every tenant the sandbox knows, and the knobs that shape Graph's and Entra's answers.

    ``clock`` returns epoch seconds; tests pass their own to move time without sleeping.
    """

    tenants: dict[str, Tenant] = dataclasses.field(default_factory=dict)
    max_passwords: int = DEFAULT_MAX_PASSWORDS
    max_lifetime: float | None = None  # seconds; None = no app management policy
    write_seconds: float = DEFAULT_WRITE_SECONDS
    propagation_delay: float = 0.0  # seconds before a new secret authenticates
    clock: Callable[[], float] = time.time

    def now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.clock(), datetime.UTC)

    def tenant(self, tenant_id: str) -> Tenant | None:
        return self.tenants.get(tenant_id.lower())

    def ensure_tenant(self, tenant_id: str) -> Tenant:
        return self.tenants.setdefault(tenant_id.lower(), Tenant(tenant_id.lower()))

    def seed_application(
        self,
        tenant_id: str,
        display_name: str,
        *,
        app_id: str | None = None,
        object_id: str | None = None,
        service_principal_id: str | None = None,
        owners: Iterable[str] = (),
        service_principal: bool = True,
    ) -> tuple[DirectoryObject, DirectoryObject | None]:
        """An application (and by default its service principal), both owned by ``owners``."""
        tenant = self.ensure_tenant(tenant_id)
        app_id = (app_id or str(uuid.uuid4())).lower()
        application = DirectoryObject(
            kind="application",
            object_id=(object_id or str(uuid.uuid4())).lower(),
            app_id=app_id,
            display_name=display_name,
            owners=set(owners),
        )
        tenant.applications[application.object_id] = application
        principal = None
        if service_principal:
            principal = DirectoryObject(
                kind="servicePrincipal",
                object_id=(service_principal_id or str(uuid.uuid4())).lower(),
                app_id=app_id,
                display_name=display_name,
                owners=set(owners),
            )
            tenant.service_principals[principal.object_id] = principal
        return application, principal

    def add_password(
        self,
        obj: DirectoryObject,
        *,
        display_name: str | None = None,
        start: datetime.datetime | None = None,
        end: datetime.datetime | None = None,
        secret_text: str | None = None,
        propagated: bool = False,
    ) -> PasswordCredential:
        """A new credential on ``obj``; ``propagated`` makes it authenticate at once (seeding)."""
        now = self.now()
        start = start or now
        credential = PasswordCredential(
            key_id=str(uuid.uuid4()),
            display_name=display_name,
            start=start,
            end=end or start + DEFAULT_PASSWORD_LIFETIME,
            # Seeded secrets count as replicated long ago, whatever the delay becomes later.
            created=float("-inf") if propagated else self.clock(),
            secret_text=secret_text or new_secret_text(),
        )
        obj.password_credentials.append(credential)
        return credential

    def render(self) -> dict[str, Any]:
        """The state for ``/_sandbox/state``: everything but secret text."""
        return {
            "settings": {
                "maxPasswords": self.max_passwords,
                "maxLifetimeSeconds": self.max_lifetime,
                "writeSeconds": self.write_seconds,
                "propagationDelay": self.propagation_delay,
            },
            "tenants": {
                tid: {
                    "applications": [
                        {**a.to_json(), "owners": sorted(a.owners)}
                        for a in tenant.applications.values()
                    ],
                    "servicePrincipals": [
                        {**s.to_json(), "owners": sorted(s.owners)}
                        for s in tenant.service_principals.values()
                    ],
                }
                for tid, tenant in self.tenants.items()
            },
        }


# --- HTTP ---------------------------------------------------------------------------------

DIRECTORY_KEY: web.AppKey[Directory] = web.AppKey("graph_directory", Directory)
AUTHORITY_KEY: web.AppKey[tokens.TokenAuthority] = web.AppKey(
    "graph_authority", tokens.TokenAuthority
)

_KINDS: dict[str, Kind] = {"applications": "application", "servicePrincipals": "servicePrincipal"}
# `/id` or the alternate key `(appId='…')`; aiohttp has already percent-decoded the path.
_REF = r"/[^/()]+|\([^/]*\)"
_ALT_KEY = re.compile(r"""^\(appId=(['"])(?P<app_id>[^'"]*)\1\)$""")


class GraphError(Exception):
    """An error answer in Graph's shape; never carries secret text."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def error_response(request: web.Request, error: GraphError) -> web.Response:
    now = datetime.datetime.now(datetime.UTC)
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": str(uuid.uuid4()),
                "client-request-id": request.headers.get("client-request-id", str(uuid.uuid4())),
            },
        }
    }
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/'
            'oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"'
        )
    return web.json_response(body, status=error.status, headers=headers)


def _not_found(ref: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{ref}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def _denied() -> GraphError:
    return GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    )


def _caller(request: web.Request) -> tuple[str, str]:
    """The (tenant id, client id) of a valid Graph bearer token, else 401."""
    token = tokens.bearer_of(request.headers.get("Authorization"))
    if token is None:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    claims = request.app[AUTHORITY_KEY].verify(token, tokens.GRAPH)
    if claims is None:
        raise GraphError(
            401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
        )
    return str(claims["tid"]), str(claims.get("appid") or claims.get("azp"))


def _target(request: web.Request) -> tuple[DirectoryObject, str]:
    """The object a request addresses (by objectId or appId) and the caller's client id."""
    tenant_id, client_id = _caller(request)
    kind = _KINDS[request.match_info["kind"]]
    ref = request.match_info["ref"]
    tenant = request.app[DIRECTORY_KEY].tenant(tenant_id)
    alternate = _ALT_KEY.match(ref)
    if ref.startswith("/"):
        shown = ref[1:]
        obj = tenant.find(kind, object_id=shown) if tenant else None
    elif alternate is not None:
        shown = alternate["app_id"]
        obj = tenant.find(kind, app_id=shown) if tenant else None
    else:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{ref}'.")
    if obj is None:
        raise _not_found(shown)
    if client_id not in obj.owners:
        raise _denied()
    return obj, client_id


def _select(body: dict[str, Any], request: web.Request, kind: Kind) -> dict[str, Any]:
    collection = "applications" if kind == "application" else "servicePrincipals"
    fields = [f.strip() for f in request.query.get("$select", "").split(",") if f.strip()]
    if not fields:
        return {"@odata.context": f"{GRAPH_ROOT}/$metadata#{collection}/$entity", **body}
    unknown = [f for f in fields if f not in body]
    if unknown:
        raise GraphError(
            400,
            "Request_BadRequest",
            f"Could not find a property named '{unknown[0]}' on type "
            f"'microsoft.graph.{'application' if kind == 'application' else 'servicePrincipal'}'.",
        )
    selected = {f: body[f] for f in fields}
    context = f"{GRAPH_ROOT}/$metadata#{collection}({','.join(fields)})/$entity"
    return {"@odata.context": context, **selected}


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body


class _Write:
    """Holds an object for ``write_seconds``; a second write meanwhile is refused with 409.

    Real Graph answers Directory_ConcurrencyViolation when two writes to one object race; the
    hold makes the window wide enough for a test to hit it on purpose.
    """

    def __init__(self, directory: Directory, obj: DirectoryObject) -> None:
        self.directory = directory
        self.obj = obj

    async def __aenter__(self) -> None:
        if self.obj.writing:
            raise GraphError(
                409,
                "Directory_ConcurrencyViolation",
                "Another object with the same value for property passwordCredentials is being "
                "updated concurrently. Please retry the operation.",
            )
        self.obj.writing = True
        if self.directory.write_seconds > 0:
            await asyncio.sleep(self.directory.write_seconds)

    async def __aexit__(self, *exc: object) -> None:
        self.obj.writing = False


async def get_object(request: web.Request) -> web.Response:
    try:
        obj, _ = _target(request)
        return web.json_response(_select(obj.to_json(), request, obj.kind))
    except GraphError as error:
        return error_response(request, error)


async def add_password(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY_KEY]
    try:
        obj, _ = _target(request)
        body = await _json_body(request)
        wanted = body.get("passwordCredential") or {}
        if not isinstance(wanted, dict):
            raise GraphError(400, "BadRequest", "Invalid passwordCredential.")
        try:
            start = parse_datetime(wanted.get("startDateTime")) or directory.now()
            end = parse_datetime(wanted.get("endDateTime")) or start + DEFAULT_PASSWORD_LIFETIME
        except ValueError:
            raise GraphError(400, "BadRequest", "Invalid date time value.") from None
        if end <= start:
            raise GraphError(
                400, "Request_BadRequest", "Credential end date must be after the start date."
            )
        if (
            directory.max_lifetime is not None
            and (end - start).total_seconds() > directory.max_lifetime
        ):
            raise GraphError(
                400,
                "CredentialInvalidLifetimeAsPerAppPolicy",
                "Credential lifetime exceeds the max value allowed as per assigned policy.",
            )
        async with _Write(directory, obj):
            if len(obj.password_credentials) >= directory.max_passwords:
                raise GraphError(
                    400,
                    "TooManyAppPasswords",
                    f"The number of password credentials on this object would exceed the limit "
                    f"of {directory.max_passwords}.",
                )
            display_name = wanted.get("displayName")
            credential = directory.add_password(
                obj,
                display_name=str(display_name) if display_name is not None else None,
                start=start,
                end=end,
            )
        result = credential.to_json()
        result["secretText"] = credential.secret_text
        context = f"{GRAPH_ROOT}/$metadata#microsoft.graph.passwordCredential"
        return web.json_response({"@odata.context": context, **result})
    except GraphError as error:
        return error_response(request, error)


async def remove_password(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY_KEY]
    try:
        obj, _ = _target(request)
        body = await _json_body(request)
        key_id = str(body.get("keyId") or "").lower()
        try:
            uuid.UUID(key_id)
        except ValueError:
            raise GraphError(
                400, "Request_BadRequest", "Invalid value specified for property 'keyId'."
            ) from None
        async with _Write(directory, obj):
            remaining = [p for p in obj.password_credentials if p.key_id != key_id]
            if len(remaining) == len(obj.password_credentials):
                raise GraphError(
                    400,
                    "Request_BadRequest",
                    f"No password credential found with keyId {key_id}.",
                )
            obj.password_credentials[:] = remaining
        return web.Response(status=204)
    except GraphError as error:
        return error_response(request, error)


# --- control ------------------------------------------------------------------------------


async def seed_application(request: web.Request) -> web.Response:
    """Seed one application: the body names tenant, ids, owners and passwords to create.

    ``{"tenantId", "displayName", "appId"?, "objectId"?, "servicePrincipalId"?,
    "servicePrincipal": true, "owners": [clientId…], "passwords": [{"on":
    "application"|"servicePrincipal", "displayName"?, "endDateTime"?, "propagated": true}]}``
    The answer carries the created passwords' secret text: the seeder needs it (this is the
    sandbox's control plane, never a Graph answer) and it is not logged.
    """
    directory = request.app[DIRECTORY_KEY]
    body = await request.json()
    application, principal = directory.seed_application(
        str(body["tenantId"]),
        str(body.get("displayName", "sandbox-app")),
        app_id=body.get("appId"),
        object_id=body.get("objectId"),
        service_principal_id=body.get("servicePrincipalId"),
        owners=[str(o) for o in body.get("owners", [])],
        service_principal=bool(body.get("servicePrincipal", True)),
    )
    created = []
    for item in body.get("passwords", []):
        holder = principal if item.get("on") == "servicePrincipal" else application
        if holder is None:
            raise web.HTTPBadRequest(text="passwords on a servicePrincipal need one")
        credential = directory.add_password(
            holder,
            display_name=item.get("displayName"),
            end=parse_datetime(item.get("endDateTime")),
            propagated=bool(item.get("propagated", True)),
        )
        created.append(
            {"on": holder.kind, **credential.to_json(), "secretText": credential.secret_text}
        )
    return web.json_response(
        {
            "tenantId": body["tenantId"],
            "appId": application.app_id,
            "objectId": application.object_id,
            "servicePrincipalId": principal.object_id if principal else None,
            "passwords": created,
        },
        status=201,
    )


async def configure(request: web.Request) -> web.Response:
    directory = request.app[DIRECTORY_KEY]
    body = await request.json()
    if "maxPasswords" in body:
        directory.max_passwords = int(body["maxPasswords"])
    if "maxLifetimeSeconds" in body:
        value = body["maxLifetimeSeconds"]
        directory.max_lifetime = None if value is None else float(value)
    if "writeSeconds" in body:
        directory.write_seconds = float(body["writeSeconds"])
    if "propagationDelay" in body:
        directory.propagation_delay = float(body["propagationDelay"])
    return web.json_response(directory.render()["settings"])


def make_app(
    directory: Directory, *, authority: tokens.TokenAuthority, seed: int = 0
) -> web.Application:
    """The Graph emulator over ``directory``, accepting tokens of ``authority``."""
    app = server.make_app(directory.render, seed=seed)
    app[DIRECTORY_KEY] = directory
    app[AUTHORITY_KEY] = authority
    ref = "{ref:" + _REF + "}"
    both = "/v1.0/{kind:applications|servicePrincipals}" + ref
    add = app.router.add_route
    add("GET", "/v1.0/{kind:applications}" + ref, get_object, name="graph.getApplication")
    add("GET", "/v1.0/{kind:servicePrincipals}" + ref, get_object, name="graph.getServicePrincipal")
    add("POST", both + "/addPassword", add_password, name="graph.addPassword")
    add("POST", both + "/removePassword", remove_password, name="graph.removePassword")
    app.router.add_post("/_sandbox/applications", seed_application)
    app.router.add_post("/_sandbox/config", configure)
    return app
