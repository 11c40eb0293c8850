"""``rotator demo``: one issuance and one rotation end to end, on this machine, then tear down.

What runs: the emulator stack in this process (Entra, Graph, Key Vault, Databricks:
:mod:`rotator.sandbox`), the real operator (``rotator run``) as a child process, and a real
Kubernetes API server named by ``KUBECONFIG``. ``make demo`` starts a local one first
(``python -m e2e.testbed up``, an etcd + kube-apiserver pair, no Docker) and stops it after.

The demo applies the CRDs, a RotationPolicy, a ServicePrincipalSecret for the seeded demo
application and a DatabricksSecretBinding for two seeded jobs (a nightly batch job and a
continuous stream), waits for the first secret to be issued and synced, requests a rotation
(as ``rotator rotate`` does), and waits until the new secret is in Key Vault and Databricks,
the continuous job restarted and the old secret revoked after its overlap. It prints what each
system holds at each point: never a secret value (Graph's three-character hint and a SHA-256
prefix of what Databricks stores stand in for it).

The operator runs with the admin kubeconfig here, for simplicity; e2e runs it under exactly
the chart's RBAC. The command line (``--kubeconfig``, ``--timeout``, ``--keep``) is declared in
:mod:`rotator.cli`, so ``rotator demo`` exists, and explains itself, where the sandbox does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from rotator.sandbox import stack as sandbox_stack

GROUP = "rotator.dev"
VERSION = "v1alpha1"
NAMESPACE = "rotator-demo"
REPO = pathlib.Path(__file__).resolve().parents[3]  # operator/rotator/sandbox/demo.py


def main(args: argparse.Namespace) -> int:
    if not args.kubeconfig:
        print(
            "rotator demo needs a Kubernetes API server: run `make demo` (it starts a local "
            "one), or set KUBECONFIG / --kubeconfig to a cluster you may install CRDs in.",
            file=sys.stderr,
        )
        return 2
    if shutil.which("kubectl") is None:
        print("rotator demo needs kubectl on PATH", file=sys.stderr)
        return 2
    try:
        return asyncio.run(Demo(args).run())
    except DemoError as error:
        print(f"\ndemo failed: {error}", file=sys.stderr)
        return 1


class DemoError(Exception):
    """A step did not happen in time; the message says which and where to look."""


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.kubeconfig = str(args.kubeconfig)
        self.timeout = float(args.timeout)
        self.keep = bool(args.keep)
        self.workdir = pathlib.Path(tempfile.mkdtemp(prefix="rotator-demo-"))
        self.log = self.workdir / "operator.log"
        self.stack: sandbox_stack.Stack | None = None

    # --- plumbing ---------------------------------------------------------------------------

    def kubectl(self, *argv: str, input: str | None = None, check: bool = True) -> str:
        # kubectl from PATH with our own arguments: nothing here comes from untrusted input.
        done = subprocess.run(
            ["kubectl", "--kubeconfig", self.kubeconfig, *argv],
            input=input,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise DemoError(f"kubectl {' '.join(argv)}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input="\n".join(json.dumps(o) for o in objects))

    def get(self, kind: str, name: str) -> dict[str, Any]:
        out = self.kubectl("get", kind, name, "-n", NAMESPACE, "-o", "json", check=False)
        return dict(json.loads(out)) if out.strip() else {}

    async def wait(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            found = await asyncio.to_thread(check)
            if found:
                return found
            await asyncio.sleep(0.5)
        tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
        raise DemoError(f"timed out waiting for {what}\n--- operator log (tail) ---\n{tail}")

    @contextlib.contextmanager
    def operator(self, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
        argv = [sys.executable, "-m", "rotator.cli", "run", "--all-namespaces", "--standalone"]
        argv += ["--metrics-port", "0", "--log-level", "INFO"]
        with self.log.open("ab") as out:
            child = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()

    # --- the story --------------------------------------------------------------------------

    async def run(self) -> int:
        say(f"work folder {self.workdir} (operator log: {self.log.name})")
        async with sandbox_stack.Stack.start(self.workdir / "sandbox") as stack:
            self.stack = stack
            for service in stack.services:
                say(f"emulator {service.kind:<10} {service.url}")
            env = dict(os.environ, **stack.env(), KUBECONFIG=self.kubeconfig, PYTHONUNBUFFERED="1")
            jobs = self.seed_jobs()
            self.install()
            try:
                with self.operator(env) as child:
                    await self.story(jobs, child)
            finally:
                if not self.keep:
                    self.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
                    self.kubectl("delete", "rotationpolicy", "rotator-demo", check=False)
        say("done: the operator is stopped and the emulators are gone")
        if not self.keep:
            # A failed demo raises before this line and keeps the folder for its logs.
            shutil.rmtree(self.workdir, ignore_errors=True)
        return 0

    def seed_jobs(self) -> dict[str, int]:
        state = self.workspace_state()
        cluster = {"spark_version": "15.4.x-scala2.12", "node_type_id": "Standard_DS3_v2"}
        nightly = {
            "name": "nightly-etl",
            "schedule": {"quartz_cron_expression": "0 0 2 * * ?", "timezone_id": "UTC"},
            "job_clusters": [{"job_cluster_key": "etl", "new_cluster": dict(cluster)}],
            "tasks": [
                {
                    "task_key": "run",
                    "job_cluster_key": "etl",
                    "notebook_task": {"notebook_path": "/etl"},
                }
            ],
        }
        stream = {
            "name": "stream",
            "continuous": {"pause_status": "UNPAUSED"},
            "tasks": [
                {
                    "task_key": "run",
                    "new_cluster": dict(cluster),
                    "notebook_task": {"notebook_path": "/stream"},
                }
            ],
        }
        specs: list[dict[str, Any]] = [nightly, stream]
        return {str(s["name"]): int(state.create_job(state.aad(), s).job_id) for s in specs}

    def workspace_state(self) -> Any:
        assert self.stack is not None
        return next(s.state for s in self.stack.services if s.kind == "databricks")

    def install(self) -> None:
        assert self.stack is not None
        crds = REPO / "crds"
        if not crds.is_dir():
            raise DemoError(f"no CRDs at {crds}: run the demo from a clone of the repository")
        self.kubectl("apply", "-f", str(crds))
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
        self.kubectl("create", "namespace", NAMESPACE, check=False)
        vault = self.stack.keyvault_urls[0]
        host = self.stack.databricks_hosts[0]
        demo = self.stack.demo_application
        self.apply(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "RotationPolicy",
                "metadata": {"name": "rotator-demo"},
                "spec": {
                    "namespaces": [NAMESPACE],
                    "tenants": [demo.tenant_id],
                    "applications": [demo.client_id],
                    "keyVaults": [vault],
                    "databricksWorkspaces": [host],
                    "maxValidity": "180d",
                },
            },
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ServicePrincipalSecret",
                "metadata": {"name": "etl-sp", "namespace": NAMESPACE},
                "spec": {
                    "tenantId": demo.tenant_id,
                    "application": {"clientId": demo.client_id},
                    "rotation": {"validity": "90d", "renewBefore": "30d", "overlap": "10s"},
                    "keyVault": {"vaultUrl": vault, "secretName": "etl-sp-client-secret"},
                },
            },
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DatabricksSecretBinding",
                "metadata": {"name": "etl-sp-prod", "namespace": NAMESPACE},
                "spec": {
                    "source": {"servicePrincipalSecretRef": {"name": "etl-sp"}},
                    "workspace": {"host": host},
                    "scope": {"name": "etl", "key": "client-secret", "create": True},
                    "jobs": [
                        {
                            "jobName": "nightly-etl",
                            "env": ["AZURE_CLIENT_SECRET"],
                            "sparkConf": ["fs.azure.account.oauth2.client.secret"],
                        },
                        {
                            "jobName": "stream",
                            "env": ["AZURE_CLIENT_SECRET"],
                            "restart": "IfRunning",
                        },
                    ],
                },
            },
        )
        say(f"applied CRDs, RotationPolicy rotator-demo, sps and dsb in namespace {NAMESPACE}")

    async def story(self, jobs: dict[str, int], child: subprocess.Popen[bytes]) -> None:
        runs_before = self.active_runs(jobs["stream"])
        first = await self.wait("the first secret to be issued", lambda: self.current())
        await self.wait("the binding to sync it", lambda: self.synced(first["keyId"]))
        heading("1. first secret issued, stored and synced")
        await self.show(jobs)
        heading("2. rotation requested (annotation rotator.dev/rotate, as `rotator rotate` sets)")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        await asyncio.to_thread(
            self.kubectl,
            "annotate",
            "sps",
            "etl-sp",
            "-n",
            NAMESPACE,
            f"rotator.dev/rotate={stamp}",
            "--overwrite",
        )
        second = await self.wait(
            "the new secret",
            lambda: self.current() if self.current().get("keyId") != first["keyId"] else None,
        )
        await self.wait("the binding to sync the new secret", lambda: self.synced(second["keyId"]))
        heading("3. new secret current and in Databricks; old one waits for its overlap")
        await self.show(jobs)
        runs_now = self.active_runs(jobs["stream"])
        say(f"continuous job 'stream' active runs: before {runs_before}, now {runs_now}")
        await self.wait(
            "the old secret to be revoked after the overlap",
            lambda: first["keyId"] not in {c["keyId"] for c in self.credentials()},
        )
        heading("4. old secret revoked in Graph")
        self.show_graph()
        if child.poll() is not None:
            raise DemoError(f"the operator exited with {child.returncode}; see {self.log}")

    # --- what each system holds ---------------------------------------------------------------

    def current(self) -> dict[str, Any]:
        return dict((self.get("sps", "etl-sp").get("status") or {}).get("current") or {})

    def synced(self, key_id: str) -> dict[str, Any] | None:
        status = self.get("dsb", "etl-sp-prod").get("status") or {}
        return dict(status) if status.get("syncedKeyId") == key_id else None

    def credentials(self) -> list[dict[str, Any]]:
        assert self.stack is not None
        demo = self.stack.demo_application
        tenant = self.stack.directory.tenant(demo.tenant_id)
        objects = tenant.by_app_id(demo.client_id) if tenant else []
        return [p.to_json() for obj in objects for p in obj.password_credentials]

    def active_runs(self, job_id: int) -> list[int]:
        return [r.run_id for r in self.workspace_state().active_runs(job_id)]

    def show_graph(self) -> None:
        say("Graph passwordCredentials of the demo application (hint = first 3 characters):")
        for cred in self.credentials():
            name = cred["displayName"] or "-"
            if not name.startswith("rotator-"):
                name += " (not rotator's)"  # created outside the operator: never touched
            ends = cred["endDateTime"]
            say(f"  keyId {cred['keyId']}  {name:<28} hint {cred['hint']}  ends {ends}")

    async def show(self, jobs: dict[str, int]) -> None:
        """Print every system's view; kubectl in a thread, emulator state on this loop."""
        assert self.stack is not None
        sps_body, dsb_body = await asyncio.gather(
            asyncio.to_thread(self.get, "sps", "etl-sp"),
            asyncio.to_thread(self.get, "dsb", "etl-sp-prod"),
        )
        self.show_graph()
        vault = next(s.state for s in self.stack.services if s.kind == "keyvault")
        say("Key Vault versions of etl-sp-client-secret (last = latest, what consumers read):")
        secret = vault.secrets.get("etl-sp-client-secret")
        for version in secret.versions if secret else []:
            tags = version.tags or {}
            key_id = tags.get("rotator.dev/key-id", "-")
            say(f"  {version.version}  enabled={version.enabled}  key-id tag {key_id}")
        workspace = self.workspace_state()
        stored = (
            workspace.scopes["etl"].secrets.get("client-secret")
            if "etl" in workspace.scopes
            else None
        )
        digest = hashlib.sha256(stored.value).hexdigest()[:12] if stored else "-"
        say(f"Databricks scope etl, key client-secret: sha256 {digest}…")
        for name, job_id in jobs.items():
            settings = workspace.jobs[job_id].settings
            clusters = [c["new_cluster"] for c in settings.get("job_clusters", [])]
            clusters += [t["new_cluster"] for t in settings.get("tasks", []) if "new_cluster" in t]
            for cluster in clusters:
                say(f"  job {name} ({job_id}) spark_env_vars {cluster.get('spark_env_vars', {})}")
        sps = sps_body.get("status") or {}
        dsb = dsb_body.get("status") or {}
        retiring = [r.get("keyId") for r in sps.get("retiring", [])]
        say(f"sps etl-sp: current {sps.get('current', {}).get('keyId')}, retiring {retiring}")
        say(f"  next rotation {sps.get('nextRotationTime')}")
        report = [
            (j.get("jobName"), j.get("changed"), j.get("restartedRuns"))
            for j in dsb.get("jobs", [])
        ]
        say(f"dsb etl-sp-prod: syncedVersion {dsb.get('syncedVersion')}")
        say(f"  jobs (name, changed, restartedRuns) {report}")


def heading(text: str) -> None:
    print(f"\n== {text}", flush=True)


def say(text: str) -> None:
    print(text, flush=True)
