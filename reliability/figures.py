"""The run's figures: counters, slopes and the results file (pure apart from ``write``).

Every field of :class:`Figures` is documented in ``docs/reliability.md``; the loss fields
(``LOSS_FIELDS``) must be zero for a run to pass, the volume fields must reach their targets.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

#: Zero in each of these, or the run fails.
LOSS_FIELDS = (
    "orphans",
    "premature_revocations",
    "lost_secrets",
    "expired_secret_samples",
    "double_rotations",
    "duplicate_writes",
    "leaks",
    "policy_denials_with_cloud_calls",
)
#: The issue's "done" targets for a full run (``make reliability``).
TARGETS = {"crash_points_tested": 8, "rotations": 200, "soak_minutes": 30.0}


@dataclasses.dataclass
class Figures:
    crash_points_tested: int = 0
    rotations: int = 0
    operator_kills: int = 0
    apiserver_restarts: int = 0
    etcd_restarts: int = 0
    faults_injected: int = 0
    cloud_requests: int = 0
    orphans: int = 0
    premature_revocations: int = 0
    lost_secrets: int = 0
    expired_secret_samples: int = 0
    double_rotations: int = 0
    duplicate_writes: int = 0
    leaks: int = 0
    policy_denials_with_cloud_calls: int = 0
    out_of_band_edits: int = 0
    deletes_mid_rotation: int = 0
    unfinished_rotations: int = 0
    failed_rotations: int = 0
    samples: int = 0
    soak_minutes: float = 0.0
    rss_mb_start: float = 0.0
    rss_mb_end: float = 0.0
    rss_mb_per_minute: float = 0.0
    fds_start: float = 0.0
    fds_end: float = 0.0
    fds_per_minute: float = 0.0
    sockets_start: float = 0.0
    sockets_end: float = 0.0
    sockets_per_minute: float = 0.0

    @property
    def fault_rate(self) -> float:
        return self.faults_injected / self.cloud_requests if self.cloud_requests else 0.0


def slope_per_minute(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (epoch seconds, value) points, in value per minute."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 60.0


def ends(points: Sequence[tuple[float, float]], window: int = 10) -> tuple[float, float]:
    """Mean of the first and of the last ``window`` values (a start and an end free of one
    sample's noise)."""
    if not points:
        return 0.0, 0.0
    head = [v for _, v in points[:window]]
    tail = [v for _, v in points[-window:]]
    return sum(head) / len(head), sum(tail) / len(tail)


def failures(figures: Figures, *, full: bool) -> list[str]:
    """Why the run fails: a non-zero loss field, or (``full``) a volume target missed."""
    found = [f"{name} = {getattr(figures, name)}" for name in LOSS_FIELDS if getattr(figures, name)]
    if full:
        for name, target in TARGETS.items():
            if getattr(figures, name) < target:
                found.append(f"{name} = {getattr(figures, name)} < {target}")
    return found


def document(figures: Figures, details: dict[str, Any], argv: Sequence[str]) -> dict[str, Any]:
    body: dict[str, Any] = dataclasses.asdict(figures)
    body["fault_rate"] = round(figures.fault_rate, 3)
    for key in ("rss_mb_start", "rss_mb_end", "soak_minutes"):
        body[key] = round(body[key], 1)
    for key in ("rss_mb_per_minute", "fds_per_minute", "sockets_per_minute"):
        body[key] = round(body[key], 3)
    # The figures sit at the top level (what the issue asks a reader to find), then context.
    return {
        **body,
        "generated": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(argv),
        # What was measured, where: a result without them cannot be compared or trusted.
        "commit": _commit(),
        "machine": f"{platform.node()} ({os.cpu_count()} cpus, {platform.machine()})",
        "failures": failures(figures, full=False),
        "details": details,
    }


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def write(doc: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
    return path
