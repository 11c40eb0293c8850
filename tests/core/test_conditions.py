"""Tests for rotator.core.conditions: kstatus shape and transition-time preservation."""

from __future__ import annotations

import datetime as dt

import pytest

from rotator.core import conditions, models, reasons
from tests.core import factories as f

LATER = f.T0 + dt.timedelta(hours=1)
OK = conditions.Signal(reasons.ISSUED, "secret k1 is current")


def types(conds: tuple[models.Condition, ...]) -> list[tuple[str, str, str]]:
    return [(c.type, c.status, c.reason) for c in conds]


def test_ready_alone_when_healthy() -> None:
    conds = conditions.render((), ready=True, signal=OK, generation=3, now=f.T0)
    assert types(conds) == [("Ready", "True", reasons.ISSUED)]
    assert conds[0].observed_generation == 3
    assert conds[0].last_transition_time == f.T0
    assert conds[0].message == "secret k1 is current"


def test_ready_stays_true_while_rotating() -> None:
    rotating = conditions.Signal(reasons.ROTATING, "rotation abcd1234 at Verify")
    conds = conditions.render(
        (), ready=True, signal=OK, generation=3, now=f.T0, reconciling=rotating
    )
    assert types(conds) == [
        ("Ready", "True", reasons.ISSUED),
        ("Reconciling", "True", reasons.ROTATING),
    ]


def test_stalled_and_not_ready() -> None:
    bad = conditions.Signal(reasons.NOT_AUTHORIZED, "no RotationPolicy applies to namespace 'x'")
    conds = conditions.render((), ready=False, signal=bad, generation=1, now=f.T0, stalled=bad)
    assert types(conds) == [
        ("Ready", "False", reasons.NOT_AUTHORIZED),
        ("Stalled", "True", reasons.NOT_AUTHORIZED),
    ]
    assert conditions.is_true(conds, conditions.STALLED)
    assert not conditions.is_true(conds, conditions.READY)


def test_transition_time_kept_when_status_unchanged_and_moved_when_changed() -> None:
    first = conditions.render((), ready=True, signal=OK, generation=3, now=f.T0)
    other = conditions.Signal(reasons.ROTATED, "rotated")
    same = conditions.render(first, ready=True, signal=other, generation=4, now=LATER)
    assert same[0].last_transition_time == f.T0
    assert (same[0].reason, same[0].observed_generation) == (reasons.ROTATED, 4)
    flipped = conditions.render(same, ready=False, signal=other, generation=4, now=LATER)
    assert flipped[0].last_transition_time == LATER


def test_abnormal_true_conditions_disappear_when_resolved() -> None:
    stuck = conditions.Signal(reasons.GRAPH_ERROR, "Graph said 500")
    conds = conditions.render(
        (), ready=False, signal=stuck, generation=1, now=f.T0, reconciling=stuck, stalled=stuck
    )
    healed = conditions.render(conds, ready=True, signal=OK, generation=1, now=LATER)
    assert types(healed) == [("Ready", "True", reasons.ISSUED)]
    assert conditions.find(healed, conditions.STALLED) is None


def test_other_condition_types_are_kept_after_ours() -> None:
    custom = models.Condition(type="Custom", status="True", reason="X", last_transition_time=f.T0)
    conds = conditions.render((custom,), ready=True, signal=OK, generation=1, now=f.T0)
    assert [c.type for c in conds] == ["Ready", "Custom"]


def test_set_condition_replaces_in_place() -> None:
    a = conditions.set_condition((), "A", "True", OK, generation=1, now=f.T0)
    ab = conditions.set_condition(a, "B", "False", OK, generation=1, now=f.T0)
    again = conditions.set_condition(ab, "A", "Unknown", OK, generation=2, now=LATER)
    assert [(c.type, c.status) for c in again] == [("A", "Unknown"), ("B", "False")]
    assert again[0].last_transition_time == LATER


@pytest.mark.parametrize("microseconds", [0, 999_999])
def test_times_render_as_whole_seconds(microseconds: int) -> None:
    now = f.T0 + dt.timedelta(microseconds=microseconds)
    conds = conditions.render((), ready=True, signal=OK, generation=1, now=now)
    rendered = models.ServicePrincipalSecretStatus(conditions=conds).to_dict()
    assert rendered["conditions"][0]["lastTransitionTime"] == "2026-11-26T05:00:00Z"


def _stalled(reason: str, message: str, status: str = "True") -> tuple[models.Condition, ...]:
    return conditions.render(
        (),
        ready=False,
        signal=conditions.Signal(reason, message),
        generation=1,
        now=f.T0,
        stalled=conditions.Signal(reason, message) if status == "True" else None,
    )


@pytest.mark.parametrize(
    ("existing", "reason", "message", "new"),
    [
        ((), reasons.NOT_FOUND, "job 7 does not exist", True),
        (
            _stalled(reasons.NOT_FOUND, "job 7 does not exist"),
            reasons.NOT_FOUND,
            "job 7 does not exist",
            False,
        ),
        # same reason, another problem: worth telling
        (
            _stalled(reasons.NOT_FOUND, "job 7 does not exist"),
            reasons.NOT_FOUND,
            "job 8 does not exist",
            True,
        ),
        (_stalled(reasons.NOT_FOUND, "x"), reasons.NOT_AUTHORIZED, "x", True),
        (_stalled(reasons.NOT_FOUND, "x", status="False"), reasons.NOT_FOUND, "x", True),
    ],
)
def test_newly_stalled(
    existing: tuple[models.Condition, ...], reason: str, message: str, new: bool
) -> None:
    assert conditions.newly_stalled(existing, reason, message) is new


@pytest.mark.parametrize(("failures", "worth"), [(1, True), (2, False), (7, False)])
def test_only_the_first_transient_failure_of_a_streak_is_worth_an_event(
    failures: int, worth: bool
) -> None:
    assert conditions.streak_begins(failures) is worth
