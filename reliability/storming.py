"""The seeded random run: rotations under operator kills, control-plane restarts, emulator
faults and out-of-band edits, then a soak with the same load and no kills.

One :class:`Storm` drives a fleet already issued. A tick every half second fires whatever
is due; when the next event of each kind comes is drawn from ``random.Random(seed)``, so the
schedule (what happens, to whom, in which order) is reproducible; the exact requests that a
rate fault hits depend on timing. Events:

- trigger: a rotation of an idle member (the ``rotator.dev/rotate`` annotation), an episode
  that must end with exactly one new current secret synced to its binding;
- kill: SIGKILL the operator, start it again (only in the storm part: the soak keeps one
  process, whose memory and descriptors are measured);
- apiserver / etcd: SIGKILL and restart on the same ports and data;
- edit: out of band, on an idle member: delete its current credential in Graph, overwrite its
  Databricks scope value, or disable Key Vault's latest version (each opens a repair window,
  see ``invariants.Ledger.suspend``);
- delete: a fresh member is deleted while a rotation is in flight, alternately with
  ``deletionPolicy`` Retain and Revoke, and what it leaves in Graph is checked.

Emulator faults (5xx, 429 with Retry-After, 5xx after the write, latency, dropped
connections, short timeouts) are drawn at a combined rate of about 22 % of every request.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from e2e import operator_harness as h

from reliability import fleet, invariants, probing
from rotator.sandbox import faults, server

#: Fault rules for the random run; FaultPlan tries them in order, each with its own draw, so
#: the combined rate is 1 - prod(1 - rate) ~= 0.22.
FAULT_RULES = (
    faults.FaultRule("*", "status", rate=0.09, status=503),
    faults.FaultRule("*", "status", rate=0.06, status=429, retry_after=1, code="TooManyRequests"),
    faults.FaultRule("*", "after", rate=0.03, status=503),
    faults.FaultRule("*", "latency", rate=0.03, seconds=0.8),
    faults.FaultRule("*", "drop", rate=0.02),
    faults.FaultRule("*", "timeout", rate=0.01, seconds=5.0),
)
#: Seconds between events of each kind: (low, high) of a uniform draw.
PACE = {
    "trigger": (3.0, 7.0),
    "kill": (40.0, 100.0),
    "apiserver": (150.0, 300.0),
    "etcd": (240.0, 420.0),
    "edit": (30.0, 60.0),
    "delete": (120.0, 200.0),
}
EDITS = ("credential", "scope", "disable")
#: An episode that has not settled after this long is reported as unfinished.
EPISODE_TIMEOUT = 300.0


@dataclasses.dataclass
class Episode:
    member: fleet.Member
    kind: str  # trigger | credential | disable | scope | create
    start: float
    old: str | None
    end: float | None = None
    failed: bool = False
    request: str | None = None  # the rotate annotation value of a trigger


@dataclasses.dataclass
class Tally:
    operator_kills: int = 0
    apiserver_restarts: int = 0
    etcd_restarts: int = 0
    edits: dict[str, int] = dataclasses.field(default_factory=dict)
    deletes: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    orphans_after_delete: int = 0
    restart_seconds: list[float] = dataclasses.field(default_factory=list)
    operator_start_failures: int = 0


def arm_faults(sandbox: h.Sandbox, seed: int) -> None:
    """Seed every emulator's fault plan and add the random rules."""

    def arm() -> None:
        for index, service in enumerate(sandbox.stack.services):
            service.app[server.FAULTS_KEY].reset(seed=seed * 1000 + index)
        for rule in FAULT_RULES:
            sandbox.stack.add_fault(rule)

    sandbox.call(arm)


def fault_counts(sandbox: h.Sandbox, since: float) -> tuple[int, int]:
    """(requests with an injected fault, all requests) since ``since``."""
    entries = [e for e in sandbox.requests() if float(e["time"]) >= since]
    return sum(1 for e in entries if e.get("fault")), len(entries)


def start_operator(operator: h.OperatorProcess, tally: Tally, attempts: int = 5) -> None:
    """Start the operator, retrying while the control plane is not back yet."""
    for attempt in range(attempts):
        try:
            operator.start(timeout=120.0)
            return
        except RuntimeError:
            tally.operator_start_failures += 1
            operator.kill()
            time.sleep(2.0 * (attempt + 1))
    operator.start(timeout=180.0)


