"""What people see: status patches, Kubernetes events, and the Ready/Reconciling/Stalled story.

* :class:`KubernetesStatusWriter` patches ``status`` (a JSON merge patch on the ``/status``
  subresource) through the official client in a worker thread, so the event loop never
  blocks. The operator never writes ``spec``.
* :class:`KopfEvents` posts events through kopf's queue (non-blocking).
* :func:`conditions_for` turns what happened into kstatus conditions with a reason from
  :mod:`rotator.core.reasons`; the same reason is the event's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any, cast

from rotator.core import conditions, kinds, models, reasons, triggers
from rotator.handlers import ports

logger = logging.getLogger(__name__)


class KubernetesStatusWriter:
    """:class:`ports.StatusWriter` on the Kubernetes client (kubeconfig or in-cluster)."""

    def __init__(self, plural: str = kinds.SPS) -> None:
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        self._api = kubernetes.client.CustomObjectsApi()
        self._plural = plural
        self._not_found = kubernetes.client.exceptions.ApiException

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        await asyncio.to_thread(
            self._api.patch_namespaced_custom_object_status,
            kinds.GROUP,
            kinds.VERSION,
            namespace,
            self._plural,
            name,
            {"status": dict(patch)},
            _content_type="application/merge-patch+json",
        )

    async def read(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            found = await asyncio.to_thread(
                self._api.get_namespaced_custom_object,
                kinds.GROUP,
                kinds.VERSION,
                namespace,
                self._plural,
                name,
            )
        except self._not_found as exc:
            if getattr(exc, "status", None) == 404:
                return None
            raise
        return found if isinstance(found, Mapping) else None


class KopfEvents:
    """:class:`ports.Events` through ``kopf.event`` (needs a running operator)."""

    def post(
        self, body: Mapping[str, Any], type_: ports.EventType, reason: str, message: str
    ) -> None:
        import kopf

        kopf.event(cast(kopf.Body, body), type=type_, reason=reason, message=message)


def diff_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The top-level keys of a status merge patch that change ``old`` into ``new``.

    ``new`` is :meth:`ServicePrincipalSecretStatus.to_patch` (``None`` for absent fields);
    unchanged keys are left out so an idle reconcile writes nothing at all.
    """
    patch: dict[str, Any] = {}
    for name, value in new.items():
        if value is None:
            if old.get(name) is not None:
                patch[name] = None
        elif old.get(name) != value:
            patch[name] = value
    return patch


def ready_signal(
    status: models.ServicePrincipalSecretStatus,
    spec: models.ServicePrincipalSecretSpec | None,
    now: dt.datetime,
) -> tuple[bool, conditions.Signal]:
    """Whether consumers have a working secret, and why (for the Ready condition)."""
    current = status.current
    if current is None:
        return False, conditions.Signal(reasons.NEVER_ISSUED, "no secret has been issued yet")
    expires = models.format_time(current.expires_at)
    if now >= current.expires_at:
        return False, conditions.Signal(
            reasons.EXPIRED, f"secret {current.key_id} expired at {expires}"
        )
    if spec is not None and spec.suspend:
        return True, conditions.Signal(
            reasons.SUSPENDED,
            f"rotation is suspended; secret {current.key_id} is current, expires {expires}",
        )
    if spec is not None and triggers.at_risk(spec, status, now):
        return True, conditions.Signal(
            reasons.EXPIRING_WITHOUT_REPLACEMENT,
            f"secret {current.key_id} is current but expires {expires} and no verified "
            f"replacement is ready yet",
        )
    return True, conditions.Signal(
        reasons.ISSUED, f"secret {current.key_id} is current, expires {expires}"
    )


def render_conditions(
    status: models.ServicePrincipalSecretStatus,
    spec: models.ServicePrincipalSecretSpec | None,
    *,
    generation: int | None,
    now: dt.datetime,
    reconciling: conditions.Signal | None = None,
    stalled: conditions.Signal | None = None,
) -> models.ServicePrincipalSecretStatus:
    """``status`` with Ready/Reconciling/Stalled rendered and observedGeneration set.

    A rotation in flight is always Reconciling (reason Rotating) unless a stall says more.
    """
    ready, signal = ready_signal(status, spec, now)
    if reconciling is None and stalled is None and status.rotation is not None:
        reconciling = conditions.Signal(
            reasons.ROTATING,
            f"rotation {status.rotation.id} ({status.rotation.reason}) is at "
            f"{status.rotation.step}/{status.rotation.phase}",
        )
    if spec is not None and spec.suspend and stalled is None:
        reconciling = None
    rendered = conditions.render(
        status.conditions,
        ready=ready,
        signal=signal,
        generation=generation,
        now=now,
        reconciling=reconciling,
        stalled=stalled,
    )
    return status.model_copy(update={"conditions": rendered, "observed_generation": generation})
