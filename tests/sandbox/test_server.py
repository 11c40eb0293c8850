"""The shared emulator shell: request log, faults by operation, state, over real HTTPS."""

from __future__ import annotations

import asyncio
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


async def _start_writer(
    tmp_path: pathlib.Path, write: server.Handler
) -> tuple[web.Application, server.Running, ssl.SSLContext]:
    ca = tls.SandboxCA(tmp_path)
    app = server.make_app(dict, seed=7)
    app.router.add_post("/write", write, name="demo.write")
    running = await server.serve(app, ca.server_context())
    return app, running, ssl.create_default_context(cafile=str(ca.bundle_path))


async def _until_held(plan: server.faults.FaultPlan) -> None:
    for _ in range(500):
        if plan.holding:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request was never held")


async def test_hold_fault_waits_for_release_then_serves_or_drops(tmp_path: pathlib.Path) -> None:
    calls: list[int] = []

    async def write(request: web.Request) -> web.Response:
        calls.append(1)  # the "write": it must happen only once released with serve
        return web.json_response({"ok": True})

    app, running, ctx = await _start_writer(tmp_path, write)
    plan = app[server.FAULTS_KEY]
    try:
        async with aiohttp.ClientSession(base_url=running.url) as http:
            rule = {"operation": "demo.write", "kind": "hold", "count": 2}
            await http.post("/_sandbox/faults", json=rule, ssl=ctx)
            held = asyncio.ensure_future(http.post("/write", ssl=ctx))
            await _until_held(plan)
            await asyncio.sleep(0.1)
            assert not held.done() and calls == []
            released = await http.post("/_sandbox/faults/release", ssl=ctx)
            assert (await released.json()) == {"released": 1}
            assert (await held).status == 200 and calls == [1]
            # Released with serve=0: dropped, the handler never runs.
            dropped = asyncio.ensure_future(http.post("/write", ssl=ctx))
            await _until_held(plan)
            assert plan.release(serve=False) == 1
            try:
                answer = await dropped
                status = answer.status
            except aiohttp.ClientError:
                status = 0
            assert status == 0 and calls == [1] and plan.holds == 2
            assert (await http.post("/write", ssl=ctx)).status == 200  # the count is spent
    finally:
        await running.stop()


async def test_held_write_lands_after_the_client_has_gone(tmp_path: pathlib.Path) -> None:
    """The crash case: the caller dies while its write is held; released, the write lands."""
    bodies: list[object] = []

    async def write(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response({"ok": True})

    app, running, ctx = await _start_writer(tmp_path, write)
    plan = app[server.FAULTS_KEY]
    try:
        plan.add(server.faults.FaultRule("demo.write", "hold", count=1))
        async with aiohttp.ClientSession(base_url=running.url) as http:
            held = asyncio.ensure_future(http.post("/write", json={"n": 1}, ssl=ctx))
            await _until_held(plan)
        held.cancel()  # the session is closed: the connection is gone
        await asyncio.sleep(0.1)
        assert bodies == []
        assert plan.release(serve=True) == 1
        for _ in range(100):
            if bodies:
                break
            await asyncio.sleep(0.01)
        assert bodies == [{"n": 1}]
    finally:
        await running.stop()
