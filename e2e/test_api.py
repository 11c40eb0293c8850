"""The API, proven against a real kube-apiserver.

Everything the CRDs promise is checked the way users meet it, through kubectl: the CRDs
install and become Established, the examples apply, every manifest in
``tests/manifests/invalid/`` is rejected with the message its ``# expect: ...`` first line
names and every one in ``tests/manifests/valid/`` is accepted (server-side dry run),
``kubectl explain`` shows the CRDs' descriptions, ``kubectl get`` shows the printer columns,
defaults are applied, re-applying a CRD changes nothing, and RBAC is real for the operator
identity. Expected texts, columns and defaults are read from ``crds/``, never repeated here.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.testbed import manifests
from e2e.testbed.kubectl import Kubectl

pytestmark = pytest.mark.e2e

# The API contract of PRODUCT.md: kind -> short name.
KINDS = {
    "ServicePrincipalSecret": "sps",
    "DatabricksSecretBinding": "dsb",
    "RotationPolicy": "rpol",
}
# PRODUCT.md's printer columns for `kubectl get sps`, in order.
SPS_COLUMNS = ["NAME", "READY", "EXPIRES", "NEXT ROTATION", "AGE"]
# One documented field per kind that `kubectl explain` must show.
EXPLAINED = [
    ("ServicePrincipalSecret", "spec.rotation"),
    ("DatabricksSecretBinding", "spec.scope"),
    ("RotationPolicy", "spec.maxValidity"),
]


def _name(path: Path) -> str:
    return path.name


def _squash(text: str) -> str:
    """Whitespace-insensitive form: kubectl re-wraps and indents what it prints."""
    return " ".join(text.split())


def _eventually(check: Any, *, timeout: float = 30.0) -> Any:
    """Retry ``check`` until it stops raising AssertionError (the apiserver publishes a new
    CRD's OpenAPI and RBAC changes asynchronously, within seconds)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture(scope="module")
def dry_run_namespace(crds: list[manifests.Crd], kubectl: Kubectl) -> str:
    """One namespace for every server-side dry run: nothing is stored, so nothing collides,
    and the suite saves two kubectl calls per manifest."""
    name = f"e2e-dry-run-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="module")
def scopes(crds: list[manifests.Crd], kubectl: Kubectl) -> dict[tuple[str, str], bool]:
    return manifests.namespaced_kinds(kubectl)


def _placed(
    kubectl: Kubectl, path: Path, namespace: str, scopes: dict[tuple[str, str], bool]
) -> str:
    docs, named = manifests.place(manifests.load(path), namespace, scopes)
    manifests.ensure_namespaces(kubectl, named)
    return yaml.safe_dump_all(docs, sort_keys=False)


def _minimal(kind: str) -> dict[str, Any] | None:
    """The smallest valid manifest of ``kind`` among tests/manifests/valid and examples
    (a file named *minimal* wins), or None."""
    candidates = []
    for path in manifests.yaml_files(manifests.VALID) + manifests.yaml_files(manifests.EXAMPLES):
        for doc in manifests.load(path):
            if doc.get("kind") == kind and manifests.group_of(doc["apiVersion"]) == "rotator.dev":
                candidates.append(("minimal" not in path.name, manifests.leaf_count(doc), doc))
    if not candidates:
        return None
    return min(candidates, key=lambda c: (c[0], c[1]))[2]


# -- the suites exist ------------------------------------------------------------------------


def test_every_kind_has_a_crd_and_every_suite_has_files() -> None:
    kinds = {crd.kind for crd in manifests.repo_crds()}
    assert kinds >= set(KINDS), f"crds/ lacks {sorted(set(KINDS) - kinds)}"
    for folder in (manifests.EXAMPLES, manifests.VALID, manifests.INVALID):
        assert manifests.yaml_files(folder), f"no manifests in {folder}"


# -- the CRDs --------------------------------------------------------------------------------


def test_crds_are_established_with_their_short_names(
    crds: list[manifests.Crd], kubectl: Kubectl
) -> None:
    for crd in crds:
        live = kubectl.json("get", f"crd/{crd.name}")
        conditions = {c["type"]: c["status"] for c in live["status"]["conditions"]}
        assert conditions.get("Established") == "True", (crd.name, conditions)
        assert conditions.get("NamesAccepted") == "True", (crd.name, conditions)
        if crd.kind in KINDS:
            assert KINDS[crd.kind] in crd.short_names, crd.name
            listing = kubectl("get", KINDS[crd.kind], "--all-namespaces")
            header = listing.stdout.split()[:2]
            assert "No resources found" in listing.stderr or header == ["NAMESPACE", "NAME"]


def test_the_python_client_trusts_the_apiserver_and_sees_the_crds(
    crds: list[manifests.Crd], kube_client: Any
) -> None:
    # The kubeconfig works for Python clients too (kopf logs in through it): TLS to the
    # self-signed apiserver and token auth, end to end.
    from kubernetes import client

    listed = client.ApiextensionsV1Api(kube_client).list_custom_resource_definition()
    assert {c.name for c in crds} <= {item.metadata.name for item in listed.items}


@pytest.mark.parametrize("path", sorted({c.path for c in manifests.repo_crds()}), ids=_name)
def test_crd_applied_twice_is_unchanged(
    path: Path, crds: list[manifests.Crd], kubectl: Kubectl
) -> None:
    names = [f"crd/{c.name}" for c in crds if c.path == path]
    before = [kubectl.json("get", name) for name in names]
    again = kubectl("apply", "-f", str(path))
    after = [kubectl.json("get", name) for name in names]
    assert all(line.endswith(" unchanged") for line in again.stdout.splitlines()), again.stdout
    for old, new in zip(before, after, strict=True):
        assert new["metadata"]["generation"] == old["metadata"]["generation"]
        assert new["spec"] == old["spec"]
    # The server's own view: a server-side dry run of the file would change nothing either.
    diff = kubectl("diff", "-f", str(path), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr


# -- examples and test manifests -------------------------------------------------------------


@pytest.mark.parametrize("path", manifests.yaml_files(manifests.EXAMPLES), ids=_name)
def test_example_applies(
    path: Path, kubectl: Kubectl, namespace: str, scopes: dict[tuple[str, str], bool]
) -> None:
    placed = _placed(kubectl, path, namespace, scopes)
    done = kubectl("apply", "-f", "-", input=placed)
    assert re.search(r" (created|configured|unchanged)$", done.stdout, re.M), done.stdout
    # Leave nothing behind: the operator scenarios later in the session watch every namespace,
    # and the examples name hosts that do not exist here.
    kubectl("delete", "-f", "-", "--wait=false", input=placed)


@pytest.mark.parametrize("path", manifests.yaml_files(manifests.VALID), ids=_name)
def test_valid_manifest_is_accepted(
    path: Path, kubectl: Kubectl, dry_run_namespace: str, scopes: dict[tuple[str, str], bool]
) -> None:
    done = kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=_placed(kubectl, path, dry_run_namespace, scopes),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "(server dry run)" in done.stdout


@pytest.mark.parametrize("path", manifests.yaml_files(manifests.INVALID), ids=_name)
def test_invalid_manifest_is_rejected_with_its_message(
    path: Path, kubectl: Kubectl, dry_run_namespace: str, scopes: dict[tuple[str, str], bool]
) -> None:
    expected = manifests.expect_comment(path)
    assert expected, f"{path.name}: the first line must be `# expect: <message>`"
    done = kubectl(
        "apply",
        "--dry-run=server",
        "-f",
        "-",
        input=_placed(kubectl, path, dry_run_namespace, scopes),
        check=False,
    )
    assert done.returncode != 0, f"{path.name} was accepted:\n{done.stdout}"
    assert _squash(expected) in _squash(done.stderr), done.stderr


# -- what users see --------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "field"), EXPLAINED, ids=[f"{k}.{f}" for k, f in EXPLAINED])
def test_explain_shows_the_crd_descriptions(
    kind: str, field: str, crds: list[manifests.Crd], kubectl: Kubectl
) -> None:
    crd = manifests.crd_for(kind)
    schema = crd.field_schema(field)
    expected = [schema.get("description", "")]
    item = schema.get("items", schema)
    expected += [p.get("description", "") for p in item.get("properties", {}).values()]
    assert all(expected), f"{crd.path.name}: {field} or one of its fields has no description"

    def check() -> None:
        shown = _squash(kubectl("explain", f"{crd.plural}.{field}").stdout)
        for text in expected:
            assert _squash(text) in shown, f"{text!r} not in:\n{shown}"

    _eventually(check)


def test_get_shows_the_printer_columns(
    crds: list[manifests.Crd], kubectl: Kubectl, namespace: str
) -> None:
    crd = manifests.crd_for("ServicePrincipalSecret")
    doc = _minimal("ServicePrincipalSecret")
    assert doc is not None, "no ServicePrincipalSecret in tests/manifests/valid or examples"
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    columns = crd.version()["additionalPrinterColumns"]
    normal = ["NAME"] + [c["name"].upper() for c in columns if not c.get("priority")]
    wide = ["NAME"] + [c["name"].upper() for c in columns]

    header, *rows = kubectl("get", "sps", "-n", namespace).stdout.splitlines()
    assert re.split(r"\s{2,}", header.strip()) == normal
    assert [c for c in normal if c in SPS_COLUMNS] == SPS_COLUMNS
    assert [r.split()[0] for r in rows] == [doc["metadata"]["name"]]
    header = kubectl("get", "sps", "-n", namespace, "-o", "wide").stdout.splitlines()[0]
    assert re.split(r"\s{2,}", header.strip()) == wide


def test_defaults_are_applied(crds: list[manifests.Crd], kubectl: Kubectl, namespace: str) -> None:
    defaulted: dict[str, list[str]] = {}
    for kind in KINDS:
        doc = _minimal(kind)
        if doc is None:
            continue
        crd = manifests.crd_for(kind)
        metadata = doc["metadata"]
        if crd.namespaced:
            metadata["namespace"] = namespace
        else:
            # Cluster-scoped: a name of our own, so examples applied earlier are not touched.
            metadata["name"] = f"{metadata['name']}-{secrets.token_hex(3)}"
        kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
        where = ["-n", namespace] if crd.namespaced else []
        live = kubectl.json(
            "get", f"{crd.plural}.{crd.body['spec']['group']}", metadata["name"], *where
        )
        expected = manifests.apply_defaults(doc["spec"], crd.schema()["properties"]["spec"])
        assert live["spec"] == expected, (
            f"{kind}: server defaults differ from the CRD's `default:` values\n"
            f"sent {json.dumps(doc['spec'])}\n"
            f"got  {json.dumps(live['spec'])}\nwant {json.dumps(expected)}"
        )
        defaulted[kind] = manifests.defaulted_paths(doc["spec"], expected)
    assert defaulted, "no minimal manifest of any kind in tests/manifests/valid or examples"
    assert any(defaulted.values()), f"no default was exercised: {defaulted}"


# -- RBAC is real ----------------------------------------------------------------------------


def test_operator_identity_authenticates_but_has_no_rights_without_a_role(
    kubectl: Kubectl, operator_kubectl: Kubectl
) -> None:
    whoami = operator_kubectl.json("auth", "whoami")["status"]["userInfo"]
    assert whoami["username"] == "rotator-operator"
    assert "rotator:operators" in whoami["groups"]
    assert "system:masters" not in whoami["groups"]

    can = operator_kubectl("auth", "can-i", "list", "secrets", "--all-namespaces", check=False)
    assert (can.returncode, can.stdout.strip()) == (1, "no")
    assert kubectl("auth", "can-i", "list", "secrets", "--all-namespaces").stdout.strip() == "yes"

    # A real request, not only the authorizer's opinion: 403, not 401 (the token is valid).
    listing = operator_kubectl("get", "secrets", "--all-namespaces", check=False)
    assert listing.returncode != 0
    assert "Forbidden" in listing.stderr
    assert 'User "rotator-operator" cannot list resource "secrets"' in listing.stderr


def test_a_role_grants_the_operator_exactly_what_it_says(
    kubectl: Kubectl, operator_kubectl: Kubectl, namespace: str
) -> None:
    grant = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "read-secrets", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "read-secrets", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "read-secrets",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Group",
                    "name": "rotator:operators",
                }
            ],
        },
    ]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(grant))

    def granted() -> None:
        done = operator_kubectl("get", "secrets", "-n", namespace, check=False)
        assert done.returncode == 0, done.stderr

    _eventually(granted, timeout=15.0)
    other = operator_kubectl("get", "secrets", "-n", "default", check=False)
    assert other.returncode != 0
    assert "Forbidden" in other.stderr
    assert (
        operator_kubectl(
            "auth", "can-i", "delete", "secrets", "-n", namespace, check=False
        ).stdout.strip()
        == "no"
    )
