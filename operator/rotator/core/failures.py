"""What a cloud's error answer means: one table from (service, status, error code) to an action.

Every adapter in :mod:`rotator.clouds` reduces a failed call to a :class:`Reply` (the status, the
service's error code and inner code, its own message, ``Retry-After``, whether the body was JSON)
and asks :func:`classify` what it means. The answer is a :class:`Verdict`:

* ``transient``   retry with backoff, at least ``delay`` seconds when the service sent
                  ``Retry-After`` (throttling, 5xx, "busy" codes, no answer at all);
* ``permanent``   retrying will not help; ``reason`` (a :mod:`reasons` constant) and ``explain``
                  say why and what a human can do;
* ``permission``  permanent too, a NotAuthorized whose ``explain`` names the permission or role
                  the operator's identity lacks.

:func:`error` turns a verdict into the :mod:`rotator.core.errors` exception the handlers branch
on, with a message that carries the service's own words (one bounded line) but never a raw
non-JSON body: an HTML gateway page becomes "HTTP 502 with a non-JSON body (text/html)" and is
classified by its status alone. :func:`parse` reads a raw error body of each service's shape.

The rows below are held to a corpus of real response bodies (``tests/core/corpus/``, each with
its public source), and every adapter is driven through every row against the emulators
(``e2e/contract/test_failures_contract.py``). docs/errors.md explains the table.

Pure: no I/O, no clock (``Retry-After`` dates are read against a ``now`` passed in).
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import json
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

from rotator.core import errors, reasons

Service = Literal["entra", "graph", "keyvault", "databricks"]
Outcome = Literal["transient", "permanent", "permission"]

NAMES: Final[Mapping[Service, str]] = {
    "entra": "Entra",
    "graph": "Graph",
    "keyvault": "Key Vault",
    "databricks": "Databricks",
}

# The reason a permanent refusal of each service gets unless its row names a sharper one.
_SERVICE_REASON: Final[Mapping[Service, str]] = {
    "entra": reasons.VERIFICATION_FAILED,
    "graph": reasons.GRAPH_ERROR,
    "keyvault": reasons.KEY_VAULT_ERROR,
    "databricks": reasons.DATABRICKS_ERROR,
}

_MAX_DETAIL: Final = 300
_AADSTS: Final = re.compile(r"AADSTS(\d+)")


@dataclasses.dataclass(frozen=True)
class Reply:
    """A failed call, reduced to what classification reads. Never holds a secret or raw HTML.

    status       HTTP status; None when no answer came at all (refused, reset, timed out)
    code         the service's error code: Graph/Key Vault ``error.code``, Databricks
                 ``error_code``, Entra's OAuth ``error`` (``invalid_client``, ...)
    inner        Key Vault/Graph ``innererror.code``
    aadsts       Entra's first AADSTS number, without the prefix ("7000215")
    message      the service's own message, one bounded line (empty for non-JSON bodies)
    retry_after  seconds from ``Retry-After``
    json         whether the body was a JSON object (else it is classified by status alone)
    content_type the body's media type, shown for non-JSON bodies
    failure      for status None: what went wrong, in our words ("ConnectError")
    """

    service: Service
    status: int | None
    code: str = ""
    inner: str = ""
    aadsts: str = ""
    message: str = ""
    retry_after: float | None = None
    json: bool = True
    content_type: str = ""
    failure: str = ""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What a :class:`Reply` means. ``cause`` is a stable short name adapters may branch on."""

    outcome: Outcome
    reason: str
    cause: str
    explain: str = ""
    delay: float | None = None
    verification: errors.VerificationKind | None = None

    @property
    def transient(self) -> bool:
        return self.outcome == "transient" or self.verification == "propagation"


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row: every given field must match (``None`` matches anything); first match wins.

    ``status`` matches one status or any in a tuple; ``says`` is a case-insensitive substring of
    the service's message (only where the service itself offers nothing better, like the
    Databricks SDK's own overrides for "does not exist").
    """

    service: Service | None
    status: int | tuple[int, ...] | None
    code: str | None
    then: Verdict
    inner: str | None = None
    aadsts: str | None = None
    says: str | None = None
    json: bool | None = None
    delayed: bool | None = None  # whether the answer carried Retry-After

    def matches(self, reply: Reply) -> bool:
        if self.service is not None and reply.service != self.service:
            return False
        if isinstance(self.status, int) and reply.status != self.status:
            return False
        if isinstance(self.status, tuple) and reply.status not in self.status:
            return False
        if self.code is not None and reply.code.lower() != self.code.lower():
            return False
        if self.inner is not None and reply.inner.lower() != self.inner.lower():
            return False
        if self.aadsts is not None and reply.aadsts != self.aadsts:
            return False
        if self.json is not None and reply.json != self.json:
            return False
        if self.delayed is not None and (reply.retry_after is not None) != self.delayed:
            return False
        return self.says is None or self.says.lower() in reply.message.lower()


def _t(cause: str, reason: str = reasons.TRANSIENT_ERROR, explain: str = "") -> Verdict:
    return Verdict("transient", reason, cause, explain)


def _p(cause: str, reason: str, explain: str = "") -> Verdict:
    return Verdict("permanent", reason, cause, explain)


def _needs(explain: str, cause: str = "forbidden") -> Verdict:
    return Verdict("permission", reasons.NOT_AUTHORIZED, cause, explain)


def _verify(kind: errors.VerificationKind, explain: str) -> Verdict:
    # Permanent except "propagation", which stays retryable until the caller's deadline.
    return Verdict("permanent", reasons.VERIFICATION_FAILED, kind, explain, verification=kind)


_THROTTLED: Final = _t("throttled", reasons.THROTTLED)
_UNAVAILABLE: Final = _t("unavailable")
_NOT_FOUND: Final = _p("not-found", reasons.NOT_FOUND)
_KV_ROLE: Final = (
    "its identity needs a role such as Key Vault Secrets Officer on the vault (or an access "
    "policy with secret get, list and set permissions)"
)
_5XX_BUT_501: Final = (500, 502, 503, 504, 507, 508, 509, 520, 521, 522, 523, 524, 529, 598, 599)

# fmt: off
# The table. Order matters: specific codes first, then each service's statuses, then the
# fallbacks every service shares. Sources for every row: tests/core/corpus/*.json, docs/errors.md.
RULES: Final[tuple[Rule, ...]] = (
    # --- Entra token endpoint (verifying a freshly minted secret) -------------------------------
    # Busy or throttled first: these never say anything about the secret.
    Rule("entra", 429, None, _THROTTLED),
    Rule("entra", None, "temporarily_unavailable", _UNAVAILABLE),
    Rule("entra", None, None, _UNAVAILABLE, aadsts="90033"),  # MsodsServiceUnavailable
    Rule("entra", None, None, _UNAVAILABLE, aadsts="90024"),  # RequestBudgetExceededError
    Rule("entra", None, None, _UNAVAILABLE, aadsts="90006"),  # ExternalServerRetryableError
    Rule("entra", None, None, _THROTTLED, aadsts="50196"),  # LoopDetected: back off
    Rule("entra", _5XX_BUT_501, None, _UNAVAILABLE),
    # What the answer says about the secret.
    Rule("entra", None, None, _verify("propagation", "Entra does not accept the secret (yet)"),
         aadsts="7000215"),
    Rule("entra", None, None, _verify("expired", "the secret is already expired"),
         aadsts="7000222"),
    Rule("entra", None, None, _verify("tenant", "the tenant was not found"), aadsts="90002"),
    Rule("entra", None, None, _verify("tenant", "the application was not found in the tenant"),
         aadsts="700016"),
    Rule("entra", None, None, _verify("tenant", "the account was not found in the tenant"),
         aadsts="50034"),
    # A JSON OAuth error with any other AADSTS code: Entra rejected the secret.
    Rule("entra", (400, 401), None, _verify("invalid", "Entra rejected the secret"), json=True),
    # Anything else from the token endpoint (a proxy's HTML page, an odd status) proves nothing
    # about the secret: retry until the caller's verification deadline.
    Rule("entra", None, None, _t("unexpected")),
    # --- Microsoft Graph ------------------------------------------------------------------------
    Rule("graph", None, "Authorization_RequestDenied", _needs(
        "with Application.ReadWrite.OwnedBy its identity must be an owner of that {kind} (or "
        "hold Application.ReadWrite.All)", "not-owner")),
    Rule("graph", 403, None, _needs(
        "with Application.ReadWrite.OwnedBy its identity must be an owner of that {kind} (or "
        "hold Application.ReadWrite.All)", "not-owner")),
    Rule("graph", 401, None, _needs(
        "Graph refused the operator's token; its identity needs the Microsoft Graph application "
        "permission Application.ReadWrite.OwnedBy (admin-consented)", "unauthenticated")),
    Rule("graph", None, "TooManyAppPasswords", _p(
        "too-many-passwords", reasons.TOO_MANY_PASSWORDS,
        "it holds the maximum number of passwords; remove unused ones")),
    Rule("graph", None, "CredentialInvalidLifetimeAsPerAppPolicy", _p(
        "lifetime-policy", reasons.GRAPH_ERROR,
        "the tenant's app management policy caps secret lifetime below "
        "spec.rotation.validity; lower it")),
    Rule("graph", None, "Directory_ConcurrencyViolation",
         _t("conflict", reasons.CONCURRENCY_CONFLICT)),
    Rule("graph", 409, None, _t("conflict", reasons.CONCURRENCY_CONFLICT)),
    # Graph sends 503 with Retry-After when it sheds load: that is throttling.
    Rule("graph", 503, None, _THROTTLED, delayed=True),
    Rule("graph", None, "Request_ResourceNotFound", _NOT_FOUND),
    Rule("graph", 404, None, _NOT_FOUND),
    # --- Azure Key Vault ------------------------------------------------------------------------
    # A disabled version answers 403 Forbidden: a state, not a missing role.
    Rule("keyvault", 403, None, _p("disabled", reasons.KEY_VAULT_ERROR,
                                   "that version is disabled"), inner="SecretDisabled"),
    Rule("keyvault", 403, "Forbidden", _p("disabled", reasons.KEY_VAULT_ERROR,
                                          "that version is disabled"),
         says="not allowed on a disabled"),
    Rule("keyvault", 409, None, _p(
        "soft-deleted", reasons.KEY_VAULT_ERROR,
        "the name is soft-deleted; recover it (az keyvault secret recover) or purge it "
        "(az keyvault secret purge) first"), inner="ObjectIsDeletedButRecoverable"),
    Rule("keyvault", 409, None, _p(
        "soft-deleted", reasons.KEY_VAULT_ERROR,
        "the name is soft-deleted; recover it (az keyvault secret recover) or purge it "
        "(az keyvault secret purge) first"), says="deleted but recoverable"),
    Rule("keyvault", 409, None, _t("conflict")),  # ObjectIsBeingDeleted / ...BeingRecovered
    Rule("keyvault", (401, 403), None, _needs(_KV_ROLE)),
    Rule("keyvault", 404, None, _NOT_FOUND),
    # --- Databricks -----------------------------------------------------------------------------
    Rule("databricks", None, "PERMISSION_DENIED", _needs(
        "grant its identity access in the workspace (MANAGE on the secret scope, CAN_MANAGE "
        "on the job)")),
    Rule("databricks", (401, 403), None, _needs(
        "grant its identity access in the workspace (MANAGE on the secret scope, CAN_MANAGE "
        "on the job)")),
    Rule("databricks", None, "RESOURCE_DOES_NOT_EXIST", _NOT_FOUND),
    # jobs/runs/clusters answer 400 INVALID_PARAMETER_VALUE "... does not exist" (the SDK's own
    # overrides read it the same way).
    Rule("databricks", 400, "INVALID_PARAMETER_VALUE", _NOT_FOUND, says="does not exist"),
    Rule("databricks", None, "REQUEST_LIMIT_EXCEEDED", _THROTTLED),
    Rule("databricks", None, "TEMPORARILY_UNAVAILABLE", _UNAVAILABLE),
    Rule("databricks", 404, None, _NOT_FOUND),
    Rule("databricks", 409, "ABORTED", _t("conflict")),
    Rule("databricks", 501, None, _p(
        "not-implemented", reasons.DATABRICKS_ERROR,
        "the workspace does not implement this API (check the workspace tier and API version)")),
    # --- every service --------------------------------------------------------------------------
    Rule(None, 429, None, _THROTTLED),
    Rule(None, _5XX_BUT_501, None, _UNAVAILABLE),
    Rule(None, 408, None, _t("timeout")),
    Rule(None, 501, None, _p("not-implemented", "", "the service does not implement this call")),
)
# fmt: on


def classify(reply: Reply) -> Verdict:
    """The verdict for ``reply``: the first matching row, else a fallback by status."""
    if reply.status is None:
        return dataclasses.replace(_t("no-answer"), delay=reply.retry_after)
    for rule in RULES:
        if rule.matches(reply):
            verdict = rule.then
            break
    else:
        verdict = _p("refused", _SERVICE_REASON[reply.service])
    if not verdict.reason:
        verdict = dataclasses.replace(verdict, reason=_SERVICE_REASON[reply.service])
    if verdict.transient:
        verdict = dataclasses.replace(verdict, delay=reply.retry_after)
    return verdict


# --- reading replies ------------------------------------------------------------------------


def one_line(text: str | None) -> str:
    """A service's own message on one line, bounded, for our messages."""
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= _MAX_DETAIL else line[: _MAX_DETAIL - 1] + "…"


