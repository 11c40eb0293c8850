"""The whole sandbox in one process: Entra, Graph, Key Vault and Databricks emulators.

Each emulator listens on its own HTTPS port on 127.0.0.1 with a certificate of one
``SandboxCA``; one ``TokenAuthority`` mints (Entra) and checks (everyone else) the tokens; one
``graph.Directory`` holds the tenants, applications and secrets Entra and Graph share. The
stack seeds an operator identity (an application whose secret the operator uses, like
``AZURE_CLIENT_SECRET``) and two demo target applications it owns: one whose secrets live on
the application object, one whose secrets live on its service principal.

``Stack.start(...)`` is the async API for tests; ``python -m rotator.sandbox serve`` runs it
as a process and writes a sourceable env file once every server listens (see ``env()``).
The Key Vault and Databricks emulators are composed when their modules exist
(``rotator.sandbox.keyvault`` / ``rotator.sandbox.databricks``), so the stack works while
they are being written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import pathlib
import random
import shlex
import uuid
from collections.abc import AsyncIterator, Iterable
from types import ModuleType
from typing import Any

from aiohttp import web

from rotator.sandbox import entra, faults, graph, server, tls, tokens

# The ids of the examples in PRODUCT.md, so `examples/` apply to the sandbox unchanged.
DEMO_TENANT_ID = "00000000-0000-0000-0000-0000000000aa"
DEMO_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
ENV_FILE_NAME = "env"


def _optional(module: str) -> ModuleType | None:
    """An emulator module that may not exist yet; absence (only) means "run without it"."""
    try:
        return importlib.import_module(f"rotator.sandbox.{module}")
    except ModuleNotFoundError as error:
        if error.name != f"rotator.sandbox.{module}":
            raise
        return None


@dataclasses.dataclass
class Service:
    """One running emulator: which kind, its app (log, faults), state and URL."""

    kind: str  # entra | graph | keyvault | databricks
    app: web.Application
    running: server.Running
    state: Any

    @property
    def url(self) -> str:
        return self.running.url


@dataclasses.dataclass
class Identity:
    """A seeded client: ids and (for identities the stack hands out) the secret text."""

    tenant_id: str
    client_id: str
    object_id: str
    service_principal_id: str | None
    secret_text: str = dataclasses.field(default="", repr=False)


@dataclasses.dataclass
class Stack:
    directory: graph.Directory
    authority: tokens.TokenAuthority
    ca: tls.SandboxCA
    services: list[Service]
    operator: Identity
    demo_application: Identity  # credentialOwner: application
    demo_service_principal: Identity  # credentialOwner: servicePrincipal

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls,
        directory: pathlib.Path,
        *,
        vaults: int = 1,
        workspaces: int = 1,
        seed: int = 0,
        propagation_delay: float = 0.0,
    ) -> AsyncIterator[Stack]:
        """Start every emulator; stop them all on exit, even when one failed to start."""
        services: list[Service] = []
        try:
            stack = await cls._launch(
                directory,
                services,
                vaults=vaults,
                workspaces=workspaces,
                seed=seed,
                propagation_delay=propagation_delay,
            )
            yield stack
        finally:
            for service in reversed(services):
                await service.running.stop()

    @classmethod
    async def _launch(
        cls,
        directory: pathlib.Path,
        services: list[Service],
        *,
        vaults: int,
        workspaces: int,
        seed: int,
        propagation_delay: float,
    ) -> Stack:
        ca = tls.SandboxCA(directory)
        authority = tokens.TokenAuthority()
        entries = graph.Directory(propagation_delay=propagation_delay)
        ssl_context = ca.server_context()

        async def launch(kind: str, app: web.Application, state: Any) -> None:
            services.append(Service(kind, app, await server.serve(app, ssl_context), state))

        await launch("entra", entra.make_app(entries, authority=authority, seed=seed), entries)
        await launch("graph", graph.make_app(entries, authority=authority, seed=seed), entries)
        verify = authority.verifier()
        keyvault = _optional("keyvault")
        if keyvault is not None:
            for index in range(vaults):
                # The vault's 401 challenge names our Entra, as a real vault names its tenant's.
                state = keyvault.KeyVaultState(tenant_id=DEMO_TENANT_ID, authority=services[0].url)
                app = keyvault.make_app(state, verify_token=verify, seed=seed + index)
                await launch("keyvault", app, state)
        databricks = _optional("databricks")
        if databricks is not None:
            for index in range(workspaces):
                state = databricks.DatabricksState(
                    workspace_id=1234567890123456 + index,
                    tenant_id=DEMO_TENANT_ID,
                    authority=services[0].url,
                )
                app = databricks.make_app(state, verify_token=verify, seed=seed + index)
                await launch("databricks", app, state)
        operator, demo_app, demo_sp = _seed_identities(entries, seed)
        return cls(entries, authority, ca, services, operator, demo_app, demo_sp)

    # --- addresses --------------------------------------------------------------------------

    def urls(self, kind: str) -> list[str]:
        return [s.url for s in self.services if s.kind == kind]

    @property
    def entra_url(self) -> str:
        return self.urls("entra")[0]

    @property
    def graph_url(self) -> str:
        """The server root; Graph's API base is ``graph_url + "/v1.0"``."""
        return self.urls("graph")[0]

    @property
    def keyvault_urls(self) -> list[str]:
        return self.urls("keyvault")

    @property
    def databricks_hosts(self) -> list[str]:
        return self.urls("databricks")

    def env(self) -> dict[str, str]:
        """What a process needs to talk to this stack (the env file's content)."""
        bundle = str(self.ca.bundle_path)
        return {
            "ROTATOR_SANDBOX_DIR": str(self.ca.directory),
            "ROTATOR_AUTHORITY_HOST": self.entra_url,
            "ROTATOR_GRAPH_URL": f"{self.graph_url}/v1.0",
            "ROTATOR_CA_BUNDLE": bundle,
            "SSL_CERT_FILE": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
            "ROTATOR_KEYVAULT_URLS": " ".join(self.keyvault_urls),
            "ROTATOR_DATABRICKS_HOSTS": " ".join(self.databricks_hosts),
            # Control planes (request log, faults, state) of each emulator.
            "ROTATOR_SANDBOX_ENTRA_CONTROL": f"{self.entra_url}/_sandbox",
            "ROTATOR_SANDBOX_GRAPH_CONTROL": f"{self.graph_url}/_sandbox",
            "AZURE_TENANT_ID": self.operator.tenant_id,
            "AZURE_CLIENT_ID": self.operator.client_id,
            "AZURE_CLIENT_SECRET": self.operator.secret_text,
            "ROTATOR_DEMO_TENANT_ID": self.demo_application.tenant_id,
            "ROTATOR_DEMO_CLIENT_ID": self.demo_application.client_id,
            "ROTATOR_DEMO_OBJECT_ID": self.demo_application.object_id,
            "ROTATOR_DEMO_SP_CLIENT_ID": self.demo_service_principal.client_id,
            "ROTATOR_DEMO_SP_OBJECT_ID": self.demo_service_principal.service_principal_id or "",
        }

    def write_env_file(self, path: pathlib.Path) -> pathlib.Path:
        """Write ``export K=V`` lines atomically (tmp + rename), readable by the owner only."""
        text = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in self.env().items())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, path)
        return path

    # --- helpers for tests ------------------------------------------------------------------

    def seed_application(
        self,
        display_name: str,
        *,
        tenant_id: str = DEMO_TENANT_ID,
        owners: Iterable[str] | None = None,
        secret_on: str | None = "application",
        app_id: str | None = None,
    ) -> Identity:
        """An application (+ service principal) owned by the operator, with one usable secret
        on ``secret_on`` ("application", "servicePrincipal" or None for none)."""
        application, principal = self.directory.seed_application(
            tenant_id,
            display_name,
            app_id=app_id,
            owners=[self.operator.client_id] if owners is None else owners,
        )
        secret = ""
        if secret_on is not None:
            holder = principal if secret_on == "servicePrincipal" else application
            assert holder is not None
            secret = self.directory.add_password(holder, propagated=True).secret_text
        return Identity(
            tenant_id,
            application.app_id,
            application.object_id,
            principal.object_id if principal else None,
            secret,
        )

    def requests(self, operation: str | None = None) -> list[dict[str, Any]]:
        """Every emulator's request log, in time order, optionally for one operation."""
        entries = [e for s in self.services for e in s.app[server.LOG_KEY]]
        entries.sort(key=lambda e: float(e["time"]))
        return [e for e in entries if operation is None or e["operation"] == operation]

    def count(self, operation: str) -> int:
        """How many requests reached ``operation`` (e.g. ``graph.addPassword``) anywhere."""
        return len(self.requests(operation))

    def clear_requests(self) -> None:
        for service in self.services:
            service.app[server.LOG_KEY].clear()

    def add_fault(self, rule: faults.FaultRule, *, url: str | None = None) -> None:
        """Add ``rule`` to every emulator that serves its operation (``*``: to all), or only
        to the one at ``url``."""
        for service in self.services:
            if url is not None and service.url != url:
                continue
            names = {r.name for r in service.app.router.routes() if r.name}
            if rule.operation == "*" or rule.operation in names:
                # Each plan consumes counts on its own, so each gets its own copy.
                service.app[server.FAULTS_KEY].add(dataclasses.replace(rule))

    def clear_faults(self) -> None:
        for service in self.services:
            service.app[server.FAULTS_KEY].reset()


