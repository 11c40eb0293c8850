"""ServicePrincipalSecret scenarios: the operator as a separate process, under the chart's RBAC,
against a real kube-apiserver and the emulator stack (Entra, Graph, Key Vault).

Each test seeds its own application (owned by the operator) and uses its own namespace and
Key Vault secret name, so request logs and credentials can be attributed to it exactly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e import operator_harness as h
from rotator.clouds import identity
from rotator.clouds import settings as cloud_settings
from rotator.core import sensitive
from rotator.sandbox import faults, stack

pytest_plugins = ["e2e.operator_harness"]

pytestmark = pytest.mark.e2e

SPS = "ServicePrincipalSecret"
EXAMPLE = "serviceprincipalsecret-objectid-serviceprincipal.yaml"


@dataclasses.dataclass
class Target:
    """One test's application, namespace and Key Vault secret."""

    ns: str
    app: stack.Identity
    vault: str
    secret: str
    name: str = "etl-sp"

    def manifest(self, **spec: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "tenantId": self.app.tenant_id,
            "application": {"clientId": self.app.client_id},
            "rotation": {"validity": "1d", "renewBefore": "12h", "overlap": "1h"},
            "keyVault": {"vaultUrl": self.vault, "secretName": self.secret},
            "verify": {"enabled": True, "timeout": "2m"},
        }
        for key, value in spec.items():
            if isinstance(value, dict) and isinstance(body.get(key), dict):
                body[key] = {**body[key], **value}
            else:
                body[key] = value
        return {
            "apiVersion": f"{h.GROUP}/{h.VERSION}",
            "kind": SPS,
            "metadata": {"name": self.name, "namespace": self.ns},
            "spec": body,
        }


def seed_target(
    sandbox: h.Sandbox, kube: h.Kube, ns: str, *, policy: bool = True, label: str = "t"
) -> Target:
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"e2e-{ns}-{label}"))
    if policy:
        # Re-issue the namespace's policy so it also grants the application seeded just now.
        kube.apply(h.allow_policy(f"e2e-{ns}", [ns], sandbox))
    return Target(ns=ns, app=app, vault=sandbox.stack.keyvault_urls[0], secret=f"{ns}-{label}")


def sps_status(kube: h.Kube, t: Target) -> dict[str, Any]:
    return kube.status(SPS, t.ns, t.name)


def current_key(kube: h.Kube, t: Target) -> str | None:
    return (sps_status(kube, t).get("current") or {}).get("keyId")


def wait_ready(
    kube: h.Kube, t: Target, *, other_than: str | None = None, timeout: float = 90.0
) -> dict[str, Any]:
    """Wait until Ready is True with a current secret (different from ``other_than``)."""

    def ready() -> dict[str, Any] | None:
        obj = kube.get(SPS, t.ns, t.name)
        status = (obj or {}).get("status") or {}
        key = (status.get("current") or {}).get("keyId")
        ready = h.condition(obj, "Ready").get("status") == "True"
        if ready and key and key != other_than and status.get("rotation") is None:
            return status
        return None

    return h.wait_for(ready, timeout=timeout, message=f"{t.ns}/{t.name} Ready with a new secret")


def app_requests(sandbox: h.Sandbox, t: Target, operation: str | None = None) -> list[Any]:
    """Graph requests about this test's application."""
    ids = {t.app.client_id, t.app.object_id}
    return [
        e
        for e in sandbox.requests(operation)
        if e["operation"].startswith("graph.") and any(i in e["path"] for i in ids)
    ]


def vault_requests(sandbox: h.Sandbox, t: Target, operation: str | None = None) -> list[Any]:
    """Key Vault requests about this test's secret (and its staging secret)."""
    return [
        e
        for e in sandbox.requests(operation)
        if e["operation"].startswith("keyvault.") and f"/secrets/{t.secret}" in e["path"]
    ]


def staging_requests(sandbox: h.Sandbox, t: Target, operation: str) -> list[Any]:
    staging = f"/secrets/{t.secret}-rotator-staging"
    return [e for e in vault_requests(sandbox, t, operation) if staging in e["path"]]


def real_requests(sandbox: h.Sandbox, t: Target, operation: str) -> list[Any]:
    staging = f"/secrets/{t.secret}-rotator-staging"
    return [e for e in vault_requests(sandbox, t, operation) if staging not in e["path"]]


