"""Leading: one replica works, the others stand by, on a ``coordination.k8s.io/v1`` Lease.

``rotator run --leader-elect`` (the chart's default) runs :func:`lead`: it serves the health
endpoint at once, waits for the Lease (:class:`Elector`, decisions in
:mod:`rotator.core.leadership`), and only then starts the work (kopf, standalone). While
leading it renews every retry period; a holder that cannot renew within the renew deadline
(cut off from the API server, or the Lease taken over) **exits the process at once**: kopf is
not asked to wind down, because a graceful stop could still write to status or the clouds
while another replica already works. The pod restarts and stands by. On a clean stop (SIGTERM)
the leader releases the Lease, so a standby takes over without waiting for it to expire.

What a standby looks like: a log line and a ``StandingBy`` event on the Lease, the gauge
``rotator_leader`` at 0, and a live health endpoint (both replicas are live and ready: being
a standby is healthy). The leader posts ``BecameLeader``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import os
import socket
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final, NoReturn, Protocol

from aiohttp import web

from rotator import metrics
from rotator.core import leadership

logger = logging.getLogger(__name__)

GROUP: Final = "coordination.k8s.io"
VERSION: Final = "v1"
PLURAL: Final = "leases"


class Conflict(Exception):
    """Someone else wrote the Lease first (HTTP 409): read it again."""


@dataclasses.dataclass(frozen=True)
class Record:
    """A Lease as read: what decisions need, its uid (for events), and the raw object."""

    lease: leadership.Lease | None
    uid: str | None = None
    raw: dict[str, Any] | None = None


class Leases(Protocol):
    """The Lease API: read, create, replace (optimistic, by resourceVersion), post an event."""

    async def read(self) -> Record: ...

    async def write(self, previous: Record, spec: dict[str, Any]) -> Record: ...

    def event(self, record: Record, reason: str, message: str) -> None: ...


def _micro_time(now: dt.datetime) -> str:
    # MicroTime wants exactly six fractional digits and a Z.
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(raw: dict[str, Any]) -> leadership.Lease:
    spec = raw.get("spec") or {}
    return leadership.Lease(
        holder=spec.get("holderIdentity") or None,
        duration=dt.timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0)),
        transitions=int(spec.get("leaseTransitions") or 0),
        version=str((raw.get("metadata") or {}).get("resourceVersion") or ""),
    )


def _record(raw: object) -> Record:
    if not isinstance(raw, dict):
        raise TypeError("the API server answered a Lease request with something else")
    return Record(_parse(raw), str((raw.get("metadata") or {}).get("uid") or ""), raw)


class KubernetesLeases:
    """:class:`Leases` through the official client in worker threads, each call time-bounded."""

    def __init__(self, namespace: str, name: str, *, timeout: float) -> None:
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        self._custom = kubernetes.client.CustomObjectsApi()
        self._core = kubernetes.client.CoreV1Api()
        self._api_exception = kubernetes.client.exceptions.ApiException
        self._event_model = kubernetes.client.CoreV1Event
        self.namespace, self.name, self._timeout = namespace, name, timeout

    async def read(self) -> Record:
        try:
            raw = await asyncio.to_thread(
                self._custom.get_namespaced_custom_object,
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                _request_timeout=self._timeout,
            )
        except self._api_exception as exc:
            if getattr(exc, "status", None) == 404:
                return Record(None)
            raise
        return _record(raw)

    async def write(self, previous: Record, spec: dict[str, Any]) -> Record:
        try:
            if previous.raw is None:
                body = {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": spec,
                }
                raw = await asyncio.to_thread(
                    self._custom.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    body,
                    _request_timeout=self._timeout,
                )
            else:
                # resourceVersion makes the replace conditional: a concurrent writer wins, we 409.
                body = {**previous.raw, "spec": {**(previous.raw.get("spec") or {}), **spec}}
                raw = await asyncio.to_thread(
                    self._custom.replace_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    self.name,
                    body,
                    _request_timeout=self._timeout,
                )
        except self._api_exception as exc:
            if getattr(exc, "status", None) in (409, 422):
                raise Conflict(str(getattr(exc, "reason", "conflict"))) from None
            raise
        return _record(raw)

    def event(self, record: Record, reason: str, message: str) -> None:
        """A Normal event on the Lease (best effort, in the background: never blocks election)."""
        now = dt.datetime.now(dt.UTC)
        body = self._event_model(
            metadata={"generateName": f"{self.name}.", "namespace": self.namespace},
            involved_object={
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Lease",
                "name": self.name,
                "namespace": self.namespace,
                "uid": record.uid or None,
            },
            reason=reason,
            message=message,
            type="Normal",
            source={"component": "rotator"},
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )

        def post() -> None:
            try:
                self._core.create_namespaced_event(
                    self.namespace, body, _request_timeout=self._timeout
                )
            except Exception as exc:  # an event is never worth failing an election for
                logger.warning("could not post event %s on the Lease: %s", reason, exc)

        asyncio.get_running_loop().run_in_executor(None, post)


def identity() -> str:
    """This replica's name in the Lease: the pod name plus a random part, unique per process."""
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Elector:
    """Acquire and keep the Lease for ``me``."""

    def __init__(
        self,
        leases: Leases,
        me: str,
        timing: leadership.Timing,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.leases, self.me, self.timing = leases, me, timing
        self._clock, self._wall, self._sleep = clock, wall, sleep
        self._seen: leadership.Seen | None = None
        self._record = Record(None)
        self.renewed_at: float | None = None
        self.leading = False

    def _spec(self, transitions: int, *, acquired: bool) -> dict[str, Any]:
        now = _micro_time(self._wall())
        spec: dict[str, Any] = {
            "holderIdentity": self.me,
            "leaseDurationSeconds": int(self.timing.lease_duration.total_seconds()),
            "leaseTransitions": transitions,
            "renewTime": now,
        }
        if acquired:
            spec["acquireTime"] = now
        return spec

    async def _try(self) -> leadership.Decision:
        """One round: read, decide, write. Returns what was decided (Wait: not leading)."""
        started = self._clock()
        self._record = await self.leases.read()
        self._seen = leadership.observe(self._seen, self._record.lease, started)
        decision = leadership.decide(self.me, self._seen, started, self.timing)
        match decision:
            case leadership.Create():
                spec = self._spec(0, acquired=True)
            case leadership.Take(transitions=transitions):
                spec = self._spec(transitions, acquired=True)
            case leadership.Renew():
                assert self._record.lease is not None
                spec = self._spec(self._record.lease.transitions, acquired=False)
            case _:
                return decision
        self._record = await self.leases.write(self._record, spec)
        # Our own write starts the clock: the time we measure from is before the write went
        # out, so we never believe we hold the Lease longer than the API server does.
        self.renewed_at = started
        self._seen = leadership.observe(self._seen, self._record.lease, started)
        return decision

    async def acquire(self) -> None:
        """Return once this replica holds the Lease; stand by (and say so) until then."""
        metrics.LEADER.set(0)
        announced: str | None = None
        while True:
            try:
                decision = await self._try()
            except Conflict:
                decision = leadership.Wait("", 0.0)
            except Exception as exc:  # API server unreachable: keep standing by
                logger.warning("leader election: cannot read the Lease (%s)", type(exc).__name__)
                decision = leadership.Wait("", self.timing.retry_period.total_seconds())
            if not isinstance(decision, leadership.Wait):
                self.leading = True
                metrics.LEADER.set(1)
                previous = decision.previous if isinstance(decision, leadership.Take) else None
                logger.info(
                    "leader election: %s became leader%s",
                    self.me,
                    f" (took over from {previous})" if previous else "",
                )
                self.leases.event(self._record, "BecameLeader", f"{self.me} became leader")
                return
            if decision.holder and decision.holder != announced:
                announced = decision.holder
                logger.info(
                    "leader election: %s is standing by; %s leads", self.me, decision.holder
                )
                self.leases.event(
                    self._record,
                    "StandingBy",
                    f"{self.me} is standing by; {decision.holder} leads",
                )
            await self._sleep(max(decision.seconds, 0.05))

    async def keep(self) -> str:
        """Renew every retry period while leading; return why leadership was lost."""
        while True:
            await self._sleep(self.timing.retry_period.total_seconds())
            assert self.renewed_at is not None
            remaining = self.renewed_at + self.timing.renew_deadline.total_seconds()
            try:
                decision = await asyncio.wait_for(
                    self._try(), timeout=max(remaining - self._clock(), 0.001)
                )
            except (TimeoutError, Conflict, Exception) as exc:
                logger.warning("leader election: renewal failed (%s)", type(exc).__name__)
            else:
                if isinstance(decision, leadership.Wait):
                    return f"{decision.holder} holds the Lease now"
            if not leadership.still_leading(self.renewed_at, self._clock(), self.timing):
                return f"could not renew the Lease within {self.timing.renew_deadline}"

    async def release(self) -> None:
        """On a clean stop: give the Lease up so a standby takes over at once."""
        lease = self._record.lease
        if lease is None or lease.holder != self.me:
            return
        with contextlib.suppress(Exception):
            await self.leases.write(
                self._record,
                {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": None},
            )
            logger.info("leader election: %s released the Lease", self.me)


async def serve_health(
    url: str | None, leading: Callable[[], bool] = lambda: False
) -> web.AppRunner | None:
    """Serve ``GET <path>`` → 200 at the liveness URL for the whole life of the process.

    Answering proves the event loop runs; a standby is as healthy as the leader (the body
    says which it is).
    """
    if not url:
        return None
    parsed = urllib.parse.urlsplit(url)

    async def healthy(_: web.Request) -> web.Response:
        return web.json_response({"leader": leading()})

    app = web.Application()
    app.router.add_get(parsed.path or "/", healthy)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, parsed.hostname or "0.0.0.0", parsed.port or 80).start()  # noqa: S104
    return runner


def _exit_now(code: int) -> NoReturn:
    logging.shutdown()
    os._exit(code)


async def lead(
    elector: Elector,
    work: Callable[[asyncio.Event], Awaitable[None]],
    *,
    health: str | None,
    exit_now: Callable[[int], NoReturn] = _exit_now,
) -> None:
    """Stand by until leading, then run ``work(stop_flag)`` while the Lease is kept."""
    runner = await serve_health(health, lambda: elector.leading)
    try:
        await elector.acquire()
        stop = asyncio.Event()
        working = asyncio.ensure_future(work(stop))
        keeping = asyncio.ensure_future(elector.keep())
        await asyncio.wait({working, keeping}, return_when=asyncio.FIRST_COMPLETED)
        if keeping.done():
            elector.leading = False
            metrics.LEADER.set(0)
            logger.error("leader election: lost leadership (%s); exiting now", keeping.result())
            exit_now(1)
        keeping.cancel()
        await elector.release()
        elector.leading = False
        metrics.LEADER.set(0)
        working.result()
    finally:
        if runner is not None:
            await runner.cleanup()
