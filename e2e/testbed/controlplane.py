"""A real Kubernetes control plane on loopback: etcd and kube-apiserver, envtest style.

``ControlPlane(workdir).start()`` runs the two Go binaries built by
``e2e/controlplane/build.sh`` on free loopback ports, with RBAC authorization and two
identities from a static token file:

- the admin, user ``rotator-admin`` in ``system:masters`` (``admin_kubeconfig``);
- the operator, user ``rotator-operator`` in ``rotator:operators``, which has no rights until
  a Role or ClusterRole grants them (``operator_kubeconfig``), so the operator's RBAC is real.

Everything lives in ``workdir``: etcd's data, the apiserver's self-signed serving certificate
(``--cert-dir``), the service-account keys, the token file, both kubeconfigs and the logs.
There is no controller-manager and no scheduler: namespaces are never finalized, garbage
collection does not run and pods never start. This is an API server, not a cluster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from e2e.testbed import processes

REPO = Path(__file__).resolve().parents[2]
GO_MOD = REPO / "e2e" / "controlplane" / "go.mod"

ADMIN_USER = "rotator-admin"
ADMIN_GROUPS = ("system:masters",)
OPERATOR_USER = "rotator-operator"
OPERATOR_GROUPS = ("rotator:operators",)

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
STARTUP_ATTEMPTS = 3


class BinariesMissingError(RuntimeError):
    """kube-apiserver or etcd has not been built yet."""


class StartupError(RuntimeError):
    """The control plane did not become ready; the message names the work dir and log tail."""


class _PortClashError(StartupError):
    """A port picked as free was taken before the binary bound it; retry with new ports."""


def versions() -> tuple[str, str]:
    """(kube-apiserver version, etcd version), read from go.mod as build.sh reads them."""
    kube = etcd = ""
    for line in GO_MOD.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "k8s.io/kubernetes" and not kube:
            kube = parts[1]
        elif len(parts) >= 2 and parts[0] == "go.etcd.io/etcd/server/v3" and not etcd:
            etcd = parts[1]
    return kube, etcd


def binaries_dir() -> Path:
    """Where build.sh puts the binaries (same rule; ``ROTATOR_CONTROLPLANE_DIR`` overrides)."""
    override = os.environ.get("ROTATOR_CONTROLPLANE_DIR")
    if override:
        return Path(override)
    cache = os.environ.get("ROTATOR_CACHE_DIR")
    if not cache:
        xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = str(Path(xdg) / "rotator")
    kube, etcd = versions()
    return Path(cache) / "controlplane" / f"kube-{kube}_etcd-{etcd}"


def find_binaries() -> tuple[Path, Path]:
    """(kube-apiserver, etcd), or BinariesMissingError telling how to build them."""
    folder = binaries_dir()
    apiserver, etcd = folder / "kube-apiserver", folder / "etcd"
    missing = [p.name for p in (apiserver, etcd) if not os.access(p, os.X_OK)]
    if missing:
        raise BinariesMissingError(
            f"{' and '.join(missing)} not found in {folder}: run `make controlplane` "
            "(a one-off Go build: about 4.5 minutes on 2 cores with a warm Go module cache, "
            "up to 25 cold), or point "
            "ROTATOR_CONTROLPLANE_DIR at a folder holding both binaries"
        )
    return apiserver, etcd


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports the kernel just handed out (all held open until all are picked)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@dataclasses.dataclass(frozen=True)
class Identity:
    """A static-token user of the apiserver."""

    user: str
    groups: tuple[str, ...]
    token: str = dataclasses.field(repr=False)


class ControlPlane:
    """etcd + kube-apiserver in ``workdir``; a context manager, or call start() / stop()."""

    def __init__(
        self,
        workdir: Path,
        *,
        attached: bool = True,
        startup_timeout: float = 90.0,
        binaries: tuple[Path, Path] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.attached = attached
        self.startup_timeout = startup_timeout
        self._binaries = binaries
        self.admin = Identity(ADMIN_USER, ADMIN_GROUPS, secrets.token_urlsafe(32))
        self.operator = Identity(OPERATOR_USER, OPERATOR_GROUPS, secrets.token_urlsafe(32))
        self.children: list[processes.Child] = []
        self.url = ""
        self.etcd_url = ""
        self.startup_seconds = 0.0

    # -- paths ---------------------------------------------------------------------------
    @property
    def logs(self) -> Path:
        return self.workdir / "logs"

    @property
    def cert_dir(self) -> Path:
        return self.workdir / "certs"

    @property
    def ca_file(self) -> Path:
        # kube-apiserver writes its self-signed serving cert here, followed by the CA that
        # signed it; a client that trusts this file trusts the server.
        return self.cert_dir / "apiserver.crt"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        return self.workdir / "operator.kubeconfig"

    @property
    def kube_cache_dir(self) -> Path:
        # kubectl's discovery cache, kept per control plane (KUBECACHEDIR) so a stale cache
        # from an earlier apiserver on the same port can never hide a CRD.
        return self.workdir / "kubecache"

    def env(self) -> dict[str, str]:
        """Variables that point kubectl, client libraries and the operator at this plane."""
        return {
            "KUBECONFIG": str(self.admin_kubeconfig),
            "ROTATOR_OPERATOR_KUBECONFIG": str(self.operator_kubeconfig),
            "KUBECACHEDIR": str(self.kube_cache_dir),
        }

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ControlPlane:
        apiserver, etcd = self._binaries or find_binaries()
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_credentials()
        for attempt in range(1, STARTUP_ATTEMPTS + 1):
            try:
                self._start_once(apiserver, etcd, attempt)
            except _PortClashError:
                self.stop()
                if attempt == STARTUP_ATTEMPTS:
                    raise
                continue
            except BaseException:
                self.stop()
                raise
            break
        self._write_kubeconfigs()
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop the apiserver, then etcd. Safe to call twice."""
        for child in reversed(self.children):
            processes.stop(child, timeout=10.0)
        self.children.clear()

    def restart(self, *names: str, kill: bool = False, down_seconds: float = 0.0) -> float:
        """Stop and start again ``names`` ("etcd", "kube-apiserver"; default both) with the
        same argv: same ports, etcd's data and the serving certificate kept, so clients and
        kubeconfigs stay valid. ``kill`` SIGKILLs instead of TERM (a crash, not a shutdown).
        Returns the seconds until ready again (the chaos suite's apiserver/etcd restarts)."""
        wanted = set(names or ("etcd", "kube-apiserver"))
        began = time.monotonic()
        for child in reversed([c for c in self.children if c.name in wanted]):
            processes.stop(child, timeout=0.0 if kill else 10.0)
        time.sleep(down_seconds)
        deadline = time.monotonic() + self.startup_timeout
        for index, child in enumerate(self.children):
            if child.name not in wanted:
                continue
            fresh = processes.spawn(
                child.name, child.argv, log=child.log, attached=self.attached, cwd=self.workdir
            )
            self.children[index] = fresh
            if child.name == "etcd":
                healthy = lambda: _get(f"{self.etcd_url}/health") is not None  # noqa: E731
                self._wait_for(fresh, healthy, deadline, "etcd")
        api = next(c for c in self.children if c.name == "kube-apiserver")
        self._wait_for(api, self._ready, deadline, "kube-apiserver")
        return time.monotonic() - began

    def remove_workdir(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- internals -----------------------------------------------------------------------
    def _start_once(self, apiserver: Path, etcd: Path, attempt: int) -> None:
        client_port, peer_port, secure_port = free_ports(3)
        data_dir = self.workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(self.cert_dir, ignore_errors=True)
        self.cert_dir.mkdir(parents=True)
        self.etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        deadline = time.monotonic() + self.startup_timeout

        etcd_child = self._spawn(
            "etcd",
            [
                str(etcd),
                "--name=default",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            attempt,
        )
        self._wait_for(
            etcd_child, lambda: _get(f"{self.etcd_url}/health") is not None, deadline, "etcd"
        )

        auth = self.workdir / "auth"
        self.url = f"https://127.0.0.1:{secure_port}"
        api_child = self._spawn(
            "kube-apiserver",
            [
                str(apiserver),
                f"--etcd-servers={self.etcd_url}",
                f"--cert-dir={self.cert_dir}",
                f"--secure-port={secure_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--authorization-mode=RBAC",
                f"--token-auth-file={auth / 'tokens.csv'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={auth / 'sa.pub'}",
                f"--service-account-signing-key-file={auth / 'sa.key'}",
                # No controller-manager creates the `default` ServiceAccount, so this admission
                # plugin would reject every pod; envtest disables it for the same reason.
                "--disable-admission-plugins=ServiceAccount",
                "--allow-privileged=true",
                "--profiling=false",
            ],
            attempt,
        )
        self._wait_for(api_child, self._ready, deadline, "kube-apiserver")

    def _spawn(self, name: str, argv: list[str], attempt: int) -> processes.Child:
        log = self.logs / (f"{name}.log" if attempt == 1 else f"{name}.{attempt}.log")
        child = processes.spawn(name, argv, log=log, attached=self.attached, cwd=self.workdir)
        self.children.append(child)
        return child

    def _wait_for(
        self, child: processes.Child, ready: Callable[[], bool], deadline: float, what: str
    ) -> None:
        delay = 0.05
        while True:
            if not child.running():
                tail = child.log_tail()
                cls = _PortClashError if "address already in use" in tail else StartupError
                raise cls(
                    f"{what} exited with code {child.returncode()} while starting; "
                    f"log {child.log}:\n{tail}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                raise StartupError(
                    f"{what} not ready after {self.startup_timeout:.0f}s; "
                    f"log {child.log}:\n{child.log_tail()}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _ready(self) -> bool:
        if not self.ca_file.exists():
            return False
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file))
        except (ssl.SSLError, OSError):
            return False  # the file is being written
        headers = {"Authorization": f"Bearer {self.admin.token}"}
        # /readyz covers etcd, RBAC bootstrap roles and CRD informers; the `default` namespace
        # is created by a separate loop just after, and tests apply objects into it.
        return (
            _get(f"{self.url}/readyz", context=context, headers=headers) is not None
            and _get(f"{self.url}/api/v1/namespaces/default", context=context, headers=headers)
            is not None
        )

    def _write_credentials(self) -> None:
        auth = self.workdir / "auth"
        auth.mkdir(parents=True, exist_ok=True)
        with _private_file(auth / "tokens.csv") as f:
            for ident in (self.admin, self.operator):
                # token,user,uid,"group1,group2"
                f.write(f'{ident.token},{ident.user},{ident.user},"{",".join(ident.groups)}"\n')
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with _private_file(auth / "sa.key") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                ).decode()
            )
        (auth / "sa.pub").write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def _write_kubeconfigs(self) -> None:
        for ident, path in (
            (self.admin, self.admin_kubeconfig),
            (self.operator, self.operator_kubeconfig),
        ):
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "rotator-testbed",
                        "cluster": {
                            "server": self.url,
                            "certificate-authority": str(self.ca_file),
                        },
                    }
                ],
                "users": [{"name": ident.user, "user": {"token": ident.token}}],
                "contexts": [
                    {
                        "name": f"rotator-testbed-{ident.user}",
                        "context": {
                            "cluster": "rotator-testbed",
                            "user": ident.user,
                            "namespace": "default",
                        },
                    }
                ],
                "current-context": f"rotator-testbed-{ident.user}",
            }
            with _private_file(path) as f:
                yaml.safe_dump(config, f, sort_keys=False)


def _get(
    url: str, *, context: ssl.SSLContext | None = None, headers: dict[str, str] | None = None
) -> bytes | None:
    """The body of a 200 response, or None for any error (the server is not ready yet).

    A short timeout: on loopback a healthy server answers in milliseconds, and a port held by
    a stranger that never answers must not stall the startup loop.
    """
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            body: bytes = response.read()
            return body if response.status == 200 else None
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return None


@contextlib.contextmanager
def _private_file(path: Path) -> Iterator[TextIO]:
    """Open ``path`` for writing, readable by its owner only (it holds tokens or keys)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yield f
