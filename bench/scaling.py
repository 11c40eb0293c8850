"""The operator at scale: a burst of ServicePrincipalSecrets on a real control plane.

What runs: etcd + kube-apiserver (``e2e.testbed``), the emulator stack in a thread of this
process (``e2e.operator_harness.Sandbox``), and ``rotator run`` as a separate process with the
chart's RBAC (``e2e.operator_harness.OperatorProcess``). Everything listens on 127.0.0.1.

The fleet: ``--tenants`` tenants, one application per ServicePrincipalSecret spread over them
round robin (a real fleet has one secret per application; many secrets on one application
would hit Graph's password limit and the per-application write lock long before any global
limit), Key Vault secrets spread over two vaults. The operator identity is made known in every
tenant, as a multi-tenant application is.

Two runs, each with a fresh operator watching its own namespace:

``scale``     N secrets created in one burst (``kubectl create`` of one list). Measured: time
              until all are Ready, the peak number of Graph writes in flight in the emulator
              (against ``--max-concurrent-rotations``), each tenant's Graph write rate from the
              request log (against ``--graph-writes-per-second``), the operator's peak RSS
              (``VmHWM``), and the cloud requests in an idle window after everything is issued.
``throttle``  a smaller burst while Graph answers a share of ``addPassword`` calls with 429 and
              ``Retry-After``. Measured: all still become Ready, and after each 429 nothing
              more reaches that application, nor that tenant, before Retry-After has passed.

Emulator instrumentation: Graph's request log records when a request arrived, not when it
ended, so writes in flight are counted by wrapping the emulator's per-object write guard
(``rotator.sandbox.graph._Write``) in this process; Graph holds each write
``WRITE_SECONDS`` (a realistic Graph latency), which is what makes the bound observable.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench import results

WORK = Path(__file__).resolve().parent / ".work"

GROUP = "rotator.dev"
VERSION = "v1alpha1"
OPERATOR_NAMESPACE = "rotator-system"

#: How long Graph holds each write (seconds): real addPassword answers in roughly 0.3-1 s.
WRITE_SECONDS = 0.3
#: Operator limits for the runs (flags of ``rotator run``).
MAX_CONCURRENT_ROTATIONS = 8
GRAPH_WRITES_PER_SECOND = 5.0
#: The token bucket's burst: limiting.TokenBucket saves up at most max(1, rate) tokens.
BURST = max(1.0, GRAPH_WRITES_PER_SECOND)
#: Operator peak RSS target up to 1000 objects (scaled up linearly beyond): what the process
#: needs is mostly a fixed cost, so a smaller fleet does not earn a smaller target.
RSS_TARGET_MIB_PER_1000 = 300.0
#: Time-to-Ready target: first issuance at least this many secrets per second end to end (or
#: the Graph rate limit's own floor, N / (tenants x rate), if that is slower), plus a fixed
#: allowance for the watch to list the burst and the last rotations to finish.
MIN_ISSUANCE_PER_SECOND = 4.0
READY_ALLOWANCE_S = 30.0
#: A burst with no new Ready object for this long is stuck.
STALL_S = 60.0
#: rotator run's default --drift-check-interval, which the runs keep.
DRIFT_INTERVAL_S = 3600.0
#: A rate window this long; a bucket allows at most burst + rate x window writes in it.
RATE_WINDOW_S = 10.0
#: A request that left the operator before it read a 429 may land this soon after it.
IN_FLIGHT_GRACE_S = 0.25
#: The Retry-After Graph sends with injected 429s, and how often it sends them.
RETRY_AFTER_S = 3
THROTTLE_RATE = 0.3

WRITE_OPERATIONS = ("graph.addPassword", "graph.removePassword")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


class NotRunnable(Exception):
    """The environment cannot run the operator benchmarks; the message says why."""


# --- in-flight Graph writes ------------------------------------------------------------------


class WriteGauge:
    """Counts Graph writes in flight inside the emulator (runs on the emulator's loop)."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0
        self.total = 0

    def reset(self) -> None:
        self.current = self.peak = self.total = 0

    def install(self) -> Callable[[], None]:
        """Wrap the emulator's write guard; returns the function that unwraps it."""
        from rotator.sandbox import graph

        original = graph._Write
        gauge = self

        class CountedWrite(original):  # type: ignore[valid-type,misc]
            async def __aenter__(self) -> None:
                gauge.current += 1
                gauge.total += 1
                gauge.peak = max(gauge.peak, gauge.current)
                try:
                    await super().__aenter__()
                except BaseException:
                    gauge.current -= 1
                    raise

            async def __aexit__(self, *exc: object) -> None:
                gauge.current -= 1
                await super().__aexit__(*exc)

        graph._Write = CountedWrite  # type: ignore[misc]

        def uninstall() -> None:
            graph._Write = original  # type: ignore[misc]

        return uninstall


# --- the environment ---------------------------------------------------------------------------


@dataclasses.dataclass
class Fleet:
    """The seeded tenants and applications, and how to tell a request's tenant and app."""

    tenants: list[str]
    apps: list[tuple[str, str, str]]  # (tenant, client id, object id) per secret
    owner_of: dict[str, tuple[str, str]]  # app id or object id -> (tenant, client id)

    def locate(self, path: str) -> tuple[str, str] | None:
        for guid in _GUID.findall(path):
            found = self.owner_of.get(guid.lower())
            if found is not None:
                return found
        return None


class Environment:
    """Control plane + emulators + the chart's RBAC, shared by both runs; stop() cleans up."""

    def __init__(self, workdir: Path, tenants: int) -> None:
        self.workdir = workdir
        self.tenant_count = tenants
        self.plane: Any = None
        self.sandbox: Any = None
        self.kubectl: Any = None
        self.api: Any = None
        self.gauge = WriteGauge()
        self._uninstall: Callable[[], None] | None = None
        self._seeded = 0
        self.fleet = Fleet([], [], {})
        self.verify = True

    def start(self) -> Environment:
        try:
            from e2e import operator_harness as harness
            from e2e.testbed import controlplane as cp
            from e2e.testbed import manifests
            from e2e.testbed.kubectl import Kubectl
        except ImportError as error:
            raise NotRunnable(f"the e2e harness cannot be imported: {error}") from None
        try:
            binaries = cp.find_binaries()
        except cp.BinariesMissingError as error:
            raise NotRunnable(str(error)) from None
        from kubernetes import config

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.plane = cp.ControlPlane(self.workdir / "controlplane", binaries=binaries).start()
        self.kubectl = Kubectl(self.plane.admin_kubeconfig, self.plane.kube_cache_dir)
        self.api = config.new_client_from_config(config_file=str(self.plane.admin_kubeconfig))
        manifests.install_crds(self.kubectl)
        self.kubectl("create", "namespace", OPERATOR_NAMESPACE)
        rbac = harness.render_rbac(harness.helm_binary(), self.plane.operator.user)
        self.apply(rbac)
        self.sandbox = harness.Sandbox(self.workdir / "sandbox", vaults=2, workspaces=1).start()
        self._uninstall = self.gauge.install()
        self.sandbox.call(self._configure_directory)
        self.fleet.tenants = self.sandbox.call(self._seed_tenants)
        return self

    def stop(self) -> None:
        if self._uninstall is not None:
            self._uninstall()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.api is not None:
            self.api.close()
        if self.plane is not None:
            self.plane.stop()

    # -- emulator state (these run on the emulator's loop) ------------------------------------

    def _configure_directory(self) -> None:
        self.sandbox.stack.directory.write_seconds = WRITE_SECONDS

    def _seed_tenants(self) -> list[str]:
        st = self.sandbox.stack
        home = st.operator.tenant_id.lower()
        tenants = [home]
        for i in range(1, self.tenant_count):
            tenant = str(uuid.UUID(int=0xBE7C << 64 | i)).lower()
            tenants.append(tenant)
            # A multi-tenant operator application: present, with its secret, in every tenant.
            application, _ = st.directory.seed_application(
                tenant, "rotator-operator", app_id=st.operator.client_id
            )
            st.directory.add_password(
                application,
                display_name="rotator-operator",
                secret_text=st.operator.secret_text,
                propagated=True,
            )
        return tenants

    def seed_apps(self, count: int) -> list[tuple[str, str, str]]:
        """``count`` more applications (no secret yet), owned by the operator, round robin."""
        fleet = self.fleet

        def seed() -> list[tuple[str, str, str]]:
            st = self.sandbox.stack
            made = []
            for i in range(self._seeded, self._seeded + count):
                tenant = fleet.tenants[i % len(fleet.tenants)]
                application, principal = st.directory.seed_application(
                    tenant, f"bench-app-{i:05d}", owners=[st.operator.client_id]
                )
                pair = (tenant, application.app_id)
                for ident in (application.app_id, application.object_id):
                    fleet.owner_of[ident] = pair
                if principal is not None:
                    fleet.owner_of[principal.object_id] = pair
                made.append((tenant, application.app_id, application.object_id))
            self._seeded += count
            return made

        made: list[tuple[str, str, str]] = self.sandbox.call(seed)
        fleet.apps.extend(made)
        return made

    # -- Kubernetes ---------------------------------------------------------------------------

    def apply(self, objects: Sequence[dict[str, Any]], verb: str = "apply") -> None:
        text = yaml.safe_dump_all(list(objects), sort_keys=False)
        self.kubectl(verb, "-f", "-", input=text, timeout=300)

    def policy(self, name: str, namespace: str) -> dict[str, Any]:
        # Omitted lists are unrestricted: the benchmark's namespace may use any application
        # of these tenants (a thousand-GUID list would measure the policy check instead).
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "RotationPolicy",
            "metadata": {"name": name},
            "spec": {
                "namespaces": [namespace],
                "tenants": list(self.fleet.tenants),
                "keyVaults": list(self.sandbox.stack.keyvault_urls),
                "maxValidity": "730d",
            },
        }

    def list_secrets(self, namespace: str) -> list[dict[str, Any]]:
        from kubernetes import client

        found = client.CustomObjectsApi(self.api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, "serviceprincipalsecrets"
        )
        return list(found.get("items", []))

    def requests(self) -> list[dict[str, Any]]:
        return list(self.sandbox.requests())

    def dump(self, entries: Sequence[dict[str, Any]], name: str) -> None:
        """Keep a request log next to the operator logs (for --keep and failed runs)."""
        (self.workdir / name).write_text(json.dumps(list(entries), indent=1, default=str))


