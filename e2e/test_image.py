"""The production image runs the operator: its own ENTRYPOINT with the args ``helm template``
renders from the chart, as the image's non-root user, against the testbed.

The image is what ``make image`` builds (``image/build.sh``: buildah, cached by a hash of its
inputs, so this costs a second once built). The container runs with ``buildah run --isolation
chroot``, which shares the host's network namespace: the operator inside reaches the API server
and the emulators on 127.0.0.1, as the test process does. What a pod would get from the chart
(a kubeconfig from its service account, the cloud settings from its env) it gets here from a
folder mounted read-only and owned by the image's user, and from the working container's env.

Changed from the rendered args, as in test_ha.py: the liveness and metrics ports (every process
here shares the loopback interface). ``--leader-elect`` stays: the container takes the Lease.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import operator_harness as h
from e2e.test_ha import Replica, chart_args
from e2e.test_sps_scenarios import SPS, app_requests, key_ids, seed_target, versions, wait_ready

pytest_plugins = ["e2e.operator_harness"]

# The first run builds the image (a few minutes on a fresh machine); later runs reuse it.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

MOUNT = "/etc/rotator"  # where the container sees its kubeconfig and CA bundle
# What the operator reads from its environment (rotator.clouds.settings); nothing else passes.
PASSED = ("ROTATOR_AUTHORITY_HOST", "ROTATOR_GRAPH_URL", "ROTATOR_CA_BUNDLE", "SSL_CERT_FILE")
PASSED_PREFIXES = ("AZURE_",)


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["buildah", *args], capture_output=True, text=True, check=check, timeout=300
    )


@pytest.fixture(scope="module")
def image() -> str:
    done = subprocess.run(
        [str(h.REPO / "image" / "build.sh")], capture_output=True, text=True, timeout=1800
    )
    if done.returncode != 0:
        pytest.fail(f"image/build.sh failed:\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def config(image: str) -> dict[str, Any]:
    found = json.loads(buildah("inspect", "--type", "image", image).stdout)
    return dict(found["OCIv1"]["config"])


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    name = buildah("from", "--quiet", image).stdout.strip()
    try:
        yield name
    finally:
        buildah("rm", name, check=False)


def run_in(container: str, config: dict[str, Any], *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` in the image as its own user (the image's USER), output captured."""
    return buildah(
        "run",
        "--isolation",
        "chroot",
        "--user",
        config["User"],
        container,
        "--",
        *argv,
        check=False,
    )


def test_the_image_holds_the_operator_and_nothing_for_tests(
    container: str, config: dict[str, Any]
) -> None:
    user = config["User"].split(":")[0]
    assert user.isdigit() and int(user) != 0
    assert config["Entrypoint"] == ["rotator"]
    assert config["Cmd"] == ["run", "--all-namespaces"]
    assert run_in(container, config, "rotator", "--help").returncode == 0
    # No sandbox: importing it says which extra it is, and `rotator demo` says the same.
    sandbox = run_in(container, config, "python", "-c", "import rotator.sandbox")
    assert sandbox.returncode != 0 and "rotator[sandbox]" in sandbox.stderr
    demo = run_in(container, config, "rotator", "demo")
    assert demo.returncode == 2 and "rotator[sandbox]" in demo.stderr
    # No test dependencies, no installer.
    for module in ("trustme", "pytest", "pip", "setuptools", "wheel"):
        found = run_in(container, config, "python", "-c", f"import {module}")
        assert found.returncode != 0, f"{module} is importable in the image"
        assert "ModuleNotFoundError" in found.stderr


def flat_kubeconfig(path: Path) -> dict[str, Any]:
    """The kubeconfig with every file it names embedded (the container cannot see them)."""
    doc = yaml.safe_load(path.read_text())
    fields = ("certificate-authority", "client-certificate", "client-key")
    for section, key in (("clusters", "cluster"), ("users", "user")):
        for entry in doc.get(section) or []:
            body = entry.get(key) or {}
            for field in fields:
                if field in body:
                    named = (path.parent / body.pop(field)).read_bytes()
                    body[f"{field}-data"] = base64.b64encode(named).decode()
    return doc


def container_env(env: dict[str, str], bundle: str) -> list[str]:
    """The production settings from the harness's env, the CA bundle at its mounted path."""
    passed = {k: v for k, v in env.items() if k in PASSED or k.startswith(PASSED_PREFIXES)}
    passed = {k: (f"{MOUNT}/ca.pem" if v == bundle else v) for k, v in passed.items()}
    assert passed.get("ROTATOR_CA_BUNDLE") == f"{MOUNT}/ca.pem"
    return [
        *(f"{k}={v}" for k, v in sorted(passed.items())),
        f"KUBECONFIG={MOUNT}/kubeconfig",
        "HOME=/tmp",  # the kubernetes client caches discovery under HOME
    ]