def versions(sandbox: h.Sandbox, t: Target, name: str | None = None) -> list[Any]:
    """The Key Vault versions of the secret (values included: the test may compare them)."""
    state = sandbox.state("keyvault", 0)

    def collect() -> list[Any]:
        try:
            return list(state.list_versions(name or t.secret))
        except Exception:
            return []

    return sandbox.call(collect)


def key_ids(sandbox: h.Sandbox, t: Target) -> set[str]:
    return sandbox.key_ids(t.app.tenant_id, t.app.client_id)


def reasons_of(kube: h.Kube, t: Target, *expected: str) -> list[str]:
    """The reasons of the object's events, once each ``expected`` one has been posted (events
    reach the API server after the effect they report: see :func:`h.wait_for_events`)."""
    return [str(e.get("reason")) for e in h.wait_for_events(kube, t.ns, t.name, expected)]


def assert_no_secret_leaked(kube: h.Kube, sandbox: h.Sandbox, t: Target) -> None:
    obj = str(kube.get(SPS, t.ns, t.name))
    events = str(kube.events_for(t.ns, t.name))
    for text in sandbox.minted_secrets():
        for form in h.secret_forms(text):
            assert form not in obj and form not in events


@pytest.fixture
def clean_faults(sandbox: h.Sandbox) -> Iterator[None]:
    sandbox.clear_faults()
    yield
    sandbox.clear_faults()
    sandbox.call(lambda: setattr(sandbox.stack.directory, "propagation_delay", 0.0))


# --- scenarios -------------------------------------------------------------------------------


