"""Where the cloud adapters connect and how patiently: one frozen value built by the shell.

Production leaves everything at its default (public cloud endpoints, the system CA store,
workload identity). The sandbox points the authority, Graph and CA bundle at the local
emulators, and nothing else: there is no switch that relaxes a check for them (the Key Vault
emulator's challenge names a resource the SDK's own verification accepts). Nothing here is a
secret except ``client_secret``, which stays wrapped.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from rotator.core import sensitive

PUBLIC_AUTHORITY = "login.microsoftonline.com"
PUBLIC_GRAPH_URL = "https://graph.microsoft.com/v1.0"


@dataclasses.dataclass(frozen=True)
class CloudSettings:
    """Endpoints, trust and timeouts for every adapter.

    authority_host        Entra authority (``https://host[:port]``). When set, the operator
                          authenticates with an explicit client secret (``tenant_id``,
                          ``client_id``, ``client_secret``) against it; when None it uses
                          ``DefaultAzureCredential`` (workload identity on AKS).
    graph_url             Graph's base URL including the version segment.
    ca_bundle             PEM file of CAs to trust instead of the system store (sandbox, proxies).
    databricks_*_seconds  Bounds for the sync Databricks SDK; its own default is 300 s.
    http_timeout_seconds  Per-request timeout for Graph and Key Vault.
    """

    authority_host: str | None = None
    graph_url: str = PUBLIC_GRAPH_URL
    ca_bundle: str | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: sensitive.SecretText | None = dataclasses.field(default=None, repr=False)
    http_timeout_seconds: float = 30.0
    databricks_http_timeout_seconds: float = 30.0
    databricks_retry_timeout_seconds: int = 20

    @property
    def authority(self) -> str:
        """The authority host azure-identity should use (public cloud by default)."""
        return self.authority_host or PUBLIC_AUTHORITY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CloudSettings:
        """Settings from the environment the operator runs in (``os.environ`` by default).

        ROTATOR_AUTHORITY_HOST, ROTATOR_GRAPH_URL, ROTATOR_CA_BUNDLE and the standard
        AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET.
        """
        env = os.environ if environ is None else environ
        secret = env.get("AZURE_CLIENT_SECRET")
        return cls(
            authority_host=env.get("ROTATOR_AUTHORITY_HOST") or None,
            graph_url=env.get("ROTATOR_GRAPH_URL") or PUBLIC_GRAPH_URL,
            ca_bundle=env.get("ROTATOR_CA_BUNDLE") or None,
            tenant_id=env.get("AZURE_TENANT_ID") or None,
            client_id=env.get("AZURE_CLIENT_ID") or None,
            client_secret=sensitive.SecretText(secret) if secret else None,
        )
