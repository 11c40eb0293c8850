"""Control-plane fixtures for the e2e suite.

One etcd + kube-apiserver pair serves the whole session (started on first use, about 4 s);
every test that needs isolation takes a fresh ``namespace``. Fixtures:

- ``e2e_workdir``: the session's folder under ``e2e/.logs/``; put your logs there. It is
  removed after a green session and kept (path printed in the summary, etcd's data dropped)
  after any failure; ``ROTATOR_E2E_KEEP=1`` keeps all of it, always.
- ``controlplane``: the running ``e2e.testbed.controlplane.ControlPlane`` (``.url``,
  ``.admin_kubeconfig``, ``.operator_kubeconfig``, ``.ca_file``, ``.env()``).
- ``kubectl`` / ``operator_kubectl``: ``kubectl(*args, input=None, check=True)`` as the admin
  or as the operator identity (user ``rotator-operator``, group ``rotator:operators``).
- ``kube_client``: an admin ``kubernetes.client.ApiClient``.
- ``operator_kubeconfig``: the operator identity's kubeconfig path.
- ``crds``: the CRDs of ``crds/`` applied and Established (a list of ``manifests.Crd``).
- ``namespace``: a fresh namespace for the test; ``make_namespace()`` for more.

Emulator and operator fixtures live in their own modules: every ``e2e/fixtures/<name>.py``
is loaded as a pytest plugin (see ``pytest_configure``), so this file stays about the
control plane and nobody has to edit it to add fixtures.
"""

from __future__ import annotations

import os
import pkgutil
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.testbed import controlplane as cp
from e2e.testbed import manifests
from e2e.testbed.kubectl import Kubectl

LOGS = cp.REPO / "e2e" / ".logs"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Kept work dirs, reported at the end of the session.
_KEPT: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    # pytest_plugins is only honoured in the rootdir's conftest; registering here works from
    # e2e/ and makes the fixtures visible to every e2e test.
    for module in sorted(m.name for m in pkgutil.iter_modules([str(FIXTURES)])):
        config.pluginmanager.import_plugin(f"e2e.fixtures.{module}")


@pytest.fixture(scope="session")
def e2e_workdir(request: pytest.FixtureRequest) -> Iterator[Path]:
    workdir = LOGS / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    workdir.mkdir(parents=True, exist_ok=True)
    yield workdir
    if request.session.testsfailed or os.environ.get("ROTATOR_E2E_KEEP"):
        _KEPT.append(str(workdir))
    else:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def controlplane_binaries() -> tuple[Path, Path]:
    """(kube-apiserver, etcd); a missing build fails every e2e test with how to fix it."""
    missing = None
    try:
        return cp.find_binaries()
    except cp.BinariesMissingError as error:
        missing = str(error)
    pytest.fail(missing, pytrace=False)


@pytest.fixture(scope="session")
def controlplane(
    controlplane_binaries: tuple[Path, Path], e2e_workdir: Path
) -> Iterator[cp.ControlPlane]:
    plane = cp.ControlPlane(e2e_workdir / "controlplane", binaries=controlplane_binaries)
    failure = None
    try:
        plane.start()
    except cp.StartupError as error:
        failure = f"control plane did not start: {error}"
    if failure:
        _KEPT.append(str(e2e_workdir))
        pytest.fail(failure, pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()
        if not os.environ.get("ROTATOR_E2E_KEEP"):
            # etcd preallocates a 64 MB WAL; a kept work dir needs the logs, not the data.
            shutil.rmtree(plane.workdir / "etcd", ignore_errors=True)


@pytest.fixture(scope="session")
def kubectl(controlplane: cp.ControlPlane) -> Kubectl:
    return Kubectl(controlplane.admin_kubeconfig, controlplane.kube_cache_dir)


@pytest.fixture(scope="session")
def operator_kubeconfig(controlplane: cp.ControlPlane) -> Path:
    return controlplane.operator_kubeconfig


@pytest.fixture(scope="session")
def operator_kubectl(controlplane: cp.ControlPlane) -> Kubectl:
    return Kubectl(controlplane.operator_kubeconfig, controlplane.kube_cache_dir)


@pytest.fixture(scope="session")
def kube_client(controlplane: cp.ControlPlane) -> Iterator[Any]:
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(controlplane.admin_kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> list[manifests.Crd]:
    try:
        return manifests.install_crds(kubectl)
    except LookupError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def make_namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[Callable[[], str]]:
    created: list[str] = []
    # A DNS label: lower-case test name, truncated, plus randomness so reruns never collide.
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")

    def make() -> str:
        name = f"e2e-{stem}-{secrets.token_hex(3)}"
        kubectl("create", "namespace", name)
        created.append(name)
        return name

    yield make
    for name in created:
        # No namespace controller runs, so the namespace stays Terminating; that still stops
        # new objects being created in it, which is all cleanup needs here.
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def namespace(make_namespace: Callable[[], str]) -> str:
    return make_namespace()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in _KEPT:
        terminalreporter.write_line(f"e2e work dir kept (logs, kubeconfigs): {path}")