def secret_manifest(
    index: int,
    namespace: str,
    app: tuple[str, str, str],
    vault: str,
    address_by: str,
    verify: bool = True,
) -> dict[str, Any]:
    tenant, client_id, object_id = app
    ref = {"clientId": client_id} if address_by == "clientId" else {"objectId": object_id}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ServicePrincipalSecret",
        "metadata": {"name": f"sps-{index:05d}", "namespace": namespace},
        "spec": {
            "tenantId": tenant,
            "application": {**ref, "credentialOwner": "application"},
            "rotation": {"validity": "90d", "renewBefore": "30d", "overlap": "24h"},
            "keyVault": {"vaultUrl": vault, "secretName": f"bench-{namespace}-{index:05d}"},
            "verify": {"enabled": verify, "timeout": "5m"},
            "suspend": False,
            "deletionPolicy": "Retain",
        },
    }


# --- the operator process ----------------------------------------------------------------------


def start_operator(env: Environment, namespace: str, log: Path) -> Any:
    """``rotator run`` watching ``namespace`` with the benchmark's limits, live."""
    from e2e import operator_harness as harness

    class BenchOperator(harness.OperatorProcess):  # type: ignore[misc]
        def argv(self) -> list[str]:
            argv: list[str] = list(super().argv())
            # One namespace per run, so the throttle run's operator ignores the scale run.
            argv[argv.index("--all-namespaces")] = f"--namespace={namespace}"
            return argv

    kubeconfig = env.plane.operator_kubeconfig
    process = BenchOperator(
        kubeconfig=kubeconfig,
        env=harness.operator_environment(env.sandbox.env(), kubeconfig, env.workdir),
        log=log,
        args=(
            f"--max-concurrent-rotations={MAX_CONCURRENT_ROTATIONS}",
            f"--graph-writes-per-second={GRAPH_WRITES_PER_SECOND}",
        ),
    )
    os.environ.setdefault("ROTATOR_E2E_OPERATOR_LOG_LEVEL", "INFO")
    return process.start(timeout=120)


