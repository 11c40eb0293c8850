"""High availability as the chart installs it: two replicas with the args ``helm template``
renders from the chart's default values, under the chart's RBAC, against the real API server.

Exactly one works (it holds the Lease); the other stands by and says so. SIGKILLing the leader
in the middle of a rotation hands the work to the standby within the lease duration + 15 s; it
finishes that rotation from the journal, and nothing is rotated twice.

The only change to the rendered args: the liveness and metrics ports. In a cluster each pod
has its own network namespace; here both processes share the loopback interface.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import operator_harness as h
from e2e.test_sps_scenarios import SPS, app_requests, seed_target, sps_status, wait_ready

pytest_plugins = ["e2e.operator_harness"]

pytestmark = pytest.mark.e2e

LEASE = f"{h.HELM_RELEASE}-leader"


def chart_args() -> list[str]:
    """The operator container's args, rendered from the chart's default values."""
    done = subprocess.run(
        [
            h.helm_binary(),
            "template",
            h.HELM_RELEASE,
            str(h.REPO / "charts" / "rotator"),
            "--namespace",
            h.OPERATOR_NAMESPACE,
            "--show-only",
            "templates/deployment.yaml",
            *h.helm_template_flags(),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    docs = [d for d in yaml.safe_load_all(done.stdout) if d and d.get("kind") == "Deployment"]
    (deployment,) = docs
    assert deployment["spec"]["replicas"] == 2  # the default install runs two
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return [str(a) for a in container["args"]]


@dataclasses.dataclass
class Replica(h.OperatorProcess):
    """One pod's process: the chart's args, with this process's own two ports."""

    chart: list[str] = dataclasses.field(default_factory=list)

    def argv(self) -> list[str]:
        liveness = f"--liveness=http://127.0.0.1:{self.liveness_port}/healthz"
        metrics = f"--metrics-port={self.metrics_port}"
        args = [re.sub(r"^--liveness=.*", liveness, a) for a in self.chart]
        args = [re.sub(r"^--metrics-port=.*", metrics, a) for a in args]
        return [sys.executable, "-m", "rotator.cli", *args]

    def leader_gauge(self) -> float | None:
        try:
            with urllib.request.urlopen(self.metrics_url, timeout=2) as answer:
                text = answer.read().decode()
        except OSError:
            return None
        found = re.search(r"^rotator_leader ([0-9.]+)$", text, re.M)
        return float(found.group(1)) if found else None


@pytest.fixture
def replicas(
    operator_process: h.OperatorProcess,
    sandbox: h.Sandbox,
    kube: h.Kube,
    e2e_workdir: Path,
) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas of the chart's Deployment; the session's standalone operator is stopped."""
    operator_process.stop()
    kube.kubectl("create", "namespace", h.OPERATOR_NAMESPACE, check=False)
    args = chart_args()
    assert "--leader-elect" in args
    made = tuple(
        Replica(
            kubeconfig=operator_process.kubeconfig,
            env=operator_process.env,
            log=e2e_workdir / f"replica-{name}.log",
            chart=args,
        )
        for name in ("a", "b")
    )
    sandbox.reset()
    try:
        yield made  # type: ignore[misc]
    finally:
        for replica in made:
            replica.stop()
        sandbox.reset()
        operator_process.start()


def lease(kube: h.Kube) -> dict[str, Any]:
    found = kube.custom.get_namespaced_custom_object(
        "coordination.k8s.io", "v1", h.OPERATOR_NAMESPACE, "leases", LEASE
    )
    return dict(found)


@pytest.mark.timeout(420)
def test_one_replica_works_and_the_standby_takes_over_mid_rotation(
    replicas: tuple[Replica, Replica],
    kube: h.Kube,
    sandbox: h.Sandbox,
    allowed_namespace: str,
    e2e_workdir: Path,
) -> None:
    a, b = replicas
    a.start()
    a.wait_for_log("became leader", timeout=60)
    b.start()
    b.wait_for_log("is standing by", timeout=60)
    holder = lease(kube)["spec"]["holderIdentity"]
    assert holder in a.log_text() and holder not in b.log_text().split("standing by")[0]
    assert h.wait_for(lambda: a.leader_gauge() == 1.0 or None, message="a: rotator_leader 1")
    assert h.wait_for(lambda: b.leader_gauge() == 0.0 or None, message="b: rotator_leader 0")
    standing = h.wait_for_events(kube, h.OPERATOR_NAMESPACE, LEASE, ("BecameLeader", "StandingBy"))
    assert {"BecameLeader", "StandingBy"} <= {e["reason"] for e in standing}

    # A rotation that sits at Verify for 20 s (Entra propagation): kill the leader there.
    t = seed_target(sandbox, kube, allowed_namespace)
    sandbox.call(lambda: setattr(sandbox.stack.directory, "propagation_delay", 20.0))
    kube.apply(t.manifest())
    journal = h.wait_for(
        lambda: (
            j
            if (j := sps_status(kube, t).get("rotation") or {}).get("step") == "Verify"
            and j.get("keyId")
            else None
        ),
        message="the journal at Verify",
    )
    assert "starting rotation" not in b.log_text()  # the standby did nothing
    killed = time.monotonic()
    a.kill()
    b.wait_for_log("became leader", timeout=60)
    took_over = time.monotonic() - killed
    assert took_over <= 15 + 15, f"the standby took over after {took_over:.1f}s"
    status = wait_ready(kube, t, timeout=120)
    # Finished from the journal: the same credential, minted once, promoted once.
    assert status["current"]["keyId"] == journal["keyId"]
    assert len(app_requests(sandbox, t, "graph.addPassword")) == 1
    rotated = [
        e
        for e in h.wait_for_events(kube, t.ns, t.name, ("Rotated",))
        if e.get("reason") == "Rotated"
    ]
    assert len(rotated) == 1
    assert lease(kube)["spec"]["holderIdentity"] != holder
    assert lease(kube)["spec"]["leaseTransitions"] >= 1
    # What the note shows: the Lease and the two processes' election lines.
    (e2e_workdir / "ha-failover.txt").write_text(
        kube.kubectl("get", "lease", "-n", h.OPERATOR_NAMESPACE, "-o", "wide").stdout
        + f"\ntook over after {took_over:.1f}s\n\n--- replica a ---\n"
        + "\n".join(line for line in a.log_text().splitlines() if "leader election" in line)
        + "\n--- replica b ---\n"
        + "\n".join(line for line in b.log_text().splitlines() if "leader election" in line)
        + "\n"
    )
    assert kube.get(SPS, t.ns, t.name) is not None
