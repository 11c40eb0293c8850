"""How well the schedule's jitter spreads rotations of secrets that were created together.

The worst case for Graph is one ``kubectl apply`` (or one Argo CD sync) creating thousands of
ServicePrincipalSecrets in the same second: every first secret then expires at the same
instant, and without jitter every renewal would be due in the same minute, forever. This
benchmark computes ``rotator.core.schedule.next_rotation_time`` for N such secrets (keys are
random uids, as the API server assigns them, and — the fallback — ``namespace/name``) and
counts how many fall due in the busiest minute, against the uniform expectation over the
jitter window.
"""

from __future__ import annotations

import collections
import datetime as dt
import math
import random
import time
import uuid

from bench import results
from rotator.core import schedule

#: The PRODUCT.md example policy: 90d secrets renewed 30d before expiry.
VALIDITY = dt.timedelta(days=90)
RENEW_BEFORE = dt.timedelta(days=30)
#: Busiest minute at most this many times the uniform expectation.
MAX_PEAK_FACTOR = 2.0


def _uid_keys(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(count)]


def _name_keys(count: int) -> list[str]:
    # What a fleet looks like when named by people: a few namespaces, numbered names.
    return [
        schedule.identity_key("", f"team-{i % 20:02d}", f"etl-sp-{i:06d}") for i in range(count)
    ]


def peak_per_minute(keys: list[str], created: dt.datetime) -> dict[str, float]:
    """Due times of secrets created at ``created``: busiest minute vs the uniform expectation."""
    expires = created + VALIDITY
    earliest = expires - RENEW_BEFORE
    per_minute: collections.Counter[int] = collections.Counter()
    per_second: collections.Counter[int] = collections.Counter()
    for key in keys:
        due = schedule.next_rotation_time(expires, RENEW_BEFORE, key)
        offset = int((due - earliest).total_seconds())
        per_minute[offset // 60] += 1
        per_second[offset] += 1
    window = int(schedule.jitter_window(RENEW_BEFORE).total_seconds())
    # jitter() draws whole seconds in [0, window]: window + 1 equally likely values.
    expected = len(keys) * 60 / (window + 1)
    full_minutes = (window + 1) // 60
    return {
        "secrets": len(keys),
        "jitterWindowSeconds": window,
        "uniformPerMinute": expected,
        "busiestMinute": max(per_minute.values()),
        "quietestFullMinute": min(per_minute.get(m, 0) for m in range(full_minutes)),
        "minutesUsed": len(per_minute),
        "busiestSecond": max(per_second.values()),
        "peakFactor": max(per_minute.values()) / expected,
        "withoutJitterBusiestMinute": len(keys),
    }


def run(sizes: list[int], seed: int = 20261126) -> results.Outcome:
    started = time.perf_counter()
    outcome = results.Outcome(
        "jitter",
        "N secrets created in the same second: rotations due in the busiest minute "
        f"(validity {VALIDITY.days}d, renewBefore {RENEW_BEFORE.days}d)",
    )
    created = dt.datetime(2026, 11, 26, 5, 0, 0, tzinfo=dt.UTC)
    for size in sizes:
        for label, keys in (("uid", _uid_keys(size, seed)), ("name", _name_keys(size))):
            figures = peak_per_minute(keys, created)
            outcome.details[f"{label}-{size}"] = {
                k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()
            }
            outcome.checks.append(
                results.Check(
                    f"busiest minute, {size:,} by {label}",
                    figures["busiestMinute"],
                    "<=",
                    math.floor(MAX_PEAK_FACTOR * figures["uniformPerMinute"]),
                    "rotations",
                    note=f"uniform {figures['uniformPerMinute']:.0f}/min over "
                    f"{figures['jitterWindowSeconds']} s",
                )
            )
    outcome.seconds = time.perf_counter() - started
    return outcome
