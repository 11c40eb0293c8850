"""Typed models of the three kinds: specs parsed from CR bodies, statuses parsed and rendered.

Specs (``ServicePrincipalSecretSpec``, ``DatabricksSecretBindingSpec``, ``RotationPolicySpec``)
are frozen pydantic models built with ``from_body(body)``. They re-check what the CRDs
validate (defence in depth: a CRD installed without validation, an older CRD, or ``kubectl
replace --validate=false`` must give the user a ``Stalled`` condition, never crash the
operator) and raise one :class:`rotator.core.errors.SpecError` naming every bad field by its
path (``spec.rotation.renewBefore``). Unknown fields are ignored: the API server prunes them,
and a newer CRD field must not stall an older operator.

Statuses (``ServicePrincipalSecretStatus``, ``DatabricksSecretBindingStatus``) follow
``docs/design.md``: camelCase keys, times as RFC 3339 UTC with a ``Z`` and whole seconds.
``to_dict()`` renders without empty fields (for display and tests); ``to_patch()`` renders
*with* explicit ``null`` for every absent field, because status is written with a JSON merge
patch, where an omitted key keeps its old value (a cleared ``rotation`` must be ``null``).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Self

import pydantic
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from rotator.core import clocks, durations, errors, reasons

# --- Shared value types --------------------------------------------------------------------

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# A verified domain of a tenant (contoso.onmicrosoft.com) is accepted wherever a tenant id is.
_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$"
)
_DNS1123_SUBDOMAIN = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$"
)
_DNS1123_LABEL = re.compile(r"^(?=.{1,63}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_KV_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
_DBX_SCOPE = re.compile(r"^[\w.@-]{1,128}$", re.ASCII)
_DBX_KEY = re.compile(r"^[\w.-]{1,128}$", re.ASCII)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SPARK_CONF_KEY = re.compile(r"^[^\s=]{1,512}$")

#: Tag names the operator writes on Key Vault versions; users may not set ``rotator.dev/`` tags.
RESERVED_TAG_PREFIX: Final = "rotator.dev/"
#: Key Vault allows 15 tags per secret; the operator needs two (key id, rotation id).
MAX_USER_TAGS: Final = 13
#: The annotation that requests a manual rotation (any new value, like ``cmctl renew``).
ROTATE_ANNOTATION: Final = "rotator.dev/rotate"


def _fail(problem: str) -> PydanticCustomError:
    return PydanticCustomError("rotator", "{problem}", {"problem": problem})


def _fail_at(field: str, problem: str) -> PydanticCustomError:
    # ``field`` is appended to the location of a model-level check, so the message points at
    # the field the user must edit, not at its parent object.
    return PydanticCustomError("rotator", "{problem}", {"problem": problem, "field": field})


def normalize_url(url: str) -> str:
    """``https://Host[:port]`` lowercased, default port and trailing slash dropped.

    Raises ``ValueError`` for anything but a bare https origin: a path, query, fragment or
    credentials in a vault or workspace URL is a mistake we should report, not guess around.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"{url!r} is not a valid URL") from exc
    if parts.scheme.lower() != "https":
        raise ValueError(f"must be an https:// URL, got {url!r}")
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain credentials")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"must be just https://host, without a path or query, got {url!r}")
    host = parts.hostname.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"https://{host}" + (f":{port}" if port not in (None, 443) else "")


