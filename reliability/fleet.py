"""The objects under test: one member = an application, its ServicePrincipalSecret, a
DatabricksSecretBinding to a scope and a job that references the scope.

Manifests reuse the binding scenarios' builders (``e2e.test_binding_scenarios``); only the
rotation timings and deletion policy are the suite's own. Every member has its own
application, Key Vault secret name and scope, so request logs and credentials are attributed
exactly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from e2e import operator_harness as h
from e2e.test_binding_scenarios import batch_job, dsb_manifest, sps_manifest

from rotator.sandbox import stack

SPS = "ServicePrincipalSecret"
DSB = "DatabricksSecretBinding"
ROTATE_ANNOTATION = "rotator.dev/rotate"
#: Timings (spec.rotation). Long members rotate only when the suite asks; short ones also
#: rotate on their own schedule every few minutes, so expiry handling is exercised.
LONG = {"validity": "1d", "renewBefore": "12h", "overlap": "15s"}
SHORT = {"validity": "8m", "renewBefore": "5m", "overlap": "15s"}
OVERLAP_SECONDS = 15.0


@dataclasses.dataclass
class Member:
    namespace: str
    name: str
    app: stack.Identity
    vault: str
    workspace: str
    job_id: int = 0
    short: bool = False
    deletion_policy: str = "Retain"
    key: str = "client-secret"

    @property
    def secret_name(self) -> str:
        return f"{self.namespace}-{self.name}"[:100]  # unique across namespaces in one vault

    @property
    def binding(self) -> str:
        return f"{self.name}-dsb"

    @property
    def scope(self) -> str:
        return f"{self.namespace}-{self.name}"[:60]

    @property
    def label(self) -> str:
        return f"{self.namespace}/{self.name}"

    def sps(self) -> dict[str, Any]:
        body = sps_manifest(self.namespace, self.name, self.app.client_id, self.vault)
        body["spec"]["tenantId"] = self.app.tenant_id
        body["spec"]["keyVault"]["secretName"] = self.secret_name
        body["spec"]["rotation"] = dict(SHORT if self.short else LONG)
        body["spec"]["verify"] = {"enabled": True, "timeout": "2m"}
        body["spec"]["deletionPolicy"] = self.deletion_policy
        return body

    def dsb(self) -> dict[str, Any]:
        jobs = [{"jobId": self.job_id, "env": ["AZURE_CLIENT_SECRET"], "restart": "Never"}]
        return dsb_manifest(
            self.namespace,
            self.binding,
            self.workspace,
            sps=self.name,
            scope=self.scope,
            key=self.key,
            jobs=jobs if self.job_id else None,
        )


def seed(
    sandbox: h.Sandbox,
    namespace: str,
    name: str,
    index: int,
    *,
    short: bool = False,
    deletion_policy: str = "Retain",
    job: bool = True,
) -> Member:
    """An application owned by the operator (no secret yet) and a job in a workspace."""
    app = sandbox.call(
        lambda: sandbox.stack.seed_application(f"rel-{namespace}-{name}", secret_on=None)
    )
    vaults, hosts = sandbox.stack.keyvault_urls, sandbox.stack.databricks_hosts
    member = Member(
        namespace=namespace,
        name=name,
        app=app,
        vault=vaults[index % len(vaults)],
        workspace=hosts[index % len(hosts)],
        short=short,
        deletion_policy=deletion_policy,
    )
    if job:
        state = next(s.state for s in sandbox.services("databricks") if s.url == member.workspace)
        settings = batch_job(f"rel-{namespace}-{name}")
        member.job_id = int(sandbox.call(lambda: state.create_job(state.aad(), settings).job_id))
    return member


def rotate(kube: h.Kube, member: Member, value: str | None = None) -> str:
    """Ask for a rotation (the annotation, as a person would); returns the value set."""
    value = value or dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%f")
    kube.patch(
        SPS,
        member.namespace,
        member.name,
        {"metadata": {"annotations": {ROTATE_ANNOTATION: value}}},
    )
    return value


def settled(kube: h.Kube, member: Member, *, other_than: str | None) -> dict[str, Any] | None:
    """The member's status once Ready with a current secret (not ``other_than``), no rotation
    in flight and the binding Ready with that secret synced; else None."""
    obj = kube.get(SPS, member.namespace, member.name)
    status = (obj or {}).get("status") or {}
    key = (status.get("current") or {}).get("keyId")
    if not key or key == other_than or status.get("rotation"):
        return None
    if h.condition(obj, "Ready").get("status") != "True":
        return None
    binding = kube.get(DSB, member.namespace, member.binding)
    if (binding or {}).get("status", {}).get("syncedKeyId") != key:
        return None
    if h.condition(binding, "Ready").get("status") != "True":
        return None
    return dict(status)
