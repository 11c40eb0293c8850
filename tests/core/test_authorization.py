"""Tests for rotator.core.authorization: which namespace may use what, and the denial messages."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rotator.core import authorization, models
from tests.core import factories as f

OTHER_TENANT = "99999999-0000-0000-0000-0000000000bb"
OTHER_APP = "99999999-2222-3333-4444-555555555555"


def pol(name: str, **overrides: Any) -> authorization.NamedPolicy:
    return authorization.NamedPolicy(
        name, models.RotationPolicySpec.from_spec(f.rpol_spec_dict(**overrides))
    )


SPS = authorization.request_for_secret(f.sps_spec())
DATA_ENG = pol("data-eng")


def req(**changes: Any) -> authorization.Request:
    values = {
        "tenant": SPS.tenant,
        "application": SPS.application,
        "key_vault": SPS.key_vault,
        "workspace": SPS.workspace,
        "validity": SPS.validity,
    } | changes
    return authorization.Request(**values)


CASES: list[
    tuple[
        str,
        list[authorization.NamedPolicy],
        str,
        dict[str, str],
        authorization.Request,
        str | None,
        str,
    ]
] = [
    (
        "granted",
        [DATA_ENG],
        "data-eng",
        {},
        SPS,
        "data-eng",
        "allowed by RotationPolicy 'data-eng'",
    ),
    (
        "no policies at all",
        [],
        "data-eng",
        {},
        SPS,
        None,
        "no RotationPolicy applies to namespace 'data-eng'",
    ),
    (
        "other namespace",
        [DATA_ENG],
        "web",
        {},
        SPS,
        None,
        "no RotationPolicy applies to namespace 'web'",
    ),
    (
        "selector matches labels",
        [pol("by-label", namespaces=None, namespaceSelector={"matchLabels": {"team": "data"}})],
        "anything",
        {"team": "data"},
        SPS,
        "by-label",
        "allowed",
    ),
    (
        "selector does not match",
        [pol("by-label", namespaces=None, namespaceSelector={"matchLabels": {"team": "data"}})],
        "anything",
        {"team": "web"},
        SPS,
        None,
        "no RotationPolicy applies",
    ),
    (
        "empty selector matches all",
        [pol("all", namespaces=None, namespaceSelector={})],
        "x",
        {},
        SPS,
        "all",
        "allowed",
    ),
    (
        "tenant not granted",
        [DATA_ENG],
        "data-eng",
        {},
        req(tenant=OTHER_TENANT),
        None,
        f"'data-eng' does not grant tenant {OTHER_TENANT}",
    ),
    (
        "application not granted",
        [DATA_ENG],
        "data-eng",
        {},
        req(application=OTHER_APP),
        None,
        f"does not grant application {OTHER_APP}",
    ),
    (
        "vault not granted",
        [DATA_ENG],
        "data-eng",
        {},
        req(key_vault="https://kv-other.vault.azure.net"),
        None,
        "key vault https://kv-other.vault.azure.net",
    ),
    (
        "workspace not granted",
        [DATA_ENG],
        "data-eng",
        {},
        req(workspace="https://adb-9.azuredatabricks.net"),
        None,
        "Databricks workspace https://adb-9",
    ),
    (
        "validity above the cap",
        [DATA_ENG],
        "data-eng",
        {},
        req(validity=dt.timedelta(days=181)),
        None,
        "validity 181d (maxValidity 180d)",
    ),
    (
        "validity at the cap",
        [DATA_ENG],
        "data-eng",
        {},
        req(validity=dt.timedelta(days=180)),
        "data-eng",
        "allowed",
    ),
    (
        "every gap is named",
        [DATA_ENG],
        "data-eng",
        {},
        req(tenant=OTHER_TENANT, validity=dt.timedelta(days=365)),
        None,
        f"does not grant tenant {OTHER_TENANT}, validity 365d",
    ),
    (
        "omitted field means unrestricted",
        [pol("open", tenants=None, maxValidity=None)],
        "data-eng",
        {},
        req(tenant=OTHER_TENANT, validity=dt.timedelta(days=999)),
        "open",
        "allowed",
    ),
    (
        "empty list grants nothing",
        [pol("none", applications=[])],
        "data-eng",
        {},
        SPS,
        None,
        "does not grant application",
    ),
    (
        "grants are not combined across policies",
        [pol("a", applications=[OTHER_APP]), pol("b", tenants=[OTHER_TENANT])],
        "data-eng",
        {},
        SPS,
        None,
        f"'a' does not grant application {f.CLIENT_ID}; 'b' does not grant tenant {f.TENANT}",
    ),
    (
        "first granting policy by name wins",
        [pol("zeta"), pol("alpha")],
        "data-eng",
        {},
        SPS,
        "alpha",
        "allowed",
    ),
    (
        "a dimension the resource does not use is ignored",
        [pol("p", databricksWorkspaces=[])],
        "data-eng",
        {},
        req(workspace=None),
        "p",
        "allowed",
    ),
]


@pytest.mark.parametrize(
    ("name", "pols", "namespace", "labels", "request_", "granted_by", "message"),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_check(
    name: str,
    pols: list[authorization.NamedPolicy],
    namespace: str,
    labels: dict[str, str],
    request_: authorization.Request,
    granted_by: str | None,
    message: str,
) -> None:
    decision = authorization.check(pols, namespace, labels, request_)
    assert decision.allowed is (granted_by is not None)
    assert decision.policy == granted_by
    assert message in decision.message


def test_urls_and_ids_compare_normalised() -> None:
    policy = pol(
        "p",
        keyVaults=[f.VAULT.upper() + "/"],
        applications=[f.CLIENT_ID.upper()],
        tenants=[f.TENANT.upper()],
    )
    spec = f.sps_spec(
        tenantId=f.TENANT.upper(),
        keyVault={"vaultUrl": "https://KV-DATA-ENG.vault.azure.net:443/", "secretName": "x"},
    )
    assert authorization.check(
        [policy], "data-eng", {}, authorization.request_for_secret(spec)
    ).allowed


def test_binding_requests() -> None:
    ref = models.DatabricksSecretBindingSpec.from_spec(f.dsb_spec_dict())
    assert authorization.request_for_binding(ref) == authorization.Request(workspace=f.WORKSPACE)
    kv = models.DatabricksSecretBindingSpec.from_spec(
        f.dsb_spec_dict(
            source={"keyVault": {"vaultUrl": "https://kv2.vault.azure.net", "secretName": "s"}}
        )
    )
    request = authorization.request_for_binding(kv)
    assert request.key_vault == "https://kv2.vault.azure.net"
    decision = authorization.check([DATA_ENG], "data-eng", {}, request)
    assert not decision.allowed
    assert "key vault https://kv2.vault.azure.net" in decision.message
    assert authorization.check(
        [DATA_ENG], "data-eng", {}, authorization.request_for_binding(ref)
    ).allowed


def test_secret_request_carries_every_dimension() -> None:
    assert (
        authorization.Request(
            tenant=f.TENANT,
            application=f.CLIENT_ID,
            key_vault=f.VAULT,
            workspace=None,
            validity=dt.timedelta(days=90),
        )
        == SPS
    )
