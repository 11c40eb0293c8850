"""End-of-run audits: leaks, policy denials, and a real token request for every final value.

Leaks: every secret text Graph produced during the run (``Sandbox.minted_secrets``), in the
forms it could be stored in (raw, base64, JSON-escaped: ``e2e.operator_harness.secret_forms``),
searched in the operator's whole log (every start), every object of every listable kind
(status, annotations, events, Secrets, leases…) and the operator's metrics page. Findings name
the place and the three-character hint Graph itself shows, never the secret.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from azure.identity import ClientSecretCredential
from e2e import operator_harness as h
from e2e import test_leaks

from reliability import fleet, probing


def leaks(kube: h.Kube, operator: h.OperatorProcess, minted: Sequence[str]) -> list[str]:
    """Where a minted secret shows up (the places of the e2e leak check, searched at scale:
    one pass over everything joined, then the places only for a secret found there)."""
    places = test_leaks._places(kube, operator)
    everything = "\n".join(text for _, text in places)
    found = []
    for text in minted:
        forms = h.secret_forms(text)
        if any(form in everything for form in forms):
            found += test_leaks._found([text], places)
    return found


def denied_calls(sandbox: h.Sandbox, member: fleet.Member) -> list[str]:
    """Cloud effects of a member no RotationPolicy allows: requests naming its application or
    its Key Vault secret, a credential on its application, its secret or scope existing."""
    marks = (member.app.client_id, member.app.object_id, member.secret_name, member.scope)
    found = [
        f"{e['operation']} {e['path']}"
        for e in sandbox.requests()
        if any(mark in f"{e['path']}?{e.get('query', '')}" for mark in marks)
    ]
    found += [
        f"credential {c['keyId']}"
        for c in sandbox.credentials(member.app.tenant_id, member.app.client_id)
    ]

    def exists() -> list[str]:
        vault = probing._state_at(sandbox, "keyvault", member.vault)
        workspace = probing._state_at(sandbox, "databricks", member.workspace)
        return [
            where
            for where, there in (
                ("Key Vault secret", member.secret_name.lower() in vault.secrets),
                ("Databricks scope", member.scope in workspace.scopes),
            )
            if there
        ]

    return found + sandbox.call(exists)


def final_values(sandbox: h.Sandbox, member: fleet.Member) -> dict[str, str]:
    """Where -> the value consumers read now (kept in memory only, never written anywhere)."""

    def collect() -> dict[str, str]:
        values: dict[str, str] = {}
        vault = probing._state_at(sandbox, "keyvault", member.vault)
        secret = vault.secrets.get(member.secret_name.lower())
        if secret is not None and secret.versions and secret.latest.enabled:
            values["keyvault"] = secret.latest.value
        workspace = probing._state_at(sandbox, "databricks", member.workspace)
        scope = workspace.scopes.get(member.scope)
        if scope is not None and member.key in scope.secrets:
            values["scope"] = scope.secrets[member.key].value.decode(errors="replace")
        return values

    return dict(sandbox.call(collect))


def token_failures(sandbox: h.Sandbox, members: Sequence[fleet.Member]) -> list[str]:
    """Every final Key Vault latest and scope value, used for a real token request (the
    azure-identity SDK over HTTPS to the Entra emulator); the places where it fails."""
    failures: list[str] = []
    # azure-identity logs each failed attempt (app ids, no secret): the list below says it.
    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    for member in members:
        values = final_values(sandbox, member)
        for where in ("keyvault", "scope"):
            if where not in values:
                failures.append(f"{member.label} {where}: no value")
                continue
            credential = ClientSecretCredential(
                member.app.tenant_id,
                member.app.client_id,
                values[where],
                authority=sandbox.stack.entra_url,
                disable_instance_discovery=True,
                connection_verify=str(sandbox.stack.ca.bundle_path),
            )
            try:
                credential.get_token("https://graph.microsoft.com/.default")
            except Exception as error:
                # The SDK's message may quote the request: keep only the AADSTS code.
                code = next((w for w in str(error).split() if w.startswith("AADSTS")), "")
                failures.append(f"{member.label} {where}: {type(error).__name__} {code}")
            finally:
                credential.close()
    return failures


def summary(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, [], {})}
