"""What every emulator shares: an aiohttp app with a request log, faults and a state endpoint.

Each emulator builds its routes with ``name="<service>.<operation>"``; the middleware here
records every request (method, path, operation, status; never bodies, which carry secrets),
applies the fault plan by operation name, and serves the control endpoints:

  GET    /_sandbox/requests   the request log (``?operation=`` filters)
  DELETE /_sandbox/requests   clear it
  POST   /_sandbox/faults     add a rule (JSON of FaultRule, camelCase ``retryAfter``)
  DELETE /_sandbox/faults     clear all rules (``?seed=`` reseeds; held requests are dropped)
  POST   /_sandbox/faults/release   let held requests go on (``?serve=0`` drops them)
  GET    /_sandbox/state      the emulator's state, as the emulator renders it
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from rotator.sandbox import faults

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

LOG_KEY: web.AppKey[list[dict[str, Any]]] = web.AppKey("sandbox_log", list)
FAULTS_KEY: web.AppKey[faults.FaultPlan] = web.AppKey("sandbox_faults", faults.FaultPlan)
STATE_KEY: web.AppKey[Callable[[], Any]] = web.AppKey("sandbox_state")
# How an injected fault's body looks: each service has its own error shape (Databricks uses
# {"error_code", "message"}); the default is the Azure shape {"error": {"code", "message"}}.
FaultBody = Callable[[int, str, str], dict[str, Any]]
FAULT_BODY_KEY: web.AppKey[FaultBody] = web.AppKey("sandbox_fault_body")


def azure_fault_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def operation_of(request: web.Request) -> str:
    route = request.match_info.route
    name = getattr(route, "name", None)
    return str(name) if name else f"{request.method} {request.path}"


def fault_response(rule: faults.FaultRule, render: FaultBody = azure_fault_body) -> web.Response:
    if rule.body is not None:
        # Exactly what the rule says, byte for byte: a recorded answer of the real service.
        return web.Response(body=rule.body.encode(), status=rule.status, headers=rule.headers)
    headers = {}
    if rule.retry_after is not None:
        headers["Retry-After"] = str(int(rule.retry_after))
    code = rule.code or ("TooManyRequests" if rule.status == 429 else "ServiceUnavailable")
    body = render(rule.status, code, f"injected fault: {code}")
    return web.json_response(body, status=rule.status, headers=headers)


@web.middleware
async def sandbox_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/_sandbox/"):
        return await handler(request)
    operation = operation_of(request)
    entry: dict[str, Any] = {
        "time": time.time(),
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "operation": operation,
        "status": None,
    }
    request.app[LOG_KEY].append(entry)
    rule = request.app[FAULTS_KEY].pick(operation)
    entry["fault"] = rule.kind if rule else None
    if rule is not None and rule.kind == "hold":
        # Served after release as if never held, or dropped: the caller may be dead by then,
        # so the body is read first (aiohttp keeps it) and a served write still lands.
        await request.read()
        if await request.app[FAULTS_KEY].hold():
            rule = None
        else:
            rule = dataclasses.replace(rule, kind="drop")
    if rule is not None:
        if rule.kind == "latency":
            await asyncio.sleep(rule.seconds)
        elif rule.kind in ("status", "respond"):
            entry["status"] = rule.status
            return fault_response(rule, request.app[FAULT_BODY_KEY])
        elif rule.kind == "timeout":
            await asyncio.sleep(rule.seconds or 300.0)
            entry["status"] = 504
            return fault_response(
                dataclasses.replace(rule, status=504), request.app[FAULT_BODY_KEY]
            )
        elif rule.kind == "drop":
            if request.transport is not None:
                request.transport.close()
            entry["status"] = 0
            raise ConnectionResetError("injected fault: connection dropped")
    response = await handler(request)
    if rule is not None and rule.kind == "after":
        entry["status"] = rule.status
        entry["servedStatus"] = response.status
        return fault_response(rule, request.app[FAULT_BODY_KEY])
    entry["status"] = response.status
    return response


async def _get_requests(request: web.Request) -> web.Response:
    log = request.app[LOG_KEY]
    op = request.query.get("operation")
    return web.json_response([e for e in log if op is None or e["operation"] == op])


async def _clear_requests(request: web.Request) -> web.Response:
    request.app[LOG_KEY].clear()
    return web.Response(status=204)


async def _add_fault(request: web.Request) -> web.Response:
    rule = faults.FaultRule.from_json(await request.json())
    request.app[FAULTS_KEY].add(rule)
    return web.json_response(dataclasses.asdict(rule), status=201)


async def _clear_faults(request: web.Request) -> web.Response:
    seed = request.query.get("seed")
    request.app[FAULTS_KEY].reset(int(seed) if seed is not None else None)
    return web.Response(status=204)


async def _release_faults(request: web.Request) -> web.Response:
    serve = request.query.get("serve", "1") != "0"
    return web.json_response({"released": request.app[FAULTS_KEY].release(serve=serve)})


async def _get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY](), dumps=lambda o: json.dumps(o, default=str))


def make_app(
    state: Callable[[], Any], *, seed: int = 0, fault_body: FaultBody = azure_fault_body
) -> web.Application:
    """An aiohttp app with the sandbox middleware and control routes; add the service's routes."""
    app = web.Application(middlewares=[sandbox_middleware], client_max_size=1024**2)
    app[FAULT_BODY_KEY] = fault_body
    app[LOG_KEY] = []
    app[FAULTS_KEY] = faults.FaultPlan(seed=seed)
    app[STATE_KEY] = state
    app.router.add_get("/_sandbox/requests", _get_requests)
    app.router.add_delete("/_sandbox/requests", _clear_requests)
    app.router.add_post("/_sandbox/faults", _add_fault)
    app.router.add_delete("/_sandbox/faults", _clear_faults)
    app.router.add_post("/_sandbox/faults/release", _release_faults)
    app.router.add_get("/_sandbox/state", _get_state)
    return app


@dataclasses.dataclass
class Running:
    """A started emulator: its base URL and how to stop it."""

    url: str
    runner: web.AppRunner

    async def stop(self) -> None:
        await self.runner.cleanup()


async def serve(
    app: web.Application, ssl_context: ssl.SSLContext, *, host: str = "127.0.0.1", port: int = 0
) -> Running:
    """Serve the app over HTTPS on a loopback port (0 = any free port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1]
    return Running(url=f"https://{host}:{bound}", runner=runner)
