"""The leak check: no secret value the session saw ever reaches what people and tools read.

Runs last in the e2e session (the harness orders this module after every other one), so it
inspects everything the whole session left behind. To never pass vacuously, it first drives
one more rotation through a binding itself. Then every secret text Graph produced during the
session (seeded, minted by the operator, revoked since: captured from the Graph emulator's
state in this process) is searched, raw, base64 and JSON-escaped, in:

- the operator's log (every start, stdout and stderr);
- every object of every listable kind, through the admin client: our resources' status,
  annotations and spec, Kubernetes events, Secrets, ConfigMaps, leases, CRDs…;
- the operator's Prometheus metrics page.

A failure names where a secret was found and its Graph hint (three characters Graph itself
shows), never the secret.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from e2e.operator_harness import Kube, OperatorProcess, Sandbox, secret_forms, wait_for
from e2e.test_binding_scenarios import (
    current_of,
    dsb_manifest,
    rotate,
    rotated_from,
    sps_manifest,
    synced_to,
)

pytest_plugins = ["e2e.operator_harness"]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _rotation_through_a_binding(sandbox: Sandbox, kube: Kube, namespace: str) -> tuple[str, str]:
    """One issuance and one rotation, synced to a scope; the two keyIds."""
    app = sandbox.call(lambda: sandbox.stack.seed_application(f"leak-{namespace}"))
    host = sandbox.stack.databricks_hosts[0]
    kube.apply(sps_manifest(namespace, "leak-sp", app.client_id, sandbox.stack.keyvault_urls[0]))
    first = current_of(kube, namespace, "leak-sp")
    kube.apply(dsb_manifest(namespace, "leak", host, sps="leak-sp", scope=f"leak-{namespace}"[:60]))
    wait_for(synced_to(kube, namespace, "leak", first["keyId"]), timeout=90, message="sync")
    rotate(kube, namespace, "leak-sp")
    second = rotated_from(kube, namespace, "leak-sp", first["keyId"])
    wait_for(synced_to(kube, namespace, "leak", second["keyId"]), timeout=90, message="resync")
    return first["keyId"], second["keyId"]


def _places(kube: Kube, operator: OperatorProcess) -> list[tuple[str, str]]:
    """(where, text) for everything the check searches."""
    places: list[tuple[str, str]] = []
    for number, line in enumerate(operator.log_text().splitlines(), 1):
        places.append((f"operator log line {number}", line))
    for obj in kube.all_objects():
        meta = obj.get("metadata") or {}
        where = f"{obj.get('kind')} {meta.get('namespace', '')}/{meta.get('name', '')}"
        places.append((where, json.dumps(obj)))
    with urllib.request.urlopen(operator.metrics_url, timeout=10) as answer:
        places.append(("the metrics page", answer.read().decode(errors="replace")))
    return places


def _found(secrets: list[str], places: list[tuple[str, str]]) -> list[str]:
    hits: list[str] = []
    for secret in secrets:
        forms = secret_forms(secret)
        for where, text in places:
            if any(form in text for form in forms):
                hits.append(f"secret with hint {secret[:3]!r} in {where}")
    return hits


def test_no_secret_value_reaches_logs_events_status_or_any_object(
    operator: OperatorProcess, sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    minted_before = len(sandbox.minted_secrets())
    _rotation_through_a_binding(sandbox, kube, allowed_namespace)
    secrets: list[Any] = sandbox.minted_secrets()
    # The operator minted at least the two secrets of the rotation above.
    assert len(secrets) >= minted_before + 2
    assert all(len(s) >= 16 for s in secrets), "too short to search for without false hits"
    places = _places(kube, operator)
    # The haystack is real: the operator logged, and our objects are in it.
    assert any("operator log" in where for where, _ in places)
    assert any(where.startswith("DatabricksSecretBinding ") for where, _ in places)
    assert _found(secrets, places) == []


def test_the_check_finds_a_planted_secret(
    sandbox: Sandbox, kube: Kube, allowed_namespace: str
) -> None:
    """The search itself works: a secret planted in an annotation is reported."""
    planted = sandbox.call(lambda: sandbox.stack.seed_application(f"plant-{allowed_namespace}"))
    kube.kubectl(
        "annotate",
        "namespace",
        allowed_namespace,
        f"e2e.rotator.dev/planted={planted.secret_text}",
    )
    obj = kube.kubectl.json("get", "namespace", allowed_namespace)
    places = [(f"Namespace /{allowed_namespace}", json.dumps(obj))]
    assert _found([planted.secret_text], places) == [
        f"secret with hint {planted.secret_text[:3]!r} in Namespace /{allowed_namespace}"
    ]
    kube.kubectl("annotate", "namespace", allowed_namespace, "e2e.rotator.dev/planted-")