class MemorySampler:
    """Samples the operator's VmRSS twice a second; VmHWM gives the exact peak at the end."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            rss = read_status_kib(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.time(), rss / 1024))

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def read_status_kib(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


# --- analysis (pure: request logs and statuses in, figures out) -------------------------------


def ready_times(items: Sequence[dict[str, Any]]) -> list[float]:
    """Epoch seconds of each object's Ready=True transition (objects not Ready are left out)."""
    times = []
    for item in items:
        for cond in (item.get("status") or {}).get("conditions") or ():
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                moment = dt.datetime.fromisoformat(
                    cond["lastTransitionTime"].replace("Z", "+00:00")
                )
                times.append(moment.timestamp())
    return times


def max_in_window(times: Sequence[float], window: float) -> int:
    """The most events of ``times`` (sorted) in any half-open window of ``window`` seconds."""
    best = start = 0
    for end in range(len(times)):
        while times[end] - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def bucket_excess(times: Sequence[float], rate: float, burst: float) -> float:
    """The largest ``count - (burst + rate x span)`` over every pair of events (<= 0 is clean).

    A token bucket of ``rate`` and ``burst`` allows at most ``burst + rate x (t_j - t_i)``
    events in ``[t_i, t_j]``; a positive excess means the limit was exceeded by that many.
    """
    worst = -math.inf
    for i in range(len(times)):
        for j in range(i, len(times)):
            worst = max(worst, (j - i + 1) - (burst + rate * (times[j] - times[i])))
    return worst if times else 0.0


