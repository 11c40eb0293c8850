"""Throughput of the pure decision a reconcile pass makes: trigger chain + rotation.next_action.

Every reconcile of a ServicePrincipalSecret asks the core two questions: should a rotation
start (``triggers.evaluate``) and what is the next step of the one in flight
(``rotation.next_action``). Both are pure, so their cost is CPU only; this measures how many
such decisions one core makes per second over a mix of realistic states (idle, drift facts
gathered, due, never issued, resumed mid-rotation), repeated to report median and spread.
Parsing spec and status is done once up front: the operator parses once per pass, and the
point here is the decision.
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from typing import Any

from bench import results
from rotator.core import facts, models, rotation, triggers

#: One core must decide at least this many times per second (see docs/benchmarks.md).
MIN_DECISIONS_PER_SECOND = 20_000

NOW = dt.datetime(2026, 11, 26, 5, 0, 0, tzinfo=dt.UTC)
TENANT = "00000000-0000-0000-0000-0000000000aa"
CLIENT = "11111111-2222-3333-4444-555555555555"
KEY = "3f2a8c1e-0000-4000-8000-000000000001"
NEW_KEY = "3f2a8c1e-0000-4000-8000-000000000002"


def _body(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "data-eng", "uid": f"uid-{name}", "generation": 1},
        "spec": {
            "tenantId": TENANT,
            "application": {"clientId": CLIENT, "credentialOwner": "application"},
            "rotation": {"validity": "90d", "renewBefore": "30d", "overlap": "24h"},
            "keyVault": {"vaultUrl": "https://kv-data-eng.vault.azure.net", "secretName": name},
            "verify": {"enabled": True, "timeout": "5m"},
        },
    }


def _current(spec: models.ServicePrincipalSecretSpec) -> dict[str, Any]:
    return {
        "keyId": KEY,
        "hint": "abc",
        "displayName": "rotator-etl-sp-aaaa1111",
        "expiresAt": "2027-02-01T00:00:00Z",
        "keyVaultVersion": "v1",
        "target": spec.target,
    }


def _journal(step: str, phase: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "bbbb2222",
        "reason": "Expiring",
        "step": step,
        "phase": phase,
        "startedAt": "2026-11-26T04:59:00Z",
        "displayName": "rotator-etl-sp-bbbb2222",
        "expiresAt": "2027-02-24T04:59:00Z",
        **extra,
    }


Case = tuple[
    models.ServicePrincipalSecretSpec,
    models.ServicePrincipalSecretStatus,
    models.ResourceMeta,
    facts.Facts,
]


def cases() -> list[Case]:
    """The state mix: mostly idle resources, as in a real fleet, plus every kind of work."""
    body = _body("etl-sp")
    spec = models.ServicePrincipalSecretSpec.from_body(body)
    meta = models.ResourceMeta.from_body(body)
    current = _current(spec)
    graph_ok = (facts.GraphCredential(KEY, "rotator-etl-sp-aaaa1111", "abc"),)
    vault_ok = facts.VaultLatest("v1", {facts.TAG_KEY_ID: KEY, facts.TAG_ROTATION_ID: "aaaa1111"})
    minted = {"keyId": NEW_KEY, "hint": "xyz"}
    states: list[tuple[dict[str, Any], facts.Facts]] = [
        # idle, not due: the overwhelmingly common pass
        ({"current": current, "nextRotationTime": "2027-01-02T00:30:00Z"}, facts.Facts()),
        ({"current": current, "nextRotationTime": "2027-01-02T00:30:00Z"}, facts.Facts()),
        ({"current": current, "nextRotationTime": "2027-01-02T00:30:00Z"}, facts.Facts()),
        # idle with a drift check's facts gathered (all six triggers run)
        (
            {"current": current, "nextRotationTime": "2027-01-02T00:30:00Z"},
            facts.Facts(graph_credentials=graph_ok, key_vault_latest=vault_ok),
        ),
        # due
        ({"current": current, "nextRotationTime": "2026-11-26T04:00:00Z"}, facts.Facts()),
        # never issued
        ({}, facts.Facts()),
        # in flight: planned, minted (text held), staged, verify started, store started
        ({"rotation": _journal("Plan", "Done")}, facts.Facts()),
        ({"rotation": _journal("Mint", "Done", **minted)}, facts.Facts(text_held=True)),
        (
            {"rotation": _journal("Stage", "Done", stagingVersion="s1", **minted)},
            facts.Facts(),
        ),
        (
            {"rotation": _journal("Verify", "Started", stagingVersion="s1", **minted)},
            facts.Facts(),
        ),
        (
            {"rotation": _journal("Store", "Started", stagingVersion="s1", **minted)},
            facts.Facts(
                key_vault_latest=facts.VaultLatest(
                    "v2", {facts.TAG_KEY_ID: NEW_KEY, facts.TAG_ROTATION_ID: "bbbb2222"}
                )
            ),
        ),
        # resumed after a crash inside addPassword: find our credential, replan
        (
            {"rotation": _journal("Mint", "Started")},
            facts.Facts(
                graph_credentials=(
                    *graph_ok,
                    facts.GraphCredential(NEW_KEY, "rotator-etl-sp-bbbb2222"),
                )
            ),
        ),
    ]
    return [
        (spec, models.ServicePrincipalSecretStatus.from_dict(status), meta, observed)
        for status, observed in states
    ]


def decide(case: Case) -> tuple[triggers.Verdict, rotation.Action]:
    """One decision, as a reconcile pass makes it."""
    spec, status, meta, observed = case
    verdict = triggers.evaluate(triggers.Input(spec, status, meta, observed, NOW))
    return verdict, rotation.next_action(spec, status.rotation, observed)


def _one_run(mix: list[Case], decisions: int) -> float:
    work = (mix * (decisions // len(mix) + 1))[:decisions]
    started = time.perf_counter()
    for case in work:
        decide(case)
    return decisions / (time.perf_counter() - started)


def run(decisions: int = 50_000, repetitions: int = 7) -> results.Outcome:
    started = time.perf_counter()
    mix = cases()
    outcome = results.Outcome(
        "decisions",
        "trigger chain + rotation.next_action per second on one core (12-state mix)",
    )
    # Sanity: every case decides, and the mix covers what it claims to.
    kinds = sorted({type(decide(c)[1]).__name__ for c in mix})
    _one_run(mix, min(decisions, 2_000))  # warm-up: imports, caches, branch predictors
    samples: list[float] = []
    gc.collect()
    for _ in range(repetitions):
        samples.append(_one_run(mix, decisions))
    figures = results.spread(samples)
    outcome.details = {
        "decisionsPerRepetition": decisions,
        "actionsCovered": kinds,
        "decisionsPerSecond": {k: round(v, 1) for k, v in figures.items()},
        "microsecondsPerDecision": round(1e6 / figures["median"], 2),
    }
    outcome.checks.append(
        results.Check(
            "decisions/s (median)",
            round(figures["median"]),
            ">=",
            MIN_DECISIONS_PER_SECOND,
            "/s",
            note=f"{repetitions} reps, spread {figures['spreadPct']:.0f}%",
        )
    )
    outcome.checks.append(
        results.Check(
            "decisions/s (slowest rep)",
            round(figures["min"]),
            ">=",
            MIN_DECISIONS_PER_SECOND,
            "/s",
        )
    )
    outcome.seconds = time.perf_counter() - started
    return outcome
