"""The Helm chart against a real kube-apiserver: its manifests pass a strict server-side
dry-run (the Deployment's pod under the ``restricted`` Pod Security Standard), and a release
installs, upgrades to a chart whose CRD gained a field, and uninstalls, leaving the CRDs and
every custom resource in place.

The module runs its own control plane: Helm must own the CRDs it installs, while the session's
plane has them applied by kubectl for the operator tests (and the upgrade changes a CRD).
There is no controller-manager or scheduler: pods are never created from the Deployment, so
its pod template is dry-run as a Pod, which Pod Security admission enforces.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from e2e import operator_harness as h
from e2e.testbed import controlplane as cp
from e2e.testbed.kubectl import Kubectl

pytestmark = pytest.mark.e2e

CHART = h.REPO / "charts" / "rotator"
NON_DEFAULT = CHART / "ci" / "non-default-values.yaml"
CLIENT_ID = "00000000-0000-0000-0000-000000000000"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}
SPS_CRD = "serviceprincipalsecrets.rotator.dev"
CRD_NAMES = (SPS_CRD, "databrickssecretbindings.rotator.dev", "rotationpolicies.rotator.dev")


@pytest.fixture(scope="module")
def plane(controlplane_binaries: tuple[Path, Path], e2e_workdir: Path) -> Iterator[cp.ControlPlane]:
    running = cp.ControlPlane(e2e_workdir / "chart-controlplane", binaries=controlplane_binaries)
    failure = None
    try:
        running.start()
    except cp.StartupError as error:
        failure = str(error)
    if failure:
        pytest.fail(f"control plane did not start: {failure}", pytrace=False)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(running.workdir / "etcd", ignore_errors=True)


@pytest.fixture(scope="module")
def kubectl(plane: cp.ControlPlane) -> Kubectl:
    return Kubectl(plane.admin_kubeconfig, plane.kube_cache_dir)


class Helm:
    """The helm binary, pointed at the module's plane, with its state in the work dir."""

    def __init__(self, plane: cp.ControlPlane, home: Path) -> None:
        self.binary = h.helm_binary()
        self.env = dict(os.environ, KUBECONFIG=str(plane.admin_kubeconfig))
        for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
            self.env[var] = str(home / var.lower())

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
            timeout=300,
        )
        if check:
            assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def render(self, *flags: str, namespace: str = "rotator-system") -> list[dict[str, Any]]:
        done = self(
            "template",
            "rotator",
            str(CHART),
            "--namespace",
            namespace,
            *h.helm_template_flags(),
            *flags,
        )
        return [d for d in yaml.safe_load_all(done.stdout) if d]


@pytest.fixture(scope="module")
def helm(plane: cp.ControlPlane, e2e_workdir: Path) -> Helm:
    return Helm(plane, e2e_workdir / "helm-home")


def namespace(kubectl: Kubectl, name: str, labels: dict[str, str] | None = None) -> None:
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
    if labels:
        body["metadata"]["labels"] = labels  # type: ignore[index]
    kubectl("apply", "-f", "-", input=json.dumps(body))


def apply(kubectl: Kubectl, docs: Sequence[dict[str, Any]], *flags: str, check: bool = True) -> Any:
    stream = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    return kubectl("apply", "--validate=strict", *flags, "-f", "-", input=stream, check=check)


def crd(kubectl: Kubectl, name: str) -> dict[str, Any] | None:
    done = kubectl("get", "crd", name, "-o", "json", check=False)
    return json.loads(done.stdout) if done.returncode == 0 else None


def pod_of(deployment: dict[str, Any]) -> dict[str, Any]:
    """The Pod the Deployment's ReplicaSet would create (no controller-manager runs here)."""
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{deployment['metadata']['name']}-pod",
            "namespace": deployment["metadata"]["namespace"],
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


# --- minimal copies of the Prometheus Operator's CRDs ---------------------------------------
# Only the fields the chart renders, with the upstream types and duration pattern, and no
# x-kubernetes-preserve-unknown-fields at the levels the chart writes: a field the chart
# misspells or invents is an unknown field, which --validate=strict rejects.

