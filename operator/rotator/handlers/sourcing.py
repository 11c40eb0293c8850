"""Where a DatabricksSecretBinding's value comes from: the source's current Key Vault version.

A ``servicePrincipalSecretRef`` source is read from the ServicePrincipalSecret's
``status.current`` (an API server read, never a cloud call); a ``keyVault`` source is the
vault's latest version (one Key Vault read). Either way the result is a :class:`Source`:
the one version a binding must deliver, and how messages name it. Any sink whose spec has a
``source`` (:class:`rotator.core.models.BindingSource`) resolves it here.
"""

from __future__ import annotations

import dataclasses

from rotator.core import errors, models, reasons
from rotator.handlers import runtime


@dataclasses.dataclass(frozen=True)
class Source:
    """The value a binding must deliver: one Key Vault version (and its Graph keyId, if any)."""

    vault_url: str
    secret_name: str
    version: str
    key_id: str | None = None
    label: str = ""  # how messages name it


class SourceNotReady(Exception):
    """The referenced ServicePrincipalSecret does not exist or has no current secret yet."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def resolve_source(
    rt: runtime.Runtime, namespace: str, wanted: models.BindingSource
) -> Source:
    """The source's current version: sps status (an API read) or Key Vault latest (a cloud call)."""
    ref = wanted.service_principal_secret_ref
    if ref is not None:
        body = await rt.status.read(namespace, ref.name)
        if body is None:
            raise SourceNotReady(f"ServicePrincipalSecret {ref.name!r} does not exist")
        try:
            sps_spec = models.ServicePrincipalSecretSpec.from_body(body)
            sps_status = models.ServicePrincipalSecretStatus.from_dict(body.get("status"))
        except errors.PermanentError:
            raise SourceNotReady(
                f"ServicePrincipalSecret {ref.name!r} has an invalid spec or status"
            ) from None
        current = sps_status.current
        if current is None or not current.key_vault_version:
            raise SourceNotReady(f"ServicePrincipalSecret {ref.name!r} has no current secret yet")
        return Source(
            vault_url=sps_spec.key_vault.vault_url,
            secret_name=sps_spec.key_vault.secret_name,
            version=current.key_vault_version,
            key_id=current.key_id,
            label=f"ServicePrincipalSecret {ref.name!r} (secret {current.key_id})",
        )
    source = wanted.key_vault
    assert source is not None  # the spec model guarantees exactly one source
    latest = await rt.vault.latest(source.vault_url, source.secret_name)
    if latest is None:
        raise errors.NotFound(
            f"Key Vault secret {source.secret_name!r} does not exist in {source.vault_url}"
        )
    if not latest.enabled:
        raise errors.PermanentError(
            f"the latest version of Key Vault secret {source.secret_name!r} in "
            f"{source.vault_url} is disabled; consumers cannot read it",
            reasons.KEY_VAULT_ERROR,
        )
    return Source(
        vault_url=source.vault_url,
        secret_name=source.secret_name,
        version=latest.version,
        label=f"Key Vault secret {source.secret_name!r}",
    )


# --- the sync -----------------------------------------------------------------------------------