def writes_by_tenant(entries: Sequence[dict[str, Any]], fleet: Fleet) -> dict[str, list[float]]:
    per: dict[str, list[float]] = {t: [] for t in fleet.tenants}
    for entry in entries:
        if entry["operation"] in WRITE_OPERATIONS:
            where = fleet.locate(entry["path"])
            if where is not None:
                per[where[0]].append(float(entry["time"]))
    return {t: sorted(v) for t, v in per.items()}


def retry_after_violations(
    entries: Sequence[dict[str, Any]], fleet: Fleet, retry_after: float, grace: float
) -> dict[str, Any]:
    """Graph requests that reached the throttled application, or tenant, too early.

    After a 429 at ``t`` for application A of tenant T, a request for A in
    ``(t + grace, t + retry_after)`` ignores Retry-After for that application; any Graph
    request for T in that window ignores it for the tenant (Graph throttles per application
    per tenant, and the operator is one application).
    """
    graph = sorted(
        (
            (float(e["time"]), where, e)
            for e in entries
            if e["operation"].startswith("graph.") and (where := fleet.locate(e["path"]))
        ),
        key=lambda x: x[0],
    )
    throttled = [(t, where) for t, where, e in graph if e.get("status") == 429]
    app_early = tenant_early = 0
    examples: list[dict[str, Any]] = []
    for t429, (tenant, app) in throttled:
        for t, (other_tenant, other_app), entry in graph:
            if not t429 + grace < t < t429 + retry_after:
                continue
            if other_tenant != tenant:
                continue
            tenant_early += 1
            if other_app == app:
                app_early += 1
                if len(examples) < 5:
                    examples.append(
                        {
                            "throttledAt": round(t429, 3),
                            "requestAt": round(t, 3),
                            "after": round(t - t429, 3),
                            "operation": entry["operation"],
                        }
                    )
    return {
        "throttled": len(throttled),
        "sameAppEarly": app_early,
        "sameTenantEarly": tenant_early,
        "examples": examples,
    }


