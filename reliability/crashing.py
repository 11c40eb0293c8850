"""The deterministic crash matrix: SIGKILL the operator at every journal step boundary.

A rotation's cloud calls come in a fixed order (docs/design.md): Mint (Graph addPassword),
Stage (Key Vault set on ``<name>-rotator-staging``), Verify (an Entra token with the new
secret), Store (Key Vault set on the real name), Promote (status, then the staging version
disabled); then the binding's sync (Databricks put secret) and the retirement (Graph
removePassword once the overlap has passed). To stop the operator exactly at the boundary
before step S, the suite climbs a ladder of "hold" faults (``rotator.sandbox.faults``): it
holds the first call, and each time a call is held it arms a hold on the next rung and
releases the one before, until the call of S is held. Then it records the journal status
shows (the step Started), SIGKILLs the operator, and releases the held call either

- ``lost``: dropped, so it never happened (the crash came before the request left), or
- ``landed``: served, so the write happened but the operator never saw the answer,

restarts the operator and checks the rotation completes exactly once: one new current, the
binding synced to it, the old secret kept until then, Key Vault's real name written once for
the rotation, at most one extra credential minted and none left unaccounted for.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from e2e import operator_harness as h

from reliability import fleet, invariants, probing
from rotator.sandbox import faults, server

LOST, LANDED = "lost", "landed"


@dataclasses.dataclass(frozen=True)
class Rung:
    step: str  # the journal step (or Sync / Retire) whose cloud call is held
    operation: str  # the emulator route name of that call
    service: str  # graph | entra | keyvault | databricks: which emulator (the member's one)


LADDER = (
    Rung("Mint", "graph.addPassword", "graph"),
    Rung("Stage", "keyvault.setSecret", "keyvault"),
    Rung("Verify", "entra.token", "entra"),
    Rung("Store", "keyvault.setSecret", "keyvault"),
    Rung("Promote", "keyvault.updateSecret", "keyvault"),
    Rung("Sync", "databricks.putSecret", "databricks"),
    Rung("Retire", "graph.removePassword", "graph"),
)
STEPS = tuple(r.step for r in LADDER)
POINTS = tuple((step, variant) for step in STEPS for variant in (LOST, LANDED))


@dataclasses.dataclass
class Outcome:
    """What one crash point showed; ``problems`` empty means it passed."""

    step: str
    variant: str
    tested: bool = False  # the call was held and the operator killed there
    journal: str = ""  # status.rotation step/phase when the operator was killed
    minted: int = 0  # credentials Graph created during the point
    stored: int = 0  # rotations stored under the real name during the point
    duplicate_stores: int = 0
    seconds: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.step}:{self.variant}"

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"name": self.name}


def _url(sandbox: h.Sandbox, member: fleet.Member, service: str) -> str:
    if service == "keyvault":
        return member.vault
    if service == "databricks":
        return member.workspace
    return sandbox.url_of(service)


def _plan(sandbox: h.Sandbox, url: str) -> faults.FaultPlan:
    service = next(s for s in sandbox.stack.services if s.url == url)
    return service.app[server.FAULTS_KEY]


def holds(sandbox: h.Sandbox, url: str) -> int:
    return int(sandbox.call(lambda: _plan(sandbox, url).holds))


def release(sandbox: h.Sandbox, url: str, *, serve: bool) -> int:
    return int(sandbox.call(lambda: _plan(sandbox, url).release(serve=serve)))


def _wait(
    predicate: Callable[[], Any], timeout: float, what: str, problems: list[str]
) -> Any | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except Exception:  # the API server may be restarting: try again
            found = None
        if found:
            return found
        time.sleep(0.25)
    problems.append(f"timed out after {timeout:.0f}s waiting for {what}")
    return None


def _minted(sandbox: h.Sandbox, member: fleet.Member, since: float) -> int:
    """addPassword requests for the member's application that created a credential."""
    return sum(
        1
        for e in sandbox.requests("graph.addPassword")
        if float(e["time"]) >= since
        and member.app.object_id in e["path"]
        # an "after" fault served the write then answered an error: servedStatus says so
        and (e.get("servedStatus") or e.get("status")) in (200, 201)
    )


