"""kopf's API session: ordinary requests share a bounded number of connections, watches do not."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from rotator.handlers import apisession


def test_a_watch_is_told_by_its_query() -> None:
    assert apisession.is_watch(URL("https://k/apis/x?watch=true&timeoutSeconds=300"))
    assert not apisession.is_watch(URL("https://k/apis/x"))
    assert not apisession.is_watch(URL("https://k/apis/x?watch=false"))


def test_the_bound_must_allow_a_request() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        apisession.BoundedConnector(max_requests=0)


async def test_requests_wait_for_a_slot_and_watches_never_do() -> None:
    in_flight = 0
    peak = 0
    release_watches = asyncio.Event()

    async def handle(request: web.Request) -> web.StreamResponse:
        nonlocal in_flight, peak
        if request.query.get("watch") == "true":
            stream = web.StreamResponse()
            await stream.prepare(request)
            await stream.write(b"{}\n")
            await release_watches.wait()
            return stream
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    async with TestServer(app) as server:
        connector = apisession.BoundedConnector(max_requests=3)
        async with aiohttp.ClientSession(connector=connector) as session:
            # More watch streams than slots stay open, and requests still get through.
            watches = [await session.get(server.make_url("/w?watch=true")) for _ in range(5)]
            answers = await asyncio.gather(
                *(_get_json(session, server.make_url(f"/r{i}")) for i in range(12))
            )
            assert answers == [{"ok": True}] * 12
            assert peak <= 3
            assert connector.peak_in_use == 3
            assert connector.in_use == 0  # every slot given back
            release_watches.set()
            for watch in watches:
                watch.close()


async def _get_json(session: aiohttp.ClientSession, url: URL) -> object:
    async with session.get(url) as answer:
        return await answer.json()
