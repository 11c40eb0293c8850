"""In-memory stand-ins for the handlers' ports (rotator.handlers.ports), and a runtime factory.

They are fakes at OUR boundary, never inside an SDK: they keep state like the real services
(passwords per app, versions per secret) and record every call, so a test asserts both the
outcome and exactly which calls were made.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import datetime as dt
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from rotator import settings as operator_settings
from rotator.clouds import graph, keyvault
from rotator.clouds import settings as cloud_settings
from rotator.core import authorization, clocks, errors, models, retirement, sensitive
from rotator.handlers import limiting, policing, runtime

NS = "data-eng"
NAME = "etl-sp"
TENANT = "00000000-0000-0000-0000-0000000000aa"
CLIENT = "11111111-2222-3333-4444-555555555555"
VAULT = "https://kv-data-eng.vault.azure.net"
SECRET = "etl-sp-client-secret"
T0 = dt.datetime(2026, 11, 26, 5, 0, 0, tzinfo=dt.UTC)


class FakeGraph:
    """Passwords of one application; ``fail_add`` injects failures into addPassword."""

    def __init__(self) -> None:
        self.passwords: dict[str, graph.PasswordInfo] = {}
        self.texts: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_add: list[tuple[BaseException, bool]] = []  # (error, created anyway)
        self.fail_resolve: list[BaseException] = []
        self.client_id = CLIENT  # the appId Graph shows for the object
        self._ids = itertools.count(1)

    async def list_passwords(
        self, tenant: str, app: graph.AppRef, owner: graph.Owner
    ) -> list[graph.PasswordInfo]:
        self.calls.append(("list", ""))
        return list(self.passwords.values())

    def _create(self, display_name: str, end: dt.datetime) -> graph.MintedSecret:
        n = next(self._ids)
        key_id = f"00000000-0000-0000-0000-{n:012d}"
        text = f"s3cr3t-value-{n}"
        self.passwords[key_id] = graph.PasswordInfo(key_id, display_name, text[:3], None, end)
        self.texts[key_id] = text
        return graph.MintedSecret(
            key_id=key_id, hint=text[:3], text=sensitive.SecretText(text), end=end
        )

    def seed(self, display_name: str) -> str:
        """A credential that exists in Graph without the operator having minted it now."""
        return self._create(display_name, T0 + dt.timedelta(days=90)).key_id

    async def add_password(
        self,
        tenant: str,
        app: graph.AppRef,
        owner: graph.Owner,
        display_name: str,
        end: dt.datetime,
    ) -> graph.MintedSecret:
        self.calls.append(("add", display_name))
        if self.fail_add:
            error, created = self.fail_add.pop(0)
            if created:
                self._create(display_name, end)
            raise error
        return self._create(display_name, end)

    async def remove_password(
        self, tenant: str, app: graph.AppRef, owner: graph.Owner, key_id: str
    ) -> None:
        self.calls.append(("remove", key_id))
        self.passwords.pop(key_id, None)

    async def resolve_client_id(self, tenant: str, app: graph.AppRef, owner: graph.Owner) -> str:
        if app.client_id is not None:
            return app.client_id
        self.calls.append(("resolve", f"{owner}/{app.object_id}"))
        if self.fail_resolve:
            raise self.fail_resolve.pop(0)
        return self.client_id

    def writes(self) -> list[tuple[str, str]]:
        return [c for c in self.calls if c[0] not in ("list", "resolve")]


class FakeVault:
    """Versions of secrets in one vault."""

    def __init__(self) -> None:
        self.versions: dict[str, list[tuple[keyvault.SecretVersion, str]]] = {}
        self.calls: list[tuple[str, str]] = []
        self._ids = itertools.count(1)

    async def latest(self, vault: str, name: str) -> keyvault.SecretVersion | None:
        self.calls.append(("latest", name))
        found = self.versions.get(name)
        return found[-1][0] if found else None

    async def read(self, vault: str, name: str, version: str) -> sensitive.SecretText:
        self.calls.append(("read", name))
        for props, value in self.versions.get(name, []):
            if props.version == version:
                return sensitive.SecretText(value)
        raise errors.NotFound(f"version {version} of {name} not found")

    async def set(
        self,
        vault: str,
        name: str,
        value: sensitive.SecretText,
        *,
        expires_on: dt.datetime | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> keyvault.SecretVersion:
        self.calls.append(("set", name))
        props = keyvault.SecretVersion(
            name=name,
            version=f"v{next(self._ids)}",
            tags=dict(tags or {}),
            enabled=True,
            expires_on=expires_on,
            content_type=content_type,
        )
        self.versions.setdefault(name, []).append((props, value.reveal()))
        return props

    async def disable(self, vault: str, name: str, version: str) -> None:
        self.calls.append(("disable", name))
        found = self.versions.get(name, [])
        for i, (props, value) in enumerate(found):
            if props.version == version:
                found[i] = (dataclasses.replace(props, enabled=False), value)
                return
        raise errors.NotFound(f"version {version} of {name} not found")

    def value(self, name: str) -> str | None:
        found = self.versions.get(name)
        return found[-1][1] if found else None


class Killed(BaseException):  # a process death, not an error
    """The operator process was SIGKILLed here (a test catches it, then "restarts")."""


class FakeVerifier:
    """Accepts texts Graph minted unless told to fail.

    ``kill_while_rejected``: a rejected secret keeps the verifier retrying (Entra's
    AADSTS7000215 looks the same for a removed secret as for one still propagating), and the
    process is killed during that wait.
    """

    def __init__(self, graph_: FakeGraph) -> None:
        self.graph = graph_
        self.calls: list[str] = []
        self.fail: list[BaseException] = []
        self.kill_while_rejected = False
        self.within: list[float] = []

    async def verify(
        self, tenant: str, client_id: str, secret: sensitive.SecretText, within: float
    ) -> None:
        self.calls.append(client_id)
        self.within.append(within)
        if self.fail:
            raise self.fail.pop(0)
        live = {self.graph.texts[k] for k in self.graph.passwords if k in self.graph.texts}
        if secret.reveal() not in live and self.kill_while_rejected:
            raise Killed
        if secret.reveal() not in live:
            # Entra answers a removed secret like one still propagating (AADSTS7000215).
            raise errors.VerificationFailed("Entra rejected the secret", kind="propagation")


class FakeApi:
    """The ServicePrincipalSecret as the API server holds it; status patches merge in."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.patches: list[dict[str, Any]] = []

    async def patch_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> None:
        self.patches.append(copy.deepcopy(dict(patch)))
        status = self.body.setdefault("status", {})
        for key, value in patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = copy.deepcopy(value)

    async def read(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return copy.deepcopy(self.body)

    def status(self) -> models.ServicePrincipalSecretStatus:
        return models.ServicePrincipalSecretStatus.from_dict(self.body.get("status"))


class FakeEvents:
    def __init__(self) -> None:
        self.posted: list[tuple[str, str, str]] = []

    def post(self, body: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.posted.append((type_, reason, message))

    def reasons(self) -> list[str]:
        return [reason for _, reason, _ in self.posted]


def sps_body(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "tenantId": TENANT,
        "application": {"clientId": CLIENT},
        "rotation": {"validity": "90d", "renewBefore": "30d", "overlap": "24h"},
        "keyVault": {"vaultUrl": VAULT, "secretName": SECRET},
        "verify": {"enabled": True, "timeout": "5m"},
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "rotator.dev/v1alpha1",
        "kind": "ServicePrincipalSecret",
        "metadata": {"name": NAME, "namespace": NS, "uid": "uid-1", "generation": 1},
        "spec": spec,
    }


ALLOW_ALL = authorization.NamedPolicy(
    "data-eng", models.RotationPolicySpec.from_spec({"namespaces": [NS]})
)


@dataclasses.dataclass
class World:
    """One runtime with fakes, and the pieces a test inspects."""

    rt: runtime.Runtime
    api: FakeApi
    graph: FakeGraph
    vault: FakeVault
    verifier: FakeVerifier
    events: FakeEvents
    clock: clocks.ManualClock
    policies: list[authorization.NamedPolicy]
    bindings: list[retirement.ConsumerSync]
    #: What the limiter waited (each wait moved the manual clock by as much).
    slept: list[float] = dataclasses.field(default_factory=list)

    def cloud_calls(self) -> int:
        return len(self.graph.calls) + len(self.vault.calls) + len(self.verifier.calls)


def world(
    body: dict[str, Any] | None = None,
    *,
    enforce: bool = True,
    drift: dt.timedelta = dt.timedelta(hours=1),
    ids: Callable[[], str] | None = None,
    accounted: frozenset[str] = frozenset(),
) -> World:
    clock = clocks.ManualClock(T0)
    fake_graph = FakeGraph()
    vault = FakeVault()
    verifier = FakeVerifier(fake_graph)
    events = FakeEvents()
    api = FakeApi(body if body is not None else sps_body())
    allowed = [ALLOW_ALL]
    bindings: list[retirement.ConsumerSync] = []
    counter = itertools.count(1)

    slept: list[float] = []

    def monotonic() -> float:
        return clock.now().timestamp()

    async def no_sleep(seconds: float) -> None:
        # Nothing sleeps: the manual clock moves by what the limiter would have waited.
        slept.append(seconds)
        clock.advance(dt.timedelta(seconds=seconds))
        await asyncio.sleep(0)

    rt = runtime.Runtime(
        config=operator_settings.OperatorConfig(
            clusterwide=True, drift_check_interval=drift, enforce_policies=enforce
        ),
        cloud=cloud_settings.CloudSettings(),
        graph=fake_graph,
        vault=vault,
        verifier=verifier,
        status=api,
        events=events,
        limits=limiting.Limits(
            max_concurrent_rotations=2,
            graph_writes_per_second=100.0,
            clock=monotonic,
            sleep=no_sleep,
        ),
        police=policing.Police(
            enforce=enforce, policies_of=lambda: allowed, labels_of=lambda _ns: {}
        ),
        clock=clock,
        new_id=ids or (lambda: f"r{next(counter):07d}"),
        consumers_of=lambda ns, name: list(bindings),
        accounted_elsewhere=lambda t, a, k: accounted,
    )
    return World(rt, api, fake_graph, vault, verifier, events, clock, allowed, bindings, slept)