def run_point(
    sandbox: h.Sandbox,
    kube: h.Kube,
    operator: h.OperatorProcess,
    member: fleet.Member,
    step: str,
    variant: str,
    *,
    timeout: float = 120.0,
    on_episode: Callable[[float, float | None], None] | None = None,
) -> Outcome:
    """One crash point on an idle, settled member; the operator is running before and after."""
    outcome = Outcome(step, variant)
    problems = outcome.problems
    began = time.time()
    before = _wait(lambda: fleet.settled(kube, member, other_than=None), timeout, "idle", problems)
    if before is None:
        return outcome
    old = before["current"]["keyId"]
    stored_before = len(probing.stored(sandbox, member))
    rungs = LADDER[: STEPS.index(step) + 1]
    url = ""
    try:
        for index, rung in enumerate(rungs):
            url = _url(sandbox, member, rung.service)
            seen = holds(sandbox, url)
            sandbox.add_fault(faults.FaultRule(rung.operation, "hold", count=1), url=url)
            if index == 0:
                fleet.rotate(kube, member)
            else:
                previous = _url(sandbox, member, rungs[index - 1].service)
                release(sandbox, previous, serve=True)
            got = _wait(
                lambda u=url, s=seen: holds(sandbox, u) > s,  # type: ignore[misc]
                timeout,
                f"{rung.operation} to be held ({rung.step})",
                problems,
            )
            if got is None:
                return outcome
        rotation = kube.status(fleet.SPS, member.namespace, member.name).get("rotation") or {}
        outcome.journal = f"{rotation.get('step', '-')}/{rotation.get('phase', '-')}"
        operator.kill()
        outcome.tested = True
    finally:
        if url:
            release(sandbox, url, serve=variant == LANDED)
        sandbox.clear_faults()  # no rule left armed (clearing drops what is still held)
    time.sleep(0.5)  # a landed call finishes its write while nobody listens
    operator.start()
    after = _wait(
        lambda: fleet.settled(kube, member, other_than=old),
        timeout,
        "the rotation to complete after the restart",
        problems,
    )
    if on_episode is not None:
        on_episode(began, time.time())
    if after is None:
        return outcome
    new = after["current"]["keyId"]
    if step == "Retire":
        _wait(
            lambda: old not in sandbox.key_ids(member.app.tenant_id, member.app.client_id),
            timeout,
            "the old secret to be revoked",
            problems,
        )
    else:
        present = sandbox.key_ids(member.app.tenant_id, member.app.client_id)
        if old not in present and step != "Sync":
            problems.append("the old secret was revoked before the overlap had passed")

    def accounted() -> bool:
        status = kube.status(fleet.SPS, member.namespace, member.name)
        known = invariants.accounted_for(status)
        creds = sandbox.credentials(member.app.tenant_id, member.app.client_id)
        return all(
            c["keyId"] in known
            for c in creds
            if str(c.get("displayName") or "").startswith(invariants.PREFIX)
        )

    _wait(accounted, 60.0, "every rotator- credential to be accounted for", problems)
    history = probing.stored(sandbox, member)[stored_before:]
    outcome.stored = invariants.rotations(history)
    outcome.duplicate_stores = invariants.duplicate_writes(history)
    outcome.minted = _minted(sandbox, member, began)
    if outcome.stored != 1:
        problems.append(f"{outcome.stored} rotations stored, expected exactly 1")
    if outcome.duplicate_stores:
        problems.append(f"the real name was written {outcome.duplicate_stores} extra time(s)")
    if outcome.minted > 2:
        problems.append(f"{outcome.minted} credentials minted, at most 2 expected")
    if new not in sandbox.key_ids(member.app.tenant_id, member.app.client_id):
        problems.append("the new current secret is not in Graph")
    outcome.seconds = time.time() - began
    return outcome
