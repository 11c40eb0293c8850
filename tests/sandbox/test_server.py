"""The shared emulator shell: request log, faults by operation, state, over real HTTPS."""

from __future__ import annotations

import pathlib
import ssl

import aiohttp
from aiohttp import web

from rotator.sandbox import server, tls


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def _start(tmp_path: pathlib.Path) -> tuple[server.Running, ssl.SSLContext]:
    ca = tls.SandboxCA(tmp_path)
    app = server.make_app(lambda: {"things": 1}, seed=7)
    app.router.add_get("/hello", _hello, name="demo.hello")
    running = await server.serve(app, ca.server_context())
    return running, ssl.create_default_context(cafile=str(ca.bundle_path))


async def test_log_faults_and_state_over_https(tmp_path: pathlib.Path) -> None:
    running, ctx = await _start(tmp_path)
    try:
        async with aiohttp.ClientSession(base_url=running.url) as http:
            r = await http.get("/hello", ssl=ctx)
            assert r.status == 200
            await http.post(
                "/_sandbox/faults",
                json={
                    "operation": "demo.hello",
                    "kind": "status",
                    "status": 429,
                    "count": 1,
                    "retryAfter": 3,
                },
                ssl=ctx,
            )
            r = await http.get("/hello", ssl=ctx)
            assert (r.status, r.headers["Retry-After"]) == (429, "3")
            r = await http.get("/hello", ssl=ctx)  # the count is spent
            assert r.status == 200
            log = await (await http.get("/_sandbox/requests?operation=demo.hello", ssl=ctx)).json()
            assert [e["status"] for e in log] == [200, 429, 200]
            state = await (await http.get("/_sandbox/state", ssl=ctx)).json()
            assert state == {"things": 1}
    finally:
        await running.stop()


async def test_after_fault_serves_then_answers_error(tmp_path: pathlib.Path) -> None:
    running, ctx = await _start(tmp_path)
    try:
        async with aiohttp.ClientSession(base_url=running.url) as http:
            await http.post(
                "/_sandbox/faults",
                json={"operation": "*", "kind": "after", "status": 503, "count": 1},
                ssl=ctx,
            )
            r = await http.get("/hello", ssl=ctx)
            assert r.status == 503
            log = await (await http.get("/_sandbox/requests", ssl=ctx)).json()
            assert log[0]["servedStatus"] == 200
    finally:
        await running.stop()


async def test_respond_fault_answers_exactly_the_given_body(tmp_path: pathlib.Path) -> None:
    running, ctx = await _start(tmp_path)
    page = "<html><head><title>502 Bad Gateway</title></head></html>"
    try:
        async with aiohttp.ClientSession(base_url=running.url) as http:
            await http.post(
                "/_sandbox/faults",
                json={
                    "operation": "demo.hello",
                    "kind": "respond",
                    "status": 502,
                    "count": 1,
                    "body": page,
                    "headers": {"Content-Type": "text/html", "Retry-After": "9"},
                },
                ssl=ctx,
            )
            r = await http.get("/hello", ssl=ctx)
            assert (r.status, await r.text()) == (502, page)
            assert (r.headers["Content-Type"], r.headers["Retry-After"]) == ("text/html", "9")
            assert (await http.get("/hello", ssl=ctx)).status == 200
    finally:
        await running.stop()
