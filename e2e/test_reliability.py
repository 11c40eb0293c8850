"""The chaos suite's fast subset (``make reliability`` runs the whole of it).

- The crash matrix for one member: SIGKILL the operator at every journal step boundary (the
  next cloud call held by an emulator "hold" fault), the held call then lost or landed, the
  operator restarted: the rotation completes exactly once (``reliability.crashing``).
- A short seeded random run over three members with ~22 % emulator faults, an operator kill,
  an API server restart and out-of-band edits, under the continuously sampled invariants.
- A delete while a rotation is in flight, with each deletionPolicy.

The module runs its own operator (the session's one is stopped meanwhile and restarted by the
next test's ``operator`` fixture) with a 10 s drift check, so out-of-band edits are found
within the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e import operator_harness as h
from e2e.testbed import controlplane as cp
from reliability import auditing, crashing, fleet, invariants, probing, storming

pytest_plugins = ["e2e.operator_harness"]
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

NAMESPACE = "e2e-reliability"
DRIFT_S = 10


class Chaos:
    """What the module's tests share: the operator, the monitor and its ledger."""

    def __init__(self, sandbox: h.Sandbox, kube: h.Kube, operator: h.OperatorProcess) -> None:
        self.sandbox = sandbox
        self.kube = kube
        self.operator = operator
        self.ledger = invariants.Ledger(
            orphan_grace=4 * DRIFT_S + 30, overlap=fleet.OVERLAP_SECONDS
        )
        self.monitor = probing.Monitor(sandbox, kube, operator, self.ledger, interval=0.5)
        self.seeded = 0

    def member(self, name: str, **options: Any) -> fleet.Member:
        self.seeded += 1
        return fleet.seed(self.sandbox, NAMESPACE, name, self.seeded, **options)

    def issue(self, *members: fleet.Member) -> None:
        self.kube.apply(*(doc for m in members for doc in (m.sps(), m.dsb())))
        for m in members:
            h.wait_for(
                lambda m=m: fleet.settled(self.kube, m, other_than=None),  # type: ignore[misc]
                timeout=180,
                message=f"{m.label} issued and synced",
            )
            self.monitor.watch(m)

    def violations(self) -> dict[str, Any]:
        with self.monitor.locked():
            return {
                "lost": sorted(self.ledger.lost),
                "expired": self.ledger.expired_samples,
                "premature": sorted(self.ledger.premature),
                "orphans": sorted(self.ledger.orphans),
                "notes": list(self.ledger.notes),
            }


@pytest.fixture(scope="module")
def chaos(
    sandbox: h.Sandbox,
    kube: h.Kube,
    operator_process: h.OperatorProcess,
    e2e_workdir: Path,
) -> Iterator[Chaos]:
    kube.kubectl("create", "namespace", NAMESPACE, check=False)
    kube.apply(h.allow_policy(f"e2e-{NAMESPACE}", [NAMESPACE], sandbox))
    operator_process.stop()  # one operator at a time; the next `operator` fixture restarts it
    kubeconfig = operator_process.kubeconfig
    own = h.OperatorProcess(
        kubeconfig=kubeconfig,
        env=operator_process.env,
        log=e2e_workdir / "operator-reliability.log",
        # Far more rotations per object than a real fleet: the storm limit (its own tests in
        # e2e/test_guard_scenarios.py) is raised out of the way.
        args=(f"--drift-check-interval={DRIFT_S}s", "--max-rotations-per-hour=100"),
    )
    sandbox.reset()
    own.start()
    state = Chaos(sandbox, kube, own)
    state.monitor.start()
    try:
        yield state
    finally:
        state.monitor.stop()
        own.stop()
        sandbox.reset()


@pytest.fixture(scope="module")
def crash_member(chaos: Chaos) -> fleet.Member:
    member = chaos.member("crash")
    chaos.issue(member)
    return member


