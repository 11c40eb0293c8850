"""Offline checks of examples/ and tests/manifests/valid against the CRDs and the core models.

Each manifest is validated against its CRD's OpenAPI schema by a small validator (types,
unknown fields, required fields, enums, patterns, lengths, counts) — the part of the API
server's validation that needs no CEL — and parsed by :mod:`rotator.core.models`, so the CRDs,
the examples and the operator's own reading of a spec cannot drift apart. The validator is
itself checked against the invalid manifests whose expected rejection comes from OpenAPI.
The example RotationPolicy must grant every example, as :mod:`rotator.core.authorization` decides.
"""

from __future__ import annotations

import functools
import pathlib
import re
from typing import Any

import pytest
import yaml

from rotator.core import authorization, models

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
VALID = sorted((ROOT / "tests" / "manifests" / "valid").glob("*.yaml"))
INVALID = sorted((ROOT / "tests" / "manifests" / "invalid").glob("*.yaml"))

SPECS: dict[str, Any] = {
    "ServicePrincipalSecret": models.ServicePrincipalSecretSpec,
    "DatabricksSecretBinding": models.DatabricksSecretBindingSpec,
    "RotationPolicy": models.RotationPolicySpec,
}


@functools.cache
def crds() -> dict[str, dict[str, Any]]:
    found = {}
    for path in (ROOT / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        found[crd["spec"]["names"]["kind"]] = crd
    return found


def schema_of(kind: str) -> dict[str, Any]:
    (version,) = crds()[kind]["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]
    assert isinstance(schema, dict)
    return schema


def load(path: pathlib.Path) -> dict[str, Any]:
    documents = list(yaml.safe_load_all(path.read_text()))
    assert len(documents) == 1, f"{path.name}: one object per file"
    body = documents[0]
    assert isinstance(body, dict)
    return body


_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "boolean": bool,
}


def openapi_errors(value: Any, schema: dict[str, Any], path: str) -> list[str]:
    """What the apiserver's OpenAPI (non-CEL) validation would reject in ``value``."""
    if value is None:
        return [] if schema.get("nullable") else [f"{path}: null"]
    expected = _TYPES[schema["type"]]
    # bool is an int in Python; YAML's `yes` is a bool; neither may pass as the other here.
    if not isinstance(value, expected) or (schema["type"] == "integer" and value is True):
        return [f"{path}: must be of type {schema['type']}"]
    if schema["type"] == "boolean" and not isinstance(value, bool):
        return [f"{path}: must be of type boolean"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: Unsupported value")
    if isinstance(value, str):
        if len(value) > schema.get("maxLength", len(value)):
            errors.append(f"{path}: Too long")
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: Too short")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            errors.append(f"{path} should match")
    if isinstance(value, int) and value < schema.get("minimum", value):
        errors.append(f"{path}: should be greater than or equal to {schema['minimum']}")
    if isinstance(value, list):
        if len(value) > schema.get("maxItems", len(value)):
            errors.append(f"{path}: Too many")
        if schema.get("x-kubernetes-list-type") == "set" and len(set(value)) != len(value):
            errors.append(f"{path}: Duplicate value")
        for index, item in enumerate(value):
            errors += openapi_errors(item, schema["items"], f"{path}[{index}]")
    if isinstance(value, dict) and path != "metadata":
        if len(value) > schema.get("maxProperties", len(value)):
            errors.append(f"{path}: Too many")
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}.{name}: Required value")
        properties = schema.get("properties", {})
        for name, item in value.items():
            if name in properties:
                errors += openapi_errors(item, properties[name], f"{path}.{name}")
            elif "additionalProperties" in schema:
                errors += openapi_errors(item, schema["additionalProperties"], f"{path}.{name}")
            else:
                errors.append(f"{path}.{name}: unknown field")
    return errors


def validate(body: dict[str, Any]) -> list[str]:
    """OpenAPI errors of a whole object; metadata is the apiserver's business, not the CRD's."""
    schema = schema_of(body["kind"])
    errors = [f"{name}: Required value" for name in schema["required"] if name not in body]
    for name, value in body.items():
        if name not in schema["properties"]:
            errors.append(f"{name}: unknown field")
        elif name != "metadata":
            errors += openapi_errors(value, schema["properties"][name], name)
    return errors


# --- the examples ----------------------------------------------------------------------


def test_examples_cover_every_use_case() -> None:
    bodies = [load(path) for path in EXAMPLES]
    specs = {kind: [b["spec"] for b in bodies if b["kind"] == kind] for kind in SPECS}
    secrets = specs["ServicePrincipalSecret"]
    assert any("clientId" in s["application"] for s in secrets)
    assert any(
        "objectId" in s["application"]
        and s["application"].get("credentialOwner") == "servicePrincipal"
        for s in secrets
    )
    bindings = specs["DatabricksSecretBinding"]
    assert any("servicePrincipalSecretRef" in b["source"] and b.get("jobs") for b in bindings)
    assert any("keyVault" in b["source"] for b in bindings)
    assert specs["RotationPolicy"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_starts_with_what_it_shows(path: pathlib.Path) -> None:
    first = path.read_text().splitlines()[0]
    assert re.fullmatch(r"# Shows: \S.{20,}", first), first


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_names_a_kind_of_ours_in_the_right_scope(path: pathlib.Path) -> None:
    body = load(path)
    assert body["apiVersion"] == "rotator.dev/v1alpha1"
    crd = crds()[body["kind"]]
    namespaced = crd["spec"]["scope"] == "Namespaced"
    assert ("namespace" in body["metadata"]) == namespaced
    assert body["metadata"]["name"]


@pytest.mark.parametrize("path", EXAMPLES + VALID, ids=lambda p: p.stem)
def test_manifest_passes_the_crd_openapi_schema(path: pathlib.Path) -> None:
    assert validate(load(path)) == []


@pytest.mark.parametrize("path", EXAMPLES + VALID, ids=lambda p: p.stem)
def test_manifest_parses_with_the_core_models(path: pathlib.Path) -> None:
    body = load(path)
    spec = SPECS[body["kind"]].from_body(body)
    assert isinstance(spec, SPECS[body["kind"]])


def test_example_policy_grants_every_example() -> None:
    bodies = [load(path) for path in EXAMPLES]
    granted = [
        authorization.NamedPolicy(b["metadata"]["name"], models.RotationPolicySpec.from_body(b))
        for b in bodies
        if b["kind"] == "RotationPolicy"
    ]
    requests = 0
    for body in bodies:
        if body["kind"] == "ServicePrincipalSecret":
            request = authorization.request_for_secret(
                models.ServicePrincipalSecretSpec.from_body(body)
            )
        elif body["kind"] == "DatabricksSecretBinding":
            request = authorization.request_for_binding(
                models.DatabricksSecretBindingSpec.from_body(body)
            )
        else:
            continue
        requests += 1
        decision = authorization.check(granted, body["metadata"]["namespace"], {}, request)
        assert decision.allowed, decision.message
    assert requests == 4


def test_bindings_reference_example_secrets() -> None:
    bodies = [load(path) for path in EXAMPLES]
    secrets = {
        (b["metadata"]["namespace"], b["metadata"]["name"])
        for b in bodies
        if b["kind"] == "ServicePrincipalSecret"
    }
    for body in bodies:
        ref = body.get("spec", {}).get("source", {}).get("servicePrincipalSecretRef")
        if ref is not None:
            assert (body["metadata"]["namespace"], ref["name"]) in secrets


# --- the validator itself ----------------------------------------------------------------

# Messages that OpenAPI validation (not CEL) produces, as the invalid manifests expect them.
_OPENAPI = ("should match", "Required value", "Unsupported value", "Too long", "Too many")
_OPENAPI += ("Duplicate value", "should be greater than or equal to", "must be of type")


def openapi_expectations() -> list[pathlib.Path]:
    return [
        path
        for path in INVALID
        if any(marker in path.read_text().splitlines()[0] for marker in _OPENAPI)
    ]


def test_some_invalid_manifests_are_openapi_rejections() -> None:
    assert len(openapi_expectations()) >= 20


@pytest.mark.parametrize("path", openapi_expectations(), ids=lambda p: p.stem)
def test_validator_rejects_what_the_apiserver_rejects_by_schema(path: pathlib.Path) -> None:
    expect = path.read_text().splitlines()[0].removeprefix("# expect: ")
    marker = next(m for m in _OPENAPI if m in expect)
    errors = validate(load(path))
    assert any(marker in error for error in errors), (expect, errors)
