"""The Helm chart without a cluster: generated files fresh, ``helm lint --strict``, what
``helm template`` renders from default and non-default values, and the values schema
rejecting each bad value with a message that names it.

The helm binary comes from e2e/helm/build.sh (built once from the Go module proxy, cached).
Manifests are checked against a real API server in e2e/test_chart.py.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[1]
CHART = ROOT / "charts" / "rotator"
SOURCE_CRDS = sorted((ROOT / "crds").glob("*.yaml"))
CLIENT_ID = "00000000-0000-0000-0000-000000000000"
# A helm built by `go install` assumes Kubernetes 1.20, below the chart's kubeVersion; render
# for the oldest version the chart supports.
KUBE = ("--kube-version", "1.29.0")
REQUIRED = ("--set", f"azure.workloadIdentity.clientId={CLIENT_ID}")


@functools.cache
def helm() -> str:
    done = subprocess.run(
        [str(ROOT / "e2e" / "helm" / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert done.returncode == 0, f"e2e/helm/build.sh failed:\n{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm(), *args], capture_output=True, text=True, check=False, timeout=120)


def render(
    *flags: str, release: str = "rotator", namespace: str = "rotator-system"
) -> list[dict[str, Any]]:
    done = run_helm("template", release, str(CHART), "-n", namespace, *KUBE, *REQUIRED, *flags)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def only(docs: Sequence[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"{len(found)} {kind} named {name}: {[d['metadata'] for d in found]}"
    return found[0]


def container(docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    (one,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    return dict(one)


# --- generated files -------------------------------------------------------------------------


def test_there_are_crds_to_ship() -> None:
    assert len(SOURCE_CRDS) == 3


def test_generated_crd_templates_and_readme_are_fresh() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "charts" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_the_chart_has_no_crds_folder() -> None:
    # Helm installs a chart's crds/ once and never upgrades it; the CRDs are templates.
    assert not (CHART / "crds").exists()


@pytest.mark.parametrize("source", SOURCE_CRDS, ids=[p.name for p in SOURCE_CRDS])
def test_rendered_crd_is_the_source_crd_plus_release_metadata(source: Path) -> None:
    docs = render("--show-only", f"templates/crds/{source.name}")
    (crd,) = docs
    metadata = crd.pop("metadata")
    want = yaml.safe_load(source.read_text())
    want_name = want.pop("metadata")["name"]
    assert crd == want
    assert metadata["name"] == want_name
    assert metadata["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert metadata["labels"]["app.kubernetes.io/instance"] == "rotator"


def test_crds_keep_false_drops_the_keep_annotation() -> None:
    crds = [
        d for d in render("--set", "crds.keep=false") if d["kind"] == "CustomResourceDefinition"
    ]
    assert len(crds) == 3
    assert all("annotations" not in d["metadata"] for d in crds)


def test_crds_enabled_false_renders_no_crd() -> None:
    assert not [d for d in render("--set", "crds.enabled=false") if "Definition" in d["kind"]]


# --- lint and defaults -----------------------------------------------------------------------


def test_helm_lint_strict_with_defaults() -> None:
    done = run_helm("lint", "--strict", str(CHART), *KUBE, *REQUIRED)
    assert done.returncode == 0, done.stdout + done.stderr


def test_helm_lint_strict_with_every_option_turned() -> None:
    done = run_helm("lint", "--strict", str(CHART), *KUBE, "-f", str(NON_DEFAULT))
    assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_older_than_the_cel_minimum_is_refused() -> None:
    done = run_helm("template", "r", str(CHART), "--kube-version", "1.28.9", *REQUIRED)
    assert done.returncode != 0
    assert "kubeVersion: >=1.29.0-0" in done.stderr


def test_defaults_render_the_ha_deployment_ready_probe_and_pdb() -> None:
    docs = render()
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(
        ["CustomResourceDefinition"] * 3
        + ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]
        + ["Deployment", "Service", "PodDisruptionBudget"]
    )
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    c = container(docs)
    assert c["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert "--metrics-port=9090" in c["args"] and "--all-namespaces" in c["args"]
    assert c["image"] == "ghcr.io/rotator-dev/rotator:0.1.0"
    assert only(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    pod = deployment["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["labelSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    sa = only(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"azure.workload.identity/client-id": CLIENT_ID}
    assert pod["serviceAccountName"] == sa["metadata"]["name"] == "rotator"


def test_default_security_context_is_restricted() -> None:
    docs = render()
    pod = only(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(docs)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_default_clusterwide_role_grants_the_namespaced_rules_cluster_wide() -> None:
    docs = render()
    rules = only(docs, "ClusterRole")["rules"]
    assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]} in rules
    assert [d for d in docs if d["kind"] == "Role"] == [
        only(docs, "Role", "rotator-leader-election")
    ]


# --- non-default values ----------------------------------------------------------------------

NON_DEFAULT = CHART / "ci" / "non-default-values.yaml"


@functools.cache
def non_default() -> list[dict[str, Any]]:
    return render("-f", str(NON_DEFAULT), release="team-a", namespace="team-a-system")


def test_non_default_image_digest_pins_the_image() -> None:
    c = container(non_default())
    assert c["image"].endswith("@sha256:" + "a" * 64)
    assert ":0.1.0" not in c["image"]


def test_non_default_pod_settings() -> None:
    pod = only(non_default(), "Deployment")["spec"]["template"]
    assert pod["metadata"]["labels"]["team"] == "a"
    assert pod["metadata"]["annotations"] == {"example.com/owner": "platform"}
    spec = pod["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    (spread,) = spec["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone"
    assert spread["labelSelector"] == {"matchLabels": {"tier": "custom"}}  # given: kept


def test_non_default_extra_args_and_env() -> None:
    c = container(non_default())
    assert c["args"][-1] == "--request-timeout=30"
    assert {"name": "ROTATOR_CA_BUNDLE", "value": "/etc/rotator-ca/extra.pem"} in c["env"]
    mount = {"name": "extra-ca", "mountPath": "/etc/rotator-ca", "readOnly": True}
    assert mount in c["volumeMounts"]
    volumes = only(non_default(), "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert {"name": "extra-ca", "configMap": {"name": "corporate-ca"}} in volumes
    assert "--standalone" in c["args"] and "--leader-elect" not in c["args"]
    assert "--no-enforce-policies" not in c["args"]


def test_names_derive_from_the_full_name() -> None:
    docs = non_default()
    names = {d["metadata"]["name"] for d in docs if d["kind"] != "CustomResourceDefinition"}
    # fullnameOverride: ops-rotator
    assert names == {"ops-rotator", "ops-rotator-operator", "ops-rotator-metrics"}


def test_name_override_renames_objects_and_the_name_label() -> None:
    docs = render("--set", "nameOverride=keys", release="x")
    deployment = only(docs, "Deployment")
    assert deployment["metadata"]["name"] == "x-keys"
    assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "keys"
    assert only(docs, "ClusterRole")["metadata"]["name"] == "x-keys-operator"
    assert "--leader-election-id=x-keys-leader" in container(docs)["args"]


def test_two_releases_do_not_collide() -> None:
    def identities(release: str) -> set[tuple[str, str, str]]:
        docs = render(release=release, namespace="shared")
        return {
            (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])
            for d in docs
            if d["kind"] != "CustomResourceDefinition"  # one API: shared on purpose
        }

    first, second = identities("first"), identities("second")
    assert len(first) == len(second) == 8
    assert not first & second
    args = [container(render(release=r, namespace="shared"))["args"] for r in ("first", "second")]
    leases = [[a for a in arg if a.startswith("--leader-election-id=")] for arg in args]
    assert leases == [
        ["--leader-election-id=first-rotator-leader"],
        ["--leader-election-id=second-rotator-leader"],
    ]
    roles = [only(render(release=r, namespace="shared"), "Role") for r in ("first", "second")]
    assert [r["rules"][1]["resourceNames"] for r in roles] == [
        ["first-rotator-leader"],
        ["second-rotator-leader"],
    ]


def test_listed_namespaces_get_roles_and_the_cluster_role_keeps_only_cluster_reads() -> None:
    docs = non_default()
    cluster = only(docs, "ClusterRole")
    granted = {
        (g, r) for rule in cluster["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    assert granted == {
        ("rotator.dev", "rotationpolicies"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        ("", "namespaces"),
    }
    roles = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Role"}
    assert set(roles) == {"data-a", "data-b"}
    for role in roles.values():
        assert {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]} in role["rules"]
    bindings = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"}
    assert bindings == {"data-a", "data-b"}
    args = container(docs)["args"]
    assert "--namespace=data-a" in args and "--namespace=data-b" in args
    assert "--all-namespaces" not in args


def test_metrics_disabled_drops_port_service_monitors_and_serving() -> None:
    docs = render(
        "--set",
        "metrics.enabled=false",
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.podMonitor.enabled=true",
    )
    assert {d["kind"] for d in docs} & {"Service", "ServiceMonitor", "PodMonitor"} == set()
    c = container(docs)
    assert [p["name"] for p in c["ports"]] == ["health"]
    # The operator's own default is 9090: 0 turns serving off.
    assert [a for a in c["args"] if a.startswith("--metrics-port")] == ["--metrics-port=0"]


def test_service_monitor_and_pod_monitor_render() -> None:
    docs = non_default()
    service = only(docs, "Service")
    monitor = only(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["metadata"]["namespace"] == "monitoring"
    selected = monitor["spec"]["selector"]["matchLabels"]
    assert selected.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a-system"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == "metrics"
    assert endpoint["interval"] == "30s"
    pod_monitor = only(docs, "PodMonitor")
    (pod_endpoint,) = pod_monitor["spec"]["podMetricsEndpoints"]
    assert pod_endpoint["port"] == "metrics"
    assert "metrics" in [p["name"] for p in container(docs)["ports"]]
    assert "--metrics-port=9100" in container(docs)["args"]


def test_pdb_min_available_wins() -> None:
    spec = only(non_default(), "PodDisruptionBudget")["spec"]
    assert spec["minAvailable"] == "50%" and "maxUnavailable" not in spec


def test_existing_service_account() -> None:
    docs = render("--set", "serviceAccount.create=false", "--set", "serviceAccount.name=mine")
    assert not [d for d in docs if d["kind"] == "ServiceAccount"]
    assert only(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mine"
    assert only(docs, "ClusterRoleBinding")["subjects"][0]["name"] == "mine"


# --- the schema ------------------------------------------------------------------------------

# (flags, where, what): each bad value, the path helm names and the words it uses.
BAD = {
    "log-format-enum": (
        ["--set", "operator.logFormat=xml"],
        "/operator/logFormat",
        "one of 'json', 'text'",
    ),
    "log-level-enum": (["--set", "operator.logLevel=verbose"], "/operator/logLevel", "one of"),
    "event-level-enum": (["--set", "operator.eventLevel=INFO"], "/operator/eventLevel", "one of"),
    "pull-policy-enum": (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy", "one of"),
    "replicas-not-a-number": (["--set", "replicas=two"], "/replicas", "want integer"),
    "rotations-not-a-number": (
        ["--set", "operator.maxConcurrentRotations=many"],
        "/operator/maxConcurrentRotations",
        "want integer",
    ),
    "graph-rate-not-a-number": (
        ["--set", "operator.graphWritesPerSecondPerTenant=fast"],
        "/operator/graphWritesPerSecondPerTenant",
        "want number",
    ),
    "graph-rate-zero": (
        ["--set", "operator.graphWritesPerSecondPerTenant=0"],
        "/operator/graphWritesPerSecondPerTenant",
        "exclusiveMinimum",
    ),
    "metrics-port-out-of-range": (["--set", "metrics.port=70000"], "/metrics/port", "maximum"),
    "bad-duration": (
        ["--set", "operator.driftCheckInterval=1 hour"],
        "/operator/driftCheckInterval",
        "does not match pattern",
    ),
    "bad-lease-duration": (
        ["--set-string", "leaderElection.leaseDuration=15"],
        "/leaderElection/leaseDuration",
        "does not match pattern",
    ),
    "bad-digest": (["--set", "image.digest=latest"], "/image/digest", "does not match pattern"),
    "client-id-not-a-uuid": (
        ["--set", "azure.workloadIdentity.clientId=my-app"],
        "/azure/workloadIdentity/clientId",
        "does not match pattern",
    ),
    "namespace-not-a-name": (
        ["--set", "watch.clusterwide=false", "--set", "watch.namespaces={data-*}"],
        "/watch/namespaces/0",
        "does not match pattern",
    ),
    "unknown-key": (["--set", "replica=3"], "additional properties 'replica' not allowed", ""),
    "unknown-nested-key": (
        ["--set", "metrics.serviceMonitor.enable=true"],
        "/metrics/serviceMonitor",
        "'enable' not allowed",
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_schema_rejects_bad_value(case: tuple[list[str], str, str]) -> None:
    flags, where, what = case
    done = run_helm("template", "r", str(CHART), *KUBE, *REQUIRED, *flags)
    assert done.returncode != 0
    assert "don't meet the specifications of the schema" in done.stderr
    assert where in done.stderr and what in done.stderr, done.stderr


def test_schema_requires_a_client_id_when_workload_identity_is_on() -> None:
    done = run_helm("template", "r", str(CHART), *KUBE)  # the defaults: enabled, no client id
    assert done.returncode != 0
    assert "at '/azure/workloadIdentity/clientId': minLength: got 0, want 1" in done.stderr


def test_schema_does_not_require_a_client_id_without_workload_identity() -> None:
    done = run_helm(
        "template", "r", str(CHART), *KUBE, "--set", "azure.workloadIdentity.enabled=false"
    )
    assert done.returncode == 0, done.stderr


def test_schema_requires_namespaces_when_not_clusterwide() -> None:
    done = run_helm(
        "template", "r", str(CHART), *KUBE, *REQUIRED, "--set", "watch.clusterwide=false"
    )
    assert done.returncode != 0
    assert "at '/watch/namespaces': minItems: got 0, want 1" in done.stderr


def test_schema_refuses_several_replicas_without_leader_election() -> None:
    # Standalone replicas would each work every object: one at most.
    flags = ("--set", "leaderElection.enabled=false")
    done = run_helm("template", "r", str(CHART), *KUBE, *REQUIRED, *flags)
    assert done.returncode != 0
    assert "at '/replicas': maximum: got 2, want 1" in done.stderr
    done = run_helm("template", "r", str(CHART), *KUBE, *REQUIRED, *flags, "--set", "replicas=1")
    assert done.returncode == 0, done.stderr


def test_schema_is_valid_json_schema_draft_07() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    # Every top-level value is described by the schema (it forbids unknown keys).
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])
