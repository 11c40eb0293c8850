"""Sampling: the emulators' state, the objects' status and the operator process, continuously.

A probe runs on the emulator stack's event loop (``Sandbox.call``), so one sample of Graph,
Key Vault and Databricks is consistent (no request is served half-way through it). Whether a
value authenticates is decided by the Entra emulator's own client-secret check (the code its
token endpoint runs) rather than by an HTTP token request: the suite injects faults into the
token endpoint and must not be fooled by its own faults (the run's end repeats the check for
every final value with a real ``ClientSecretCredential`` over HTTP). Probes carry keyIds and
verdicts, never a secret value.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from e2e import operator_harness as h

from reliability import fleet, invariants
from rotator.sandbox import entra, graph

EXPIRED_CODE = 7000222


def _judge(
    directory: graph.Directory, tenant: graph.Tenant | None, client_id: str, text: str
) -> tuple[str | None, str]:
    """(keyId of the credential holding ``text`` or None, verdict) as Entra would answer."""
    if tenant is None:
        return None, invariants.INVALID
    holders = tenant.by_app_id(client_id)
    key_id = next(
        (p.key_id for obj in holders for p in obj.password_credentials if p.matches(text)), None
    )
    try:
        entra._check_secret(directory, tenant, client_id, text)
    except entra.EntraError as error:
        return key_id, invariants.EXPIRED if error.code == EXPIRED_CODE else invariants.INVALID
    return key_id, invariants.OK


def _state_at(sandbox: h.Sandbox, kind: str, url: str) -> Any:
    return next(s.state for s in sandbox.services(kind) if s.url == url)


def probe(sandbox: h.Sandbox, members: Sequence[fleet.Member]) -> list[invariants.Probe]:
    """One consistent sample of every member (runs on the stack's loop)."""

    def collect() -> list[invariants.Probe]:
        directory = sandbox.stack.directory
        found = []
        for m in members:
            tenant = directory.tenant(m.app.tenant_id)
            creds = tuple(
                invariants.Credential(p.key_id, p.display_name or "", p.end.timestamp())
                for obj in (tenant.by_app_id(m.app.client_id) if tenant else [])
                for p in obj.password_credentials
            )
            places = [_vault_place(directory, tenant, m, _state_at(sandbox, "keyvault", m.vault))]
            workspace = _state_at(sandbox, "databricks", m.workspace)
            scope = workspace.scopes.get(m.scope)
            stored = scope.secrets.get(m.key) if scope is not None else None
            where = f"scope {m.workspace} {m.scope}"
            if stored is None:
                places.append(invariants.Place(where, None, invariants.ABSENT))
            else:
                key_id, verdict = _judge(
                    directory, tenant, m.app.client_id, stored.value.decode(errors="replace")
                )
                places.append(invariants.Place(where, key_id, verdict))
            found.append(invariants.Probe(m.label, creds, tuple(places)))
        return found

    return sandbox.call(collect)


def _vault_place(
    directory: graph.Directory, tenant: graph.Tenant | None, m: fleet.Member, vault: Any
) -> invariants.Place:
    secret = vault.secrets.get(m.secret_name.lower())
    if secret is None or not secret.versions:
        return invariants.Place("keyvault", None, invariants.ABSENT)
    latest = secret.latest
    key_id, verdict = _judge(directory, tenant, m.app.client_id, latest.value)
    if not latest.enabled:
        verdict = invariants.DISABLED
    elif latest.expires is not None and latest.expires <= directory.clock():
        verdict = invariants.EXPIRED
    return invariants.Place("keyvault", key_id, verdict)


def stored(sandbox: h.Sandbox, member: fleet.Member) -> list[invariants.Stored]:
    """The Key Vault versions of the member's real secret name (creation order)."""

    def collect() -> list[invariants.Stored]:
        vault = _state_at(sandbox, "keyvault", member.vault)
        secret = vault.secrets.get(member.secret_name.lower()) or vault.deleted.get(
            member.secret_name.lower()
        )
        return [
            invariants.Stored(
                float(v.created),
                (v.tags or {}).get("rotator.dev/rotation-id"),
                (v.tags or {}).get("rotator.dev/key-id"),
            )
            for v in (secret.versions if secret is not None else [])
        ]

    return sandbox.call(collect)


def statuses(kube: h.Kube, namespaces: Sequence[str]) -> dict[str, dict[str, Any]] | None:
    """``namespace/name`` -> status of every ServicePrincipalSecret; None if unreadable."""
    found: dict[str, dict[str, Any]] = {}
    try:
        for ns in namespaces:
            listing = kube.custom.list_namespaced_custom_object(
                h.GROUP, h.VERSION, ns, h.PLURALS[fleet.SPS], _request_timeout=10
            )
            for item in listing.get("items", []):
                meta = item.get("metadata") or {}
                found[f"{meta.get('namespace')}/{meta.get('name')}"] = item.get("status") or {}
    except Exception:  # the API server is being restarted: this sample has no status
        return None
    return found


# --- the operator process ----------------------------------------------------------------------


def process_sample(pid: int) -> tuple[float, int, int] | None:
    """(RSS MiB, open fds, open sockets) of ``pid`` from /proc, or None when it is gone."""
    try:
        rss_kib = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
        fds = sockets = 0
        for entry in os.scandir(f"/proc/{pid}/fd"):
            fds += 1
            try:
                if os.readlink(entry.path).startswith("socket:"):
                    sockets += 1
            except OSError:
                continue
    except (OSError, ValueError):
        return None
    return rss_kib / 1024, fds, sockets


# --- the monitor thread ------------------------------------------------------------------------


class Monitor:
    """Samples every ``interval`` seconds in a thread: invariants into ``ledger``, the
    operator's RSS/fds/sockets into ``process`` as (time, pid, rss MiB, fds, sockets)."""

    def __init__(
        self,
        sandbox: h.Sandbox,
        kube: h.Kube,
        operator: h.OperatorProcess,
        ledger: invariants.Ledger,
        *,
        interval: float = 1.0,
    ) -> None:
        self.sandbox = sandbox
        self.kube = kube
        self.operator = operator
        self.ledger = ledger
        self.interval = interval
        self.members: list[fleet.Member] = []
        self.process: list[tuple[float, int, float, int, int]] = []
        self.errors: list[str] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reliability-monitor", daemon=True)
        self.hooks: list[Callable[[float, list[invariants.Probe]], None]] = []

    def watch(self, member: fleet.Member) -> None:
        with self._lock:
            self.members.append(member)

    def unwatch(self, member: fleet.Member) -> None:
        with self._lock:
            self.members = [m for m in self.members if m is not member]

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def sample(self) -> None:
        """One sample now (also what the thread does each interval)."""
        with self._lock:
            members = list(self.members)
        now = time.time()
        child = self.operator.child
        if child is not None and child.running():
            measured = process_sample(child.pid)
            if measured is not None:
                self.process.append((now, child.pid, *measured))
        if not members:
            return
        probes = probe(self.sandbox, members)
        found = statuses(self.kube, sorted({m.namespace for m in members}))
        if found is not None:
            self.statuses.update(found)
        accounted = {
            m.label: None if found is None else invariants.accounted_for(found.get(m.label))
            for m in members
        }
        with self._lock:
            self.ledger.observe(now, probes, accounted)
        for hook in self.hooks:
            hook(now, probes)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample()
            except Exception as error:  # a sample that failed is reported, never fatal
                if len(self.errors) < 20:
                    self.errors.append(f"{time.time():.0f} {type(error).__name__}: {error}")

    def locked(self) -> threading.Lock:
        return self._lock