def _url(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return normalize_url(value)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _guid(value: Any) -> Any:
    if isinstance(value, str) and not _GUID.match(value):
        raise _fail(f"must be a GUID like 11111111-2222-3333-4444-555555555555, got {value!r}")
    return value.lower() if isinstance(value, str) else value


def _tenant(value: Any) -> Any:
    if isinstance(value, str) and not (_GUID.match(value) or _DOMAIN.match(value)):
        raise _fail(f"must be a tenant GUID or a verified domain name, got {value!r}")
    return value.lower() if isinstance(value, str) else value


def _pattern(regex: re.Pattern[str], what: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str) and not regex.match(value):
            raise _fail(f"{value!r} is not a valid {what}")
        return value

    return check


def _duration(value: Any) -> Any:
    if isinstance(value, dt.timedelta):
        return value
    try:
        return durations.parse_duration(value)
    except durations.DurationError as exc:
        raise _fail(str(exc)) from None


def parse_time(value: str) -> dt.datetime:
    """An RFC 3339 time (``Z`` or an offset) as an aware UTC datetime."""
    parsed = dt.datetime.fromisoformat(value)
    return clocks.ensure_utc(parsed)


def format_time(value: dt.datetime) -> str:
    """RFC 3339 UTC with ``Z`` and whole seconds, as Kubernetes writes times."""
    return clocks.ensure_utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return clocks.ensure_utc(value).replace(microsecond=0)
    if isinstance(value, str):
        try:
            return parse_time(value).replace(microsecond=0)
        except ValueError:
            raise _fail(f"{value!r} is not an RFC 3339 time") from None
    return value


Guid = Annotated[str, pydantic.BeforeValidator(_guid)]
TenantId = Annotated[str, pydantic.BeforeValidator(_tenant)]
HttpsUrl = Annotated[str, pydantic.AfterValidator(_url)]
Duration = Annotated[
    dt.timedelta,
    pydantic.BeforeValidator(_duration),
    pydantic.PlainSerializer(durations.format_duration, return_type=str),
]
#: A UTC time; rendered as ``2026-11-26T05:00:00Z``. Sub-second parts are dropped on parse.
Time = Annotated[
    dt.datetime,
    pydantic.BeforeValidator(_time),
    pydantic.PlainSerializer(format_time, return_type=str),
]
ObjectName = Annotated[
    str, pydantic.AfterValidator(_pattern(_DNS1123_SUBDOMAIN, "Kubernetes object name"))
]
NamespaceName = Annotated[str, pydantic.AfterValidator(_pattern(_DNS1123_LABEL, "namespace name"))]


class _Model(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        str_strip_whitespace=False,
    )


class _SpecModel(_Model):
    """A spec parsed from a CR body, reporting errors as :class:`SpecError`."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Self:
        """Parse ``body["spec"]`` (a CR body as kopf or the API gives it)."""
        spec = body.get("spec")
        if not isinstance(spec, Mapping):
            raise errors.SpecError("spec", "is required and must be an object")
        return cls.from_spec(spec)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Self:
        """Parse a ``spec`` mapping; errors are reported under ``spec.``."""
        try:
            return cls.model_validate(dict(spec))
        except pydantic.ValidationError as exc:
            raise _spec_error(exc, "spec") from None


def _describe(err: Any) -> str:
    kind = err.get("type")
    if kind == "missing":
        return "is required"
    ctx = err.get("ctx") or {}
    if kind == "rotator":
        return str(ctx.get("problem", err.get("msg", "is invalid")))
    msg = str(err.get("msg", "is invalid"))
    # pydantic says "Input should be ..."; a spec reader expects "must be ...".
    return re.sub(r"^Input should be", "must be", msg)


def _spec_error(exc: pydantic.ValidationError, root: str) -> errors.SpecError:
    found: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc: list[Any] = list(err.get("loc", ()))
        ctx = err.get("ctx") or {}
        if ctx.get("field"):
            loc.append(ctx["field"])
        # Drop pydantic's internal markers for Annotated/function validators.
        loc = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
        path = root
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        pair = (path, _describe(err))
        if pair not in found:
            found.append(pair)
    first, *rest = found or [(root, "is invalid")]
    return errors.SpecError(first[0], first[1], tuple(rest))


# --- ServicePrincipalSecret ----------------------------------------------------------------

CredentialOwner = Literal["application", "servicePrincipal"]


class ApplicationRef(_Model):
    """Which Entra application; exactly one of ``clientId`` (appId) or ``objectId``."""

    client_id: Guid | None = None
    object_id: Guid | None = None
    credential_owner: CredentialOwner = "application"

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.client_id is None) == (self.object_id is None):
            field = "objectId" if self.client_id is not None else "clientId"
            raise _fail_at(field, "set exactly one of clientId or objectId")
        return self

    @property
    def id(self) -> str:
        """The identifier given (clientId or objectId), as policies and targets compare it."""
        return self.client_id if self.client_id is not None else str(self.object_id)


class Rotation(_Model):
    """Lifetimes: each secret lives ``validity``; rotation starts ``renewBefore`` its expiry."""

    validity: Duration = dt.timedelta(days=90)
    renew_before: Duration = dt.timedelta(days=30)
    overlap: Duration = dt.timedelta(hours=24)

    @pydantic.model_validator(mode="after")
    def _renew_inside_validity(self) -> Self:
        if self.renew_before >= self.validity:
            raise _fail_at(
                "renewBefore",
                f"must be shorter than validity ({durations.format_duration(self.validity)}), "
                f"got {durations.format_duration(self.renew_before)}",
            )
        return self


def _check_tags(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if len(value) > MAX_USER_TAGS:
        raise _fail(f"at most {MAX_USER_TAGS} tags (Key Vault allows 15, rotator uses 2)")
    for name, tag in value.items():
        if str(name).startswith(RESERVED_TAG_PREFIX):
            raise _fail(f"tag {name!r}: the {RESERVED_TAG_PREFIX} prefix is reserved")
        if not 1 <= len(str(name)) <= 512:
            raise _fail(f"tag names are 1 to 512 characters, got {len(str(name))}")
        if isinstance(tag, str) and len(tag) > 256:
            raise _fail(f"tag {name!r}: values are at most 256 characters")
    return value


STAGING_SUFFIX: Final = "-rotator-staging"


def _kv_secret_name(value: Any) -> Any:
    if isinstance(value, str):
        if not _KV_NAME.match(value):
            raise _fail(f"{value!r} is not a Key Vault secret name ([0-9a-zA-Z-], 1 to 127)")
        if value.endswith(STAGING_SUFFIX):
            raise _fail(f"names ending in {STAGING_SUFFIX!r} are reserved for staging")
    return value


KeyVaultSecretName = Annotated[str, pydantic.AfterValidator(_kv_secret_name)]


class KeyVaultTarget(_Model):
    """Where the current secret is stored: a named secret in one vault."""

    vault_url: HttpsUrl
    secret_name: KeyVaultSecretName
    content_type: Annotated[str, pydantic.Field(max_length=255)] | None = None
    tags: Annotated[dict[str, str], pydantic.AfterValidator(_check_tags)] = pydantic.Field(
        default_factory=dict
    )


class Verify(_Model):
    """Prove a new secret authenticates before anyone uses it."""

    enabled: bool = True
    timeout: Duration = dt.timedelta(minutes=5)


class ServicePrincipalSecretSpec(_SpecModel):
    """``spec`` of a ServicePrincipalSecret (see PRODUCT.md)."""

    tenant_id: TenantId
    application: ApplicationRef
    rotation: Rotation = pydantic.Field(default_factory=Rotation)
    key_vault: KeyVaultTarget
    verify: Verify = pydantic.Field(default_factory=Verify)
    suspend: bool = False
    deletion_policy: Literal["Retain", "Revoke"] = "Retain"

    @property
    def target(self) -> str:
        """What a secret is issued for; when it changes the current secret must be re-issued."""
        return "/".join(
            (
                self.tenant_id,
                self.application.id,
                self.application.credential_owner,
                self.key_vault.vault_url,
                self.key_vault.secret_name,
            )
        )


# --- DatabricksSecretBinding ---------------------------------------------------------------


class LocalObjectRef(_Model):
    """A ServicePrincipalSecret in the same namespace."""

    name: ObjectName


class KeyVaultSource(_Model):
    """Any Key Vault secret, rotated by anyone: the binding follows its latest version."""

    vault_url: HttpsUrl
    secret_name: Annotated[
        str, pydantic.AfterValidator(_pattern(_KV_NAME, "Key Vault secret name"))
    ]


class BindingSource(_Model):
    """Where the value comes from; exactly one of the two."""

    service_principal_secret_ref: LocalObjectRef | None = None
    key_vault: KeyVaultSource | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.service_principal_secret_ref is None) == (self.key_vault is None):
            raise _fail("set exactly one of servicePrincipalSecretRef or keyVault")
        return self


class SecretKeyRef(_Model):
    """A key of a Kubernetes Secret in the same namespace."""

    name: ObjectName
    key: Annotated[str, pydantic.AfterValidator(_pattern(_SECRET_KEY, "Secret key"))]


class WorkspaceAuth(_Model):
    """How to authenticate to the workspace; absent means the operator's own Azure identity."""

    pat_secret_ref: SecretKeyRef | None = None


class Workspace(_Model):
    """One Databricks workspace."""

    host: HttpsUrl
    auth: WorkspaceAuth | None = None


class Scope(_Model):
    """The secret scope and key the value is written to (or, if KV-backed, read from)."""

    name: Annotated[str, pydantic.AfterValidator(_pattern(_DBX_SCOPE, "Databricks scope name"))]
    key: Annotated[str, pydantic.AfterValidator(_pattern(_DBX_KEY, "Databricks secret key"))]
    create: bool = False

    @property
    def reference(self) -> str:
        """The ``{{secrets/<scope>/<key>}}`` reference jobs carry in their settings."""
        return "{{secrets/" + self.name + "/" + self.key + "}}"


class JobRef(_Model):
    """A Databricks job whose clusters must reference the secret; exactly one of name / id."""

    job_name: Annotated[str, pydantic.Field(min_length=1, max_length=4096)] | None = None
    job_id: Annotated[int, pydantic.Field(gt=0)] | None = None
    env: tuple[
        Annotated[str, pydantic.AfterValidator(_pattern(_ENV_NAME, "environment variable"))],
        ...,
    ] = ()
    spark_conf: tuple[
        Annotated[str, pydantic.AfterValidator(_pattern(_SPARK_CONF_KEY, "Spark conf key"))],
        ...,
    ] = ()
    restart: Literal["IfRunning", "Never"] = "Never"

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.job_name is None) == (self.job_id is None):
            raise _fail("set exactly one of jobName or jobId")
        return self

    @property
    def label(self) -> str:
        """How messages name this job."""
        return f"job {self.job_name!r}" if self.job_name is not None else f"job {self.job_id}"