def wait_until_quiet(env: Environment, quiet: float, limit: float) -> float:
    """Wait until no cloud request arrived for ``quiet`` seconds; returns the seconds waited."""
    began = time.time()
    while time.time() - began < limit:
        entries = env.requests()
        last = max((float(e["time"]) for e in entries), default=0.0)
        if time.time() - last >= quiet:
            break
        time.sleep(1.0)
    return time.time() - began


def wait_ready(
    env: Environment,
    namespace: str,
    count: int,
    deadline: float,
    operator: Any,
    stall: float = STALL_S,
) -> tuple[float | None, list[dict[str, Any]]]:
    """Poll until ``count`` objects are Ready; (epoch when seen, last listing).

    Gives up at ``deadline``, when the operator exits, or when no object became Ready for
    ``stall`` seconds (the rest are stuck; waiting longer only makes the run slower).
    """
    items: list[dict[str, Any]] = []
    progress, last_change = -1, time.time()
    while time.time() < deadline and time.time() - last_change < stall:
        items = env.list_secrets(namespace)
        done = len(ready_times(items))
        if done >= count:
            return time.time(), items
        if done != progress:
            progress, last_change = done, time.time()
        if not operator.running:
            break
        time.sleep(2.0)
    return None, items


def _summary(items: Sequence[dict[str, Any]]) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for item in items:
        ready = next(
            (
                c
                for c in (item.get("status") or {}).get("conditions") or ()
                if c.get("type") == "Ready"
            ),
            {},
        )
        key = f"{ready.get('status', 'none')}/{ready.get('reason', '-')}"
        reasons[key] = reasons.get(key, 0) + 1
    return reasons


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0


# --- the runs ----------------------------------------------------------------------------------


def create_burst(
    env: Environment, namespace: str, count: int, address_by: str
) -> tuple[float, float]:
    """Namespace, policy and ``count`` secrets created at once; (t0, seconds to create)."""
    env.kubectl("create", "namespace", namespace)
    env.apply([env.policy(f"bench-{namespace}", namespace)])
    apps = env.seed_apps(count)
    vaults = env.sandbox.stack.keyvault_urls
    docs = [
        secret_manifest(i, namespace, app, vaults[i % len(vaults)], address_by, env.verify)
        for i, app in enumerate(apps)
    ]
    listing = {"apiVersion": "v1", "kind": "List", "items": docs}
    t0 = time.time()
    env.apply([listing], verb="create")
    return t0, time.time() - t0


def ready_target(count: int, tenants: int) -> tuple[float, float]:
    """(target seconds until all Ready, the Graph rate limit's own floor in seconds)."""
    floor = count / (tenants * GRAPH_WRITES_PER_SECOND)
    return max(floor, count / MIN_ISSUANCE_PER_SECOND) + READY_ALLOWANCE_S, floor