class Storm:
    def __init__(
        self,
        sandbox: h.Sandbox,
        kube: h.Kube,
        operator: h.OperatorProcess,
        monitor: probing.Monitor,
        members: list[fleet.Member],
        *,
        seed: int,
        restart: Callable[[str], float] | None,
        make_member: Callable[[str, str], fleet.Member] | None,
        repair_grace: float,
    ) -> None:
        self.sandbox = sandbox
        self.kube = kube
        self.operator = operator
        self.monitor = monitor
        self.members = members
        self.rng = random.Random(seed)
        self.restart = restart
        self.make_member = make_member
        self.repair_grace = repair_grace
        self.episodes: list[Episode] = []
        self.tally = Tally()
        self._deleting: threading.Thread | None = None
        self._deletes = 0

    # -- episodes ------------------------------------------------------------------------------

    def open(
        self, member: fleet.Member, kind: str, old: str | None, request: str | None = None
    ) -> None:
        self.episodes.append(Episode(member, kind, time.time(), old, request=request))

    def busy(self, member: fleet.Member) -> bool:
        return any(e.member is member and e.end is None for e in self.episodes) or (
            self.monitor.ledger.repairing(member.label)
        )

    def close_settled(self) -> None:
        for episode in self.episodes:
            if episode.end is not None:
                continue
            expect_new = episode.kind in ("trigger", "credential", "disable")
            try:
                done = fleet.settled(
                    self.kube, episode.member, other_than=episode.old if expect_new else None
                )
            except Exception:  # the API server is restarting
                done = None
            if done is not None:
                episode.end = time.time()
            elif episode.kind == "trigger" and self._gave_up(episode):
                # The operator abandoned the rotation and stalled: the episode is over (failed),
                # and a later request may try again, as a person would.
                episode.end = time.time()
                episode.failed = True

    def _gave_up(self, episode: Episode) -> bool:
        """The operator handled this request (status.rotateRequest), has no rotation in flight
        and is Stalled: it abandoned the rotation."""
        member = episode.member
        try:
            obj = self.kube.get(fleet.SPS, member.namespace, member.name)
        except Exception:
            return False
        status = (obj or {}).get("status") or {}
        stalled = h.condition(obj, "Stalled").get("status") == "True"
        handled = status.get("rotateRequest") == episode.request
        return stalled and handled and not status.get("rotation")

    def failed(self) -> list[Episode]:
        return [e for e in self.episodes if e.failed]

    def episodes_of(self, member: fleet.Member) -> list[tuple[float, float | None]]:
        return [(e.start, e.end) for e in self.episodes if e.member is member]

    def unfinished(self) -> list[Episode]:
        return [e for e in self.episodes if e.end is None]

    # -- events --------------------------------------------------------------------------------

    def _idle(self) -> fleet.Member | None:
        idle = [m for m in self.members if not self.busy(m)]
        return self.rng.choice(idle) if idle else None

    def _current(self, member: fleet.Member) -> str | None:
        """The member's current keyId, read now (the monitor's copy may be a second old), or
        None when it is unknown or a rotation is in flight (then the member is not idle: a
        scheduled rotation may be running, and a trigger would stack on it)."""
        try:
            status = self.kube.status(fleet.SPS, member.namespace, member.name)
        except Exception:
            return None
        if status.get("rotation"):
            return None
        return (status.get("current") or {}).get("keyId")

    def trigger(self) -> None:
        member = self._idle()
        if member is None:
            return
        old = self._current(member)
        if old is None:
            return
        try:
            request = fleet.rotate(self.kube, member)
        except Exception:
            return  # the API server is down: the trigger did not happen
        self.open(member, "trigger", old, request)

    def kill(self) -> None:
        self.operator.kill()
        self.tally.operator_kills += 1
        time.sleep(self.rng.uniform(0.0, 3.0))
        start_operator(self.operator, self.tally)

    def restart_plane(self, which: str) -> None:
        if self.restart is None:
            return
        self.tally.restart_seconds.append(round(self.restart(which), 1))
        if which == "kube-apiserver":
            self.tally.apiserver_restarts += 1
        else:
            self.tally.etcd_restarts += 1

    def edit(self) -> None:
        member = self._idle()
        if member is None:
            return
        kind = self.rng.choice(EDITS)
        old = self._current(member)
        if old is None:
            return
        now = time.time()
        ledger = self.monitor.ledger
        with self.monitor.locked():
            if kind == "credential":
                ledger.forget(member.label, old)
                ledger.suspend(member.label, "", now, self.repair_grace)
            elif kind == "disable":
                ledger.suspend(member.label, "keyvault", now, self.repair_grace)
            else:
                ledger.suspend(member.label, "scope", now, self.repair_grace)
        self.sandbox.call(lambda: _edit(self.sandbox, member, kind, old))
        self.tally.edits[kind] = self.tally.edits.get(kind, 0) + 1
        self.open(member, kind, old)

    def delete(self) -> None:
        if self.make_member is None or (self._deleting and self._deleting.is_alive()):
            return
        policy = ("Retain", "Revoke")[self._deletes % 2]
        self._deletes += 1
        name = f"del{self._deletes:03d}"
        delay = self.rng.uniform(0.0, 1.0)
        self._deleting = threading.Thread(
            target=self._delete_mid_rotation, args=(name, policy, delay), daemon=True
        )
        self._deleting.start()

    def _delete_mid_rotation(self, name: str, policy: str, delay: float) -> None:
        assert self.make_member is not None
        record: dict[str, Any] = {"name": name, "deletionPolicy": policy}
        self.tally.deletes.append(record)
        try:
            record.update(
                delete_mid_rotation(self.sandbox, self.kube, self.make_member(name, policy), delay)
            )
        except Exception as error:  # reported, never fatal to the run
            record["error"] = f"{type(error).__name__}: {error}"[:300]
        self.tally.orphans_after_delete += int(record.get("orphans", 0))

    # -- the loop ------------------------------------------------------------------------------

    def run(self, seconds: float, *, kills_until: float) -> None:
        """Fire events for ``seconds``; operator kills only before ``kills_until`` (epoch)."""
        end = time.time() + seconds
        due = {kind: time.time() + self.rng.uniform(*pace) for kind, pace in PACE.items()}
        actions: dict[str, Callable[[], None]] = {
            "trigger": self.trigger,
            "kill": self.kill,
            "apiserver": lambda: self.restart_plane("kube-apiserver"),
            "etcd": lambda: self.restart_plane("etcd"),
            "edit": self.edit,
            "delete": self.delete,
        }
        while time.time() < end:
            now = time.time()
            for kind in sorted(due, key=due.__getitem__):
                if due[kind] > now:
                    continue
                due[kind] = now + self.rng.uniform(*PACE[kind])
                if kind == "kill" and now >= kills_until:
                    continue
                actions[kind]()
            self.close_settled()
            time.sleep(0.5)

    def drain(self, timeout: float) -> None:
        """Wait for open episodes and a running delete to finish (faults already cleared)."""
        deadline = time.time() + timeout
        while time.time() < deadline and (
            self.unfinished() or (self._deleting and self._deleting.is_alive())
        ):
            self.close_settled()
            time.sleep(1.0)