def _unique_jobs(value: Any) -> Any:
    if isinstance(value, tuple):
        seen: set[tuple[str, object]] = set()
        for job in value:
            key = ("name", job.job_name) if job.job_name is not None else ("id", job.job_id)
            if key in seen:
                raise _fail(f"{job.label} is listed twice")
            seen.add(key)
    return value


class DatabricksSecretBindingSpec(_SpecModel):
    """``spec`` of a DatabricksSecretBinding (see PRODUCT.md)."""

    source: BindingSource
    workspace: Workspace
    scope: Scope
    jobs: Annotated[tuple[JobRef, ...], pydantic.AfterValidator(_unique_jobs)] = ()


# --- RotationPolicy ------------------------------------------------------------------------


class LabelSelectorRequirement(_Model):
    """One ``matchExpressions`` entry, with Kubernetes semantics."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @pydantic.model_validator(mode="after")
    def _values_fit_operator(self) -> Self:
        if self.operator in ("In", "NotIn") and not self.values:
            raise _fail_at("values", f"must not be empty for operator {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise _fail_at("values", f"must be empty for operator {self.operator}")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this requirement."""
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


class LabelSelector(_Model):
    """A Kubernetes label selector; an empty selector matches every namespace."""

    match_labels: dict[str, str] = pydantic.Field(default_factory=dict)
    match_expressions: tuple[LabelSelectorRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every term (AND, as Kubernetes does)."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            req.matches(labels) for req in self.match_expressions
        )


