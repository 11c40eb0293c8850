"""The `rotator` command line: ``run`` (the operator), ``status``, ``rotate`` and ``demo``.

``run`` wraps kopf with deliberate settings (:mod:`rotator.settings`); the handlers register
themselves when :mod:`rotator.handlers.registering` is imported, and our start-up handler
applies the settings and builds the runtime. ``status`` and ``rotate`` talk to the API server
with the Kubernetes client (kubeconfig or in-cluster), like ``kubectl`` and ``cmctl renew``.
``demo`` always exists; it runs :mod:`rotator.sandbox.demo`, which ships only with the
``sandbox`` extra in a source checkout (never in the production wheel or image), and says so
when it is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TextIO

from rotator import settings as operator_settings
from rotator.core import kinds, models, storms

GROUP, VERSION, PLURALS = kinds.GROUP, kinds.VERSION, kinds.PLURALS


# --- run ------------------------------------------------------------------------------------


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run the operator (kopf) until stopped")
    scope = run.add_mutually_exclusive_group(required=True)
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        metavar="NAME",
        help="watch this namespace (repeatable; kopf globs like data-* work)",
    )
    peering = run.add_mutually_exclusive_group()
    peering.add_argument(
        "--standalone", action="store_true", help="no peering: this is the only replica"
    )
    peering.add_argument(
        "--leader-elect",
        action="store_true",
        help="replicas elect one leader on a coordination.k8s.io Lease; the others stand by",
    )
    run.add_argument(
        "--leader-election-id", default="rotator-leader", metavar="NAME", help="the Lease's name"
    )
    run.add_argument(
        "--leader-election-namespace",
        metavar="NAMESPACE",
        help="where the Lease lives (default: the pod's own namespace, else 'default')",
    )
    for flag, seconds in (("lease-duration", 15), ("renew-deadline", 10), ("retry-period", 2)):
        run.add_argument(
            f"--leader-election-{flag}",
            type=operator_settings.parse_interval,
            default=dt.timedelta(seconds=seconds),
            metavar="DURATION",
            help=f"leader election {flag.replace('-', ' ')} (default {seconds}s)",
        )
    run.add_argument(
        "--liveness", metavar="URL", help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    run.add_argument("--metrics-port", type=int, default=9090, help="Prometheus port; 0: off")
    run.add_argument(
        "--log-level", default="INFO", type=str.upper, choices=operator_settings.LOG_LEVELS
    )
    run.add_argument("--log-format", default="text", choices=("json", "text"))
    run.add_argument(
        "--event-level",
        default="info",
        type=str.lower,
        choices=tuple(operator_settings.EVENT_LEVELS),
        help="minimum level of kopf's own events posted to Kubernetes",
    )
    run.add_argument("--watch-server-timeout", type=int, default=300, metavar="SECONDS")
    run.add_argument("--watch-client-timeout", type=float, default=330.0, metavar="SECONDS")
    run.add_argument("--connect-timeout", type=float, default=30.0, metavar="SECONDS")
    run.add_argument("--request-timeout", type=float, default=60.0, metavar="SECONDS")
    run.add_argument("--max-concurrent-rotations", type=int, default=8)
    run.add_argument(
        "--graph-writes-per-second", type=float, default=2.0, help="per tenant (token bucket)"
    )
    run.add_argument(
        "--drift-check-interval",
        type=operator_settings.parse_interval,
        default=dt.timedelta(hours=1),
        metavar="DURATION",
        help="how often an idle resource is compared with Graph and Key Vault (e.g. 1h)",
    )
    run.add_argument(
        "--no-enforce-policies",
        dest="enforce_policies",
        action="store_false",
        help="do not require a RotationPolicy (unsafe: for single-tenant dev clusters only)",
    )
    run.add_argument("--max-workers", type=int, default=8, help="threads for sync calls")
    run.add_argument(
        "--api-connections",
        type=int,
        default=20,
        help="kopf's API requests in flight at once (watch streams apart); bounds memory",
    )
    run.add_argument(
        "--max-rotations-per-hour",
        type=int,
        default=storms.DEFAULT_LIMIT,
        metavar="N",
        help="rotations one object may start per hour, whatever its spec or annotations say",
    )


def config_from_args(args: argparse.Namespace) -> operator_settings.OperatorConfig:
    """The :class:`OperatorConfig` of a parsed ``run`` command line."""
    return operator_settings.OperatorConfig(
        namespaces=tuple(args.namespace or ()),
        clusterwide=bool(args.all_namespaces),
        standalone=not args.leader_elect,
        liveness=args.liveness,
        metrics_port=args.metrics_port,
        log_level=args.log_level,
        log_format=args.log_format,
        event_level=args.event_level,
        watch_server_timeout=args.watch_server_timeout,
        watch_client_timeout=args.watch_client_timeout,
        connect_timeout=args.connect_timeout,
        request_timeout=args.request_timeout,
        max_concurrent_rotations=args.max_concurrent_rotations,
        graph_writes_per_second=args.graph_writes_per_second,
        drift_check_interval=args.drift_check_interval,
        enforce_policies=args.enforce_policies,
        max_workers=args.max_workers,
        api_connections=args.api_connections,
        max_rotations_per_hour=args.max_rotations_per_hour,
        leader_elect=args.leader_elect,
        leader_election_id=args.leader_election_id,
        leader_election_namespace=args.leader_election_namespace or _own_namespace(),
        lease_duration=args.leader_election_lease_duration,
        renew_deadline=args.leader_election_renew_deadline,
        retry_period=args.leader_election_retry_period,
    )


def _own_namespace() -> str:
    """The pod's namespace (its service account's mount), else ``default``."""
    try:
        with open(_SERVICE_ACCOUNT_NAMESPACE) as found:
            return found.read().strip() or "default"
    except OSError:
        return "default"


_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _configure_logging(config: operator_settings.OperatorConfig) -> None:
    import kopf

    kopf.configure(
        debug=config.log_level == "DEBUG",
        log_format=kopf.LogFormat.JSON if config.log_format == "json" else kopf.LogFormat.FULL,
        log_prefix=config.log_format != "json",
    )
    logging.getLogger().setLevel(config.log_level)
    # The SDKs log request URLs and headers at INFO; keep them quiet unless debugging.
    for noisy in ("azure", "httpx", "msal", "kiota_http", "urllib3", "databricks"):
        logging.getLogger(noisy).setLevel(
            logging.DEBUG if config.log_level == "DEBUG" else logging.WARNING
        )
    # azure-identity warns on every refused token; verification expects refusals while a new
    # secret propagates and reports the outcome itself.
    if config.log_level != "DEBUG":
        logging.getLogger("azure.identity").setLevel(logging.ERROR)


def _run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"rotator run: {exc}", file=sys.stderr)
        return 2
    _configure_logging(config)

    import kopf

    from rotator import metrics
    from rotator.clouds import settings as cloud_settings
    from rotator.handlers import registering

    registering.register()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    memo = kopf.Memo(config=config, cloud=cloud_settings.CloudSettings.from_env())
    if not config.leader_elect:
        metrics.LEADER.set(1)  # the only replica
        asyncio.run(
            kopf.operator(
                clusterwide=config.clusterwide,
                namespaces=list(config.namespaces),
                standalone=True,
                liveness_endpoint=config.liveness,
                memo=memo,
            )
        )
        return 0

    from rotator.handlers import leading

    async def work(stop: asyncio.Event) -> None:
        # Leading: kopf runs alone (no peering); our own endpoint answers liveness.
        await kopf.operator(
            clusterwide=config.clusterwide,
            namespaces=list(config.namespaces),
            standalone=True,
            stop_flag=stop,
            memo=memo,
        )

    async def elect() -> None:
        leases = leading.KubernetesLeases(
            config.leader_election_namespace,
            config.leader_election_id,
            timeout=config.retry_period.total_seconds() * 2,
        )
        elector = leading.Elector(leases, leading.identity(), config.election_timing())
        await leading.lead(elector, work, health=config.liveness)

    asyncio.run(elect())
    return 0


# --- status and rotate: a small seam over the Kubernetes API --------------------------------


class Api(Protocol):
    """What ``status`` and ``rotate`` need from the API server."""

    def list(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]: ...

    def patch_annotations(
        self, plural: str, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> None: ...


class KubernetesApi:
    """:class:`Api` through the official client (kubeconfig, else in-cluster)."""

    def __init__(self) -> None:
        import kubernetes

        try:
            kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
        except kubernetes.config.ConfigException:
            kubernetes.config.load_incluster_config()  # type: ignore[no-untyped-call]
        self._api = kubernetes.client.CustomObjectsApi()

    def list(self, plural: str, namespace: str | None) -> list[Mapping[str, Any]]:
        if namespace is None:
            found = self._api.list_cluster_custom_object(GROUP, VERSION, plural)
        else:
            found = self._api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
        items = found.get("items", []) if isinstance(found, Mapping) else []
        return list(items)

    def patch_annotations(
        self, plural: str, namespace: str, name: str, annotations: Mapping[str, str]
    ) -> None:
        self._api.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            namespace,
            plural,
            name,
            {"metadata": {"annotations": dict(annotations)}},
            _content_type="application/merge-patch+json",
        )


def _condition(body: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for cond in (body.get("status") or {}).get("conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == kind:
            return cond
    return {}


def _age(created: str | None, now: dt.datetime) -> str:
    if not created:
        return "-"
    seconds = int((now - models.parse_time(created)).total_seconds())
    if seconds <= 0:
        return "0s"
    # The largest unit only, as kubectl shows ages.
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def status_rows(
    items: Iterable[tuple[str, Mapping[str, Any]]], now: dt.datetime
) -> list[list[str]]:
    """One row per object: kind, namespace, name, Ready, reason, expiry, next, age, message."""
    rows = []
    for kind, body in items:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        ready = _condition(body, "Ready")
        stalled = _condition(body, "Stalled")
        shown = stalled if stalled.get("status") == "True" else ready
        if kind == "ServicePrincipalSecret":
            expires = (status.get("current") or {}).get("expiresAt") or "-"
            nxt = status.get("nextRotationTime") or "-"
        else:
            expires = "-"
            nxt = status.get("syncedVersion") or "-"
        rows.append(
            [
                "sps" if kind == "ServicePrincipalSecret" else "dsb",
                str(meta.get("namespace", "")),
                str(meta.get("name", "")),
                str(ready.get("status", "Unknown")),
                str(shown.get("reason", "-")),
                str(expires),
                str(nxt),
                _age(meta.get("creationTimestamp"), now),
                " ".join(str(shown.get("message", "")).split())[:80],
            ]
        )
    return rows


HEADER = [
    "KIND",
    "NAMESPACE",
    "NAME",
    "READY",
    "REASON",
    "EXPIRES",
    "NEXT/SYNCED",
    "AGE",
    "MESSAGE",
]


def render_table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Left-aligned columns, as kubectl prints them."""
    table = [HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(HEADER))]
    for row in table:
        out.write("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        out.write("\n")


def status(api: Api, namespace: str | None, now: dt.datetime, out: TextIO = sys.stdout) -> int:
    """Print every sps and dsb with its conditions."""
    items: list[tuple[str, Mapping[str, Any]]] = []
    for kind, plural in PLURALS.items():
        items.extend((kind, body) for body in api.list(plural, namespace))
    items.sort(key=lambda kb: (kb[0] != "ServicePrincipalSecret", _sort_key(kb[1])))
    render_table(status_rows(items, now), out)
    return 0


def _sort_key(body: Mapping[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return (str(meta.get("namespace", "")), str(meta.get("name", "")))


def rotate(api: Api, namespace: str, name: str, now: dt.datetime, out: TextIO = sys.stdout) -> int:
    """Request a rotation: set ``rotator.dev/rotate`` to a new value (the current time)."""
    value = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    api.patch_annotations(
        PLURALS["ServicePrincipalSecret"], namespace, name, {models.ROTATE_ANNOTATION: value}
    )
    out.write(f"rotation of serviceprincipalsecret {namespace}/{name} requested ({value})\n")
    return 0


# --- demo: the sandbox's, when the sandbox extra is installed ------------------------------


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo", help="one rotation end to end on local emulators (needs rotator[sandbox])"
    )
    demo.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="admin kubeconfig of the cluster to use (default: $KUBECONFIG)",
    )
    demo.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each step")
    demo.add_argument(
        "--keep", action="store_true", help="leave the demo namespace and policy in place"
    )


def _demo(args: argparse.Namespace, err: TextIO = sys.stderr) -> int:
    try:
        # Imported here, not at the top: production installs have no sandbox (its __init__ then
        # raises with the install instruction).
        from rotator.sandbox import demo
    except ImportError as exc:
        err.write(f"rotator demo: {exc}\n")
        return 2
    return demo.main(args)


# --- entry point ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The full command line (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(prog="rotator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    _add_run(sub)
    st = sub.add_parser("status", help="list sps and dsb with their conditions")
    where = st.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace")
    where.add_argument("-A", "--all-namespaces", action="store_true")
    rot = sub.add_parser("rotate", help="request a rotation now (like `cmctl renew`)")
    rot.add_argument("name")
    rot.add_argument("-n", "--namespace", required=True)
    _add_demo(sub)
    return parser


def main(
    argv: list[str] | None = None,
    *,
    api_factory: Callable[[], Api] = KubernetesApi,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "run":
        return _run(args)
    if args.command == "status":
        namespace = None if args.all_namespaces else args.namespace
        return status(api_factory(), namespace, clock())
    if args.command == "rotate":
        return rotate(api_factory(), args.namespace, args.name, clock())
    if args.command == "demo":
        return _demo(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
