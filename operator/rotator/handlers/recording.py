"""A binding's record: its identity in the runtime, its status writes, events and failures.

A :class:`Pass` is the binding being reconciled, built from a fresh read at the start of every
pass (:mod:`rotator.handlers.binding`); it is the only way the binding's handlers write status:
:meth:`Pass.save` renders the conditions and patches only the keys that changed. :func:`stall`
and :func:`failed` are the failure bookkeeping: a permanent failure stalls (retried once per
drift-check interval, since the fix may happen in Databricks or Key Vault, not in the spec), a
transient one backs off; both follow the event policy every kind shares
(:mod:`rotator.core.conditions`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, Final

from rotator import metrics
from rotator.core import conditions, errors, models, readiness, schedule
from rotator.handlers import ports, reporting, runtime, waking

logger = logging.getLogger(__name__)


#: Per-object keys of bindings in the shared runtime (wakers, memory) must never equal a
#: ServicePrincipalSecret's ``namespace/name``; ":" cannot occur in an object name.
_KEY_PREFIX: Final = "dsb:"


def binding_key(namespace: str | None, name: str) -> str:
    """The runtime key (wakers, memory) of one binding."""
    return waking.key(namespace, _KEY_PREFIX + name)


@dataclasses.dataclass
class Pass:
    """The binding being reconciled, and how to save its status and post its events."""

    rt: runtime.Runtime
    io: ports.BindingPorts
    body: Mapping[str, Any]
    meta: models.ResourceMeta
    status: models.DatabricksSecretBindingStatus

    @property
    def namespace(self) -> str:
        return self.meta.namespace or ""

    @property
    def key(self) -> str:
        return binding_key(self.meta.namespace, self.meta.name)

    async def save(
        self,
        status: models.DatabricksSecretBindingStatus,
        *,
        ready: bool,
        signal: conditions.Signal,
        reconciling: conditions.Signal | None = None,
        stalled: conditions.Signal | None = None,
    ) -> None:
        """Render conditions and patch only what changed (an idle pass writes nothing)."""
        now = self.rt.clock.now()
        rendered = conditions.render(
            status.conditions,
            ready=ready,
            signal=signal,
            generation=self.meta.generation,
            now=now,
            reconciling=reconciling,
            stalled=stalled,
        )
        new = status.model_copy(
            update={"conditions": rendered, "observed_generation": self.meta.generation}
        )
        patch = readiness.diff_patch(self.status.to_dict(), new.to_patch())
        if patch:
            await self.io.bindings.patch_status(self.namespace, self.meta.name, patch)
        self.status = new

    def event(self, type_: ports.EventType, reason: str, message: str) -> None:
        """A Kubernetes event about this binding (and the same line in the log)."""
        reporting.post(self.rt.events, self.body, self.key, type_, reason, message)


async def stall(p: Pass, exc: errors.PermanentError) -> None:
    """Stalled with the error's reason; a Warning event when newly stalled for it."""
    signal = conditions.Signal(exc.reason, exc.message)
    if conditions.newly_stalled(p.status.conditions, exc.reason, exc.message):
        p.event("Warning", exc.reason, exc.message)
    await p.save(p.status, ready=False, signal=signal, stalled=signal)


async def failed(p: Pass, exc: errors.RotatorError) -> float | None:
    """Record a failure: transient ones retry with backoff, permanent ones stall (and are
    retried rarely, since a fix may happen in Databricks or Key Vault, not in the spec)."""
    rt = p.rt
    now = rt.clock.now()
    # Also counted in memory, so the backoff does not depend on reading our own status write
    # back (a restart starts the backoff over, which is harmless).
    memory = rt.memory(p.key)
    memory.failures += 1
    failures = memory.failures
    status = p.status.model_copy(
        update={"failures": failures, "last_error": exc.message, "last_failure_time": now}
    )
    reason = exc.reason
    signal = conditions.Signal(reason, exc.message)
    permanent = isinstance(exc, errors.PermanentError)
    metrics.FAILURES.labels(reason=reason, kind="permanent" if permanent else "transient").inc()
    if permanent:
        if conditions.newly_stalled(p.status.conditions, reason, exc.message):
            p.event("Warning", reason, exc.message)
        await p.save(status, ready=False, signal=signal, stalled=signal)
        delay = rt.config.drift_check_interval.total_seconds()
    else:
        if conditions.streak_begins(failures):
            p.event("Warning", reason, exc.message)
        await p.save(status, ready=False, signal=signal, reconciling=signal)
        delay = schedule.backoff_delay(failures, errors.retry_after(exc), key=p.key)
    memory.retry_at = now + dt.timedelta(seconds=delay)
    logger.warning("binding %s/%s: %s (retry in %.0fs)", p.namespace, p.meta.name, reason, delay)
    return delay


# --- the daemon and its wake-ups ----------------------------------------------------------------
