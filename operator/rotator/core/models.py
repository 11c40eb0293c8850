"""Typed models of the three kinds: specs parsed from CR bodies, statuses parsed and rendered.

Specs (``ServicePrincipalSecretSpec``, ``DatabricksSecretBindingSpec``, ``RotationPolicySpec``)
are frozen pydantic models built with ``from_body(body)``. They re-check what the CRDs
validate (defence in depth: a CRD installed without validation, an older CRD, or ``kubectl
replace --validate=false`` must give the user a ``Stalled`` condition, never crash the
operator) and raise one :class:`rotator.core.errors.SpecError` naming every bad field by its
path (``spec.rotation.renewBefore``); ``tests/core/test_models_vs_manifests.py`` proves that
for every manifest in ``tests/manifests/invalid/``. Unknown fields are ignored: the API
server prunes them, and a newer CRD field must not stall an older operator.

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
# The URL rule of the CRDs, verbatim: https, a host of letters, digits, dashes and dots (so no
# IPv6 literal, no underscore), an optional port and slash. normalize_url() explains most
# misses more precisely; this catches what it would let through.
_CRD_URL = re.compile(
    r"^https://[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?([.][a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(:[0-9]{1,5})?/?$"
)
_MAX_URL: Final = 2048
# One field's problem in a SpecError, at most (it may quote the offending value).
_MAX_PROBLEM: Final = 300
# Durations as the CRDs accept them: at most 9 digits per number, at most 40 characters.
_MAX_DURATION_DIGITS: Final = 9
_MAX_DURATION_TEXT: Final = 40
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
#: Entra ID caps client secrets at two years; ``rotation.validity`` and ``maxValidity`` too.
MAX_VALIDITY: Final = dt.timedelta(days=730)
#: ``validity - renewBefore`` at least: a new secret is not due again within a minute. The
#: CRD refuses less; the storm limit (rotator.core.storms) bounds what is left.
MIN_ROTATION_GAP: Final = dt.timedelta(minutes=1)
#: ``rotator.dev/rotate`` values the operator acts on (and copies into status): at most 63
#: printable ASCII characters, like a label value; a timestamp or a ticket id fits.
MAX_ROTATE_REQUEST: Final = 63
_ROTATE_REQUEST = re.compile(r"^[\x20-\x7e]*$")
#: Every message the operator writes to status (``lastError``, condition messages) is cut to
#: this many characters: an error text can quote user input or a service's answer.
MAX_MESSAGE: Final = 1024
#: The longest ``verify.timeout``: Entra ID propagation takes minutes, not hours.
MAX_VERIFY_TIMEOUT: Final = dt.timedelta(hours=1)
#: Key Vault secret names are at most 127 characters; ``<secretName>-rotator-staging`` must fit.
MAX_KV_NAME: Final = 127
#: The most jobs one DatabricksSecretBinding may list (the CRD's ``maxItems``).
MAX_JOBS: Final = 50


def _fail(problem: str) -> PydanticCustomError:
    return PydanticCustomError("rotator", "{problem}", {"problem": problem})


def _fail_at(field: str, problem: str) -> PydanticCustomError:
    # ``field`` is appended to the location of a model-level or list-level check, so the
    # message points at the field the user must edit, not at its parent: ``renewBefore``
    # gives ``spec.rotation.renewBefore``, ``[1].jobId`` gives ``spec.jobs[1].jobId``.
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
    if len(value) > _MAX_URL:
        raise _fail(f"must be at most {_MAX_URL} characters, got {len(value)}")
    try:
        normal = normalize_url(value)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    # The scheme is compared case-insensitively (RFC 3986), unlike the CRDs' regex: an
    # upper-case HTTPS:// is harmless once normalised, and policies written that way parse.
    if not _CRD_URL.match("https://" + value[len("https://") :]):
        raise _fail(
            "must be https:// and a host of letters, digits, dashes and dots, with an "
            f"optional port and no path, like https://kv-data-eng.vault.azure.net, got {value!r}"
        )
    return normal


def _guid(value: Any) -> Any:
    if isinstance(value, str) and not _GUID.match(value):
        raise _fail(f"must be a GUID like 11111111-2222-3333-4444-555555555555, got {value!r}")
    return value.lower() if isinstance(value, str) else value


def _tenant(value: Any) -> Any:
    # Only the GUID, as the CRDs require: a domain name can be renamed or moved to another
    # tenant, and policies compare tenants by identity.
    if isinstance(value, str) and not _GUID.match(value):
        raise _fail(
            f"must be a tenant GUID like 00000000-0000-0000-0000-0000000000aa, got {value!r}"
            + (" (a domain name is not accepted)" if "." in value else "")
        )
    return value.lower() if isinstance(value, str) else value


def _length(low: int, high: int, what: str = "characters") -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str) and not low <= len(value) <= high:
            raise _fail(f"must be {low} to {high} {what} long, got {len(value)}")
        return value

    return check


def _items(limit: int, what: str, *, unique: bool = False) -> Any:
    """A list field's ``maxItems`` and, with ``unique``, its ``x-kubernetes-list-type: set``.

    Checked on the raw list, before any item is normalised: the API server compares the
    values as written, so ``AA`` and ``aa`` are two entries there, and here too.
    """

    def check(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            return value
        if len(value) > limit:
            raise _fail(f"at most {limit} {what}, got {len(value)}")
        if unique:
            seen: dict[tuple[type, Any], int] = {}
            for index, item in enumerate(value):
                try:
                    first = seen.setdefault((type(item), item), index)
                except TypeError:  # unhashable: the item's own type check reports it
                    continue
                if first != index:
                    raise _fail_at(f"[{index}]", f"duplicate value {item!r} (also at [{first}])")
        return value

    return check


def _name(low: int, high: int, regex: re.Pattern[str], what: str) -> Any:
    """A string with the CRD's ``minLength``/``maxLength`` and ``pattern``, length first.

    The length is checked first so a too-long value gets a message that says so, without
    echoing hundreds of characters back.
    """
    length, pattern = _length(low, high), _pattern(regex, what)
    return lambda value: pattern(length(value))


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
        parsed = durations.parse_duration(value)
    except durations.DurationError as exc:
        raise _fail(str(exc)) from None
    # The CRDs' grammar is a little narrower than durations': at most 9 digits per number and
    # 40 characters. With the maxima (730d, 1h) in force only leading zeros can tell them
    # apart, but the operator must not accept what the API server would refuse.
    if len(value) > _MAX_DURATION_TEXT:
        raise _fail(f"{value!r}: at most {_MAX_DURATION_TEXT} characters")
    if any(len(digits) > _MAX_DURATION_DIGITS for digits in re.findall(r"[0-9]+", value)):
        raise _fail(f"{value!r}: at most {_MAX_DURATION_DIGITS} digits per number")
    return parsed


def _at_most(limit: dt.timedelta, why: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, dt.timedelta) and value > limit:
            raise _fail(f"must be at most {_text(limit)} ({why}), got {_text(value)}")
        return value

    return check


def _text(value: dt.timedelta) -> str:
    # A timedelta built in Python (not parsed) may have no canonical text; say it anyway.
    try:
        return durations.format_duration(value)
    except durations.DurationError:
        return str(value)


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
    str, pydantic.AfterValidator(_name(1, 253, _DNS1123_SUBDOMAIN, "Kubernetes object name"))
]
NamespaceName = Annotated[
    str, pydantic.AfterValidator(_name(1, 63, _DNS1123_LABEL, "namespace name"))
]
#: Where the CRDs say ``type: boolean``: ``"yes"``, ``"true"`` or ``1`` is a mistake, not a bool.
Bool = pydantic.StrictBool


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
    return re.sub(r"^(?:Input|String|Tuple|Value) should", "must", msg)


def _spec_error(exc: pydantic.ValidationError, root: str) -> errors.SpecError:
    found: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False, include_input=False):
        loc: list[Any] = list(err.get("loc", ()))
        ctx = err.get("ctx") or {}
        # Drop pydantic's internal markers for Annotated/function validators.
        loc = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
        path = root
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else f".{part}"
        field = str(ctx.get("field") or "")
        if field:
            path += field if field.startswith("[") else f".{field}"
        # Bounded: a problem may quote the value, and a spec the CRD did not check can be huge.
        pair = (path, bounded(_describe(err), _MAX_PROBLEM))
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
    """Lifetimes: each secret lives ``validity``; rotation starts ``renewBefore`` its expiry.

    ``overlap < renewBefore < validity <= 730d``: an old secret must outlive its overlap.
    """

    validity: Annotated[
        Duration, pydantic.AfterValidator(_at_most(MAX_VALIDITY, "Entra ID caps client secrets"))
    ] = dt.timedelta(days=90)
    renew_before: Duration = dt.timedelta(days=30)
    overlap: Duration = dt.timedelta(hours=24)

    @pydantic.model_validator(mode="after")
    def _renew_inside_validity(self) -> Self:
        if self.renew_before >= self.validity:
            raise _fail_at(
                "renewBefore",
                f"must be shorter than validity ({_text(self.validity)}), "
                f"got {_text(self.renew_before)}",
            )
        if self.validity - self.renew_before < MIN_ROTATION_GAP:
            raise _fail_at(
                "renewBefore",
                f"must be at least {_text(MIN_ROTATION_GAP)} shorter than validity "
                f"({_text(self.validity)}), got {_text(self.renew_before)}: each new secret "
                "would be due for rotation again within a minute",
            )
        if self.overlap >= self.renew_before:
            raise _fail_at(
                "overlap",
                f"must be shorter than renewBefore ({_text(self.renew_before)}), got "
                f"{_text(self.overlap)}: the old secret would expire before its overlap ends",
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
            # At the tag itself, as the API server reports it: spec.keyVault.tags.owner.
            raise _fail_at(str(name), f"values are at most 256 characters, got {len(tag)}")
    return value


STAGING_SUFFIX: Final = "-rotator-staging"


#: The longest ``spec.keyVault.secretName``: 111 + len("-rotator-staging") = 127.
MAX_SECRET_NAME: Final = MAX_KV_NAME - len(STAGING_SUFFIX)


def _kv_secret_name(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_SECRET_NAME:
            raise _fail(
                f"must be at most {MAX_SECRET_NAME} characters, got {len(value)}, so that "
                f"<secretName>{STAGING_SUFFIX} fits Key Vault's {MAX_KV_NAME}"
            )
        if not _KV_NAME.match(value):
            raise _fail(f"{value!r} is not a Key Vault secret name ([0-9a-zA-Z-], 1 to 127)")
        # Key Vault names are case-insensitive: X-ROTATOR-STAGING is the same secret.
        if value.lower().endswith(STAGING_SUFFIX):
            raise _fail(f"names ending in {STAGING_SUFFIX!r} (any case) are reserved for staging")
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

    enabled: Bool = True
    timeout: Annotated[
        Duration,
        pydantic.AfterValidator(_at_most(MAX_VERIFY_TIMEOUT, "propagation takes minutes")),
    ] = dt.timedelta(minutes=5)


class ServicePrincipalSecretSpec(_SpecModel):
    """``spec`` of a ServicePrincipalSecret (see PRODUCT.md)."""

    tenant_id: TenantId
    application: ApplicationRef
    rotation: Rotation = pydantic.Field(default_factory=Rotation)
    key_vault: KeyVaultTarget
    verify: Verify = pydantic.Field(default_factory=Verify)
    suspend: Bool = False
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
        str, pydantic.AfterValidator(_name(1, MAX_KV_NAME, _KV_NAME, "Key Vault secret name"))
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
    key: Annotated[str, pydantic.AfterValidator(_name(1, 253, _SECRET_KEY, "Secret key"))]


class WorkspaceAuth(_Model):
    """How to authenticate to the workspace; absent means the operator's own Azure identity."""

    pat_secret_ref: SecretKeyRef | None = None