def scale_run(env: Environment, count: int, idle_window: float, address_by: str) -> results.Outcome:
    outcome = results.Outcome(
        "scale",
        f"{count} ServicePrincipalSecrets created in one burst over {len(env.fleet.tenants)} "
        f"tenants (application by {address_by}): first issuance, limits, memory, idle "
        "traffic",
    )
    namespace = "bench-scale"
    env.gauge.reset()
    env.sandbox.call(env.sandbox.stack.clear_requests)
    operator = start_operator(env, namespace, env.workdir / "operator-scale.log")
    pid = operator.child.pid
    idle: list[dict[str, Any]] = []
    settle_s = 0.0
    try:
        with MemorySampler(pid) as memory:
            rss_start_mib = (read_status_kib(pid, "VmRSS") or 0) / 1024
            t0, create_s = create_burst(env, namespace, count, address_by)
            target_s, floor = ready_target(count, len(env.fleet.tenants))
            deadline = t0 + max(2 * target_s, 120.0)
            seen, items = wait_ready(env, namespace, count, deadline, operator)
            ready = ready_times(items)
            issuance = env.requests()
            env.dump(issuance, "requests-scale-issuance.json")
            peak_rss_mib = (read_status_kib(pid, "VmHWM") or 0) / 1024
            if seen is not None:
                settle_s = wait_until_quiet(env, quiet=5.0, limit=60.0)
                idle_start = time.time()
                time.sleep(idle_window)
                idle_end = time.time()
                idle = [e for e in env.requests() if idle_start <= float(e["time"]) < idle_end]
                peak_rss_mib = max(peak_rss_mib, (read_status_kib(pid, "VmHWM") or 0) / 1024)
            rss_now_mib = (read_status_kib(pid, "VmRSS") or 0) / 1024
            alive = operator.running
    finally:
        operator.stop()

    outcome.details["readyStates"] = _summary(items)
    outcome.details["createSeconds"] = round(create_s, 2)
    if seen is None:
        outcome.checks.append(results.Check("objects Ready", len(ready), ">=", count, "objects"))
        outcome.reason = (
            f"only {len(ready)}/{count} Ready after {time.time() - t0:.0f}s "
            f"(operator {'running' if alive else 'exited'}); idle window skipped; "
            f"operator log: {operator.log}"
        )
        outcome.details["operatorWarnings"] = _warnings(operator.log_text())
    else:
        # lastTransitionTime has whole seconds: the poll time bounds it from above.
        all_ready_s = min(seen, max(ready) + 1.0) - t0
        outcome.checks.append(
            results.Check(
                "time until all Ready",
                round(all_ready_s, 1),
                "<=",
                round(target_s, 1),
                "s",
                note=f"{MIN_ISSUANCE_PER_SECOND:g}/s + {READY_ALLOWANCE_S:.0f}s; "
                f"rate-limit floor {floor:.0f}s",
            )
        )
        outcome.details["throughputPerSecond"] = round(count / all_ready_s, 2)
    outcome.checks.append(
        results.Check(
            "peak Graph writes in flight",
            env.gauge.peak,
            "<=",
            MAX_CONCURRENT_ROTATIONS,
            "writes",
            note="--max-concurrent-rotations",
        )
    )
    per_tenant = writes_by_tenant(issuance, env.fleet)
    windowed = {t: max_in_window(v, RATE_WINDOW_S) / RATE_WINDOW_S for t, v in per_tenant.items()}
    rate_target = GRAPH_WRITES_PER_SECOND + BURST / RATE_WINDOW_S
    outcome.checks.append(
        results.Check(
            f"peak tenant write rate ({RATE_WINDOW_S:.0f}s window)",
            round(max(windowed.values(), default=0.0), 2),
            "<=",
            rate_target,
            "writes/s",
            note=f"--graph-writes-per-second {GRAPH_WRITES_PER_SECOND:g} + burst/window",
        )
    )
    excess = max(bucket_excess(v, GRAPH_WRITES_PER_SECOND, BURST) for v in per_tenant.values())
    outcome.checks.append(
        results.Check(
            "token-bucket excess (any interval)",
            round(excess, 2),
            "<=",
            1.0,
            "writes",
            note="count - (burst + rate x span); 1 write tolerance for log timestamps",
        )
    )
    rss_target = RSS_TARGET_MIB_PER_1000 * max(1.0, count / 1000)
    outcome.checks.append(
        results.Check("operator peak RSS (VmHWM)", round(peak_rss_mib, 1), "<=", rss_target, "MiB")
    )
    if seen is not None:
        idle_writes = [e for e in idle if e["method"] != "GET"]
        outcome.checks.append(
            results.Check(
                f"cloud writes in {idle_window:.0f}s idle window",
                len(idle_writes),
                "==",
                0,
                "requests",
            )
        )
        # The only reads allowed when idle are drift checks: each object looks once per
        # --drift-check-interval (default 1h), first checks spread over the interval.
        expected = count * idle_window / DRIFT_INTERVAL_S
        allowed_objects = math.ceil(expected + 3 * math.sqrt(expected) + 1)
        touched = {where for e in idle if (where := env.fleet.locate(e["path"]))}
        outcome.checks.append(
            results.Check(
                "applications read when idle (drift checks)",
                len(touched),
                "<=",
                allowed_objects,
                "apps",
                note=f"expected {expected:.1f} = N x window / 1h drift interval",
            )
        )
    after = [round(t - t0, 1) for t in sorted(ready)]
    outcome.details.update(
        {
            "objects": count,
            "applicationAddressedBy": address_by,
            "verify": env.verify,
            "tenants": len(env.fleet.tenants),
            "operatorFlags": {
                "maxConcurrentRotations": MAX_CONCURRENT_ROTATIONS,
                "graphWritesPerSecond": GRAPH_WRITES_PER_SECOND,
            },
            "graphWriteSeconds": WRITE_SECONDS,
            "readySecondsAfterCreate": {
                "ready": len(after),
                "p50": _percentile(after, 0.5),
                "p90": _percentile(after, 0.9),
                "max": after[-1] if after else None,
            },
            "graphWritesTotal": env.gauge.total,
            "tenantWriteRates10s": {t[-4:]: round(v, 2) for t, v in windowed.items()},
            "tenantMax1sWindow": {t[-4:]: max_in_window(v, 1.0) for t, v in per_tenant.items()},
            "issuanceRequestsByOperation": _by_operation(issuance),
            "rssMiB": {
                "beforeBurst": round(rss_start_mib, 1),
                "peakVmHWM": round(peak_rss_mib, 1),
                "atEnd": round(rss_now_mib, 1),
                "sampledEvery5s": [round(m) for _, m in memory.samples[::10]],
            },
            "settleSecondsBeforeIdle": round(settle_s, 1),
            "idleWindowSeconds": idle_window if seen is not None else None,
            "idleRequestsByOperation": _by_operation(idle),
        }
    )
    return outcome