@pytest.mark.parametrize(
    ("step", "variant"), crashing.POINTS, ids=[f"{s}-{v}" for s, v in crashing.POINTS]
)
def test_kill_at_journal_step_boundary(
    chaos: Chaos, crash_member: fleet.Member, step: str, variant: str
) -> None:
    before = chaos.violations()
    outcome = crashing.run_point(
        chaos.sandbox, chaos.kube, chaos.operator, crash_member, step, variant
    )
    assert outcome.tested, outcome.problems
    if step in ("Mint", "Stage", "Verify", "Store"):
        # The operator was killed while status showed the step in flight.
        assert outcome.journal == f"{step}/Started"
    assert outcome.problems == []
    assert outcome.stored == 1 and outcome.duplicate_stores == 0 and outcome.minted <= 2
    chaos.monitor.sample()
    after = chaos.violations()
    for field in ("lost", "premature", "orphans", "expired"):
        assert after[field] == before[field], after["notes"]


@pytest.mark.xfail(
    strict=False,
    reason="open: on the merged code this short run still counts 2 double rotations (more than "
    "one rotation stored in one trigger's episode); not analysed yet, the suite's episode "
    "accounting is a suspect as much as the operator (lost and premature are 0 since the "
    "retireAt slack and the repair-window fix)",
)
def test_short_random_run(chaos: Chaos, controlplane: cp.ControlPlane) -> None:
    members = [chaos.member(f"r{i}", short=i == 0) for i in range(3)]
    chaos.issue(*members)
    began = time.time()
    storm = storming.Storm(
        chaos.sandbox,
        chaos.kube,
        chaos.operator,
        chaos.monitor,
        members,
        seed=7,
        restart=lambda which: controlplane.restart(which, kill=True),
        make_member=None,
        repair_grace=4 * DRIFT_S + 30,
    )
    storming.arm_faults(chaos.sandbox, seed=7)
    try:
        # Scripted so each kind of event happens at least once, random in between.
        storm.run(20, kills_until=0)
        storm.kill()
        storm.run(15, kills_until=0)
        storm.restart_plane("kube-apiserver")
        storm.edit()
        storm.run(20, kills_until=0)
        storm.edit()
        storm.run(15, kills_until=0)
        faulted, total = storming.fault_counts(chaos.sandbox, began)
    finally:
        chaos.sandbox.clear_faults()
    storm.drain(240)
    assert total and faulted / total >= 0.15, (faulted, total)
    assert storm.tally.operator_kills == 1 and storm.tally.apiserver_restarts == 1
    assert not storm.unfinished(), [f"{e.member.label} {e.kind}" for e in storm.unfinished()]
    # A rotation the operator abandoned under transient faults is a failure too.
    assert not storm.failed(), [f"{e.member.label} {e.kind}" for e in storm.failed()]
    chaos.monitor.sample()
    violations = chaos.violations()
    assert violations["lost"] == [] and violations["expired"] == 0, violations["notes"]
    assert violations["premature"] == [], violations["notes"]
    doubles = duplicates = 0
    for m in members:
        stored = probing.stored(chaos.sandbox, m)
        doubles += invariants.double_rotations(stored, storm.episodes_of(m), scheduled=m.short)
        duplicates += invariants.duplicate_writes(stored)
    assert (doubles, duplicates) == (0, 0)
    assert auditing.token_failures(chaos.sandbox, members) == []


@pytest.mark.parametrize("policy", ["Retain", "Revoke"])
def test_delete_mid_rotation(chaos: Chaos, policy: str) -> None:
    member = chaos.member(f"del-{policy.lower()}", deletion_policy=policy)
    found = storming.delete_mid_rotation(chaos.sandbox, chaos.kube, member, delay=0.2)
    assert "error" not in found, found
    assert found["journalAtDelete"], "the delete did not land mid-rotation"
    assert found["orphans"] == 0, found
    if policy == "Revoke":
        assert found["left"] == 0


def test_no_secret_leaked_under_chaos(chaos: Chaos) -> None:
    """After every test above: no minted secret in this operator's log (all its starts), any
    object, event or annotation, or its metrics page."""
    minted = chaos.sandbox.minted_secrets()
    count = len(minted)  # never put the secrets themselves in an assertion message
    assert count >= 3, "the tests above minted secrets"
    assert auditing.leaks(chaos.kube, chaos.operator, minted) == []