class Workspace(_Model):
    """One Databricks workspace."""

    host: HttpsUrl
    auth: WorkspaceAuth | None = None


class Scope(_Model):
    """The secret scope and key the value is written to (or, if KV-backed, read from)."""

    name: Annotated[
        str, pydantic.AfterValidator(_name(1, 128, _DBX_SCOPE, "Databricks scope name"))
    ]
    key: Annotated[str, pydantic.AfterValidator(_name(1, 128, _DBX_KEY, "Databricks secret key"))]
    create: Bool = False

    @property
    def reference(self) -> str:
        """The ``{{secrets/<scope>/<key>}}`` reference jobs carry in their settings."""
        return "{{secrets/" + self.name + "/" + self.key + "}}"


class JobRef(_Model):
    """A Databricks job whose clusters must reference the secret; exactly one of name / id.

    It names at least one ``env`` variable or ``sparkConf`` key: a job entry that would change
    nothing is a mistake the user should hear about.
    """

    job_name: Annotated[str, pydantic.Field(min_length=1, max_length=4096)] | None = None
    # int64, as the CRD says; a string "7" or a bool is a mistake, not a job id.
    job_id: Annotated[pydantic.StrictInt, pydantic.Field(gt=0, le=2**63 - 1)] | None = None
    env: Annotated[
        tuple[
            Annotated[
                str, pydantic.AfterValidator(_name(1, 256, _ENV_NAME, "environment variable"))
            ],
            ...,
        ],
        pydantic.BeforeValidator(_items(32, "env entries", unique=True)),
    ] = ()
    spark_conf: Annotated[
        tuple[
            Annotated[
                str, pydantic.AfterValidator(_name(1, 512, _SPARK_CONF_KEY, "Spark conf key"))
            ],
            ...,
        ],
        pydantic.BeforeValidator(_items(32, "sparkConf entries", unique=True)),
    ] = ()
    restart: Literal["IfRunning", "Never"] = "Never"

    @pydantic.model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.job_name is None) == (self.job_id is None):
            raise _fail("set exactly one of jobName or jobId")
        if not self.env and not self.spark_conf:
            # A job the binding would not change is a typo, not a wish; say so.
            raise _fail("name at least one env variable or sparkConf key for the secret")
        return self

    @property
    def label(self) -> str:
        """How messages name this job."""
        return f"job {self.job_name!r}" if self.job_name is not None else f"job {self.job_id}"


