"""``python -m reliability --minutes 30 --seed 1``: the chaos suite and soak; writes results.

Phases, on one testbed (real kube-apiserver + etcd, the emulator stack, the operator as a
process under the chart's RBAC, all on 127.0.0.1):

1. the crash matrix (``crashing.POINTS``): one member, SIGKILL at every step boundary;
2. the fleet (``--members``, default 20: ServicePrincipalSecret + binding + job each) issued,
   plus one member in a namespace no RotationPolicy allows;
3. ``--minutes`` of seeded random events (``storming``) with ~22 % emulator faults; operator
   kills only in the first ``--kill-fraction`` of it, the rest is the soak whose operator
   process is measured (RSS, fds, sockets from /proc);
4. settle (faults off), then the end-of-run audits (``auditing``) and the figures.

Writes ``reliability/results/latest.json`` (``--out`` to change) and exits 1 when a loss
field is not zero (or, with ``--full``, a volume target of the issue is missed).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reliability import auditing, crashing, figures, fleet, invariants, probing, storming

WORK = Path(__file__).resolve().parent / ".work"
#: The operator's drift check: out-of-band edits are found within this (flag of rotator run).
DRIFT_INTERVAL_S = 20
#: A repair must show within this after an edit; an orphan must go within this.
REPAIR_GRACE_S = 3 * DRIFT_INTERVAL_S + 60
ORPHAN_GRACE_S = 3 * DRIFT_INTERVAL_S + 60
WARM_UP_S = 60.0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m reliability", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="random run + soak")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument(
        "--short-every", type=int, default=5, help="every Nth member rotates on schedule"
    )
    parser.add_argument("--kill-fraction", type=float, default=0.4)
    parser.add_argument(
        "--points", default="all", help="crash points: all, none, or a,b (Step:variant)"
    )
    parser.add_argument("--out", type=Path, default=figures.RESULTS / "latest.json")
    parser.add_argument(
        "--full", action="store_true", help="also fail on the issue's volume targets"
    )
    parser.add_argument("--keep", action="store_true", help="keep reliability/.work/ (logs)")
    return parser.parse_args(argv)


def say(text: str) -> None:
    print(f"[reliability {time.strftime('%H:%M:%S')}] {text}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    # Injected drops make aiohttp log a traceback per dropped request: expected, not news.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    from bench import scaling
    from e2e import operator_harness as h

    workdir = WORK / time.strftime("%Y%m%d-%H%M%S")
    env = scaling.Environment(workdir, tenants=1)
    try:
        env.start()
    except scaling.NotRunnable as error:
        say(f"cannot run: {error}")
        return 2
    failed = True
    try:
        sandbox = env.sandbox
        kube = h.Kube(env.kubectl, env.api)
        # Real Graph takes a moment before a new secret authenticates: Verify must wait for it.
        sandbox.call(lambda: setattr(sandbox.stack.directory, "propagation_delay", 1.0))
        namespaces = ("rel-matrix", "rel-chaos")
        for ns in (*namespaces, "rel-denied"):
            env.kubectl("create", "namespace", ns)
        kube.apply(h.allow_policy("reliability", list(namespaces), sandbox))
        kubeconfig = env.plane.operator_kubeconfig
        operator = h.OperatorProcess(
            kubeconfig=kubeconfig,
            env=h.operator_environment(sandbox.env(), kubeconfig, workdir),
            log=workdir / "operator.log",
            # The run rotates each member far more often than any real fleet (hundreds of
            # rotations of 20 objects in half an hour): the per-object storm limit (default
            # 6 an hour) would hold most of them. It has its own tests
            # (e2e/test_guard_scenarios.py); here it is raised out of the way.
            args=(f"--drift-check-interval={DRIFT_INTERVAL_S}s", "--max-rotations-per-hour=100"),
        )
        tally = storming.Tally()
        storming.start_operator(operator, tally)
        ledger = invariants.Ledger(orphan_grace=ORPHAN_GRACE_S, overlap=fleet.OVERLAP_SECONDS)
        monitor = probing.Monitor(sandbox, kube, operator, ledger).start()
        try:
            doc = run(args, env, sandbox, kube, operator, monitor, tally)
        finally:
            monitor.stop()
            operator.stop()
        # Relative to the repository: results are committed, machine paths must not be.
        doc["details"]["workdir"] = str(workdir.relative_to(WORK.parent.parent))
        path = figures.write(doc, args.out)
        say(f"results: {path}")
        problems = list(doc["failures"])
        if args.full:
            problems = figures.failures(figures.Figures(**_fields(doc)), full=True)
        for problem in problems:
            say(f"FAIL {problem}")
        failed = bool(problems)
        return 1 if failed else 0
    finally:
        env.stop()
        if not (args.keep or failed):
            shutil.rmtree(workdir, ignore_errors=True)
        elif failed:
            say(f"logs kept in {workdir}")


def _fields(doc: dict[str, Any]) -> dict[str, Any]:
    names = figures.Figures.__dataclass_fields__
    return {k: v for k, v in doc.items() if k in names}


def run(
    args: argparse.Namespace,
    env: Any,
    sandbox: Any,
    kube: Any,
    operator: Any,
    monitor: probing.Monitor,
    tally: storming.Tally,
) -> dict[str, Any]:
    fig = figures.Figures()
    details: dict[str, Any] = {"seed": args.seed, "members": args.members}
    episodes: dict[str, list[tuple[float, float | None]]] = {}
    began = time.time()

    # 1. The crash matrix.
    crash = fleet.seed(sandbox, "rel-matrix", "crash", 0)
    kube.apply(crash.sps(), crash.dsb())
    episodes[crash.label] = [(time.time(), None)]
    monitor.watch(crash)
    outcomes = []
    points = _points(args.points)
    _wait_settled(kube, [crash], 300)
    episodes[crash.label] = [(episodes[crash.label][0][0], time.time())]
    for step, variant in points:
        say(f"crash point {step}:{variant}")
        outcome = crashing.run_point(
            sandbox,
            kube,
            operator,
            crash,
            step,
            variant,
            on_episode=lambda a, b: episodes[crash.label].append((a, b)),
        )
        outcomes.append(outcome)
        fig.crash_points_tested += int(outcome.tested)
        fig.operator_kills += int(outcome.tested)
        say(f"  {outcome.name}: journal {outcome.journal} problems {outcome.problems or 'none'}")
    details["crashPoints"] = [o.summary() for o in outcomes]
    details["crashPointsFailed"] = [o.name for o in outcomes if o.problems or not o.tested]

    # 2. The fleet, and one member no policy allows.
    members = [
        fleet.seed(sandbox, "rel-chaos", f"m{i:02d}", i, short=i % args.short_every == 0)
        for i in range(args.members)
    ]
    denied = fleet.seed(sandbox, "rel-denied", "denied", 0)
    created = time.time()
    kube.apply(*(doc for m in members for doc in (m.sps(), m.dsb())), denied.sps(), denied.dsb())
    for m in members:
        monitor.watch(m)
    _wait_settled(kube, members, 300)
    say(f"fleet of {len(members)} issued in {time.time() - created:.0f}s")

    # 3. The random run and soak.
    storm_began = time.time()
    storm = storming.Storm(
        sandbox,
        kube,
        operator,
        monitor,
        members,
        seed=args.seed,
        restart=lambda which: env.plane.restart(which, kill=True),
        make_member=lambda name, policy: fleet.seed(
            sandbox, "rel-chaos", name, len(members), deletion_policy=policy
        ),
        repair_grace=REPAIR_GRACE_S,
    )
    storm.tally = tally
    for m in members:
        storm.episodes.append(storming.Episode(m, "create", created, None, end=time.time()))
    storming.arm_faults(sandbox, args.seed)
    seconds = args.minutes * 60
    kills_until = storm_began + seconds * args.kill_fraction
    kill_minutes = seconds * args.kill_fraction / 60
    say(f"random run for {args.minutes:g} min (operator kills in the first {kill_minutes:.1f})")
    storm.run(seconds, kills_until=kills_until)
    storm_ended = time.time()
    fig.faults_injected, fig.cloud_requests = storming.fault_counts(sandbox, storm_began)

    # 4. Settle, then audit.
    sandbox.clear_faults()
    if not operator.running:
        storming.start_operator(operator, tally)
    storm.drain(min(300.0, max(60.0, seconds / 3)))
    time.sleep(2 * DRIFT_INTERVAL_S)  # one more drift check for every member
    monitor.sample()
    final = probing.statuses(kube, ["rel-matrix", "rel-chaos"]) or {}
    everyone = [crash, *members]
    with monitor.locked():
        monitor.ledger.final_orphans(
            probing.probe(sandbox, everyone),
            {m.label: invariants.accounted_for(final.get(m.label)) for m in everyone},
        )
    token_failures = auditing.token_failures(sandbox, everyone)
    leaks = auditing.leaks(kube, operator, sandbox.minted_secrets())
    denials = auditing.denied_calls(sandbox, denied)

    for m in members:
        episodes[m.label] = storm.episodes_of(m)
    stored = {m.label: probing.stored(sandbox, m) for m in everyone}
    ledger = monitor.ledger
    fig.rotations = sum(invariants.rotations(s) for s in stored.values())
    fig.duplicate_writes = sum(invariants.duplicate_writes(s) for s in stored.values())
    doubles = {
        m.label: invariants.double_rotations(
            stored[m.label], episodes.get(m.label, []), scheduled=m.short
        )
        for m in everyone
    }
    fig.double_rotations = sum(doubles.values())
    # For reading a failure: each member's stored rotations and episodes (no values in them).
    (env.workdir / "history.json").write_text(
        json.dumps(
            {
                m.label: {"stored": stored[m.label], "episodes": episodes.get(m.label)}
                for m in everyone
            },
            default=lambda o: dataclasses.asdict(o),
            indent=1,
        )
    )
    fig.operator_kills += tally.operator_kills
    fig.apiserver_restarts = tally.apiserver_restarts
    fig.etcd_restarts = tally.etcd_restarts
    fig.out_of_band_edits = sum(tally.edits.values())
    fig.deletes_mid_rotation = len(tally.deletes)
    fig.orphans = len(ledger.orphans) + tally.orphans_after_delete
    fig.premature_revocations = len(ledger.premature)
    fig.lost_secrets = len(ledger.lost) + len(token_failures)
    fig.expired_secret_samples = ledger.expired_samples
    fig.leaks = len(leaks)
    fig.policy_denials_with_cloud_calls = len(denials)
    fig.unfinished_rotations = len(storm.unfinished()) + sum(1 for o in outcomes if o.problems)
    fig.failed_rotations = len(storm.failed())
    fig.samples = ledger.samples
    fig.soak_minutes = (storm_ended - storm_began) / 60
    _soak(fig, monitor.process, kills_until + WARM_UP_S, storm_ended)

    details.update(
        {
            "minutes": args.minutes,
            "killFraction": args.kill_fraction,
            "seconds": round(time.time() - began),
            "edits": tally.edits,
            "deletes": tally.deletes,
            "restartSeconds": tally.restart_seconds,
            "operatorStarts": operator.starts,
            "operatorStartFailures": tally.operator_start_failures,
            "unfinishedEpisodes": [f"{e.member.label} {e.kind}" for e in storm.unfinished()],
            "failedEpisodes": [f"{e.member.label} {e.kind} {e.start:.0f}" for e in storm.failed()][
                :50
            ],
            "ledgerNotes": ledger.notes,
            "tokenFailures": token_failures,
            "leaks": leaks[:20],
            "deniedCalls": denials[:20],
            "monitorErrors": monitor.errors,
            "rotationsByMember": {k: invariants.rotations(v) for k, v in stored.items()},
            "doubleRotationsByMember": {k: v for k, v in doubles.items() if v},
        }
    )
    return figures.document(fig, details, ["python -m reliability", *sys.argv[1:]])


def _points(spec: str) -> list[tuple[str, str]]:
    if spec == "all":
        return list(crashing.POINTS)
    if spec == "none":
        return []
    return [tuple(p.split(":", 1)) for p in spec.split(",")]  # type: ignore[misc]


def _wait_settled(kube: Any, members: Sequence[fleet.Member], timeout: float) -> None:
    deadline = time.time() + timeout
    waiting = list(members)
    while waiting and time.time() < deadline:
        waiting = [m for m in waiting if _safe_settled(kube, m) is None]
        time.sleep(1.0)
    if waiting:
        say(f"not settled after {timeout:.0f}s: {', '.join(m.label for m in waiting)}")


def _safe_settled(kube: Any, member: fleet.Member) -> Any:
    try:
        return fleet.settled(kube, member, other_than=None)
    except Exception:
        return None


def _soak(
    fig: figures.Figures,
    samples: list[tuple[float, int, float, int, int]],
    since: float,
    until: float,
) -> None:
    """RSS, fds and sockets of the soak's operator process (the one alive at the end)."""
    window = [s for s in samples if since <= s[0] <= until]
    if not window:
        return
    pid = window[-1][1]
    window = [s for s in window if s[1] == pid]
    for index, name in ((2, "rss_mb"), (3, "fds"), (4, "sockets")):
        points = [(s[0], float(s[index])) for s in window]
        start, end = figures.ends(points)
        setattr(fig, f"{name}_start", round(start, 1))
        setattr(fig, f"{name}_end", round(end, 1))
        setattr(fig, f"{name}_per_minute", figures.slope_per_minute(points))


if __name__ == "__main__":
    sys.exit(main())