def test_first_issuance(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    status = wait_ready(kube, t)
    current = status["current"]
    # Graph holds the credential; Key Vault's latest holds it, tagged, with an expiry.
    assert current["keyId"] in key_ids(sandbox, t)
    latest = versions(sandbox, t)[-1]
    assert latest.version == current["keyVaultVersion"]
    assert latest.tags["rotator.dev/key-id"] == current["keyId"]
    assert latest.expires is not None and latest.enabled
    assert current["displayName"].startswith("rotator-etl-sp-")
    # The staging copy exists but is disabled; nothing reads it.
    staged = versions(sandbox, t, f"{t.secret}-rotator-staging")
    assert staged and not staged[-1].enabled
    assert latest.value == staged[-1].value
    obj = kube.get(SPS, t.ns, t.name)
    assert h.condition(obj, "Ready")["reason"] == "Issued"
    assert h.condition(obj, "Ready")["observedGeneration"] == obj["metadata"]["generation"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["nextRotationTime"] and status["lastRotationTime"]
    events = reasons_of(kube, t, "NeverIssued", "Rotated")
    assert "NeverIssued" in events and "Rotated" in events
    assert_no_secret_leaked(kube, sandbox, t)


@pytest.mark.timeout(300)
def test_scheduled_rotation_then_revocation_after_overlap(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest(rotation={"validity": "2m", "renewBefore": "1m", "overlap": "10s"}))
    first = wait_ready(kube, t)["current"]["keyId"]
    # nextRotationTime = expiresAt - 1m: the operator wakes for it by itself.
    second = wait_ready(kube, t, other_than=first, timeout=120)
    retiring = [r["keyId"] for r in second.get("retiring") or []]
    assert first in retiring or first not in key_ids(sandbox, t)
    # No bindings: the old secret is revoked once the overlap has passed.
    h.wait_for(
        lambda: first not in key_ids(sandbox, t),
        timeout=60,
        message="the superseded secret to be revoked",
    )
    h.wait_for(
        lambda: not (sps_status(kube, t).get("retiring") or []),
        timeout=30,
        message="retiring to be emptied",
    )
    assert len(app_requests(sandbox, t, "graph.removePassword")) >= 1
    assert "Revoked" in reasons_of(kube, t, "Revoked")


def test_manual_rotation_via_annotation(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    first = wait_ready(kube, t)["current"]["keyId"]
    adds = len(app_requests(sandbox, t, "graph.addPassword"))
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": "e2e-1"}}})
    status = wait_ready(kube, t, other_than=first)
    assert status["rotateRequest"] == "e2e-1"
    assert [r["keyId"] for r in status["retiring"]] == [first]
    time.sleep(3)  # the handled value must not rotate again
    assert len(app_requests(sandbox, t, "graph.addPassword")) == adds + 1
    assert "ManualRequest" in reasons_of(kube, t, "ManualRequest")


def test_suspend_stops_rotation(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    wait_ready(kube, t)
    kube.apply(t.manifest(suspend=True))
    h.wait_for(
        lambda: h.condition(kube.get(SPS, t.ns, t.name), "Ready").get("reason") == "Suspended",
        message="Ready reason Suspended",
    )
    before = len(app_requests(sandbox, t)) + len(vault_requests(sandbox, t))
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": "x"}}})
    time.sleep(4)
    assert len(app_requests(sandbox, t)) + len(vault_requests(sandbox, t)) == before
    assert h.condition(kube.get(SPS, t.ns, t.name), "Ready")["status"] == "True"


@pytest.mark.parametrize("policy", ["Retain", "Revoke"])
def test_deletion_policy(
    policy: str,
    operator: h.OperatorProcess,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest(deletionPolicy=policy))
    first = wait_ready(kube, t)["current"]["keyId"]
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": "again"}}})
    second = wait_ready(kube, t, other_than=first)["current"]["keyId"]
    kube.delete(SPS, t.ns, t.name)
    h.wait_for(lambda: kube.get(SPS, t.ns, t.name) is None, message="the sps to be gone")
    remaining = key_ids(sandbox, t)
    if policy == "Retain":
        assert {first, second} <= remaining
    else:
        assert first not in remaining and second not in remaining
    assert versions(sandbox, t), "Key Vault is never emptied by a deletion"


@pytest.mark.timeout(240)
def test_retain_delete_mid_rotation_removes_only_the_unstored_credential(
    operator: h.OperatorProcess,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    clean_faults: None,
) -> None:
    """Deleted while a rotation waits in Verify: Retain keeps the secret in use and removes
    the in-flight credential, which never reached Key Vault (no orphan outlives the sps)."""
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest(deletionPolicy="Retain", verify={"timeout": "10m"}))
    first = wait_ready(kube, t)["current"]["keyId"]
    # New secrets take a minute to authenticate: the rotation stays in Verify.
    sandbox.call(lambda: setattr(sandbox.stack.directory, "propagation_delay", 60.0))
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": "mid"}}})
    journal = h.wait_for(
        lambda: (
            r
            if (r := sps_status(kube, t).get("rotation") or {}).get("step") == "Verify"
            and r.get("keyId")
            else None
        ),
        message="the journal at Verify",
    )
    assert journal["keyId"] in key_ids(sandbox, t)
    kube.delete(SPS, t.ns, t.name)
    h.wait_for(lambda: kube.get(SPS, t.ns, t.name) is None, timeout=90, message="sps gone")
    remaining = key_ids(sandbox, t)
    assert first in remaining
    assert journal["keyId"] not in remaining
    assert [v.tags["rotator.dev/key-id"] for v in versions(sandbox, t)] == [first]


def test_policy_denial_makes_zero_cloud_calls(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, make_namespace: Any
) -> None:
    ns = make_namespace()
    t = seed_target(sandbox, kube, ns, policy=False)
    kube.apply(t.manifest())
    h.wait_for(
        lambda: (
            h.condition(kube.get(SPS, t.ns, t.name), "Stalled").get("reason") == "NotAuthorized"
        ),
        message="Stalled NotAuthorized",
    )
    time.sleep(2)
    assert app_requests(sandbox, t) == []
    assert vault_requests(sandbox, t) == []
    events = h.wait_for_events(kube, t.ns, t.name, {"NotAuthorized"})
    warnings = [e for e in events if e.get("type") == "Warning"]
    assert any(e.get("reason") == "NotAuthorized" for e in warnings)
    # Granting it later issues the secret without any edit of the resource.
    kube.apply(h.allow_policy(f"e2e-{ns}", [ns], sandbox))
    try:
        wait_ready(kube, t)
    finally:
        kube.kubectl("delete", "rotationpolicy", f"e2e-{ns}", "--ignore-not-found", check=False)


def test_verification_failure_never_reaches_key_vault(
    operator: h.OperatorProcess,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    clean_faults: None,
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    first = wait_ready(kube, t)["current"]["keyId"]
    stored = len(versions(sandbox, t))
    # The operator's own tokens are cached by now: the next token request is the
    # verification of the new secret, and Entra answers "tenant not found".
    sandbox.add_fault(
        faults.FaultRule(
            operation="entra.token", kind="status", status=400, count=1, code="AADSTS90002"
        )
    )
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": "bad"}}})
    stalled = h.wait_for(
        lambda: h.condition(kube.get(SPS, t.ns, t.name), "Stalled") or None,
        message="Stalled VerificationFailed",
    )
    assert stalled["reason"] == "VerificationFailed"
    status = sps_status(kube, t)
    assert status["current"]["keyId"] == first and status.get("rotation") is None
    # Nothing reached the real secret name; the minted credential was removed again.
    assert len(versions(sandbox, t)) == stored
    h.wait_for(lambda: key_ids(sandbox, t) == {first} | _initial(sandbox, t), message="cleanup")
    assert "VerificationFailed" in reasons_of(kube, t, "VerificationFailed")


def _initial(sandbox: h.Sandbox, t: Target) -> set[str]:
    """The seeded credential(s) of the application (display names not ours)."""
    return {
        str(c["keyId"])
        for c in sandbox.credentials(t.app.tenant_id, t.app.client_id)
        if not str(c.get("displayName") or "").startswith("rotator-")
    }


@pytest.mark.timeout(240)
@pytest.mark.parametrize(
    "rule",
    [
        faults.FaultRule(operation="graph.addPassword", kind="after", status=503, count=1),
        faults.FaultRule(
            operation="graph.addPassword", kind="status", status=429, retry_after=2, count=1
        ),
    ],
    ids=["503-after-create", "429-retry-after"],
)
def test_graph_failure_during_add_password_leaves_no_orphan(
    rule: faults.FaultRule,
    operator: h.OperatorProcess,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    clean_faults: None,
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    sandbox.add_fault(dataclasses.replace(rule))
    kube.apply(t.manifest())
    status = wait_ready(kube, t, timeout=120)
    current = status["current"]["keyId"]
    # Exactly one rotator credential: the current one. The one a 503 created was removed.
    ours = key_ids(sandbox, t) - _initial(sandbox, t)
    assert ours == {current}
    assert len(app_requests(sandbox, t, "graph.addPassword")) == 2
    # Only one version reached the real name.
    assert len(versions(sandbox, t)) == 1


@pytest.mark.timeout(240)
def test_graph_retry_after_holds_the_whole_tenant(
    operator: h.OperatorProcess,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    clean_faults: None,
) -> None:
    """Graph throttles the operator per tenant: after a 429 with Retry-After for one secret,
    another secret of the same tenant makes no Graph call until Retry-After has passed."""
    retry_after = 8.0
    a = seed_target(sandbox, kube, allowed_namespace, label="a")
    b = seed_target(sandbox, kube, allowed_namespace, label="b")
    b.name = "etl-sp-b"
    assert a.app.tenant_id == b.app.tenant_id
    sandbox.add_fault(
        faults.FaultRule(
            operation="graph.addPassword",
            kind="status",
            status=429,
            retry_after=retry_after,
            count=1,
        )
    )
    kube.apply(a.manifest())
    throttled = h.wait_for(
        lambda: [e for e in app_requests(sandbox, a, "graph.addPassword") if e["status"] == 429],
        message="the 429 for the first secret",
    )
    kube.apply(b.manifest())
    wait_ready(kube, b, timeout=120)
    wait_ready(kube, a, timeout=120)
    first_of_b = app_requests(sandbox, b)[0]
    # 0.5 s for the two clocks' reading of one instant (the operator starts the hold when the
    # answer arrives, after the emulator logged the request).
    assert float(first_of_b["time"]) >= float(throttled[0]["time"]) + retry_after - 0.5


@pytest.mark.timeout(300)
def test_killed_mid_verification_resumes_and_finishes(
    operator: h.OperatorProcess,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    clean_faults: None,
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    # New secrets need 20 s to authenticate: verification retries through that delay.
    sandbox.call(lambda: setattr(sandbox.stack.directory, "propagation_delay", 20.0))
    kube.apply(t.manifest())
    h.wait_for(
        lambda: (sps_status(kube, t).get("rotation") or {}).get("step") == "Verify",
        message="the journal at Verify",
    )
    operator.kill()
    journal = sps_status(kube, t)["rotation"]
    assert journal["keyId"] and journal["stagingVersion"]
    assert versions(sandbox, t) == []  # nothing stored under the real name yet
    operator.start()
    status = wait_ready(kube, t, timeout=120)
    assert status["current"]["keyId"] == journal["keyId"]  # resumed, not started over
    assert len(app_requests(sandbox, t, "graph.addPassword")) == 1
    assert key_ids(sandbox, t) - _initial(sandbox, t) == {journal["keyId"]}
    latest = versions(sandbox, t)[-1]
    assert latest.tags["rotator.dev/key-id"] == journal["keyId"]


@pytest.mark.timeout(420)
def test_expiry_wins_over_a_throttled_verify_a_removed_credential_and_restarts(
    operator: h.OperatorProcess,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    clean_faults: None,
) -> None:
    """The chain a chaos run found, on the real stack: Entra throttles the verification of a
    scheduled rotation's secret (429, no AADSTS code); the new credential is removed while the
    journal sits at Verify (as a process that gave up and was killed before recording it
    would leave it); the operator is SIGKILLed again and again, more often than
    verify.timeout. A fresh secret must still replace the current one before it expires."""
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(
        t.manifest(
            rotation={"validity": "4m", "renewBefore": "3m", "overlap": "10s"},
            verify={"enabled": True, "timeout": "1m"},
        )
    )
    first = wait_ready(kube, t)
    first_key, expires = first["current"]["keyId"], first["current"]["expiresAt"]
    # From now on a new secret needs 20 s to authenticate (the journal sits at Verify), and
    # the next token request - the scheduled rotation's verification - is throttled.
    sandbox.call(lambda: setattr(sandbox.stack.directory, "propagation_delay", 20.0))
    sandbox.add_fault(faults.FaultRule(operation="entra.token", kind="status", status=429, count=1))

    def at_verify() -> dict[str, Any] | None:
        journal = sps_status(kube, t).get("rotation") or {}
        return journal if journal.get("step") == "Verify" and journal.get("keyId") else None

    journal = h.wait_for(at_verify, timeout=150, message="the scheduled rotation at Verify")
    operator.kill()

    def remove_new_credential() -> None:
        app = sandbox.stack.directory.tenant(t.app.tenant_id).find(  # type: ignore[union-attr]
            "application", app_id=t.app.client_id
        )
        app.password_credentials[:] = [
            p for p in app.password_credentials if str(p.key_id) != journal["keyId"]
        ]

    sandbox.call(remove_new_credential)
    replaced: dict[str, Any] | None = None
    for _ in range(6):  # restarts every 10 s: more often than verify.timeout (1m)
        operator.start()
        time.sleep(10)
        status = sps_status(kube, t)
        current = (status.get("current") or {}).get("keyId")
        if current not in (None, first_key) and status.get("rotation") is None:
            replaced = status
            break
        operator.kill()
    if replaced is None:
        operator.start()
        replaced = wait_ready(kube, t, other_than=first_key, timeout=120)
    new_key = replaced["current"]["keyId"]
    assert new_key != journal["keyId"]
    # Replaced before the old secret expired, and the Key Vault latest is the new secret.
    assert replaced["lastRotationTime"] < expires
    latest = versions(sandbox, t)[-1]
    assert latest.tags["rotator.dev/key-id"] == new_key and latest.enabled
    # Nothing left behind: our credentials are the new one and (until revoked) the old one.
    assert key_ids(sandbox, t) - _initial(sandbox, t) <= {first_key, new_key}


@pytest.fixture
def fast_drift(operator: h.OperatorProcess) -> Iterator[h.OperatorProcess]:
    """The operator restarted with a 5 s drift check; restored to the defaults afterwards."""
    saved = tuple(operator.args)
    operator.args = (*saved, "--drift-check-interval", "5s")
    operator.restart()
    try:
        yield operator
    finally:
        operator.args = saved
        operator.restart()


@pytest.mark.timeout(240)
def test_drift_and_orphans_are_repaired(
    fast_drift: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    first = wait_ready(kube, t)["current"]["keyId"]

    def application() -> Any:
        return sandbox.stack.directory.tenant(t.app.tenant_id).find(  # type: ignore[union-attr]
            "application", app_id=t.app.client_id
        )

    def tamper() -> str:
        app = application()
        # Someone deletes our current secret in the portal, and a credential named like ours
        # that no status accounts for appears (a crash of an older operator, say).
        app.password_credentials[:] = [
            p for p in app.password_credentials if str(p.key_id) != first
        ]
        orphan = sandbox.stack.directory.add_password(app, display_name="rotator-etl-sp-0ddba11")
        return str(orphan.key_id)

    foreign = _initial(sandbox, t)
    assert foreign, "the seeded application has a credential of its own"
    orphan = sandbox.call(tamper)
    status = wait_ready(kube, t, other_than=first, timeout=90)
    assert status["current"]["keyId"] in key_ids(sandbox, t)
    h.wait_for(lambda: orphan not in key_ids(sandbox, t), timeout=60, message="orphan removed")
    reasons = reasons_of(kube, t, "DriftDetected", "OrphanRemoved")
    assert "DriftDetected" in reasons and "OrphanRemoved" in reasons
    # A credential of someone else (not our displayName) is never touched.
    assert foreign <= key_ids(sandbox, t)


def test_object_id_only_service_principal_is_verified_and_issued(
    operator: h.OperatorProcess, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    """examples/serviceprincipalsecret-objectid-serviceprincipal.yaml, pointed at the stack's
    servicePrincipal-owned demo app: no clientId in the spec, verification on (the default).
    The operator reads the appId from Graph once, verifies with it, and ends Ready."""
    demo = sandbox.stack.demo_service_principal
    assert demo.service_principal_id is not None
    example = yaml.safe_load((h.REPO / "examples" / EXAMPLE).read_text())
    t = Target(
        ns=allowed_namespace,
        app=demo,
        vault=sandbox.stack.keyvault_urls[0],
        secret=f"{allowed_namespace}-objectid",
        name=example["metadata"]["name"],
    )
    example["metadata"]["namespace"] = t.ns
    spec = example["spec"]
    assert set(spec["application"]) == {"objectId", "credentialOwner"}
    assert "verify" not in spec  # defaulted: enabled
    spec["tenantId"] = demo.tenant_id
    spec["application"]["objectId"] = demo.service_principal_id
    spec["keyVault"] = {"vaultUrl": t.vault, "secretName": t.secret}
    started = time.time()
    kube.apply(example)
    status = wait_ready(kube, t)
    obj = kube.get(SPS, t.ns, t.name)
    assert obj is not None and obj["spec"]["verify"]["enabled"] is True
    assert h.condition(obj, "Ready")["reason"] == "Issued"
    assert h.condition(obj, "Stalled") == {}
    key = status["current"]["keyId"]
    # The password lives on the service principal, as credentialOwner says.
    held = {c["keyId"]: c["holder"] for c in sandbox.credentials(demo.tenant_id, demo.client_id)}
    assert held[key] == "servicePrincipal"
    # The appId was read from the service principal by its objectId, asking for appId only.
    lookups = [
        e
        for e in sandbox.requests("graph.getServicePrincipal")
        if float(e["time"]) > started
        and e["path"].lower().endswith(demo.service_principal_id.lower())
        and "appId" in urllib.parse.unquote(e["query"]).split("=", 1)[-1].split(",")
        and "passwordCredentials" not in e["query"]
    ]
    assert len(lookups) == 1
    # Verify ran (its event) before the store; the stored value authenticates as the app.
    verified = h.wait_for(
        lambda: [
            e
            for e in kube.events_for(t.ns, t.name)
            if f"the new credential {key} authenticates" in str(e.get("message"))
        ],
        message="the event saying the new credential authenticates",
    )
    assert verified
    latest = versions(sandbox, t)[-1]
    assert latest.tags["rotator.dev/key-id"] == key
    cloud = cloud_settings.CloudSettings.from_env(sandbox.env())
    asyncio.run(
        identity.verify_client_secret(
            demo.tenant_id,
            demo.client_id,
            sensitive.SecretText(latest.value),
            authority=cloud.authority,
            timeout=10,
            ca_bundle=cloud.ca_bundle,
        )
    )
    assert_no_secret_leaked(kube, sandbox, t)
    # deletionPolicy Revoke (as in the example): the shared demo app is left as it was found.
    kube.delete(SPS, t.ns, t.name)
    h.wait_for(lambda: kube.get(SPS, t.ns, t.name) is None, message="the sps to be gone")
    assert key not in sandbox.key_ids(demo.tenant_id, demo.client_id)