class RotationPolicySpec(_SpecModel):
    """``spec`` of a RotationPolicy. ``None`` on a list means "no restriction on that axis"."""

    namespaces: tuple[NamespaceName, ...] | None = None
    namespace_selector: LabelSelector | None = None
    tenants: tuple[TenantId, ...] | None = None
    applications: tuple[Guid, ...] | None = None
    key_vaults: tuple[HttpsUrl, ...] | None = None
    databricks_workspaces: tuple[HttpsUrl, ...] | None = None
    max_validity: Duration | None = None

    @pydantic.model_validator(mode="after")
    def _selects_namespaces(self) -> Self:
        # A policy that names no namespace would otherwise silently grant nothing (or, worse,
        # be read as granting everything); make the author say which.
        if self.namespaces is None and self.namespace_selector is None:
            raise _fail_at(
                "namespaces",
                "set namespaces and/or namespaceSelector (namespaceSelector: {} selects all)",
            )
        return self


# --- Object metadata -----------------------------------------------------------------------


class ResourceMeta(_Model):
    """The parts of ``metadata`` the core decides on."""

    name: str
    namespace: str | None = None
    uid: str = ""
    generation: int = 0
    annotations: dict[str, str] = pydantic.Field(default_factory=dict)
    labels: dict[str, str] = pydantic.Field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ResourceMeta:
        """Read ``body["metadata"]``; the API server guarantees a name."""
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta.get("name", "")),
            namespace=meta.get("namespace"),
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            annotations=dict(meta.get("annotations") or {}),
            labels=dict(meta.get("labels") or {}),
        )

    @property
    def rotate_request(self) -> str | None:
        """The value of the ``rotator.dev/rotate`` annotation, if set."""
        return self.annotations.get(ROTATE_ANNOTATION)


