"""Tests for rotator.core.schedule: rotation times stay before expiry; jitter stable, spread."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.core import schedule
from tests.core import factories as f

_expiry = st.datetimes(
    min_value=dt.datetime(2025, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)
_renew = st.integers(min_value=1, max_value=400 * 86400).map(lambda s: dt.timedelta(seconds=s))
_keys = st.text(min_size=0, max_size=64)


@given(_expiry, _renew, _keys)
def test_next_rotation_is_within_the_renewal_window(
    expires_at: dt.datetime, renew_before: dt.timedelta, key: str
) -> None:
    at = schedule.next_rotation_time(expires_at, renew_before, key)
    assert expires_at - renew_before <= at < expires_at
    assert at <= expires_at - min(schedule.SAFETY_MARGIN, renew_before)
    assert at - (expires_at - renew_before) <= schedule.MAX_JITTER


@given(_expiry, _renew, _keys)
def test_jitter_is_deterministic_and_bounded(
    expires_at: dt.datetime, renew_before: dt.timedelta, key: str
) -> None:
    assert schedule.next_rotation_time(expires_at, renew_before, key) == (
        schedule.next_rotation_time(expires_at, renew_before, key)
    )
    offset = schedule.jitter(key, renew_before)
    assert dt.timedelta(0) <= offset <= schedule.jitter_window(renew_before)
    assert schedule.jitter_window(renew_before) <= min(renew_before * 0.1, schedule.MAX_JITTER)


def test_jitter_spreads_many_objects_across_the_window() -> None:
    renew = dt.timedelta(days=30)  # window = 1h
    offsets = [schedule.jitter(f"uid-{i}", renew).total_seconds() for i in range(2000)]
    assert len(set(offsets)) > 1500  # nearly all distinct seconds
    # Every ten-minute slice of the hour gets a fair share (expected 333 each).
    buckets = [0] * 6
    for seconds in offsets:
        buckets[min(int(seconds // 600), 5)] += 1
    assert min(buckets) > 250
    assert max(offsets) > 3300
    assert min(offsets) < 300


@pytest.mark.parametrize(
    ("renew", "window"),
    [
        (dt.timedelta(days=30), dt.timedelta(hours=1)),
        (dt.timedelta(hours=5), dt.timedelta(minutes=30)),
        (dt.timedelta(seconds=5), dt.timedelta(0)),
    ],
)
def test_jitter_window(renew: dt.timedelta, window: dt.timedelta) -> None:
    assert schedule.jitter_window(renew) == window


def test_example_from_design() -> None:
    expires = dt.datetime(2027, 2, 24, 5, 0, tzinfo=dt.UTC)
    at = schedule.next_rotation_time(expires, dt.timedelta(days=30), "uid-1")
    assert (
        dt.datetime(2027, 1, 25, 5, 0, tzinfo=dt.UTC)
        <= at
        <= dt.datetime(2027, 1, 25, 6, 0, tzinfo=dt.UTC)
    )


@pytest.mark.parametrize(
    ("uid", "namespace", "name", "key"),
    [("u1", "ns", "a", "u1"), ("", "ns", "a", "ns/a"), ("", None, "a", "/a")],
)
def test_identity_key(uid: str, namespace: str | None, name: str, key: str) -> None:
    assert schedule.identity_key(uid, namespace, name) == key


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (dt.timedelta(minutes=5), 300.0),
        (dt.timedelta(0), 0.0),
        (dt.timedelta(minutes=-5), 0.0),
        (dt.timedelta(days=3), schedule.MAX_REQUEUE.total_seconds()),
    ],
)
def test_requeue_after(delta: dt.timedelta, expected: float) -> None:
    assert schedule.requeue_after(f.T0, f.T0 + delta) == expected


def test_requeue_after_nothing_due_uses_the_cap() -> None:
    assert schedule.requeue_after(f.T0, None, dt.timedelta(hours=1)) == 3600.0


@pytest.mark.parametrize(
    ("failures", "low", "high"), [(1, 5, 6), (2, 10, 12), (4, 40, 48), (30, 600, 600)]
)
def test_backoff_grows_and_is_capped(failures: int, low: float, high: float) -> None:
    delay = schedule.backoff_delay(failures, key="ns/a")
    assert low <= delay <= high
    assert delay == schedule.backoff_delay(failures, key="ns/a")


def test_backoff_honours_retry_after() -> None:
    assert schedule.backoff_delay(1, retry_after=120.0) == 120.0
    assert schedule.backoff_delay(5, retry_after=1.0) >= 80.0


def test_spread_uses_the_whole_span_deterministically() -> None:
    """Drift checks are spread over the whole interval (not jitter's 10% window)."""
    hour = dt.timedelta(hours=1)
    offsets = [schedule.spread(f"ns/sp-{i}", hour).total_seconds() for i in range(2000)]
    assert offsets == [schedule.spread(f"ns/sp-{i}", hour).total_seconds() for i in range(2000)]
    assert all(0 <= s < 3600 and s == int(s) for s in offsets)
    buckets = [0] * 6
    for seconds in offsets:
        buckets[int(seconds // 600)] += 1
    assert min(buckets) > 250  # expected 333 in every ten minutes of the hour
    assert schedule.spread("k", dt.timedelta(0)) == dt.timedelta(0)
    assert (
        dt.timedelta(0)
        <= schedule.spread("k", dt.timedelta(milliseconds=500))
        < dt.timedelta(milliseconds=500)
    )


_NOW = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)
_H = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("due", "suspended", "gated", "since", "seconds"),
    [
        (schedule.Due(), False, False, _NOW, schedule.MAX_REQUEUE.total_seconds()),
        (schedule.Due(next_rotation=_NOW + _H), False, False, _NOW, 3600.0),
        (schedule.Due(next_rotation=_NOW + _H), False, True, _NOW, 21600.0),  # gated: skipped
        (schedule.Due(next_rotation=_NOW + _H), True, False, _NOW, 21600.0),  # suspended too
        # suspended, only expiry (and the urgent point) count
        (
            schedule.Due(retry_at=_NOW + _H, expires_at=_NOW + 3 * _H, urgent_at=_NOW + 2 * _H),
            True,
            False,
            _NOW,
            7200.0,
        ),
        # the earliest of the rest wins
        (
            schedule.Due(
                retire_at=_NOW + 2 * _H, retry_at=_NOW + 3 * _H, drift_check=_NOW + _H / 2
            ),
            False,
            False,
            _NOW,
            1800.0,
        ),
        # fell due during the pass: now
        (schedule.Due(drift_check=_NOW - _H / 60), False, False, _NOW - _H / 30, 0.0),
        # already due when the pass began and still pending (not handled): skipped, no spin
        (schedule.Due(retire_at=_NOW - _H, expires_at=_NOW + _H), False, False, _NOW, 3600.0),
        # far away: capped
        (schedule.Due(expires_at=_NOW + 100 * _H), False, False, _NOW, 21600.0),
    ],
)
def test_next_wake(
    due: schedule.Due, suspended: bool, gated: bool, since: dt.datetime, seconds: float
) -> None:
    assert (
        schedule.next_wake(due, now=_NOW, since=since, suspended=suspended, gated=gated) == seconds
    )
