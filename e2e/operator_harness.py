"""The operator e2e harness: emulators in-process, the operator as a real separate process.

A pytest plugin. Load it from a test module (``pytest_plugins = ["e2e.operator_harness"]``)
or from a conftest; it only adds fixtures, helpers and one ordering hook.

Session fixtures
- ``sandbox``: :class:`Sandbox`, the emulator stack (``rotator.sandbox.stack.Stack``: Entra,
  Graph, 2 Key Vaults, 2 Databricks workspaces) running on its own event loop in a thread of
  the test process, so tests read its state directly. ``sandbox.stack`` is the Stack;
  ``sandbox.call(fn, *args)`` runs ``fn`` on the stack's loop (use it to read or change
  emulator state without racing a request); ``count``/``requests``/``add_fault``/``clear_faults``
  take an optional emulator ``url``; ``minted_secrets()`` is every secret text Graph ever
  handed out in this session, including revoked ones (for the leak check).
- ``operator_rbac``: ``crds/`` applied (the chart's CRDs come from it), the chart's RBAC rendered
  by ``helm template`` with the control plane's operator identity as an extra subject, applied.
  The operator therefore runs with exactly the chart's rights, nothing more.
- ``operator_process``: :class:`OperatorProcess`, ``python -m rotator.cli run -A --standalone``
  as a separate process with the operator kubeconfig and the stack's environment; output
  goes to ``<e2e_workdir>/operator.log`` (appended across restarts). ``kill()`` sends
  SIGKILL, ``start()`` starts it again and waits for kopf's liveness endpoint; ``stop()``.
- ``kube``: :class:`Kube`, admin reads of the API server (objects, status, conditions, events,
  every object of every kind) and ``apply``.

Function fixtures
- ``operator``: the session's operator process, (re)started if a previous test killed it;
  ``sandbox.reset()`` before and after the test (no fault rule, Entra's propagation delay as
  started), so no test inherits another's faults.
- ``allowed_namespace``: a fresh namespace with a RotationPolicy granting it every sandbox
  tenant, application, vault and workspace (policies are enforced by default).

Helpers: :func:`wait_for` (poll a predicate, fail with the operator log tail),
:func:`wait_for_events` (events are posted asynchronously: wait for them, never read them
right after an effect), :func:`condition`.

Tests that need no operator (only ``sandbox`` and ``kube``) work before ``rotator run``
exists; ``operator_process`` fails with the process's log when it cannot start.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from e2e.testbed import controlplane as cp
from e2e.testbed import processes
from e2e.testbed.kubectl import Kubectl
from rotator.sandbox import faults, server, stack

T = TypeVar("T")

REPO = cp.REPO
GROUP = "rotator.dev"
VERSION = "v1alpha1"
PLURALS = {
    "ServicePrincipalSecret": "serviceprincipalsecrets",
    "DatabricksSecretBinding": "databrickssecretbindings",
    "RotationPolicy": "rotationpolicies",
}
OPERATOR_NAMESPACE = "rotator-system"
HELM_RELEASE = "rotator"
# Modules whose tests must run after every other e2e test (they inspect what the session left).
LAST_MODULES = ("test_leaks.py",)


# --- waiting ---------------------------------------------------------------------------------


def wait_for(
    predicate: Callable[[], T | None],
    *,
    timeout: float = 60.0,
    interval: float = 0.25,
    message: str = "condition",
    diagnostics: Callable[[], str] | None = None,
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    On timeout, fail with ``message``, the last value seen and ``diagnostics()`` (the
    operator log tail, by default when an operator is running), so a red test says why.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            detail = diagnostics() if diagnostics is not None else _default_diagnostics()
            pytest.fail(
                f"timed out after {timeout:.0f}s waiting for {message}; last value: {last!r}"
                f"\n{detail}",
                pytrace=False,
            )
        time.sleep(interval)


_CURRENT_OPERATOR: list[OperatorProcess] = []


def _default_diagnostics() -> str:
    if not _CURRENT_OPERATOR:
        return ""
    return f"--- operator log (tail) ---\n{_CURRENT_OPERATOR[0].log_tail(60)}"


def wait_for_events(
    kube: Kube,
    namespace: str,
    name: str,
    reasons: Collection[str],
    *,
    timeout: float = 60.0,
) -> list[dict[str, Any]]:
    """The events of ``namespace/name`` once one of each of ``reasons`` has been posted.

    The operator posts events through kopf's background poster, after the action they report:
    a test that has just seen the action's effect (a Graph credential gone, a status field) may
    list the events before they reach the API server. Wait for them instead.
    """
    wanted = set(reasons)

    def posted() -> list[dict[str, Any]] | None:
        events = kube.events_for(namespace, name)
        return events if wanted <= {str(e.get("reason")) for e in events} else None

    return wait_for(
        posted, timeout=timeout, message=f"events {sorted(wanted)} of {namespace}/{name}"
    )


def condition(obj: Mapping[str, Any] | None, kind: str) -> dict[str, Any]:
    """The status condition of ``kind`` (empty when absent)."""
    for cond in ((obj or {}).get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return {}


# --- the emulator stack in a thread ----------------------------------------------------------


class Sandbox:
    """The emulator stack on a private event loop in a daemon thread of the test process."""

    def __init__(
        self, directory: Path, *, vaults: int = 2, workspaces: int = 2, seed: int = 0
    ) -> None:
        self.directory = directory
        self._options = {"vaults": vaults, "workspaces": workspaces, "seed": seed}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="sandbox", daemon=True)
        self._stack: stack.Stack | None = None
        # Every secret text Graph produced, in order; a revoked credential leaves the
        # directory but must stay on this list (it may still have leaked before).
        self._minted: list[str] = []
        self._minted_lock = threading.Lock()
        self._propagation_delay = 0.0  # the directory's, as started (see reset)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> Sandbox:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the emulator stack did not start in time")
        if self._error is not None:
            raise RuntimeError(f"the emulator stack failed to start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=30)

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to start(); the thread must not die silently
            self._error = error
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        async with stack.Stack.start(self.directory, **self._options) as running:
            self._stack = running
            self._propagation_delay = running.directory.propagation_delay
            self._record_minted(running)
            self._ready.set()
            await self._stopping.wait()

    def _record_minted(self, running: stack.Stack) -> None:
        directory = running.directory
        for tenant in directory.tenants.values():
            for kind in ("application", "servicePrincipal"):
                for obj in tenant.collection(kind).values():  # type: ignore[arg-type]
                    self._minted.extend(p.secret_text for p in obj.password_credentials)
        original = directory.add_password

        def recording(*args: Any, **kwargs: Any) -> Any:
            credential = original(*args, **kwargs)
            with self._minted_lock:
                self._minted.append(credential.secret_text)
            return credential

        # An instance attribute shadows the method for every caller (the Graph routes too).
        directory.add_password = recording  # type: ignore[method-assign]

    # -- access -----------------------------------------------------------------------------

    @property
    def stack(self) -> stack.Stack:
        assert self._stack is not None, "sandbox not started"
        return self._stack

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 30.0) -> T:
        """Run ``fn(*args)`` on the stack's loop (between requests) and return its result."""
        assert self._loop is not None

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def env(self) -> dict[str, str]:
        return self.stack.env()

    def services(self, kind: str) -> list[stack.Service]:
        return [s for s in self.stack.services if s.kind == kind]

    def state(self, kind: str, index: int = 0) -> Any:
        """The state object of the ``index``-th emulator of ``kind`` (e.g. ``databricks``)."""
        return self.services(kind)[index].state

    def url_of(self, kind: str, index: int = 0) -> str:
        return self.services(kind)[index].url

    def requests(self, operation: str | None = None, *, url: str | None = None) -> list[Any]:
        """Request log entries (method, path, operation, status), optionally of one emulator."""

        def collect() -> list[Any]:
            found = []
            for service in self.stack.services:
                if url is not None and service.url.rstrip("/") != url.rstrip("/"):
                    continue
                found.extend(dict(e, url=service.url) for e in service.app[server.LOG_KEY])
            found.sort(key=lambda e: float(e["time"]))
            return [e for e in found if operation is None or e["operation"] == operation]

        return self.call(collect)

    def count(self, operation: str, *, url: str | None = None) -> int:
        return len(self.requests(operation, url=url))

    def operations(self, *, url: str | None = None) -> dict[str, int]:
        """How many requests reached each operation (of one emulator, or of all)."""
        counts: dict[str, int] = {}
        for entry in self.requests(url=url):
            counts[entry["operation"]] = counts.get(entry["operation"], 0) + 1
        return counts

    def add_fault(self, rule: faults.FaultRule, *, url: str | None = None) -> None:
        self.call(lambda: self.stack.add_fault(rule, url=url))

    def clear_faults(self) -> None:
        self.call(self.stack.clear_faults)

    def reset(self) -> None:
        """No fault rule left, and Entra's propagation delay as the session started."""

        def reset() -> None:
            self.stack.clear_faults()
            self.stack.directory.propagation_delay = self._propagation_delay

        self.call(reset)

    def minted_secrets(self) -> list[str]:
        """Every secret text the directory ever held this session (seeded and minted), plus
        any a test declared with :meth:`remember_secret`."""
        with self._minted_lock:
            return list(self._minted)

    def remember_secret(self, text: str) -> None:
        """Add a secret a test put somewhere itself (e.g. a Key Vault value) to the leak list."""
        with self._minted_lock:
            self._minted.append(text)

    def credentials(self, tenant_id: str, app_id: str) -> list[dict[str, Any]]:
        """The password credentials (no text) Graph now lists on the app and its principal."""

        def collect() -> list[dict[str, Any]]:
            tenant = self.stack.directory.tenant(tenant_id)
            if tenant is None:
                return []
            return [
                dict(p.to_json(), holder=obj.kind)
                for obj in tenant.by_app_id(app_id)
                for p in obj.password_credentials
            ]

        return self.call(collect)

    def key_ids(self, tenant_id: str, app_id: str) -> set[str]:
        return {str(c["keyId"]) for c in self.credentials(tenant_id, app_id)}


