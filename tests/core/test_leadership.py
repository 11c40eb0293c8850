"""Tests for rotator.core.leadership: who leads, measured on the observer's own clock."""

from __future__ import annotations

import datetime as dt

import pytest

from rotator.core import leadership

T = leadership.Timing()
S = dt.timedelta(seconds=1)


def lease(holder: str | None, version: str = "1", transitions: int = 0) -> leadership.Lease:
    return leadership.Lease(holder, 15 * S, transitions, version)


CASES = [
    ("no Lease yet", None, 0.0, 100.0, leadership.Create()),
    ("we hold it", lease("me"), 0.0, 100.0, leadership.Renew()),
    ("released", lease(None, transitions=3), 0.0, 1.0, leadership.Take(4, None)),
    ("held, fresh", lease("other"), 100.0, 101.0, leadership.Wait("other", 2.0)),
    ("held, about to lapse", lease("other"), 100.0, 114.5, leadership.Wait("other", 0.5)),
    (
        "held, lapsed on our clock",
        lease("other", transitions=1),
        100.0,
        115.0,
        leadership.Take(2, "other"),
    ),
]


@pytest.mark.parametrize(
    ("name", "found", "since", "now", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_decide(
    name: str, found: leadership.Lease | None, since: float, now: float, expected: object
) -> None:
    seen = leadership.Seen(found, since)
    assert leadership.decide("me", seen, now, T) == expected


def test_a_renewed_record_restarts_the_clock_an_unchanged_one_does_not() -> None:
    first = leadership.observe(None, lease("other", "1"), 10.0)
    same = leadership.observe(first, lease("other", "1"), 20.0)
    assert same.since == 10.0  # nothing changed: it lapses 15 s after we first saw it
    renewed = leadership.observe(same, lease("other", "2"), 20.0)
    assert renewed.since == 20.0
    assert isinstance(leadership.decide("me", renewed, 34.0, T), leadership.Wait)


def test_a_lease_without_a_duration_uses_ours() -> None:
    odd = leadership.Lease("other", dt.timedelta(0), 0, "1")
    seen = leadership.Seen(odd, 0.0)
    assert isinstance(leadership.decide("me", seen, 14.0, T), leadership.Wait)
    assert isinstance(leadership.decide("me", seen, 15.0, T), leadership.Take)


def test_a_holder_stops_before_anyone_may_take_over() -> None:
    assert leadership.still_leading(0.0, 9.9, T)
    assert not leadership.still_leading(0.0, 10.0, T)
    # Whoever watches sees the same record lapse only at 15 s.
    assert T.renew_deadline < T.lease_duration


@pytest.mark.parametrize(
    ("lease_s", "renew_s", "retry_s"), [(15, 15, 2), (15, 10, 10), (10, 15, 2), (15, 10, 0)]
)
def test_timing_must_keep_its_order(lease_s: int, renew_s: int, retry_s: int) -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        leadership.Timing(lease_s * S, renew_s * S, retry_s * S)
