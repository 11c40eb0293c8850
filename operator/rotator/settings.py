"""The operator's configuration: `rotator run` flags parsed into one frozen value, and kopf tuned.

:class:`OperatorConfig` is what the handlers read (limits, drift interval, policy enforcement);
:func:`configure_kopf` applies the deliberate kopf settings from it in the start-up handler:

* persistence under our own ``rotator.dev`` prefix: handler progress and the diff-base in
  annotations (``rotator.dev/...``), never in ``status``, because status is ours and has the
  designed shape of docs/design.md; the finalizer is ``rotator.dev/finalizer``;
* watch and request timeouts, so a silent API server connection is noticed and re-opened;
* the event level posted to Kubernetes, and a bounded thread pool for the few sync bits.

The cloud side (endpoints, CA bundle, the Azure identity) comes from the environment through
:meth:`rotator.clouds.settings.CloudSettings.from_env`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Final, Literal

import kopf

from rotator.core import durations, leadership, storms

#: Every annotation and the finalizer the operator writes start with this.
PREFIX: Final = "rotator.dev"
FINALIZER: Final = f"{PREFIX}/finalizer"
#: The kopf reporting component shown as the "source" of our Kubernetes events.
COMPONENT: Final = "rotator"

LogFormat = Literal["json", "text"]
EVENT_LEVELS: Final[dict[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    """Everything `rotator run` was told on its command line.

    namespaces / clusterwide    what kopf watches (exactly one of them is meaningful)
    standalone                  the only replica (no leader election)
    liveness                    kopf's liveness endpoint URL (``http://0.0.0.0:8080/healthz``)
    metrics_port                Prometheus port; 0 disables the metrics server
    event_level                 minimum level of kopf's own posted events
    watch_server_timeout        the API server closes a watch after this long (we re-open it)
    watch_client_timeout        we give up on a watch stream after this long without an end
    connect_timeout             TCP/TLS connect timeout to the API server
    request_timeout             a single API request (not a watch) times out after this
    max_concurrent_rotations    global bound on rotations in flight (a semaphore)
    graph_writes_per_second     per-tenant token bucket for addPassword/removePassword
    drift_check_interval        how often an idle resource looks at Graph and Key Vault
    enforce_policies            a RotationPolicy must allow each resource before any cloud call
    max_workers                 threads for the sync bits (Kubernetes client, Databricks SDK)
    api_connections             kopf's API requests holding a connection at once (watches apart)
    max_rotations_per_hour      rotations one object may start per hour (the storm limit)
    leader_elect                one working replica, elected on a coordination.k8s.io Lease
    leader_election_id          the Lease's name (the chart derives it from the release)
    leader_election_namespace   where the Lease lives (the operator's own namespace)
    lease_duration / renew_deadline / retry_period   the election's timing (client-go's)
    """

    namespaces: tuple[str, ...] = ()
    clusterwide: bool = False
    standalone: bool = True
    liveness: str | None = None
    metrics_port: int = 9090
    log_level: str = "INFO"
    log_format: LogFormat = "text"
    event_level: str = "info"
    watch_server_timeout: int = 300
    watch_client_timeout: float = 330.0
    connect_timeout: float = 30.0
    request_timeout: float = 60.0
    max_concurrent_rotations: int = 8
    graph_writes_per_second: float = 2.0
    drift_check_interval: dt.timedelta = dt.timedelta(hours=1)
    enforce_policies: bool = True
    max_workers: int = 8
    api_connections: int = 20
    max_rotations_per_hour: int = storms.DEFAULT_LIMIT
    leader_elect: bool = False
    leader_election_id: str = "rotator-leader"
    leader_election_namespace: str = "default"
    lease_duration: dt.timedelta = dt.timedelta(seconds=15)
    renew_deadline: dt.timedelta = dt.timedelta(seconds=10)
    retry_period: dt.timedelta = dt.timedelta(seconds=2)

    def election_timing(self) -> leadership.Timing:
        """The leader election's timing (raises ValueError when it cannot work)."""
        return leadership.Timing(self.lease_duration, self.renew_deadline, self.retry_period)

    def __post_init__(self) -> None:
        # Refuse nonsense at start-up, with the flag's name, rather than misbehave later.
        if self.clusterwide and self.namespaces:
            raise ValueError("use either --all-namespaces or --namespace, not both")
        if not self.clusterwide and not self.namespaces:
            raise ValueError("say what to watch: --all-namespaces or --namespace NAME")
        if self.standalone == self.leader_elect:
            raise ValueError("use either --standalone or --leader-elect")
        if self.leader_elect:
            try:
                self.election_timing()
            except ValueError as exc:
                raise ValueError(f"--leader-election-*: {exc}") from None
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"--log-level must be one of {', '.join(LOG_LEVELS)}")
        if self.event_level not in EVENT_LEVELS:
            raise ValueError(f"--event-level must be one of {', '.join(EVENT_LEVELS)}")
        if not 0 <= self.metrics_port <= 65535:
            raise ValueError("--metrics-port must be 0 (off) or a TCP port")
        if self.max_concurrent_rotations < 1:
            raise ValueError("--max-concurrent-rotations must be at least 1")
        if self.graph_writes_per_second <= 0:
            raise ValueError("--graph-writes-per-second must be positive")
        if self.max_workers < 1:
            raise ValueError("--max-workers must be at least 1")
        if self.api_connections < 1:
            raise ValueError("--api-connections must be at least 1")
        if not 1 <= self.max_rotations_per_hour <= storms.MAX_LIMIT:
            raise ValueError(f"--max-rotations-per-hour must be 1 to {storms.MAX_LIMIT}")
        for name in ("watch_server_timeout", "watch_client_timeout", "connect_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if self.request_timeout <= 0:
            raise ValueError("--request-timeout must be positive")
        if self.watch_client_timeout <= self.watch_server_timeout:
            # Otherwise we would cut every healthy watch before the server ends it cleanly.
            raise ValueError("--watch-client-timeout must be longer than --watch-server-timeout")


def parse_interval(text: str) -> dt.timedelta:
    """A flag's duration (``1h``, ``30m``) in the same grammar as specs."""
    return durations.parse_duration(text)


def configure_kopf(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """Apply ``config`` to kopf's ``settings`` (called from our start-up handler)."""
    # Persistence: everything kopf keeps about an object lives in rotator.dev annotations, so
    # status stays in the designed shape and two operators (kopf's default prefix) never mix.
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX, v1=False)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX,
        key="last-handled-configuration",
        v1=False,
        # status is ours and changes on every step; it must not look like a spec change.
        ignored_fields=["status"],
    )

    # Events: ours are posted explicitly with documented reasons; kopf's own handler chatter
    # is posted only from this level up.
    settings.posting.level = EVENT_LEVELS[config.event_level]
    settings.posting.reporting_component = COMPONENT

    # Watches: the server ends each watch after server_timeout (kopf re-opens it); the client
    # gives up on a stream that never ends, so a half-open connection cannot hide events.
    # The API server parses timeoutSeconds as an integer: "300.0" is a 400 Bad Request.
    settings.watching.server_timeout = int(config.watch_server_timeout)
    settings.watching.client_timeout = config.watch_client_timeout
    settings.watching.connect_timeout = config.connect_timeout
    settings.networking.request_timeout = config.request_timeout
    settings.networking.connect_timeout = config.connect_timeout
    # The API server's own Retry-After (priority and fairness) is honoured, not guessed.
    settings.networking.enforce_retry_after = True

    # No kopf peering (cluster-wide CRDs shared with every kopf operator): with replicas, the
    # Lease elects the one that runs kopf at all (rotator.handlers.leading).
    settings.peering.standalone = True

    # Sync work (the Kubernetes client in threads) gets a small, bounded pool.
    settings.execution.max_workers = config.max_workers
    # Daemons are cancelled on deletion or exit; give an in-flight step time to write its
    # journal entry before kopf gives up on it.
    settings.background.instant_exit_timeout = 5.0