# --- the operator process --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class OperatorProcess:
    """``rotator run`` as a child process; ``start``/``kill``/``stop`` it, read its log."""

    kubeconfig: Path
    env: dict[str, str] = dataclasses.field(repr=False)
    log: Path
    args: Sequence[str] = ()
    starts: int = 0
    child: processes.Child | None = None
    liveness_port: int = 0
    metrics_port: int = 0

    def argv(self) -> list[str]:
        level = os.environ.get("ROTATOR_E2E_OPERATOR_LOG_LEVEL", "INFO")
        return [
            sys.executable,
            "-m",
            "rotator.cli",
            "run",
            "--all-namespaces",
            "--standalone",
            "--liveness",
            f"http://127.0.0.1:{self.liveness_port}/healthz",
            "--metrics-port",
            str(self.metrics_port),
            "--log-level",
            level,
            *self.args,
        ]

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.running()

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 90.0) -> OperatorProcess:
        """Start the process and wait until kopf's liveness endpoint answers."""
        if self.running:
            return self
        self.liveness_port, self.metrics_port = free_port(), free_port()
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"\n=== e2e harness: operator start #{self.starts} ===\n")
        self.child = processes.spawn(
            "rotator-operator", self.argv(), log=self.log, env=self.env, cwd=REPO
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.child.running():
                raise RuntimeError(
                    f"the operator exited with {self.child.returncode()} at start-up:\n"
                    f"{self.log_tail(80)}"
                )
            if self._alive():
                return self
            time.sleep(0.25)
        raise RuntimeError(f"the operator was not live after {timeout:.0f}s:\n{self.log_tail(80)}")

    def _alive(self) -> bool:
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL the operator (and anything it forked): no clean-up runs in it."""
        if self.child is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child.pid, signal.SIGKILL)
        if self.child.popen is not None:
            self.child.popen.wait(timeout=30)
        processes.stop(self.child, timeout=1.0)  # forget it (it is gone already)

    def stop(self) -> None:
        if self.child is not None:
            processes.stop(self.child, timeout=15.0)

    def restart(self) -> OperatorProcess:
        self.kill()
        return self.start()

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def wait_for_log(self, text: str, *, timeout: float = 60.0, after: int = 0) -> str:
        """Wait until ``text`` appears in the log past offset ``after`` (use len(log_text()))."""
        return wait_for(
            lambda: text if text in self.log_text()[after:] else None,
            timeout=timeout,
            message=f"{text!r} in the operator log",
        )


def operator_environment(
    sandbox_env: Mapping[str, str], kubeconfig: Path, workdir: Path
) -> dict[str, str]:
    """The operator's environment: ours minus any kube or Azure settings, plus the stack's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("KUBE", "AZURE_", "ROTATOR_", "PYTEST_"))
    }
    env.update(sandbox_env)
    env["KUBECONFIG"] = str(kubeconfig)
    # kubernetes clients cache discovery under HOME; keep that inside the session's folder.
    env["HOME"] = str(workdir / "operator-home")
    env["PYTHONUNBUFFERED"] = "1"
    (workdir / "operator-home").mkdir(parents=True, exist_ok=True)
    return env


