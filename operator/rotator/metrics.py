"""Prometheus metrics of the operator, in a registry of its own, and the HTTP server for them.

Labels are bounded vocabularies only: a result, a reason (a :mod:`rotator.core.reasons`
constant), a step, a service and operation name, and ``namespace``/``name`` of the resource
for the per-object expiry gauge (one series per ServicePrincipalSecret, removed when it is
deleted). Never a message, an id, a URL or anything derived from a secret.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Final

import prometheus_client
from prometheus_client import metrics_core

REGISTRY: Final = prometheus_client.CollectorRegistry(auto_describe=True)

ROTATIONS: Final = prometheus_client.Counter(
    "rotator_rotations_total",
    "Rotations finished, by result (succeeded, failed) and the reason they started or failed.",
    ["result", "reason"],
    registry=REGISTRY,
)
STEP_SECONDS: Final = prometheus_client.Histogram(
    "rotator_rotation_step_duration_seconds",
    "How long each rotation step took (Plan, Mint, Stage, Verify, Store, Promote).",
    ["step"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
SECONDS_UNTIL_EXPIRY: Final = prometheus_client.Gauge(
    "rotator_secret_seconds_until_expiry",
    "Seconds until the current secret of a ServicePrincipalSecret expires (negative: expired).",
    ["namespace", "name"],
    registry=REGISTRY,
)
EXPIRING_WITHOUT_REPLACEMENT: Final = prometheus_client.Gauge(
    "rotator_secret_expiring_without_replacement",
    "1 while the current secret of a ServicePrincipalSecret is within its expiry margin (or "
    "expired) and no verified replacement has been promoted; else 0.",
    ["namespace", "name"],
    registry=REGISTRY,
)
FAILURES: Final = prometheus_client.Counter(
    "rotator_failures_total",
    "Reconcile failures by reason and kind (transient: retried; permanent: Stalled).",
    ["reason", "kind"],
    registry=REGISTRY,
)
CLOUD_CALLS: Final = prometheus_client.Counter(
    "rotator_cloud_calls_total",
    "Calls to cloud APIs by service (graph, keyvault, entra, databricks), operation and outcome.",
    ["service", "operation", "outcome"],
    registry=REGISTRY,
)
REVOCATIONS: Final = prometheus_client.Counter(
    "rotator_revocations_total",
    "Graph credentials removed, by reason (Revoked, OrphanRemoved, Deleted).",
    ["reason"],
    registry=REGISTRY,
)
LEADER: Final = prometheus_client.Gauge(
    "rotator_leader",
    "1 while this replica holds the leader-election Lease (or runs standalone); 0 on standby.",
    registry=REGISTRY,
)
ROTATIONS_IN_FLIGHT: Final = prometheus_client.Gauge(
    "rotator_rotations_in_flight",
    "Rotations currently holding a slot of --max-concurrent-rotations.",
    registry=REGISTRY,
)

DRIFT_REPAIRED: Final = prometheus_client.Counter(
    "rotator_drift_repaired_total",
    "Out-of-band changes found by a drift check and undone, by what had drifted "
    "(databricks_scope_value: a binding's scope no longer held the source's value).",
    ["what"],
    registry=REGISTRY,
)


class _Sizes:
    """``rotator_tracked_objects{structure}``: entries the operator holds in memory, read live.

    Per-object memory, wake-ups, limiter entries per tenant and app, Databricks clients: each
    back to 0 once every object is gone. A number that only grows is a leak.
    """

    def __init__(self) -> None:
        self.source: Callable[[], Mapping[str, int]] | None = None

    def _family(self) -> metrics_core.GaugeMetricFamily:
        return metrics_core.GaugeMetricFamily(
            "rotator_tracked_objects",
            "Entries the operator holds in memory, per structure (0 when no object exists).",
            labels=["structure"],
        )

    def describe(self) -> Iterator[metrics_core.Metric]:
        yield self._family()

    def collect(self) -> Iterator[metrics_core.Metric]:
        family = self._family()
        try:
            sizes = dict(self.source()) if self.source else {}
        except RuntimeError:  # read from the scrape thread while the loop changed a map: skip
            sizes = {}
        for structure, size in sorted(sizes.items()):
            family.add_metric([structure], size)
        yield family


_SIZES: Final = _Sizes()
REGISTRY.register(_SIZES)


def track_sizes(source: Callable[[], Mapping[str, int]]) -> None:
    """Report ``source()`` (structure -> entries) as ``rotator_tracked_objects``."""
    _SIZES.source = source


def forget(namespace: str, name: str) -> None:
    """Drop the per-object series of a deleted resource (bounded cardinality over time)."""
    for gauge in (SECONDS_UNTIL_EXPIRY, EXPIRING_WITHOUT_REPLACEMENT):
        with contextlib.suppress(KeyError):
            gauge.remove(namespace, name)


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104  (a pod listens on all addresses)
    """Start the metrics HTTP server in a daemon thread (it never blocks the event loop)."""
    prometheus_client.start_http_server(port, addr=addr, registry=REGISTRY)