def _by_operation(entries: Sequence[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        key = f"{entry['operation']} {entry['status']}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def _warnings(log: str, limit: int = 8) -> list[str]:
    """The first distinct warnings of the operator's own modules (to say why, not how much)."""
    seen: dict[str, str] = {}
    for line in log.splitlines():
        if "[WARNING" not in line or "rotator." not in line:
            continue
        text = line.split("] ", 2)[-1]
        key = re.sub(r"[0-9a-f-]{8,}", "#", text)[:80]
        seen.setdefault(key, text[:300])
        if len(seen) >= limit:
            break
    return list(seen.values())


def throttle_run(env: Environment, count: int, address_by: str) -> results.Outcome:
    from rotator.sandbox import faults

    outcome = results.Outcome(
        "throttle",
        f"{count} secrets while Graph answers {THROTTLE_RATE:.0%} of addPassword with 429 "
        f"Retry-After: {RETRY_AFTER_S}",
    )
    namespace = "bench-throttle"
    env.sandbox.call(env.sandbox.stack.clear_requests)
    env.sandbox.call(lambda: env.sandbox.stack.clear_faults())
    env.sandbox.add_fault(
        faults.FaultRule(
            operation="graph.addPassword",
            kind="status",
            status=429,
            rate=THROTTLE_RATE,
            retry_after=RETRY_AFTER_S,
            code="TooManyRequests",
        )
    )
    operator = start_operator(env, namespace, env.workdir / "operator-throttle.log")
    try:
        t0, _ = create_burst(env, namespace, count, address_by)
        clean_s, _ = ready_target(count, len(env.fleet.tenants))
        # Throttled writes wait for Retry-After and backoff: allow twice the clean target.
        target_s = 2 * clean_s
        # A secret throttled four times in a row backs off for longer than a clean stall.
        seen, items = wait_ready(
            env, namespace, count, t0 + 2 * target_s, operator, stall=3 * STALL_S
        )
        entries = env.requests()
        env.dump(entries, "requests-throttle.json")
    finally:
        operator.stop()
        env.sandbox.call(lambda: env.sandbox.stack.clear_faults())
    ready = ready_times(items)
    outcome.details["readyStates"] = _summary(items)
    outcome.checks.append(results.Check("objects Ready", len(ready), ">=", count, "objects"))
    if seen is not None:
        outcome.checks.append(
            results.Check(
                "time until all Ready", round(seen - t0, 1), "<=", round(target_s, 1), "s"
            )
        )
    else:
        outcome.details["operatorWarnings"] = _warnings(operator.log_text())
    early = retry_after_violations(entries, env.fleet, RETRY_AFTER_S, IN_FLIGHT_GRACE_S)
    outcome.details["retryAfter"] = early
    outcome.checks.append(
        results.Check("429s served", early["throttled"], ">=", 1, "responses", note="sanity")
    )
    outcome.checks.append(
        results.Check(
            "requests to a throttled app before Retry-After",
            early["sameAppEarly"],
            "==",
            0,
            "requests",
        )
    )
    outcome.checks.append(
        results.Check(
            "requests to a throttled tenant before Retry-After",
            early["sameTenantEarly"],
            "==",
            0,
            "requests",
            note="Graph throttles per app per tenant; the operator is one app",
        )
    )
    return outcome


# --- entry point -------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    count: int = 500
    throttle_count: int = 100
    tenants: int = 4
    idle_window: float = 60.0
    keep: bool = False
    address_by: str = "clientId"
    verify: bool = True


def run(options: Options, only: set[str]) -> Iterator[results.Outcome]:
    """Yield the scale and throttle outcomes (NOT RUN with the reason when they cannot run)."""
    wanted = [name for name in ("scale", "throttle") if not only or name in only]
    if not wanted:
        return
    workdir = WORK / time.strftime("%Y%m%d-%H%M%S")
    env = Environment(workdir, options.tenants)
    env.verify = options.verify
    failed = False
    outcomes: list[results.Outcome] = []
    try:
        try:
            env.start()
        except (NotRunnable, RuntimeError) as error:
            # The environment (binaries, helm, control plane, emulators) is not there: the
            # operator benchmarks cannot say anything about the operator.
            failed = not isinstance(error, NotRunnable)
            for name in wanted:
                yield results.Outcome(name, "operator benchmark", reason=str(error)[:2000])
            return
        if "scale" in wanted:
            outcomes.append(
                _guarded(
                    "scale",
                    lambda: scale_run(env, options.count, options.idle_window, options.address_by),
                )
            )
            yield outcomes[-1]
        if "throttle" in wanted:
            outcomes.append(
                _guarded(
                    "throttle",
                    lambda: throttle_run(env, options.throttle_count, options.address_by),
                )
            )
            yield outcomes[-1]
    except BaseException:
        failed = True
        raise
    finally:
        env.stop()
        # Logs and request dumps stay for a run that missed a target (its reason names them).
        if not (options.keep or failed or any(o.state != "PASS" for o in outcomes)):
            shutil.rmtree(workdir, ignore_errors=True)


def _guarded(name: str, body: Callable[[], results.Outcome]) -> results.Outcome:
    """Run one benchmark; an operator that cannot start is NOT RUN, a crash is ERROR."""
    began = time.perf_counter()
    try:
        outcome = body()
    except RuntimeError as error:
        text = str(error)
        first = text.splitlines()[0] if text else type(error).__name__
        outcome = results.Outcome(name, "operator benchmark", reason=f"operator: {first}")
        outcome.details["error"] = text[-3000:]
        if "exited" not in text and "not live" not in text:
            outcome.error = True
    outcome.seconds = time.perf_counter() - began
    return outcome
