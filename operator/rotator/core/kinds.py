"""The names of our API: group, version, kinds and plurals, and the kopf index names.

Defined once, here; the CLI, the kopf handlers and the status writers all read them from this
module (a test checks them against the CRDs in ``crds/``). Plain data: no I/O.
"""

from __future__ import annotations

from typing import Final

GROUP: Final = "rotator.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

#: Plural (the API path segment) of each kind.
SPS: Final = "serviceprincipalsecrets"
DSB: Final = "databrickssecretbindings"
RPOL: Final = "rotationpolicies"

#: Kind -> plural of the kinds that carry a status (what ``rotator status`` lists).
PLURALS: Final = {
    "ServicePrincipalSecret": SPS,
    "DatabricksSecretBinding": DSB,
}

# kopf indices (``@kopf.index(id=...)``); each id is also the keyword a handler receives it by.
#: RotationPolicies by name (rotator.handlers.policing).
POLICY_INDEX: Final = "rotator_policies"
#: Namespace labels by namespace, for a policy's namespaceSelector.
NAMESPACE_INDEX: Final = "rotator_namespace_labels"
#: Consumers of each ServicePrincipalSecret, by (namespace, name): what each reports synced.
CONSUMERS_INDEX: Final = "rotator_bindings"
#: Which credentials each ServicePrincipalSecret accounts for, by (tenant, application).
SECRETS_INDEX: Final = "rotator_secrets"
