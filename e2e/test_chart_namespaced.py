"""``watch.clusterwide: false`` as the chart installs it: the operator, run with the args
``helm template`` renders, under the chart's namespaced RBAC only (its own ServiceAccount, a
token from the TokenRequest API), rotates a secret in the watched namespace, hits no
permission error, and leaves an unwatched namespace alone. The ServiceAccount reads Secrets
in the watched namespace only.

What ``rotator run --namespace X`` needs, found by running it: our namespaced resources,
their events and the PAT Secrets in X (a Role there); cluster-wide, the CRDs (kopf's
resource discovery), namespaces (kopf's namespace observer and the policies'
namespaceSelector) and the cluster-scoped RotationPolicies (a ClusterRole).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import operator_harness as h
from e2e.test_ha import Replica
from e2e.test_sps_scenarios import SPS, seed_target, wait_ready

pytest_plugins = ["e2e.operator_harness"]

pytestmark = pytest.mark.e2e

RELEASE = "scoped"
ACCOUNT = "scoped-rotator"  # the chart's full name for this release
RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
DENIED = ("Forbidden", "forbidden", "Not enough permissions", " 403")


def render(watched: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [
            h.helm_binary(),
            "template",
            RELEASE,
            str(h.REPO / "charts" / "rotator"),
            "--namespace",
            h.OPERATOR_NAMESPACE,
            *h.helm_template_flags(),
            "--set",
            "watch.clusterwide=false",
            "--set",
            f"watch.namespaces={{{watched}}}",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def token_kubeconfig(template: Path, token: str, out: Path) -> Path:
    """``template`` (the operator kubeconfig: server, CA) with the ServiceAccount's token."""
    config = yaml.safe_load(template.read_text())
    config["users"][0]["user"] = {"token": token}
    out.write_text(yaml.safe_dump(config))
    out.chmod(0o600)
    return out


@pytest.fixture
def scoped(
    operator_process: h.OperatorProcess,
    sandbox: h.Sandbox,
    kube: h.Kube,
    allowed_namespace: str,
    e2e_workdir: Path,
) -> Iterator[Replica]:
    """One replica of the chart's Deployment watching ``allowed_namespace`` only, as the
    chart's ServiceAccount; the session's cluster-wide operator is stopped meanwhile."""
    operator_process.stop()
    kube.kubectl("create", "namespace", h.OPERATOR_NAMESPACE, check=False)
    docs = render(allowed_namespace)
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    kube.apply(*rbac)
    token = kube.kubectl(
        "create", "token", ACCOUNT, "-n", h.OPERATOR_NAMESPACE, "--duration=1h"
    ).stdout.strip()
    kubeconfig = token_kubeconfig(
        operator_process.kubeconfig, token, e2e_workdir / "scoped.kubeconfig"
    )
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    replica = Replica(
        kubeconfig=kubeconfig,
        env=h.operator_environment(sandbox.env(), kubeconfig, e2e_workdir),
        log=e2e_workdir / "scoped-operator.log",
        chart=[str(a) for a in container["args"]],
    )
    sandbox.reset()
    try:
        yield replica
    finally:
        replica.stop()
        for doc in reversed(rbac):
            namespace = doc["metadata"].get("namespace")
            where = ["-n", namespace] if namespace else []
            kube.kubectl(
                "delete", doc["kind"].lower(), doc["metadata"]["name"], *where, check=False
            )
        sandbox.reset()
        operator_process.start()


def can_i(kube: h.Kube, verb: str, resource: str, namespace: str) -> bool:
    done = kube.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "-n",
        namespace,
        "--as",
        f"system:serviceaccount:{h.OPERATOR_NAMESPACE}:{ACCOUNT}",
        check=False,
    )
    return done.stdout.strip() == "yes"


@pytest.mark.timeout(300)
def test_one_namespace_under_the_charts_namespaced_roles(
    scoped: Replica,
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    make_namespace: Callable[[], str],
) -> None:
    args = scoped.chart
    assert f"--namespace={allowed_namespace}" in args and "--all-namespaces" not in args
    # The ServiceAccount reads Secrets where it watches, nowhere else.
    other = make_namespace()
    assert can_i(kube, "get", "secrets", allowed_namespace)
    assert not can_i(kube, "get", "secrets", other)
    assert not can_i(kube, "list", "serviceprincipalsecrets.rotator.dev", other)

    scoped.start()
    scoped.wait_for_log("became leader", timeout=60)
    watched = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(watched.manifest())
    # An object in a namespace the release does not watch, allowed by a policy all the same.
    kube.apply(h.allow_policy(f"e2e-{other}", [other], sandbox))
    unwatched = seed_target(sandbox, kube, other, policy=False)
    kube.apply(unwatched.manifest())

    status = wait_ready(kube, watched, timeout=120)
    assert status["current"]["keyId"]
    time.sleep(3)  # the unwatched object had as long as the watched one, and then some
    assert (kube.get(SPS, other, unwatched.name) or {}).get("status") in (None, {})
    log = scoped.log_text()
    denied = [line for line in log.splitlines() if any(word in line for word in DENIED)]
    assert not denied, "\n".join(denied[:20])
    # Gone before the session's cluster-wide operator comes back and would rotate it.
    kube.delete(SPS, other, unwatched.name)
    kube.kubectl("delete", "rotationpolicy", f"e2e-{other}", "--ignore-not-found", check=False)
