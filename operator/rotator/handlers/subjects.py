"""The ServicePrincipalSecret being reconciled: parsed spec, current status, and how to save it.

A :class:`Subject` is built from a fresh read of the object at the start of every reconcile
(the API server is the single record; kopf's cached body may lag behind our own status writes)
and is the only way the handlers write status: :meth:`Subject.save` renders the conditions,
diffs against what the server holds and sends only the changed top-level keys. When the spec
or the status cannot be parsed there is no Subject: :func:`stall_invalid_spec` and
:func:`stall_unreadable` write the Stalled condition alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from rotator.clouds import graph
from rotator.core import conditions, errors, models, readiness, reasons
from rotator.handlers import ports, reporting, runtime, waking

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Subject:
    """One ServicePrincipalSecret during one reconcile."""

    body: Mapping[str, Any]
    meta: models.ResourceMeta
    spec: models.ServicePrincipalSecretSpec
    status: models.ServicePrincipalSecretStatus
    rt: runtime.Runtime
    written: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: A stall this pass upholds (no new rotation until the user changes something): every
    #: write keeps it, so Stalled does not flap off and on within one pass.
    holding: conditions.Signal | None = None

    @classmethod
    def parse(
        cls,
        body: Mapping[str, Any],
        rt: runtime.Runtime,
        spec: models.ServicePrincipalSecretSpec,
        status: models.ServicePrincipalSecretStatus,
    ) -> Subject:
        return cls(
            body=body,
            meta=models.ResourceMeta.from_body(body),
            spec=spec,
            status=status,
            rt=rt,
            written=dict(body.get("status") or {}),
        )

    @property
    def namespace(self) -> str:
        return self.meta.namespace or ""

    @property
    def name(self) -> str:
        return self.meta.name

    @property
    def key(self) -> str:
        return waking.key(self.meta.namespace, self.meta.name)

    @property
    def memory(self) -> runtime.Memory:
        return self.rt.memory(self.key)

    @property
    def tenant(self) -> str:
        return self.spec.tenant_id

    @property
    def app(self) -> graph.AppRef:
        app = self.spec.application
        return graph.AppRef(client_id=app.client_id, object_id=app.object_id)

    @property
    def owner(self) -> graph.Owner:
        return self.spec.application.credential_owner

    async def save(
        self,
        status: models.ServicePrincipalSecretStatus,
        *,
        reconciling: conditions.Signal | None = None,
        stalled: conditions.Signal | None = None,
    ) -> None:
        """Write ``status`` (with conditions rendered) if anything changed; keep it as current."""
        rendered = readiness.render(
            status,
            self.spec,
            generation=self.meta.generation,
            now=self.rt.clock.now(),
            reconciling=reconciling,
            stalled=stalled if stalled is not None else self.holding,
        )
        patch = readiness.diff_patch(self.written, rendered.to_patch())
        self.status = rendered
        if not patch:
            return
        await self.rt.status.patch_status(self.namespace, self.name, patch)
        for name, value in patch.items():
            if value is None:
                self.written.pop(name, None)
            else:
                self.written[name] = value

    def event(self, type_: ports.EventType, reason: str, message: str) -> None:
        """A Kubernetes event about this object (and the same line in the log)."""
        reporting.post(self.rt.events, self.body, self.key, type_, reason, message)


# --- Writing status when there is no Subject: the spec or the status cannot be parsed ---------


async def stall_invalid_spec(
    rt: runtime.Runtime,
    body: Mapping[str, Any],
    meta: models.ResourceMeta,
    status: models.ServicePrincipalSecretStatus,
    exc: errors.SpecError,
) -> None:
    """Stalled with InvalidSpec: the spec cannot be parsed, so nothing else is decided."""
    await _write_without_spec(
        rt, body, meta, status, conditions.Signal(reasons.INVALID_SPEC, exc.message)
    )


async def stall_unreadable(
    rt: runtime.Runtime,
    body: Mapping[str, Any],
    meta: models.ResourceMeta,
    exc: errors.PermanentError,
) -> None:
    """Stalled with InvalidStatus: the status cannot be parsed."""
    # The status cannot be parsed, so only conditions are written (a fresh list).
    await _write_without_spec(
        rt,
        body,
        meta,
        models.ServicePrincipalSecretStatus(),
        conditions.Signal(reasons.INVALID_STATUS, exc.message),
        only_conditions=True,
    )


async def _write_without_spec(
    rt: runtime.Runtime,
    body: Mapping[str, Any],
    meta: models.ResourceMeta,
    status: models.ServicePrincipalSecretStatus,
    signal: conditions.Signal,
    *,
    only_conditions: bool = False,
) -> None:
    rendered = readiness.render(
        status, None, generation=meta.generation, now=rt.clock.now(), stalled=signal
    )
    written = dict(body.get("status") or {})
    full = rendered.to_patch()
    if only_conditions:
        full = {"conditions": full["conditions"], "observedGeneration": meta.generation}
    patch = readiness.diff_patch(written, full)
    previous = conditions.find(status.conditions, conditions.STALLED)
    if patch:
        await rt.status.patch_status(meta.namespace or "", meta.name, patch)
    if previous is None or previous.message != signal.message:
        logger.warning("%s/%s: %s: %s", meta.namespace, meta.name, signal.reason, signal.message)
        rt.events.post(body, "Warning", signal.reason, signal.message)