@dataclasses.dataclass
class ImageOperator(Replica):
    """The image's ENTRYPOINT with the chart's args, in a buildah working container."""

    container: str = ""
    user: str = ""
    entrypoint: list[str] = dataclasses.field(default_factory=list)
    mounts: Path = Path()

    def argv(self) -> list[str]:
        args = super().argv()[3:]  # the chart's args with this process's ports (not python -m)
        return [
            "buildah", "run", "--isolation", "chroot", "--network", "host",
            "--user", self.user,
            "--volume", f"{self.mounts}:{MOUNT}:ro",
            self.container, "--", *self.entrypoint, *args,
        ]  # fmt: skip


@pytest.fixture
def image_operator(
    container: str,
    config: dict[str, Any],
    operator_process: h.OperatorProcess,
    sandbox: h.Sandbox,
    kube: h.Kube,
    e2e_workdir: Path,
) -> Iterator[ImageOperator]:
    """The image's operator instead of the session's (stopped meanwhile, restarted after)."""
    operator_process.stop()
    kube.kubectl("create", "namespace", h.OPERATOR_NAMESPACE, check=False)
    uid, gid = (int(part) for part in config["User"].split(":"))
    mounts = e2e_workdir / "image-mounts"
    mounts.mkdir(exist_ok=True)
    bundle = operator_process.env["ROTATOR_CA_BUNDLE"]
    (mounts / "ca.pem").write_bytes(Path(bundle).read_bytes())
    (mounts / "kubeconfig").write_text(yaml.safe_dump(flat_kubeconfig(operator_process.kubeconfig)))
    # Readable by the image's user only, as a pod's mounted secret with its fsGroup.
    for path in (mounts, mounts / "ca.pem", mounts / "kubeconfig"):
        os.chown(path, uid, gid)
        path.chmod(0o500 if path.is_dir() else 0o400)
    env_args = [
        arg for pair in container_env(operator_process.env, bundle) for arg in ("--env", pair)
    ]
    buildah("config", *env_args, container)
    process = ImageOperator(
        kubeconfig=operator_process.kubeconfig,
        env={k: v for k, v in os.environ.items() if not k.startswith("BUILDAH")},
        log=e2e_workdir / "image-operator.log",
        chart=chart_args(),
        container=container,
        user=config["User"],
        entrypoint=list(config["Entrypoint"]),
        mounts=mounts,
    )
    sandbox.reset()
    try:
        yield process
    finally:
        process.stop()
        sandbox.reset()
        operator_process.start()


def processes_with(marker: str) -> list[str]:
    done = subprocess.run(
        ["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True, check=True
    )
    return [line for line in done.stdout.splitlines() if marker in line and "ps -ww" not in line]


def test_the_image_issues_and_rotates(
    image_operator: ImageOperator, kube: h.Kube, sandbox: h.Sandbox, allowed_namespace: str
) -> None:
    image_operator.start(timeout=120)
    image_operator.wait_for_log("became leader", timeout=60)
    t = seed_target(sandbox, kube, allowed_namespace)
    kube.apply(t.manifest())
    first = wait_ready(kube, t, timeout=120)["current"]
    assert first["keyId"] in key_ids(sandbox, t)
    assert versions(sandbox, t)[-1].version == first["keyVaultVersion"]
    kube.patch(SPS, t.ns, t.name, {"metadata": {"annotations": {"rotator.dev/rotate": "image"}}})
    second = wait_ready(kube, t, other_than=first["keyId"], timeout=120)
    assert second["rotateRequest"] == "image"
    assert second["current"]["keyId"] in key_ids(sandbox, t)
    assert versions(sandbox, t)[-1].version == second["current"]["keyVaultVersion"]
    assert len(app_requests(sandbox, t, "graph.addPassword")) == 2
    # It was the container that did it, as the image's user: the session's operator is stopped.
    log = image_operator.log_text()
    assert "became leader" in log
    marker = f"--metrics-port={image_operator.metrics_port}"
    seen = processes_with(marker)
    running = [line for line in seen if "/opt/rotator/bin/rotator" in line]
    assert running, f"no operator process from the image among {seen}"
    owners = subprocess.run(
        ["ps", "-o", "uid=", "-p", running[0].split()[0]], capture_output=True, text=True
    ).stdout.split()
    assert owners == [config_uid(image_operator.user)]
    image_operator.stop()
    assert not processes_with(marker), "the container's operator outlived buildah run"


def config_uid(user: str) -> str:
    return user.split(":")[0]