DURATION = {
    "type": "string",
    "pattern": (
        "^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
    ),
}
RELABELINGS = {
    "type": "array",
    "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
LABEL_SELECTOR = {
    "type": "object",
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {
            "type": "array",
            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    },
}
ENDPOINT = {
    "type": "object",
    "properties": {
        "port": {"type": "string"},
        "path": {"type": "string"},
        "interval": DURATION,
        "scrapeTimeout": DURATION,
        "honorLabels": {"type": "boolean"},
        "relabelings": RELABELINGS,
        "metricRelabelings": RELABELINGS,
    },
}


def monitoring_crd(kind: str, endpoints: str) -> dict[str, Any]:
    plural = kind.lower() + "s"
    spec = {
        "type": "object",
        "required": ["selector"],
        "properties": {
            "selector": LABEL_SELECTOR,
            "namespaceSelector": {
                "type": "object",
                "properties": {
                    "any": {"type": "boolean"},
                    "matchNames": {"type": "array", "items": {"type": "string"}},
                },
            },
            endpoints: {"type": "array", "items": ENDPOINT},
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
            },
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": spec}}},
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def monitoring_crds(kubectl: Kubectl) -> None:
    apply(
        kubectl,
        [
            monitoring_crd("ServiceMonitor", "endpoints"),
            monitoring_crd("PodMonitor", "podMetricsEndpoints"),
        ],
    )
    kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/podmonitors.monitoring.coreos.com",
    )


# --- Pod Security and the strict dry-run ----------------------------------------------------


def test_testbed_enforces_pod_security(kubectl: Kubectl) -> None:
    # Without the PodSecurity admission plugin every pod would pass, and the chart's dry-run
    # below would prove nothing.
    namespace(kubectl, "psa-probe", RESTRICTED)
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": "psa-probe"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    done = apply(kubectl, [privileged], "--dry-run=server", check=False)
    assert done.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in done.stderr


@pytest.mark.parametrize("values", ["default", "non-default"])
def test_rendered_manifests_pass_a_strict_server_dry_run_under_restricted(
    values: str, helm: Helm, kubectl: Kubectl, monitoring_crds: None
) -> None:
    flags = ["-f", str(NON_DEFAULT)] if values == "non-default" else []
    docs = helm.render(*flags)
    namespace(kubectl, "rotator-system", RESTRICTED)
    for other in ("data-a", "data-b", "monitoring"):  # the non-default values' namespaces
        namespace(kubectl, other)
    done = apply(kubectl, docs, "--dry-run=server", "--warnings-as-errors", check=False)
    assert done.returncode == 0, done.stderr
    kinds = {d["kind"] for d in docs}
    if values == "non-default":
        assert {"ServiceMonitor", "PodMonitor", "Role"} <= kinds
        assert (
            "servicemonitor.monitoring.coreos.com/ops-rotator created (server dry run)"
            in done.stdout
        )
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    # Pod Security enforces on pods only (workloads get warnings): dry-run the pod itself.
    done = apply(
        kubectl, [pod_of(deployment)], "--dry-run=server", "--warnings-as-errors", check=False
    )
    assert done.returncode == 0, done.stderr
    assert "created (server dry run)" in done.stdout


def test_a_pod_that_breaks_restricted_is_refused_with_the_chart_values(
    helm: Helm, kubectl: Kubectl
) -> None:
    # The same path with a non-restricted container security context fails: the check bites.
    docs = helm.render("--set", "securityContext.allowPrivilegeEscalation=true")
    namespace(kubectl, "rotator-system", RESTRICTED)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    done = apply(kubectl, [pod_of(deployment)], "--dry-run=server", check=False)
    assert done.returncode != 0
    assert "allowPrivilegeEscalation != false" in done.stderr


# --- install, upgrade, uninstall --------------------------------------------------------------


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "chart_generate", h.REPO / "charts" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chart_with_new_field(where: Path) -> Path:
    """A copy of the chart, version 0.2.0, whose ServicePrincipalSecret CRD has one more
    optional field (spec.comment), generated from crds/ as `make chart-crds` would."""
    copy = where / "rotator"
    shutil.copytree(CHART, copy)
    chart = yaml.safe_load((copy / "Chart.yaml").read_text())
    chart["version"] = "0.2.0"
    (copy / "Chart.yaml").write_text(yaml.safe_dump(chart))
    source = h.REPO / "crds" / "rotator.dev_serviceprincipalsecrets.yaml"
    body = yaml.safe_load(source.read_text())
    (version,) = body["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "comment" not in spec["properties"]
    spec["properties"]["comment"] = {"type": "string", "maxLength": 200, "description": "A note."}
    changed = where / "crds" / source.name
    changed.parent.mkdir()
    changed.write_text(yaml.safe_dump(body, sort_keys=False))
    (copy / "templates" / "crds" / source.name).write_text(load_generator().crd_template(changed))
    return copy


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((h.REPO / "examples" / name).read_text()))


def uid(kubectl: Kubectl, kind: str, name: str, namespace: str | None = None) -> str:
    where = ["-n", namespace] if namespace else []
    return str(kubectl("get", kind, name, *where, "-o", "jsonpath={.metadata.uid}").stdout)


@pytest.mark.timeout(300)
def test_install_upgrade_with_a_changed_crd_and_uninstall_keeping_crds_and_objects(
    helm: Helm, kubectl: Kubectl, tmp_path: Path
) -> None:
    installed = helm(
        "install",
        "rotator",
        str(CHART),
        "--namespace",
        "rotator-system",
        "--create-namespace",
        "--set",
        f"azure.workloadIdentity.clientId={CLIENT_ID}",
    )
    assert "kubectl -n rotator-system get lease rotator-leader" in installed.stdout  # NOTES
    for name in CRD_NAMES:
        found = crd(kubectl, name)
        assert found is not None, name
        assert found["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert found["metadata"]["annotations"]["meta.helm.sh/release-name"] == "rotator"
    kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in CRD_NAMES)
    )

    namespace(kubectl, "data-eng")
    policy = example("rotationpolicy.yaml")
    sps = example("serviceprincipalsecret-clientid.yaml")
    apply(kubectl, [policy, sps])
    before = (uid(kubectl, "rotationpolicy", "data-eng"), uid(kubectl, "sps", "etl-sp", "data-eng"))

    with_comment = {**sps, "spec": {**sps["spec"], "comment": "rotated by the platform team"}}
    refused = apply(kubectl, [with_comment], "--dry-run=server", check=False)
    assert refused.returncode != 0 and 'unknown field "spec.comment"' in refused.stderr

    newer = chart_with_new_field(tmp_path)
    helm(
        "upgrade",
        "rotator",
        str(newer),
        "--namespace",
        "rotator-system",
        "--reuse-values",
    )
    upgraded = crd(kubectl, SPS_CRD)
    assert upgraded is not None
    (version,) = upgraded["spec"]["versions"]
    assert "comment" in version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert upgraded["metadata"]["labels"]["helm.sh/chart"] == "rotator-0.2.0"
    kubectl("wait", "--for=condition=Established", "--timeout=60s", f"crd/{SPS_CRD}")
    apply(kubectl, [with_comment])  # the new field is accepted now, on the existing object
    assert (
        uid(kubectl, "rotationpolicy", "data-eng"),
        uid(kubectl, "sps", "etl-sp", "data-eng"),
    ) == before

    # Turning the CRDs off on the release drops them from it, and keep leaves them in place.
    helm(
        "upgrade",
        "rotator",
        str(newer),
        "--namespace",
        "rotator-system",
        "--reuse-values",
        "--set",
        "crds.enabled=false",
    )
    for name in CRD_NAMES:
        assert crd(kubectl, name) is not None, f"{name} was deleted by crds.enabled=false"
    assert uid(kubectl, "sps", "etl-sp", "data-eng") == before[1]
    helm(
        "upgrade",
        "rotator",
        str(newer),
        "-n",
        "rotator-system",
        "--reuse-values",
        "--set",
        "crds.enabled=true",
    )

    removed = helm("uninstall", "rotator", "--namespace", "rotator-system")
    assert "kept due to the resource policy" in removed.stdout + removed.stderr
    for name in CRD_NAMES:
        assert crd(kubectl, name) is not None, f"{name} was deleted by helm uninstall"
    assert (
        uid(kubectl, "rotationpolicy", "data-eng"),
        uid(kubectl, "sps", "etl-sp", "data-eng"),
    ) == before
    comment = kubectl(
        "get", "sps", "etl-sp", "-n", "data-eng", "-o", "jsonpath={.spec.comment}"
    ).stdout
    assert comment == "rotated by the platform team"
    for kind, name in (("deployment", "rotator"), ("clusterrole", "rotator-operator")):
        gone = kubectl("get", kind, name, "-n", "rotator-system", check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, f"{kind}/{name} left behind"

    # Installing again adopts the kept CRDs (they still carry this release's ownership).
    helm(
        "install",
        "rotator",
        str(CHART),
        "--namespace",
        "rotator-system",
        "--set",
        f"azure.workloadIdentity.clientId={CLIENT_ID}",
    )
    assert uid(kubectl, "sps", "etl-sp", "data-eng") == before[1]
    helm("uninstall", "rotator", "--namespace", "rotator-system")


def test_a_second_release_installs_beside_the_first(helm: Helm, kubectl: Kubectl) -> None:
    # The CRDs belong to one release; a second one (another team's, another namespace)
    # installs with crds.enabled=false and shares no name with the first.
    common = ["--create-namespace", "--set", f"azure.workloadIdentity.clientId={CLIENT_ID}"]
    # rotator-system: the CRDs a test before kept still name that release as their owner.
    helm("install", "rotator", str(CHART), "-n", "rotator-system", *common)
    try:
        helm(
            "install",
            "team-b",
            str(CHART),
            "-n",
            "platform-b",
            *common,
            "--set",
            "crds.enabled=false",
        )
        for name in ("rotator-operator", "team-b-rotator-operator"):
            kubectl("get", "clusterrole", name)
        kubectl("get", "rolebinding", "team-b-rotator-leader-election", "-n", "platform-b")
        helm("uninstall", "team-b", "-n", "platform-b")
        kubectl("get", "clusterrole", "rotator-operator")  # the first release's, untouched
    finally:
        helm("uninstall", "rotator", "-n", "rotator-system", check=False)