def _seed_identities(directory: graph.Directory, seed: int) -> tuple[Identity, Identity, Identity]:
    """The operator and its two demo targets; ids are derived from ``seed`` (repeatable)."""
    rng = random.Random(seed)

    def new_id() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    operator_app, operator_sp = directory.seed_application(
        DEMO_TENANT_ID,
        "rotator-operator",
        app_id=new_id(),
        object_id=new_id(),
        service_principal_id=new_id(),
    )
    assert operator_sp is not None
    operator_secret = directory.add_password(
        operator_app, display_name="rotator-operator", propagated=True
    )
    operator = Identity(
        DEMO_TENANT_ID,
        operator_app.app_id,
        operator_app.object_id,
        operator_sp.object_id,
        operator_secret.secret_text,
    )
    demos: list[Identity] = []
    for name, app_id, on in (
        ("etl-sp", DEMO_CLIENT_ID, "application"),
        ("etl-sp-owned-by-principal", new_id(), "servicePrincipal"),
    ):
        application, principal = directory.seed_application(
            DEMO_TENANT_ID,
            name,
            app_id=app_id,
            object_id=new_id(),
            service_principal_id=new_id(),
            owners=[operator.client_id],
        )
        assert principal is not None
        holder = application if on == "application" else principal
        directory.add_password(holder, display_name="initial", propagated=True)
        demos.append(
            Identity(DEMO_TENANT_ID, application.app_id, application.object_id, principal.object_id)
        )
    return operator, demos[0], demos[1]
