"""What a benchmark reports: checks against targets, figures, and how to print and store them.

A :class:`Check` is one measured figure with its target (``value <op> target``); a
:class:`Outcome` is one benchmark's checks plus informational details, or the reason it did not
run. Only checks decide the exit code; details are there to explain a figure, never to pass it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

Op = Literal["<=", ">=", "=="]
State = Literal["PASS", "FAIL", "NOT RUN", "ERROR"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass(frozen=True)
class Check:
    """One figure against its target."""

    name: str
    value: float
    op: Op
    target: float
    unit: str = ""
    note: str = ""

    @property
    def passed(self) -> bool:
        if self.op == "<=":
            return self.value <= self.target
        if self.op == ">=":
            return self.value >= self.target
        return self.value == self.target


@dataclasses.dataclass
class Outcome:
    """One benchmark's result: its checks, or why it did not run (``reason``)."""

    name: str
    description: str
    checks: list[Check] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    reason: str = ""
    error: bool = False
    seconds: float = 0.0

    @property
    def state(self) -> State:
        if self.error:
            return "ERROR"
        if self.reason and not self.checks:
            return "NOT RUN"
        return "PASS" if all(c.passed for c in self.checks) else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "state": self.state,
            "reason": self.reason,
            "seconds": round(self.seconds, 2),
            "checks": [
                {**dataclasses.asdict(c), "passed": c.passed, "value": _round(c.value)}
                for c in self.checks
            ],
            "details": self.details,
        }


def _round(value: float) -> float:
    return round(value, 4) if isinstance(value, float) else value


def spread(samples: Sequence[float]) -> dict[str, float]:
    """Median, min, max and relative spread ((max - min) / median) of repeated measurements."""
    ordered = sorted(samples)
    median = statistics.median(ordered)
    return {
        "median": median,
        "min": ordered[0],
        "max": ordered[-1],
        "spreadPct": 100.0 * (ordered[-1] - ordered[0]) / median if median else 0.0,
        "repetitions": len(ordered),
    }


def machine() -> dict[str, Any]:
    """Where the figures were measured: they mean little without it."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "cpuModel": model,
        "memoryMiB": memory,
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loadAverageAtStart": list(os.getloadavg()),
    }


def _fmt(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"


def table(outcomes: Iterable[Outcome]) -> str:
    """A plain-text table: one line per check, one per benchmark that did not run."""
    rows: list[tuple[str, ...]] = [("benchmark", "figure", "value", "target", "result")]
    for outcome in outcomes:
        if not outcome.checks:
            rows.append((outcome.name, "-", "-", "-", f"{outcome.state}: {outcome.reason}"))
            continue
        for check in outcome.checks:
            unit = f" {check.unit}" if check.unit else ""
            rows.append(
                (
                    outcome.name,
                    check.name,
                    f"{_fmt(check.value)}{unit}",
                    f"{check.op} {_fmt(check.target)}{unit}",
                    "PASS" if check.passed else "FAIL",
                )
            )
        if outcome.reason:
            rows.append((outcome.name, "-", "-", "-", f"{outcome.state}: {outcome.reason}"))
    widths = [max(len(r[i]) for r in rows if len(r) > i) for i in range(4)]
    lines = []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:4])]
        lines.append("  ".join([*cells, row[4]]))
    return "\n".join(lines)


def write(outcomes: Sequence[Outcome], argv: Sequence[str], directory: Path = RESULTS_DIR) -> Path:
    """Write the run as ``<directory>/<UTC timestamp>-<host>.json`` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    host = platform.node().split(".")[0] or "host"
    path = directory / f"{stamp}-{host}.json"
    document = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": list(argv),
        "machine": machine(),
        "outcomes": [o.to_json() for o in outcomes],
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return path