def _edit(sandbox: h.Sandbox, member: fleet.Member, kind: str, key_id: str) -> None:
    """An out-of-band change (runs on the stack's loop): what a person or a script might do."""
    st = sandbox.stack
    if kind == "credential":
        tenant = st.directory.tenant(member.app.tenant_id)
        for obj in tenant.by_app_id(member.app.client_id) if tenant else []:
            obj.password_credentials[:] = [
                p for p in obj.password_credentials if p.key_id != key_id
            ]
    elif kind == "disable":
        vault = next(s.state for s in sandbox.services("keyvault") if s.url == member.vault)
        vault.secrets[member.secret_name.lower()].latest.enabled = False
    else:
        workspace = next(
            s.state for s in sandbox.services("databricks") if s.url == member.workspace
        )
        stored = workspace.scopes[member.scope].secrets[member.key]
        # Not a secret anyone minted: a value that authenticates nowhere.
        stored.value = f"overwritten-{secrets.token_hex(8)}".encode()


def delete_mid_rotation(
    sandbox: h.Sandbox, kube: h.Kube, member: fleet.Member, delay: float
) -> dict[str, Any]:
    """Issue, start a rotation, delete while it is in flight; what it left in Graph.

    Revoke must leave no ``rotator-`` credential. Retain may leave only what consumers may
    use: secrets that were current or retiring, or stored in Key Vault's real name; an
    in-flight credential never stored must be removed. Anything else is an orphan.
    """
    kube.apply(member.sps(), member.dsb())
    deadline = time.time() + 180
    while time.time() < deadline and fleet.settled(kube, member, other_than=None) is None:
        time.sleep(0.5)
    fleet.rotate(kube, member)
    journal = ""
    while time.time() < deadline:
        rotation = kube.status(fleet.SPS, member.namespace, member.name).get("rotation")
        if rotation:
            journal = f"{rotation.get('step')}/{rotation.get('phase')}"
            break
        time.sleep(0.1)
    time.sleep(delay)
    kept: set[str] = set()
    kube.delete(fleet.DSB, member.namespace, member.binding)
    kube.delete(fleet.SPS, member.namespace, member.name)
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            obj = kube.get(fleet.SPS, member.namespace, member.name)
        except Exception:
            obj = {}
        if obj is None:
            break
        status = obj.get("status") or {}
        kept |= set(invariants.accounted_for({k: v for k, v in status.items() if k != "rotation"}))
        time.sleep(0.5)
    else:
        return {"journalAtDelete": journal, "error": "not deleted in 240s", "orphans": 0}
    time.sleep(5.0)
    kept |= {s.key_id for s in probing.stored(sandbox, member) if s.key_id}
    left = [
        c
        for c in sandbox.credentials(member.app.tenant_id, member.app.client_id)
        if str(c.get("displayName") or "").startswith(invariants.PREFIX)
    ]
    allowed = set() if member.deletion_policy == "Revoke" else kept
    orphans = [c["keyId"] for c in left if c["keyId"] not in allowed]
    return {"journalAtDelete": journal, "left": len(left), "orphans": len(orphans)}
