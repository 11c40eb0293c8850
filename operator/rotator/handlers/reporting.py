"""What people see, written: status patches and Kubernetes events.

* :class:`KubernetesStatusWriter` patches ``status`` (a JSON merge patch on the ``/status``
  subresource) through the official client in a worker thread, so the event loop never
  blocks. The operator never writes ``spec``.
* :class:`KopfEvents` posts events through kopf's queue (non-blocking).

What the conditions say, and which keys a patch carries, is decided in the core
(:mod:`rotator.core.readiness`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, cast

from rotator.core import kinds
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


def post(
    events: ports.Events,
    body: Mapping[str, Any],
    key: str,
    type_: ports.EventType,
    reason: str,
    message: str,
) -> None:
    """Post an event about object ``key`` and log the same line; never fail the caller.

    The one way both kinds post events. Whether a failure is worth one at all is the event
    policy in :mod:`rotator.core.conditions` (``newly_stalled``, ``streak_begins``).
    """
    level = logging.WARNING if type_ == "Warning" else logging.INFO
    logger.log(level, "%s: %s: %s", key, reason, message)
    try:
        events.post(body, type_, reason, message)
    except Exception:  # an event is never worth failing a rotation or a sync for
        logger.exception("could not post event %s for %s", reason, key)