# --- Status --------------------------------------------------------------------------------


class Step(enum.StrEnum):
    """The steps of a rotation, in order (docs/design.md, "The rotation journal")."""

    PLAN = "Plan"  # choose id, displayName and expiresAt; nothing exists outside status yet
    MINT = "Mint"  # Graph addPassword (no SDK retry)
    STAGE = "Stage"  # write the text to <secretName>-rotator-staging
    VERIFY = "Verify"  # acquire a token with the new secret
    STORE = "Store"  # set_secret on the real name: the only write consumers see
    PROMOTE = "Promote"  # status: current <- new, old current -> retiring


class Phase(enum.StrEnum):
    """Whether the journal's step is running (written before) or finished (written after)."""

    STARTED = "Started"
    DONE = "Done"


class Condition(_Model):
    """A kstatus-compatible condition."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: Time
    observed_generation: int | None = None


class CurrentSecret(_Model):
    """The secret consumers should be using (never its value)."""

    key_id: str
    hint: str | None = None
    display_name: str | None = None
    expires_at: Time
    key_vault_version: str | None = None
    target: str | None = None


class RetiringSecret(_Model):
    """An older secret, still valid in Graph, waiting to be revoked."""

    key_id: str
    hint: str | None = None
    display_name: str | None = None
    expires_at: Time | None = None
    superseded_at: Time
    retire_at: Time | None = None


class RotationJournal(_Model):
    """The in-flight rotation: ``step``/``phase`` plus what each finished step produced."""

    id: str
    reason: str
    step: Step
    phase: Phase
    started_at: Time
    display_name: str
    expires_at: Time
    key_id: str | None = None
    hint: str | None = None
    staging_version: str | None = None
    key_vault_version: str | None = None
    attempts: int = 1
    target: str | None = None


class _StatusModel(_Model):
    @classmethod
    def from_dict(cls, status: Mapping[str, Any] | None) -> Self:
        """Parse a status mapping (``None`` or ``{}`` gives the empty status).

        A status someone edited by hand into a wrong shape raises a PermanentError: the
        operator must not act on a journal it cannot read.
        """
        try:
            return cls.model_validate(dict(status or {}))
        except pydantic.ValidationError as exc:
            err = _spec_error(exc, "status")
            raise errors.PermanentError(
                f"status is unreadable: {err.message}", reasons.INVALID_STATUS
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """camelCase JSON without absent fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def to_patch(self) -> dict[str, Any]:
        """camelCase JSON with ``null`` for absent fields: a merge patch that clears them."""
        return self.model_dump(mode="json", by_alias=True)


class ServicePrincipalSecretStatus(_StatusModel):
    """``status`` of a ServicePrincipalSecret (docs/design.md)."""

    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    current: CurrentSecret | None = None
    retiring: tuple[RetiringSecret, ...] = ()
    last_rotation_time: Time | None = None
    next_rotation_time: Time | None = None
    rotation: RotationJournal | None = None
    failures: int = 0
    last_error: str = ""
    last_failure_time: Time | None = None
    rotate_request: str | None = None


class JobStatus(_Model):
    """What the last sync did to one job."""

    job_name: str | None = None
    job_id: int | None = None
    changed: bool = False
    restarted_runs: int = 0
    message: str = ""


class DatabricksSecretBindingStatus(_StatusModel):
    """``status`` of a DatabricksSecretBinding (docs/design.md)."""

    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    synced_version: str | None = None
    synced_key_id: str | None = None
    last_sync_time: Time | None = None
    jobs: tuple[JobStatus, ...] = ()
    failures: int = 0
    last_error: str = ""
    last_failure_time: Time | None = None
