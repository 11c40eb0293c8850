"""The repository's manifests as e2e tests use them: CRDs, examples and test manifests.

The CRDs in ``crds/`` are the one source of truth for the API; tests read expected
descriptions, printer columns and defaults from them rather than repeating them.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from e2e.testbed.kubectl import Kubectl

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "crds"
EXAMPLES = REPO / "examples"
VALID = REPO / "tests" / "manifests" / "valid"
INVALID = REPO / "tests" / "manifests" / "invalid"

GROUP = "rotator.dev"
VERSION = "v1alpha1"


def yaml_files(folder: Path) -> list[Path]:
    """The YAML files in ``folder`` (not recursive), sorted; none if it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load(path: Path) -> list[dict[str, Any]]:
    """The non-empty YAML documents of a file."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@dataclasses.dataclass(frozen=True)
class Crd:
    """One CustomResourceDefinition from ``crds/``."""

    path: Path
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    @property
    def kind(self) -> str:
        return str(self.body["spec"]["names"]["kind"])

    @property
    def plural(self) -> str:
        return str(self.body["spec"]["names"]["plural"])

    @property
    def short_names(self) -> list[str]:
        return list(self.body["spec"]["names"].get("shortNames", []))

    @property
    def namespaced(self) -> bool:
        return bool(self.body["spec"]["scope"] == "Namespaced")

    def version(self, name: str = VERSION) -> dict[str, Any]:
        for version in self.body["spec"]["versions"]:
            if version["name"] == name:
                return dict(version)
        raise KeyError(f"{self.name} has no version {name}")

    def schema(self, name: str = VERSION) -> dict[str, Any]:
        return dict(self.version(name)["schema"]["openAPIV3Schema"])

    def field_schema(self, dotted: str, name: str = VERSION) -> dict[str, Any]:
        """The schema of ``spec.a.b`` (array items are stepped into transparently)."""
        node = self.schema(name)
        for part in dotted.split("."):
            while node.get("type") == "array":
                node = node["items"]
            node = node["properties"][part]
        return node


def repo_crds() -> list[Crd]:
    """Every CustomResourceDefinition in ``crds/``."""
    return [
        Crd(path, doc)
        for path in yaml_files(CRDS)
        for doc in load(path)
        if doc.get("kind") == "CustomResourceDefinition"
    ]


def crd_for(kind: str) -> Crd:
    for crd in repo_crds():
        if crd.kind == kind:
            return crd
    raise LookupError(f"no CRD for kind {kind} in {CRDS}")


def install_crds(kubectl: Kubectl, *, timeout: str = "60s") -> list[Crd]:
    """Apply every file in ``crds/`` and wait until each CRD is Established."""
    crds = repo_crds()
    if not crds:
        raise LookupError(f"no CustomResourceDefinition in {CRDS}")
    for path in sorted({crd.path for crd in crds}):
        kubectl("apply", "-f", str(path))
    kubectl(
        "wait",
        "--for=condition=Established",
        f"--timeout={timeout}",
        *(f"crd/{crd.name}" for crd in crds),
    )
    return crds


def group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def namespaced_kinds(kubectl: Kubectl) -> dict[tuple[str, str], bool]:
    """(group, kind) -> namespaced, from the server's discovery (built-ins and CRDs alike)."""
    out = kubectl("api-resources", "--no-headers").stdout
    scopes: dict[tuple[str, str], bool] = {}
    for line in out.splitlines():
        # NAME [SHORTNAMES] APIVERSION NAMESPACED KIND: read from the right (no short names
        # leaves that column empty).
        parts = line.split()
        if len(parts) >= 4:
            scopes[(group_of(parts[-3]), parts[-1])] = parts[-2] == "true"
    return scopes


def place(
    docs: Iterable[dict[str, Any]],
    namespace: str,
    scopes: dict[tuple[str, str], bool],
) -> tuple[list[dict[str, Any]], set[str]]:
    """Copies of ``docs`` with namespaced objects that name no namespace put in ``namespace``.

    Returns the documents and the namespaces they name explicitly (which must exist before a
    server-side dry run, or it fails with NotFound for the wrong reason).
    """
    placed, named = [], set()
    for doc in docs:
        doc = copy.deepcopy(doc)
        key = (group_of(str(doc.get("apiVersion", ""))), str(doc.get("kind", "")))
        metadata = doc.setdefault("metadata", {})
        if scopes.get(key, True):
            if metadata.get("namespace"):
                named.add(str(metadata["namespace"]))
            else:
                metadata["namespace"] = namespace
        if doc.get("kind") == "Namespace" and metadata.get("name"):
            named.discard(str(metadata["name"]))
        placed.append(doc)
    return placed, named


def ensure_namespaces(kubectl: Kubectl, names: Iterable[str]) -> None:
    for name in sorted(set(names)):
        kubectl(
            "apply",
            "-f",
            "-",
            input=yaml.safe_dump(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            ),
        )


def expect_comment(path: Path) -> str | None:
    """The text after ``# expect:`` on the file's first line, or None."""
    first = path.read_text().split("\n", 1)[0].strip()
    marker = "# expect:"
    return first[len(marker) :].strip() if first.startswith(marker) else None


def apply_defaults(value: Any, schema: dict[str, Any] | None) -> Any:
    """What the apiserver's structural defaulting makes of ``value`` (a copy).

    Mirrors apiextensions-apiserver's ``schema/defaulting.Default``: for an object, every
    property that is missing (or null but not nullable) and has a ``default`` gets a copy of
    it; then every property present, defaulted or not, is defaulted recursively, and so are
    additionalProperties values and array items.
    """
    value = copy.deepcopy(value)
    _default_in_place(value, schema)
    return value


def _default_in_place(value: Any, schema: dict[str, Any] | None) -> None:
    if not schema:
        return
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for key, prop in props.items():
            if "default" not in prop:
                continue
            missing = key not in value or (value[key] is None and not prop.get("nullable"))
            if missing:
                value[key] = copy.deepcopy(prop["default"])
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in props:
                _default_in_place(item, props[key])
            elif isinstance(extra, dict):
                _default_in_place(item, extra)
    elif isinstance(value, list):
        for item in value:
            _default_in_place(item, schema.get("items"))


def defaulted_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Paths present in ``after`` but not in ``before`` (what defaulting added)."""
    if isinstance(after, dict):
        if not isinstance(before, dict):
            return [prefix or "."]
        paths = []
        for key, item in after.items():
            path = f"{prefix}.{key}" if prefix else key
            if key not in before:
                paths.append(path)
            else:
                paths.extend(defaulted_paths(before[key], item, path))
        return paths
    if isinstance(after, list) and isinstance(before, list):
        paths = []
        for i, (b, a) in enumerate(zip(before, after, strict=False)):
            paths.extend(defaulted_paths(b, a, f"{prefix}[{i}]"))
        return paths
    return []


def leaf_count(value: Any) -> int:
    """How many scalar values a document holds: the measure of a "minimal" manifest."""
    if isinstance(value, dict):
        return sum(leaf_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(leaf_count(v) for v in value)
    return 1