# --- the API server ---------------------------------------------------------------------------


@dataclasses.dataclass
class Kube:
    """Admin reads and writes of the API server, through kubectl and the Python client."""

    kubectl: Kubectl
    api_client: Any

    @property
    def custom(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(self.api_client)

    def apply(self, *objects: Mapping[str, Any]) -> None:
        """``kubectl apply`` of the given objects (as the admin)."""
        text = "\n---\n".join(yaml.safe_dump(dict(o), sort_keys=False) for o in objects)
        self.kubectl("apply", "-f", "-", input=text)

    def get(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One of our objects by kind (``DatabricksSecretBinding`` …), or None when absent."""
        from kubernetes.client.exceptions import ApiException

        plural = PLURALS[kind]
        try:
            if namespace is None:
                found = self.custom.get_cluster_custom_object(GROUP, VERSION, plural, name)
            else:
                found = self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, plural, name
                )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return dict(found)

    def status(self, kind: str, namespace: str | None, name: str) -> dict[str, Any]:
        return dict((self.get(kind, namespace, name) or {}).get("status") or {})

    def patch(self, kind: str, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURALS[kind], name, dict(patch)
        )

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.kubectl(
            "delete", PLURALS[kind], "-n", namespace, name, "--wait=false", "--ignore-not-found"
        )

    def events(self, namespace: str | None = None) -> list[dict[str, Any]]:
        where = ["-A"] if namespace is None else ["-n", namespace]
        return list(self.kubectl.json("get", "events", *where).get("items", []))

    def events_for(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return [
            e for e in self.events(namespace) if (e.get("involvedObject") or {}).get("name") == name
        ]

    def all_objects(self) -> list[dict[str, Any]]:
        """Every object of every listable kind in the cluster, as JSON (secrets included)."""
        names = self.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
        items: list[dict[str, Any]] = []
        for name in names:
            # One kind at a time: a kind that cannot be listed (aggregated APIs with no
            # backend) must not hide every other kind.
            done = self.kubectl("get", name, "-A", "-o", "json", check=False)
            if done.returncode == 0 and done.stdout.strip():
                items.extend(json.loads(done.stdout).get("items", []))
        return items


def allow_policy(name: str, namespaces: Sequence[str], sandbox: Sandbox) -> dict[str, Any]:
    """A RotationPolicy granting ``namespaces`` the sandbox's tenants, vaults and workspaces, and
    any application (``applications`` omitted: tests seed applications after the policy)."""
    tenants = sorted(sandbox.stack.directory.tenants)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "RotationPolicy",
        "metadata": {"name": name},
        "spec": {
            "namespaces": list(namespaces),
            "tenants": tenants,
            "keyVaults": list(sandbox.stack.keyvault_urls),
            "databricksWorkspaces": list(sandbox.stack.databricks_hosts),
            "maxValidity": "730d",
        },
    }


# --- helm: the chart's RBAC ------------------------------------------------------------------


def helm_binary() -> str:
    done = subprocess.run(
        [str(REPO / "e2e" / "helm" / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"e2e/helm/build.sh failed:\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def helm_template_flags() -> list[str]:
    """What every ``helm template`` of the chart needs here: the testbed's Kubernetes version
    (a helm built by ``go install`` assumes 1.20, below the chart's kubeVersion) and the one
    value the chart requires, a workload identity client id (a dummy: nothing authenticates)."""
    return [
        "--kube-version",
        cp.versions()[0],
        "--set",
        "azure.workloadIdentity.clientId=00000000-0000-0000-0000-000000000000",
    ]


def render_rbac(helm: str, user: str) -> list[dict[str, Any]]:
    """The chart's RBAC objects, with ``user`` bound as an extra subject."""
    done = subprocess.run(
        [
            helm,
            "template",
            HELM_RELEASE,
            str(REPO / "charts" / "rotator"),
            "--namespace",
            OPERATOR_NAMESPACE,
            "--show-only",
            "templates/rbac.yaml",
            *helm_template_flags(),
            "--set",
            "rbac.extraSubjects[0].kind=User",
            "--set",
            f"rbac.extraSubjects[0].name={user}",
            "--set",
            "rbac.extraSubjects[0].apiGroup=rbac.authorization.k8s.io",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"helm template failed:\n{done.stderr}")
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sandbox(e2e_workdir: Path) -> Iterator[Sandbox]:
    running = Sandbox(e2e_workdir / "sandbox").start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def kube(kubectl: Kubectl, kube_client: Any) -> Kube:
    return Kube(kubectl, kube_client)


@pytest.fixture(scope="session")
def operator_rbac(
    controlplane: cp.ControlPlane, kubectl: Kubectl, crds: Any
) -> list[dict[str, Any]]:
    kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
    rendered = render_rbac(helm_binary(), controlplane.operator.user)
    Kube(kubectl, None).apply(*rendered)
    return rendered


@pytest.fixture(scope="session")
def operator_process(
    sandbox: Sandbox,
    operator_rbac: list[dict[str, Any]],
    operator_kubeconfig: Path,
    e2e_workdir: Path,
) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        kubeconfig=operator_kubeconfig,
        env=operator_environment(sandbox.env(), operator_kubeconfig, e2e_workdir),
        log=e2e_workdir / "operator.log",
    )
    _CURRENT_OPERATOR[:] = [process]
    failure = None
    try:
        process.start()
    except RuntimeError as error:
        failure = str(error)
    if failure:
        pytest.fail(failure, pytrace=False)
    try:
        yield process
    finally:
        process.stop()
        _CURRENT_OPERATOR.clear()


@pytest.fixture
def operator(operator_process: OperatorProcess, sandbox: Sandbox) -> Iterator[OperatorProcess]:
    """The session's operator, running (a test before may have killed it), against emulators
    with no fault rule and the default propagation delay (``sandbox.reset()`` before and after
    the test: nothing a test before did, or failed to undo, leaks into this one)."""
    sandbox.reset()
    try:
        yield operator_process.start()
    finally:
        sandbox.reset()


@pytest.fixture
def allowed_namespace(
    make_namespace: Callable[[], str], kube: Kube, sandbox: Sandbox
) -> Iterator[str]:
    name = make_namespace()
    kube.apply(allow_policy(f"e2e-{name}", [name], sandbox))
    yield name
    kube.kubectl("delete", "rotationpolicy", f"e2e-{name}", "--ignore-not-found", check=False)


def secret_forms(text: str) -> list[str]:
    """How a secret might appear in stored text: raw, base64 (Secret data) and JSON-escaped."""
    forms = {text, base64.b64encode(text.encode()).decode(), json.dumps(text)[1:-1]}
    return sorted(forms)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The leak check inspects what the whole session left behind: run it last.
    last = [i for i in items if Path(str(i.fspath)).name in LAST_MODULES]
    if last:
        items[:] = [i for i in items if i not in last] + last
