"""RotationPolicy enforcement: may this namespace use the operator's rights for this request?

Semantics (the security boundary; keep the docs in sync):

* A policy *applies* to a namespace if the namespace is listed in ``namespaces`` or its labels
  match ``namespaceSelector`` (an empty selector ``{}`` matches every namespace).
* A request is allowed when **one** applicable policy grants **every** dimension of it; grants
  are not combined across policies (two narrow policies never add up to a wide one).
* An omitted list field (``tenants``, ``applications``, ``keyVaults``,
  ``databricksWorkspaces``) means no restriction on that dimension; an empty list grants
  nothing. An omitted ``maxValidity`` means no cap.
* Comparison is normalised: GUIDs and tenant domains lowercase; URLs as ``https://host[:port]``
  with the host lowercase and no trailing slash (:func:`rotator.core.models.normalize_url`).
* No policies at all means nothing is allowed (enforcement is on by default; turning it off is
  the handler's setting, not a decision made here).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping

from rotator.core import durations, models


@dataclasses.dataclass(frozen=True)
class NamedPolicy:
    """A parsed RotationPolicy and its name (cluster-scoped, so the name is unique)."""

    name: str
    spec: models.RotationPolicySpec


@dataclasses.dataclass(frozen=True)
class Request:
    """What a resource asks to use; ``None`` means the resource does not use that dimension."""

    tenant: str | None = None
    application: str | None = None
    key_vault: str | None = None
    workspace: str | None = None
    validity: dt.timedelta | None = None


@dataclasses.dataclass(frozen=True)
class Decision:
    """Allowed (by ``policy``) or denied with ``message`` saying what no policy grants."""

    allowed: bool
    policy: str | None
    message: str


def request_for_secret(spec: models.ServicePrincipalSecretSpec) -> Request:
    """What a ServicePrincipalSecret uses: tenant, application, vault, validity."""
    return Request(
        tenant=spec.tenant_id,
        application=spec.application.id,
        key_vault=spec.key_vault.vault_url,
        validity=spec.rotation.validity,
    )


def request_for_binding(spec: models.DatabricksSecretBindingSpec) -> Request:
    """What a DatabricksSecretBinding uses: the workspace, and the vault of a keyVault source.

    A servicePrincipalSecretRef source was already checked when that secret was allowed in
    the same namespace.
    """
    vault = spec.source.key_vault.vault_url if spec.source.key_vault is not None else None
    return Request(key_vault=vault, workspace=spec.workspace.host)


def applies(policy: models.RotationPolicySpec, namespace: str, labels: Mapping[str, str]) -> bool:
    """Whether ``policy`` covers ``namespace`` (by name or by its labels)."""
    if policy.namespaces is not None and namespace in policy.namespaces:
        return True
    return policy.namespace_selector is not None and policy.namespace_selector.matches(labels)


def _missing(policy: models.RotationPolicySpec, request: Request) -> list[str]:
    """What ``policy`` does not grant of ``request``, in words."""
    gaps: list[str] = []

    def check(value: str | None, allowed: tuple[str, ...] | None, what: str) -> None:
        if value is not None and allowed is not None and value.lower() not in allowed:
            gaps.append(f"{what} {value}")

    check(request.tenant, policy.tenants, "tenant")
    check(request.application, policy.applications, "application")
    check(request.key_vault, policy.key_vaults, "key vault")
    check(request.workspace, policy.databricks_workspaces, "Databricks workspace")
    if (
        request.validity is not None
        and policy.max_validity is not None
        and request.validity > policy.max_validity
    ):
        gaps.append(
            f"validity {durations.format_duration(request.validity)} "
            f"(maxValidity {durations.format_duration(policy.max_validity)})"
        )
    return gaps


def check(
    policies: Iterable[NamedPolicy],
    namespace: str,
    labels: Mapping[str, str],
    request: Request,
) -> Decision:
    """Allow ``request`` from ``namespace`` if one applicable policy grants all of it."""
    applicable = sorted(
        (p for p in policies if applies(p.spec, namespace, labels)), key=lambda p: p.name
    )
    if not applicable:
        return Decision(False, None, f"no RotationPolicy applies to namespace {namespace!r}")
    refusals: list[str] = []
    for policy in applicable:
        gaps = _missing(policy.spec, request)
        if not gaps:
            return Decision(True, policy.name, f"allowed by RotationPolicy {policy.name!r}")
        refusals.append(f"{policy.name!r} does not grant {', '.join(gaps)}")
    return Decision(
        False,
        None,
        f"no RotationPolicy for namespace {namespace!r} grants this: " + "; ".join(refusals),
    )
