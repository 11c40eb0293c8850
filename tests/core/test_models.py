"""Tests for rotator.core.models: one case per validation rule, defaults, status round trips."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from rotator.core import errors, models, reasons
from tests.core import factories as f

# --- ServicePrincipalSecret ---------------------------------------------------------------


def test_sps_example_parses_with_normalised_values() -> None:
    body = {
        "metadata": {"name": "etl-sp"},
        "spec": f.sps_spec_dict(
            tenantId=f.TENANT.upper(),
            keyVault={"vaultUrl": "https://KV-Data-Eng.vault.azure.net/", "secretName": "s"},
        ),
    }
    spec = models.ServicePrincipalSecretSpec.from_body(body)
    assert spec.tenant_id == f.TENANT
    assert spec.key_vault.vault_url == f.VAULT
    assert spec.rotation.validity == dt.timedelta(days=90)
    assert spec.rotation.renew_before == dt.timedelta(days=30)
    assert spec.rotation.overlap == dt.timedelta(hours=24)
    assert spec.target == f"{f.TENANT}/{f.CLIENT_ID}/application/{f.VAULT}/s"


def test_sps_defaults() -> None:
    spec = models.ServicePrincipalSecretSpec.from_spec(
        {
            "tenantId": f.TENANT,
            "application": {"objectId": f.CLIENT_ID},
            "keyVault": {"vaultUrl": f.VAULT, "secretName": "n"},
        }
    )
    assert spec.application.credential_owner == "application"
    assert spec.application.id == f.CLIENT_ID
    assert spec.rotation == models.Rotation()
    assert spec.rotation.validity == dt.timedelta(days=90)
    assert spec.verify.enabled is True
    assert spec.verify.timeout == dt.timedelta(minutes=5)
    assert spec.suspend is False
    assert spec.deletion_policy == "Retain"
    assert spec.key_vault.tags == {}


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragment"),
    [
        ("tenantId", ..., "spec.tenantId", "is required"),
        ("tenantId", "not a tenant", "spec.tenantId", "must be a tenant GUID"),
        ("tenantId", "contoso.onmicrosoft.com", "spec.tenantId", "domain name is not accepted"),
        ("tenantId", 42, "spec.tenantId", "valid string"),
        ("application", {}, "spec.application.clientId", "exactly one of clientId or objectId"),
        (
            "application.objectId",
            f.CLIENT_ID,
            "spec.application.objectId",
            "exactly one of clientId or objectId",
        ),
        ("application.clientId", "1234", "spec.application.clientId", "must be a GUID"),
        ("application.credentialOwner", "user", "spec.application.credentialOwner", "must be"),
        ("rotation.validity", "90 days", "spec.rotation.validity", "spaces are not allowed"),
        ("rotation.validity", "0s", "spec.rotation.validity", "longer than zero"),
        ("rotation.renewBefore", "90d", "spec.rotation.renewBefore", "shorter than validity"),
        ("rotation.renewBefore", "91d", "spec.rotation.renewBefore", "shorter than validity"),
        # The chaos run's 1m/59s minted 22 credentials in 47 s: a gap under 1m is refused.
        (
            "rotation.renewBefore",
            "89d23h59m30s",
            "spec.rotation.renewBefore",
            "at least 1m shorter than validity (90d), got 89d23h59m30s",
        ),
        ("rotation.overlap", "1w", "spec.rotation.overlap", "unknown unit 'w'"),
        ("rotation.overlap", "30d", "spec.rotation.overlap", "shorter than renewBefore (30d)"),
        ("rotation.overlap", "31d", "spec.rotation.overlap", "shorter than renewBefore"),
        ("rotation.validity", "731d", "spec.rotation.validity", "at most 730d"),
        ("rotation.validity", "17520h1s", "spec.rotation.validity", "at most 730d"),
        ("rotation.validity", "0000000090d", "spec.rotation.validity", "9 digits"),
        (
            "rotation.validity",
            "000000000001d000000000001h000000000001m000000000001s",
            "spec.rotation.validity",
            "40 characters",
        ),
        ("keyVault", ..., "spec.keyVault", "is required"),
        ("keyVault.vaultUrl", "http://kv.vault.azure.net", "spec.keyVault.vaultUrl", "https://"),
        ("keyVault.vaultUrl", "https://kv.vault.azure.net/x", "spec.keyVault.vaultUrl", "path"),
        ("keyVault.vaultUrl", "https://u:p@kv.net", "spec.keyVault.vaultUrl", "credentials"),
        ("keyVault.vaultUrl", "https://", "spec.keyVault.vaultUrl", "no host"),
        ("keyVault.vaultUrl", "https://kv_1.vault.azure.net", "spec.keyVault.vaultUrl", "host"),
        ("keyVault.vaultUrl", "https://[::1]:8443", "spec.keyVault.vaultUrl", "host"),
        ("keyVault.vaultUrl", "https://" + "a" * 2048, "spec.keyVault.vaultUrl", "at most 2048"),
        ("keyVault.secretName", "has_underscore", "spec.keyVault.secretName", "secret name"),
        ("keyVault.secretName", "x" * 112, "spec.keyVault.secretName", "at most 111"),
        ("keyVault.secretName", "a-rotator-staging", "spec.keyVault.secretName", "reserved"),
        ("keyVault.secretName", "a-Rotator-STAGING", "spec.keyVault.secretName", "any case"),
        ("keyVault.contentType", "x" * 256, "spec.keyVault.contentType", "at most 255"),
        ("keyVault.tags", {"rotator.dev/key-id": "x"}, "spec.keyVault.tags", "reserved"),
        ("keyVault.tags", {f"t{i}": "v" for i in range(14)}, "spec.keyVault.tags", "at most 13"),
        ("keyVault.tags", {"t": "v" * 257}, "spec.keyVault.tags.t", "at most 256"),
        ("verify.timeout", "", "spec.verify.timeout", "must not be empty"),
        ("verify.timeout", "61m", "spec.verify.timeout", "at most 1h"),
        ("verify.enabled", "perhaps", "spec.verify.enabled", "valid boolean"),
        ("verify.enabled", "true", "spec.verify.enabled", "valid boolean"),
        ("suspend", "perhaps", "spec.suspend", "valid boolean"),
        # Strict: YAML 1.1 writers say "yes", the CRD says boolean, Python says 1 == True.
        ("suspend", "yes", "spec.suspend", "valid boolean"),
        ("suspend", 1, "spec.suspend", "valid boolean"),
        ("deletionPolicy", "Delete", "spec.deletionPolicy", "'Retain' or 'Revoke'"),
    ],
)
def test_sps_each_rule(path: str, value: Any, error_path: str, fragment: str) -> None:
    spec = f.set_path(f.sps_spec_dict(), path, value)
    with pytest.raises(errors.SpecError) as caught:
        models.ServicePrincipalSecretSpec.from_spec(spec)
    assert caught.value.path == error_path
    assert fragment in caught.value.problem
    assert caught.value.reason == reasons.INVALID_SPEC


def test_sps_reports_every_bad_field_at_once() -> None:
    spec = f.sps_spec_dict(tenantId="?", deletionPolicy="Nope")
    with pytest.raises(errors.SpecError) as caught:
        models.ServicePrincipalSecretSpec.from_spec(spec)
    assert caught.value.path == "spec.tenantId"
    assert [p for p, _ in caught.value.also] == ["spec.deletionPolicy"]
    assert "spec.deletionPolicy" in str(caught.value)


@pytest.mark.parametrize("body", [{}, {"spec": None}, {"spec": "text"}, {"spec": []}])
def test_missing_spec(body: dict[str, Any]) -> None:
    with pytest.raises(errors.SpecError) as caught:
        models.ServicePrincipalSecretSpec.from_body(body)
    assert caught.value.path == "spec"


def test_spec_errors_never_echo_unrelated_values() -> None:
    # A user may paste a secret into a wrong field; tags are echoed by name only.
    spec = f.sps_spec_dict(
        keyVault={"vaultUrl": f.VAULT, "secretName": "n", "tags": {"rotator.dev/x": "s3cr3t"}}
    )
    with pytest.raises(errors.SpecError) as caught:
        models.ServicePrincipalSecretSpec.from_spec(spec)
    assert "s3cr3t" not in str(caught.value)


def test_unknown_fields_are_ignored() -> None:
    spec = models.ServicePrincipalSecretSpec.from_spec(f.sps_spec_dict(futureField={"a": 1}))
    assert spec.tenant_id == f.TENANT


def test_specs_are_frozen() -> None:
    spec = f.sps_spec()
    with pytest.raises(Exception, match="frozen"):
        spec.suspend = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("https://KV.vault.azure.net/", "https://kv.vault.azure.net"),
        ("https://kv.vault.azure.net:443", "https://kv.vault.azure.net"),
        ("https://127.0.0.1:8443/", "https://127.0.0.1:8443"),
        ("HTTPS://a.b", "https://a.b"),
    ],
)
def test_normalize_url(url: str, normal: str) -> None:
    assert models.normalize_url(url) == normal


@pytest.mark.parametrize("url", ["ftp://a", "https://a?x=1", "https://a#f", "https://a:99999", "a"])
def test_normalize_url_refuses(url: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        models.normalize_url(url)


# --- DatabricksSecretBinding --------------------------------------------------------------


def test_dsb_example_parses() -> None:
    spec = models.DatabricksSecretBindingSpec.from_body({"spec": f.dsb_spec_dict()})
    assert spec.source.service_principal_secret_ref is not None
    assert spec.source.service_principal_secret_ref.name == "etl-sp"
    assert spec.workspace.host == f.WORKSPACE
    assert spec.scope.reference == "{{secrets/etl/client-secret}}"
    job = spec.jobs[0]
    assert job.env == ("AZURE_CLIENT_SECRET",)
    assert job.spark_conf == ("fs.azure.account.oauth2.client.secret",)
    assert job.restart == "IfRunning"


def test_dsb_defaults_and_key_vault_source() -> None:
    spec = models.DatabricksSecretBindingSpec.from_spec(
        {
            "source": {"keyVault": {"vaultUrl": f.VAULT + "/", "secretName": "x"}},
            "workspace": {
                "host": f.WORKSPACE,
                "auth": {"patSecretRef": {"name": "dbx-pat", "key": "token"}},
            },
            "scope": {"name": "etl", "key": "k"},
            "jobs": [{"jobId": 7, "sparkConf": ["spark.secret"]}],
        }
    )
    assert spec.source.key_vault is not None
    assert spec.source.key_vault.vault_url == f.VAULT
    assert spec.scope.create is False
    assert spec.jobs[0].restart == "Never"
    assert spec.jobs[0].env == ()
    assert spec.jobs[0].spark_conf == ("spark.secret",)
    assert spec.workspace.auth is not None
    assert spec.workspace.auth.pat_secret_ref is not None


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragment"),
    [
        ("source", {}, "spec.source", "exactly one of servicePrincipalSecretRef or keyVault"),
        (
            "source",
            {
                "servicePrincipalSecretRef": {"name": "a"},
                "keyVault": {"vaultUrl": f.VAULT, "secretName": "b"},
            },
            "spec.source",
            "exactly one",
        ),
        (
            "source.servicePrincipalSecretRef.name",
            "Bad_Name",
            "spec.source.servicePrincipalSecretRef.name",
            "object name",
        ),
        ("workspace.host", "http://adb.net", "spec.workspace.host", "https://"),
        ("workspace", ..., "spec.workspace", "is required"),
        (
            "workspace.auth",
            {"patSecretRef": {"name": "p"}},
            "spec.workspace.auth.patSecretRef.key",
            "is required",
        ),
        (
            "workspace.auth",
            {"patSecretRef": {"name": "p", "key": "a b"}},
            "spec.workspace.auth.patSecretRef.key",
            "Secret key",
        ),
        ("scope.name", "bad scope", "spec.scope.name", "scope name"),
        ("scope.name", "s" * 129, "spec.scope.name", "1 to 128 characters"),
        ("scope.create", "yes", "spec.scope.create", "valid boolean"),
        ("scope.key", "bad/key", "spec.scope.key", "secret key"),
        ("jobs", [{"env": ["A"]}], "spec.jobs[0]", "exactly one of jobName or jobId"),
        ("jobs", [{"jobName": "a", "jobId": 1}], "spec.jobs[0]", "exactly one"),
        ("jobs", [{"jobId": 0}], "spec.jobs[0].jobId", "greater than 0"),
        ("jobs", [{"jobId": 2**63, "env": ["A"]}], "spec.jobs[0].jobId", "less than or equal"),
        ("jobs", [{"jobId": "7", "env": ["A"]}], "spec.jobs[0].jobId", "valid integer"),
        ("jobs", [{"jobId": True, "env": ["A"]}], "spec.jobs[0].jobId", "valid integer"),
        ("jobs", [{"jobName": ""}], "spec.jobs[0].jobName", "at least 1"),
        ("jobs", [{"jobName": "a"}], "spec.jobs[0]", "at least one env variable or sparkConf"),
        (
            "jobs",
            [{"jobName": "a", "env": [], "sparkConf": []}],
            "spec.jobs[0]",
            "at least one env variable or sparkConf",
        ),
        ("jobs", [{"jobName": "a", "env": ["A", "B", "A"]}], "spec.jobs[0].env[2]", "duplicate"),
        ("jobs", [{"jobName": "a", "env": [f"E{i}" for i in range(33)]}], "spec.jobs[0].env", "32"),
        ("jobs", [{"jobName": "a", "env": ["E" * 257]}], "spec.jobs[0].env[0]", "1 to 256"),
        (
            "jobs",
            [{"jobName": "a", "sparkConf": ["k", "k"]}],
            "spec.jobs[0].sparkConf[1]",
            "duplicate",
        ),
        (
            "jobs",
            [{"jobId": i, "env": ["A"]} for i in range(1, 52)],
            "spec.jobs",
            "at most 50 jobs, got 51",
        ),
        (
            "jobs",
            [{"jobName": "a", "env": ["1BAD"]}],
            "spec.jobs[0].env[0]",
            "environment variable",
        ),
        (
            "jobs",
            [{"jobName": "a", "sparkConf": ["a b"]}],
            "spec.jobs[0].sparkConf[0]",
            "Spark conf key",
        ),
        (
            "jobs",
            [{"jobName": "a", "env": ["A"], "restart": "Always"}],
            "spec.jobs[0].restart",
            "'IfRunning' or 'Never'",
        ),
        (
            "jobs",
            [{"jobName": "a", "env": ["A"]}, {"jobName": "a", "sparkConf": ["k"]}],
            "spec.jobs[1].jobName",
            "job 'a' is listed twice (also at [0])",
        ),
        (
            "jobs",
            [{"jobId": 3, "env": ["A"]}, {"jobId": 4, "env": ["A"]}, {"jobId": 3, "env": ["B"]}],
            "spec.jobs[2].jobId",
            "job 3 is listed twice (also at [0])",
        ),
    ],
)
def test_dsb_each_rule(path: str, value: Any, error_path: str, fragment: str) -> None:
    spec = f.set_path(f.dsb_spec_dict(), path, value)
    with pytest.raises(errors.SpecError) as caught:
        models.DatabricksSecretBindingSpec.from_spec(spec)
    assert caught.value.path == error_path
    assert fragment in caught.value.problem


# --- RotationPolicy -----------------------------------------------------------------------


def test_rpol_example_parses_normalised() -> None:
    spec = models.RotationPolicySpec.from_spec(
        f.rpol_spec_dict(keyVaults=[f.VAULT.upper() + "/"], applications=[f.CLIENT_ID.upper()])
    )
    assert spec.key_vaults == (f.VAULT,)
    assert spec.applications == (f.CLIENT_ID,)
    assert spec.max_validity == dt.timedelta(days=180)
    assert spec.namespace_selector is None


def test_rpol_omitted_lists_are_none_and_empty_selector_is_allowed() -> None:
    spec = models.RotationPolicySpec.from_spec({"namespaceSelector": {}})
    assert spec.tenants is None
    assert spec.namespaces is None
    assert spec.namespace_selector == models.LabelSelector()


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragment"),
    [
        ("namespaces", ..., "spec.namespaces", "namespaceSelector"),
        ("namespaces", ["Data_Eng"], "spec.namespaces[0]", "namespace name"),
        ("tenants", ["x"], "spec.tenants[0]", "tenant GUID"),
        ("tenants", ["contoso.onmicrosoft.com"], "spec.tenants[0]", "domain name"),
        ("namespaces", ["a", "b", "a"], "spec.namespaces[2]", "duplicate value 'a' (also at [0])"),
        ("namespaces", [f"n{i}" for i in range(257)], "spec.namespaces", "at most 256"),
        ("tenants", [f.TENANT, f.TENANT], "spec.tenants[1]", "duplicate"),
        ("applications", [f.CLIENT_ID, f.CLIENT_ID], "spec.applications[1]", "duplicate"),
        ("keyVaults", [f.VAULT, f.VAULT], "spec.keyVaults[1]", "duplicate"),
        ("databricksWorkspaces", [f.WORKSPACE] * 2, "spec.databricksWorkspaces[1]", "duplicate"),
        ("maxValidity", "731d", "spec.maxValidity", "at most 730d"),
        (
            "namespaceSelector",
            {"matchLabels": {"team": "x" * 64}},
            "spec.namespaceSelector.matchLabels.team",
            "0 to 63 characters",
        ),
        (
            "namespaceSelector",
            {"matchLabels": {f"l{i}": "v" for i in range(65)}},
            "spec.namespaceSelector.matchLabels",
            "at most 64 labels",
        ),
        (
            "namespaceSelector",
            {"matchExpressions": [{"key": "", "operator": "Exists"}]},
            "spec.namespaceSelector.matchExpressions[0].key",
            "1 to 317 characters",
        ),
        (
            "namespaceSelector",
            {"matchExpressions": [{"key": "t", "operator": "In", "values": ["v"] * 65}]},
            "spec.namespaceSelector.matchExpressions[0].values",
            "at most 64 values",
        ),
        ("applications", ["nope"], "spec.applications[0]", "GUID"),
        ("keyVaults", ["http://kv"], "spec.keyVaults[0]", "https://"),
        ("databricksWorkspaces", ["https://a/b"], "spec.databricksWorkspaces[0]", "path"),
        ("maxValidity", "2y", "spec.maxValidity", "unknown unit"),
        (
            "namespaceSelector",
            {"matchExpressions": [{"key": "team", "operator": "In"}]},
            "spec.namespaceSelector.matchExpressions[0].values",
            "must not be empty",
        ),
        (
            "namespaceSelector",
            {"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]},
            "spec.namespaceSelector.matchExpressions[0].values",
            "must be empty",
        ),
        (
            "namespaceSelector",
            {"matchExpressions": [{"key": "team", "operator": "Like"}]},
            "spec.namespaceSelector.matchExpressions[0].operator",
            "must be",
        ),
    ],
)
def test_rpol_each_rule(path: str, value: Any, error_path: str, fragment: str) -> None:
    spec = f.set_path(f.rpol_spec_dict(), path, value)
    with pytest.raises(errors.SpecError) as caught:
        models.RotationPolicySpec.from_spec(spec)
    assert caught.value.path == error_path
    assert fragment in caught.value.problem


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {}, True),
        ({"matchLabels": {"team": "data"}}, {"team": "data", "x": "y"}, True),
        ({"matchLabels": {"team": "data"}}, {"team": "web"}, False),
        (
            {"matchExpressions": [{"key": "t", "operator": "In", "values": ["a", "b"]}]},
            {"t": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "t", "operator": "In", "values": ["a"]}]}, {}, False),
        ({"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        (
            {"matchExpressions": [{"key": "t", "operator": "NotIn", "values": ["a"]}]},
            {"t": "a"},
            False,
        ),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {"t": ""}, True),
        ({"matchExpressions": [{"key": "t", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "t", "operator": "DoesNotExist"}]}, {"t": "x"}, False),
        (
            {"matchLabels": {"a": "1"}, "matchExpressions": [{"key": "b", "operator": "Exists"}]},
            {"a": "1"},
            False,
        ),
    ],
)
def test_label_selector(selector: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
    assert models.LabelSelector.model_validate(selector).matches(labels) is matches


# --- Metadata and status ------------------------------------------------------------------


def test_resource_meta_from_body() -> None:
    meta = models.ResourceMeta.from_body(
        {
            "metadata": {
                "name": "etl-sp",
                "namespace": "data-eng",
                "uid": "u1",
                "generation": 4,
                "annotations": {models.ROTATE_ANNOTATION: "now"},
            }
        }
    )
    assert (meta.name, meta.namespace, meta.uid, meta.generation) == ("etl-sp", "data-eng", "u1", 4)
    assert meta.rotate_request == "now"
    assert models.ResourceMeta.from_body({"metadata": {"name": "x"}}).rotate_request is None


@pytest.mark.parametrize(
    ("value", "accepted", "problem"),
    [
        ("2026-11-27T16:37:17.123456Z", True, None),  # what `rotator rotate` writes
        ("", True, None),  # `kubectl annotate ... rotator.dev/rotate=` is a value too
        ("Fri Nov 27 16:37:17 UTC 2026", True, None),  # `$(date)`: spaces are printable
        ("x" * 63, True, None),
        ("x" * 64, False, "at most 63 characters, got 64"),
        ("x" * 200_000, False, "at most 63 characters, got 200000"),
        ("line\nbreak", False, "printable ASCII"),
        ("tab\there", False, "printable ASCII"),
        ("caf\u00e9", False, "printable ASCII"),
    ],
)
def test_rotate_annotation_is_bounded_and_never_quoted_when_refused(
    value: str, accepted: bool, problem: str | None
) -> None:
    meta = models.ResourceMeta.from_body(
        {"metadata": {"name": "x", "annotations": {models.ROTATE_ANNOTATION: value}}}
    )
    assert meta.rotate_request == (value if accepted else None)
    refused = meta.refused_rotate_request
    if problem is None:
        assert refused is None
    else:
        assert refused is not None and problem in refused
        assert models.ROTATE_ANNOTATION in refused
        assert value not in refused


def test_status_drops_a_rotate_request_it_would_not_have_copied() -> None:
    # An older operator copied a 200 KB annotation into status: reading it drops it, so the
    # next status write clears it.
    status = models.ServicePrincipalSecretStatus.from_dict({"rotateRequest": "x" * 200_000})
    assert status.rotate_request is None
    assert status.to_patch()["rotateRequest"] is None


def test_status_messages_are_bounded() -> None:
    long = "e" * 5000
    status = models.ServicePrincipalSecretStatus.from_dict(
        {
            "lastError": long,
            "conditions": [
                {
                    "type": "Stalled",
                    "status": "True",
                    "reason": "GraphError",
                    "message": long,
                    "lastTransitionTime": "2026-11-26T05:00:00Z",
                }
            ],
        }
    )
    assert len(status.last_error) == models.MAX_MESSAGE
    assert status.last_error.endswith("…")
    assert len(status.conditions[0].message) == models.MAX_MESSAGE
    built = models.Condition(
        type="Ready", status="True", reason="Issued", message=long, last_transition_time=f.T0
    )
    assert len(built.message) == models.MAX_MESSAGE
    binding = models.DatabricksSecretBindingStatus.from_dict(
        {"lastError": long, "jobs": [{"jobId": 1, "message": long}]}
    )
    assert len(binding.last_error) == models.MAX_MESSAGE
    assert len(binding.jobs[0].message) == models.MAX_MESSAGE
    assert models.bounded("short") == "short"


_STATUS: dict[str, Any] = {
    "observedGeneration": 3,
    "conditions": [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Issued",
            "message": "ok",
            "lastTransitionTime": "2026-11-26T05:00:00Z",
            "observedGeneration": 3,
        }
    ],
    "current": {
        "keyId": "k2",
        "hint": "abc",
        "displayName": "rotator-etl-sp-7d1f2c9a",
        "expiresAt": "2027-02-24T05:00:00Z",
        "keyVaultVersion": "v2",
        "target": "t",
    },
    "retiring": [
        {
            "keyId": "k1",
            "hint": "xyz",
            "displayName": "rotator-etl-sp-1a2b3c4d",
            "expiresAt": "2027-01-01T00:00:00Z",
            "supersededAt": "2026-11-26T05:00:00Z",
            "retireAt": "2026-11-27T05:10:00Z",
        }
    ],
    "lastRotationTime": "2026-11-26T05:00:00Z",
    "nextRotationTime": "2027-01-25T05:07:13Z",
    "rotation": {
        "id": "7d1f2c9a",
        "reason": "Expiring",
        "step": "Verify",
        "phase": "Started",
        "startedAt": "2026-11-26T05:00:00Z",
        "displayName": "rotator-etl-sp-7d1f2c9a",
        "expiresAt": "2027-02-24T05:00:00Z",
        "keyId": "k3",
        "hint": "def",
        "stagingVersion": "s1",
        "attempts": 2,
        "target": "t",
    },
    "failures": 1,
    "lastError": "boom",
    "lastFailureTime": "2026-11-26T05:01:00Z",
    "rotateRequest": "2026-11-26-a",
    "recentRotations": ["2026-11-26T04:00:00Z", "2026-11-26T05:00:00Z"],
}


def test_sps_status_round_trip() -> None:
    status = models.ServicePrincipalSecretStatus.from_dict(_STATUS)
    assert status.rotation is not None
    assert status.rotation.step is models.Step.VERIFY
    assert status.rotation.phase is models.Phase.STARTED
    assert status.current is not None
    assert status.current.expires_at == dt.datetime(2027, 2, 24, 5, tzinfo=dt.UTC)
    assert status.to_dict() == _STATUS


def test_status_times_render_utc_z_whole_seconds() -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    status = models.ServicePrincipalSecretStatus(
        last_rotation_time=dt.datetime(2026, 11, 26, 7, 0, 0, 123456, tzinfo=plus2),
        next_rotation_time="2026-11-26T07:00:00+02:00",
    )
    assert status.to_dict()["lastRotationTime"] == "2026-11-26T05:00:00Z"
    assert status.to_dict()["nextRotationTime"] == "2026-11-26T05:00:00Z"


def test_to_patch_clears_absent_fields_for_merge_patch() -> None:
    status = models.ServicePrincipalSecretStatus.from_dict(_STATUS)
    cleared = status.model_copy(update={"rotation": None})
    patch = cleared.to_patch()
    assert "rotation" in patch
    assert patch["rotation"] is None
    assert "rotation" not in cleared.to_dict()
    # nested absent fields are explicit too, so a merge does not keep stale values
    assert patch["current"]["keyVaultVersion"] == "v2"
    assert models.ServicePrincipalSecretStatus().to_patch()["current"] is None


@pytest.mark.parametrize("status", [None, {}])
def test_empty_status(status: dict[str, Any] | None) -> None:
    parsed = models.ServicePrincipalSecretStatus.from_dict(status)
    assert parsed.current is None
    assert parsed.rotation is None
    assert parsed.failures == 0


@pytest.mark.parametrize(
    ("status", "fragment"),
    [
        ({"rotation": {"id": "x"}}, "status.rotation.reason: is required"),
        ({"rotation": {**_STATUS["rotation"], "step": "Dance"}}, "status.rotation.step"),
        ({"current": {"keyId": "k", "expiresAt": "yesterday"}}, "status.current.expiresAt"),
        ({"current": {"keyId": "k", "expiresAt": "2027-02-24T05:00:00"}}, "not an RFC 3339"),
    ],
)
def test_unreadable_status_is_permanent(status: dict[str, Any], fragment: str) -> None:
    with pytest.raises(errors.PermanentError) as caught:
        models.ServicePrincipalSecretStatus.from_dict(status)
    assert caught.value.reason == reasons.INVALID_STATUS
    assert fragment in str(caught.value)


def test_dsb_status_round_trip() -> None:
    raw = {
        "observedGeneration": 2,
        "conditions": [],
        "syncedVersion": "v2",
        "syncedKeyId": "k2",
        "lastSyncTime": "2026-11-26T05:00:00Z",
        "jobs": [
            {
                "jobName": "nightly-etl",
                "jobId": 123,
                "changed": True,
                "restartedRuns": 1,
                "message": "",
            }
        ],
        "failures": 0,
        "lastError": "",
    }
    status = models.DatabricksSecretBindingStatus.from_dict(raw)
    assert status.jobs[0].restarted_runs == 1
    assert status.to_dict() == raw


def test_a_huge_bad_value_is_not_echoed_in_full() -> None:
    # Without the CRD's maxLength (an old CRD, --validate=false), a value can be any size; the
    # error names the field and quotes at most a bounded part of it.
    spec = f.sps_spec_dict(tenantId="t" * 100_000)
    with pytest.raises(errors.SpecError) as caught:
        models.ServicePrincipalSecretSpec.from_spec(spec)
    assert caught.value.path == "spec.tenantId"
    assert len(caught.value.message) < 400