def _unique_jobs(value: Any) -> Any:
    if isinstance(value, tuple):
        seen: dict[tuple[str, object], int] = {}
        for index, job in enumerate(value):
            field = "jobName" if job.job_name is not None else "jobId"
            first = seen.setdefault((field, job.job_name or job.job_id), index)
            if first != index:
                raise _fail_at(
                    f"[{index}].{field}", f"{job.label} is listed twice (also at [{first}])"
                )
    return value


class DatabricksSecretBindingSpec(_SpecModel):
    """``spec`` of a DatabricksSecretBinding (see PRODUCT.md)."""

    source: BindingSource
    workspace: Workspace
    scope: Scope
    jobs: Annotated[
        tuple[JobRef, ...],
        pydantic.BeforeValidator(_items(MAX_JOBS, "jobs")),
        pydantic.AfterValidator(_unique_jobs),
    ] = ()


# --- RotationPolicy ------------------------------------------------------------------------


LabelValue = Annotated[str, pydantic.AfterValidator(_length(0, 63))]


def _at_most_labels(value: Any) -> Any:
    if isinstance(value, dict) and len(value) > 64:
        raise _fail(f"at most 64 labels, got {len(value)}")
    return value


class LabelSelectorRequirement(_Model):
    """One ``matchExpressions`` entry, with Kubernetes semantics."""

    key: Annotated[str, pydantic.AfterValidator(_length(1, 317))]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: Annotated[tuple[LabelValue, ...], pydantic.BeforeValidator(_items(64, "values"))] = ()

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

    match_labels: Annotated[dict[str, LabelValue], pydantic.BeforeValidator(_at_most_labels)] = (
        pydantic.Field(default_factory=dict)
    )
    match_expressions: Annotated[
        tuple[LabelSelectorRequirement, ...],
        pydantic.BeforeValidator(_items(64, "matchExpressions")),
    ] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy every term (AND, as Kubernetes does)."""
        return all(labels.get(k) == v for k, v in self.match_labels.items()) and all(
            req.matches(labels) for req in self.match_expressions
        )


class RotationPolicySpec(_SpecModel):
    """``spec`` of a RotationPolicy. ``None`` on a list means "no restriction on that axis"."""

    # The lists are sets in the CRD: a duplicate is an error there, so here too.
    namespaces: (
        Annotated[
            tuple[NamespaceName, ...],
            pydantic.BeforeValidator(_items(256, "namespaces", unique=True)),
        ]
        | None
    ) = None
    namespace_selector: LabelSelector | None = None
    tenants: (
        Annotated[
            tuple[TenantId, ...], pydantic.BeforeValidator(_items(256, "tenants", unique=True))
        ]
        | None
    ) = None
    applications: (
        Annotated[
            tuple[Guid, ...], pydantic.BeforeValidator(_items(1024, "applications", unique=True))
        ]
        | None
    ) = None
    key_vaults: (
        Annotated[
            tuple[HttpsUrl, ...], pydantic.BeforeValidator(_items(256, "key vaults", unique=True))
        ]
        | None
    ) = None
    databricks_workspaces: (
        Annotated[
            tuple[HttpsUrl, ...], pydantic.BeforeValidator(_items(256, "workspaces", unique=True))
        ]
        | None
    ) = None
    max_validity: (
        Annotated[
            Duration,
            pydantic.AfterValidator(_at_most(MAX_VALIDITY, "Entra ID caps client secrets")),
        ]
        | None
    ) = None

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
        """The value of the ``rotator.dev/rotate`` annotation, if set and acceptable.

        A value :func:`rotate_request_problem` refuses reads as unset: it never triggers a
        rotation and is never copied into status, events or logs.
        """
        value = self.annotations.get(ROTATE_ANNOTATION)
        return None if value is None or rotate_request_problem(value) else value

    @property
    def refused_rotate_request(self) -> str | None:
        """Why the ``rotator.dev/rotate`` annotation is ignored, if it is."""
        value = self.annotations.get(ROTATE_ANNOTATION)
        return None if value is None else rotate_request_problem(value)


def rotate_request_problem(value: str) -> str | None:
    """What is wrong with a ``rotator.dev/rotate`` value (never quoting it), or None."""
    if len(value) > MAX_ROTATE_REQUEST:
        return (
            f"annotation {ROTATE_ANNOTATION} is ignored: it must be at most "
            f"{MAX_ROTATE_REQUEST} characters, got {len(value)}"
        )
    if not _ROTATE_REQUEST.match(value):
        return (
            f"annotation {ROTATE_ANNOTATION} is ignored: it must be printable ASCII (letters, "
            "digits, punctuation, spaces), like a timestamp"
        )
    return None


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bounded(value: Any) -> Any:
    return bounded(value) if isinstance(value, str) else value


def _acceptable_request(value: Any) -> Any:
    # A value an older operator copied from the annotation unchecked is dropped, not kept.
    return None if isinstance(value, str) and rotate_request_problem(value) else value


#: A message written to status: at most :data:`MAX_MESSAGE` characters.
Message = Annotated[str, pydantic.BeforeValidator(_bounded)]


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
    message: Message = ""
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
    #: When verification gives up (absolute, set when Verify first begins): a restart must
    #: not give Entra a fresh ``verify.timeout`` (restarts more often than the timeout would
    #: make the wait unbounded).
    verify_deadline: Time | None = None


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
    last_error: Message = ""
    last_failure_time: Time | None = None
    #: When a transient failure is retried (backoff and Retry-After, absolute): a restarted
    #: operator honours it instead of retrying at once.
    next_retry_time: Time | None = None
    rotate_request: Annotated[str | None, pydantic.BeforeValidator(_acceptable_request)] = None
    #: Start times of the latest rotations, newest last (rotator.core.storms keeps them).
    recent_rotations: tuple[Time, ...] = ()


class JobStatus(_Model):
    """What the last sync did to one job."""

    job_name: str | None = None
    job_id: int | None = None
    changed: bool = False
    restarted_runs: int = 0
    message: Message = ""


class DatabricksSecretBindingStatus(_StatusModel):
    """``status`` of a DatabricksSecretBinding (docs/design.md)."""

    observed_generation: int | None = None
    conditions: tuple[Condition, ...] = ()
    synced_version: str | None = None
    synced_key_id: str | None = None
    last_sync_time: Time | None = None
    jobs: tuple[JobStatus, ...] = ()
    failures: int = 0
    last_error: Message = ""
    last_failure_time: Time | None = None
