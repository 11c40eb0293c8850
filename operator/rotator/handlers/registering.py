"""The kopf shell: start-up and clean-up, indices, the per-object daemon, wake-ups, deletion.

Importing this module registers every handler with kopf's default registry: the
ServicePrincipalSecret handlers defined here, and every other handler module, imported
statically below (:data:`HANDLER_MODULES`: one line per kind of sink). Everything here stops at
the kopf signature: typed values go into the handler modules, ``**kwargs`` stays here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Final

import kopf

from rotator import metrics
from rotator import settings as operator_settings
from rotator.clouds import graph, identity, keyvault
from rotator.clouds import settings as cloud_settings
from rotator.core import clocks, errors, kinds, models
from rotator.handlers import (
    apisession,
    binding,
    consuming,
    deleting,
    limiting,
    policing,
    reconciling,
    reporting,
    runtime,
    waking,
    wiring,
)

logger = logging.getLogger(__name__)

#: Every module with kopf handlers besides this one, imported above (and so registered).
HANDLER_MODULES: Final[tuple[ModuleType, ...]] = (
    consuming,  # the consumers index and its wake-ups, shared by every sink kind
    binding,  # DatabricksSecretBinding: a sink
)


def register() -> tuple[ModuleType, ...]:
    """The handler modules registered with kopf (importing this module registered them)."""
    return HANDLER_MODULES


# --- Start-up and clean-up ------------------------------------------------------------------


def build_runtime(
    config: operator_settings.OperatorConfig,
    cloud: cloud_settings.CloudSettings,
    indices: Mapping[str, Any],
) -> tuple[runtime.Runtime, list[Any]]:
    """The production runtime, and what to close at exit."""
    credential = identity.async_credential(cloud)
    graph_adapter = graph.GraphAdapter(credential, cloud)
    vault_adapter = keyvault.KeyVaultAdapter(credential, cloud)
    rt = runtime.Runtime(
        config=config,
        cloud=cloud,
        graph=wiring.CountedGraph(graph_adapter),
        vault=wiring.CountedVault(vault_adapter),
        verifier=wiring.EntraVerifier(cloud),
        status=reporting.KubernetesStatusWriter(),
        events=reporting.KopfEvents(),
        limits=limiting.Limits(
            max_concurrent_rotations=config.max_concurrent_rotations,
            graph_writes_per_second=config.graph_writes_per_second,
        ),
        police=policing.from_indices(
            config.enforce_policies,
            indices[kinds.POLICY_INDEX],
            indices[kinds.NAMESPACE_INDEX],
        ),
        clock=clocks.SystemClock(),
        consumers_of=consuming.reader(indices[kinds.CONSUMERS_INDEX]),
        accounted_elsewhere=_accounting_reader(indices[kinds.SECRETS_INDEX]),
    )
    return rt, [graph_adapter.close, vault_adapter.close, credential.close]


@kopf.on.startup()
async def startup(
    settings: kopf.OperatorSettings,
    memo: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **kwargs: Any,
) -> None:
    """Apply our kopf settings and build the runtime (adapters, limits, indices, clock)."""
    config: operator_settings.OperatorConfig = memo["config"]
    cloud: cloud_settings.CloudSettings = memo["cloud"]
    operator_settings.configure_kopf(settings, config)
    # asyncio.to_thread (Kubernetes client, Databricks SDK) uses the loop's default executor:
    # bound it like kopf's own, so sync work cannot grow threads without limit.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix="rotator-sync"
        )
    )
    rt, closers = build_runtime(config, cloud, kwargs)
    memo["runtime"] = rt
    metrics.track_sizes(rt.sizes)
    memo["closers"] = closers
    logger.info(
        "rotator started: policies %s, at most %d concurrent rotations, %.1f Graph writes/s "
        "per tenant, drift check every %s",
        "enforced" if config.enforce_policies else "NOT enforced",
        config.max_concurrent_rotations,
        config.graph_writes_per_second,
        config.drift_check_interval,
    )


@kopf.on.login()
async def login(
    settings: kopf.OperatorSettings,
    memo: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> kopf.AiohttpSession | None:
    """kopf's default login, on a session with a bounded number of API connections.

    kopf's own session opens a connection per concurrent request without limit: ~380 TLS
    connections, and ~90 MiB the process never gave back, for a burst of 500 objects.
    """
    config = memo.get("config")
    limit = config.api_connections if isinstance(config, operator_settings.OperatorConfig) else 20
    return await apisession.login(logger=logger, settings=settings, max_requests=limit)


@kopf.on.cleanup()
async def cleanup(memo: Any, **_: Any) -> None:
    """Close the cloud clients."""
    for close in memo.get("closers", ()):
        await close()


def _runtime(memo: Any) -> runtime.Runtime:
    rt = memo.get("runtime")
    if not isinstance(rt, runtime.Runtime):
        raise kopf.TemporaryError("the operator is still starting", delay=1)
    return rt


# --- Indices: what handlers need to know about other objects, without API reads -------------


@kopf.index(kinds.GROUP, kinds.VERSION, kinds.RPOL, id=kinds.POLICY_INDEX)
def rotator_policies(name: str, body: kopf.Body, **_: Any) -> dict[str, Any]:
    """RotationPolicies by name (parsed; None when invalid: an invalid policy grants nothing)."""
    return policing.policy_entry(name, body)


@kopf.index("", "v1", "namespaces", id=kinds.NAMESPACE_INDEX)
def rotator_namespace_labels(name: str, labels: kopf.Labels, **_: Any) -> dict[str, Any]:
    """Namespace labels by namespace, for namespaceSelector."""
    return policing.namespace_entry(name, labels)


def secret_entry(
    namespace: str | None, name: str, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    """The index entry of one sps: (tenant, app) -> (its key, keyIds and displayNames it owns)."""
    tenant = str(spec.get("tenantId") or "").lower()
    app = spec.get("application") or {}
    app_id = str(app.get("clientId") or app.get("objectId") or "").lower()
    if not tenant or not app_id:
        return {}
    owned: set[str] = set()
    for record in (status.get("current"), status.get("rotation"), *(status.get("retiring") or ())):
        if isinstance(record, Mapping):
            owned.update(str(record[k]) for k in ("keyId", "displayName") if record.get(k))
    return {(tenant, app_id): (waking.key(namespace, name), frozenset(owned))}


@kopf.index(kinds.GROUP, kinds.VERSION, kinds.SPS, id=kinds.SECRETS_INDEX)
def rotator_secrets(
    namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, **_: Any
) -> dict[tuple[str, str], tuple[str, frozenset[str]]]:
    """Which credentials each ServicePrincipalSecret accounts for, by (tenant, application)."""
    return secret_entry(namespace, name, spec, status)


def _accounting_reader(index: Any) -> Any:
    def read(tenant: str, app: str, obj: str) -> frozenset[str]:
        owned: set[str] = set()
        for other, ids in index.get((tenant.lower(), app.lower()), ()):
            if other != obj:
                owned.update(ids)
        return frozenset(owned)

    return read


# --- The per-object daemon and its wake-ups -------------------------------------------------
# The event handlers are async on purpose: kopf runs sync handlers in a thread pool, and an
# asyncio.Event must be set from the loop's own thread.


@kopf.daemon(kinds.GROUP, kinds.VERSION, kinds.SPS, id="lifecycle", cancellation_timeout=10.0)
async def lifecycle(
    stopped: kopf.DaemonStopped, namespace: str | None, name: str, memo: Any, **_: Any
) -> None:
    """One long-lived loop per ServicePrincipalSecret (see :mod:`reconciling`)."""
    await reconciling.loop(_runtime(memo), namespace or "", name, stopped)


@kopf.on.event(kinds.GROUP, kinds.VERSION, kinds.SPS)
async def secret_changed(
    namespace: str | None, name: str, meta: kopf.Meta, type: str, memo: Any, **_: Any
) -> None:
    """A user changed the spec or the rotate annotation: wake its daemon; forget it when gone."""
    rt = memo.get("runtime")
    if isinstance(rt, runtime.Runtime):
        obj = waking.key(namespace, name)
        if type == "DELETED":
            # The delete handler forgot it already, but the finalizer's removal echoes back
            # here first and would leave an entry per deleted object behind.
            rt.forget(obj)
            metrics.forget(namespace or "", name)
            return
        fingerprint = (
            meta.get("generation"),
            (meta.get("annotations") or {}).get(models.ROTATE_ANNOTATION),
            bool(meta.get("deletionTimestamp")),
        )
        rt.wakers.wake_if_changed(obj, fingerprint)


@kopf.on.event(kinds.GROUP, kinds.VERSION, kinds.RPOL)
async def policy_changed(memo: Any, **_: Any) -> None:
    """A policy changed: every resource re-checks (a pure check; no cloud call if still denied)."""
    rt = memo.get("runtime")
    if isinstance(rt, runtime.Runtime):
        rt.wakers.wake_all()


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(memo: Any, **_: Any) -> None:
    """Namespace labels may select (or stop selecting) a policy."""
    rt = memo.get("runtime")
    if isinstance(rt, runtime.Runtime):
        rt.wakers.wake_all()


@kopf.on.delete(kinds.GROUP, kinds.VERSION, kinds.SPS, id="deletion-policy")
async def secret_deleted(
    namespace: str | None, name: str, body: kopf.Body, memo: Any, **_: Any
) -> None:
    """Apply deletionPolicy (Retain or Revoke) before the finalizer goes."""
    try:
        await deleting.delete(_runtime(memo), namespace or "", name, body)
    except errors.PermanentError as exc:
        raise kopf.PermanentError(exc.message) from None
    except errors.RotatorError as exc:
        delay = errors.retry_after(exc) or 10.0
        raise kopf.TemporaryError(exc.message, delay=delay) from None