def delay_seconds(value: str | None, *, now: datetime.datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return max(0.0, (moment - now).total_seconds())


def aadsts_code(text: str) -> str:
    """The first ``AADSTSnnnn`` number in an Entra message, or ""."""
    match = _AADSTS.search(text)
    return match.group(1) if match else ""


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def parse(
    service: Service,
    status: int | None,
    body: str | bytes | None,
    *,
    content_type: str = "",
    retry_after: float | None = None,
) -> Reply:
    """A :class:`Reply` from a raw error answer of ``service`` (any body, even HTML)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    data: Any = None
    if body and body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    media = _media_type(content_type)
    if not isinstance(data, dict):
        if not (body or "").strip():
            # An empty body says nothing but is not a page to hide either.
            return Reply(service, status, retry_after=retry_after, content_type=media)
        return Reply(
            service, status, retry_after=retry_after, json=False, content_type=media or "unknown"
        )
    code = inner = aadsts = message = ""
    if service == "entra" and not isinstance(data.get("error"), dict):
        code = _text(data.get("error"))
        # Entra appends "Trace ID: … Correlation ID: … Timestamp: …": support ids, not words.
        message = _text(data.get("error_description")).split("Trace ID:", 1)[0]
        codes = data.get("error_codes")
        if isinstance(codes, list) and codes and isinstance(codes[0], int):
            aadsts = str(codes[0])
        else:
            aadsts = aadsts_code(message)
    elif service == "databricks":
        code = _text(data.get("error_code"))
        message = _text(data.get("message")) or _text(data.get("error"))
    else:
        error = data.get("error")
        if isinstance(error, dict):
            code = _text(error.get("code"))
            message = _text(error.get("message"))
            nested = error.get("innererror") or error.get("innerError")
            if isinstance(nested, dict):
                inner = _text(nested.get("code"))
        if service == "entra":
            # An Azure-shaped body in front of the token endpoint (a gateway): the number, if
            # any, is in the words.
            aadsts = aadsts_code(f"{code} {message}")
    return Reply(
        service,
        status,
        code=code,
        inner=inner,
        aadsts=aadsts,
        message=one_line(message),
        retry_after=retry_after,
        content_type=media,
    )


# --- building our errors --------------------------------------------------------------------


def said(reply: Reply) -> str:
    """What the service said, in one short line we may show: never a raw non-JSON body."""
    name = NAMES[reply.service]
    if reply.status is None:
        return f"no answer from {name}: {reply.failure or 'the connection failed'}"
    if not reply.json:
        return f"HTTP {reply.status} with a non-JSON body ({reply.content_type or 'unknown'})"
    label = f"AADSTS{reply.aadsts}" if reply.aadsts else (reply.inner or reply.code)
    if reply.inner and reply.code and reply.inner != reply.code:
        label = f"{reply.code}/{reply.inner}"
    if label and reply.message.startswith(label):
        label = ""  # Entra's descriptions start with their own code
    head = f"{name} {reply.status} {label}".rstrip()
    return f"{head}: {reply.message}" if reply.message else head


def error(
    verdict: Verdict, reply: Reply, *, action: str, target: str, kind: str = "object"
) -> errors.RotatorError:
    """The :mod:`errors` exception for ``verdict``. ``action`` is a verb phrase ("store"),
    ``target`` names the object ("secret 'x' in https://kv..."), ``kind`` fills ``{kind}`` in
    the row's explanation ("application")."""
    name = NAMES[reply.service]
    words = said(reply)
    explain = verdict.explain.replace("{kind}", kind)
    if verdict.outcome == "permission":
        message = f"the operator may not {action} {target}: {explain} ({words})"
        if verdict.cause == "not-owner":
            return errors.NotOwner(message)
        return errors.NotAuthorized(message)
    if verdict.outcome == "transient":
        if reply.status is None:
            message = f"{name} call to {action} {target} failed: {words}"
        elif verdict.cause == "throttled":
            return errors.Throttled(
                f"{name} throttled the request to {action} {target} ({words})", verdict.delay
            )
        elif verdict.cause == "conflict" and verdict.reason == reasons.CONCURRENCY_CONFLICT:
            return errors.ConcurrencyConflict(
                f"another write to {target} was in progress; retry ({words})", verdict.delay
            )
        else:
            message = f"{name} failed to {action} {target} ({words})"
        return errors.TransientError(message, verdict.delay)
    if verdict.reason == reasons.NOT_FOUND:
        return errors.NotFound(f"could not {action} {target}: it was not found ({words})")
    if verdict.reason == reasons.TOO_MANY_PASSWORDS:
        return errors.TooManyPasswords(f"cannot {action} {target}: {explain} ({words})")
    if explain:
        return errors.PermanentError(
            f"cannot {action} {target}: {explain} ({words})", verdict.reason
        )
    return errors.PermanentError(f"{name} refused to {action} {target} ({words})", verdict.reason)
