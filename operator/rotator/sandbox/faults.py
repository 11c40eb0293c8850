"""Fault injection for the emulators: latency, throttling, server errors, hangs, dropped links.

A rule targets one operation (the aiohttp route name, e.g. ``graph.addPassword``) or ``*``, and
fires either for the next ``count`` matching requests or with probability ``rate`` drawn from a
seeded generator, so a failure test is repeatable. Rules are plain data, set over HTTP at
``POST /_sandbox/faults`` by tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any, Literal

FaultKind = Literal["latency", "status", "respond", "timeout", "drop", "after", "hold"]


@dataclasses.dataclass
class FaultRule:
    """One fault.

    kind:
      latency  sleep ``seconds`` then serve normally
      status   answer ``status`` (e.g. 429, 503) with ``retryAfter`` seconds if set, do nothing
      respond  answer ``status`` with exactly ``body`` and ``headers`` (a real service's error
               answer, HTML included), do nothing
      after    serve normally (the write happens), then answer ``status`` instead of the result:
               the "503 after Graph already created the credential" case
      timeout  hold the request ``seconds`` (default 300) without answering
      drop     close the connection without an answer
      hold     hold the request until ``FaultPlan.release`` (or ``POST /_sandbox/faults/release``);
               then serve it normally (the write lands even if the client has gone) or drop
               it: the chaos suite kills the operator while one of its calls is held
    """

    operation: str
    kind: FaultKind
    count: int | None = None  # fire for the next N matches; None with rate for random firing
    rate: float | None = None
    seconds: float = 0.0
    status: int = 503
    retry_after: float | None = None
    code: str | None = None  # service error code in the body, e.g. "TooManyRequests"
    body: str | None = None  # the exact body to answer (respond; after, when set)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)  # with ``body``

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        return cls(
            operation=str(data["operation"]),
            kind=data["kind"],
            count=data.get("count"),
            rate=data.get("rate"),
            seconds=float(data.get("seconds", 0.0)),
            status=int(data.get("status", 503)),
            retry_after=data.get("retryAfter"),
            code=data.get("code"),
            body=data.get("body"),
            headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
        )


@dataclasses.dataclass
class FaultPlan:
    """The active rules of one emulator and the seeded generator that drives rate rules."""

    seed: int = 0
    rules: list[FaultRule] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._held: list[asyncio.Future[bool]] = []
        self.holds = 0  # requests a hold rule ever caught (a test waits for this to grow)

    @property
    def holding(self) -> int:
        """Requests held right now."""
        return sum(1 for f in self._held if not f.done())

    async def hold(self) -> bool:
        """Wait until released; True to serve the request, False to drop it."""
        waiter = asyncio.get_running_loop().create_future()
        self._held.append(waiter)
        self.holds += 1
        try:
            return bool(await waiter)
        finally:
            self._held.remove(waiter)

    def release(self, *, serve: bool = True) -> int:
        """Let every held request go on (``serve``) or drop them; how many were held."""
        waiting = [f for f in self._held if not f.done()]
        for waiter in waiting:
            waiter.set_result(serve)
        return len(waiting)

    def reset(self, seed: int | None = None) -> None:
        self.release(serve=False)
        self.rules.clear()
        if seed is not None:
            self.seed = seed
        self._random = random.Random(self.seed)

    def add(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def pick(self, operation: str) -> FaultRule | None:
        """The rule that fires for this request, consuming one count; None when none fires."""
        for rule in self.rules:
            if rule.operation not in ("*", operation):
                continue
            if rule.count is not None:
                if rule.count <= 0:
                    continue
                rule.count -= 1
                return rule
            if rule.rate is not None and self._random.random() < rule.rate:
                return rule
        return None
