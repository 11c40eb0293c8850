"""kopf's own Kubernetes API session, with a bounded number of connections.

kopf's built-in session uses ``aiohttp.TCPConnector(limit=0)``: every API request that finds
no idle connection opens a new one. A burst of new objects makes kopf patch and post for all
of them at once, so a burst of 500 ServicePrincipalSecrets opened ~380 TLS connections to the
API server. Each costs ~0.25 MiB (asyncio's 256 KiB SSL read buffer, OpenSSL state) and the
freed memory stays with the allocator, so the process kept that peak for good
(docs/benchmarks.md, finding 2).

The login handler here authenticates exactly as kopf's default does (:func:`kopf.login_via_client`:
in-cluster, else kubeconfig) and hands kopf a session whose connector lets at most
``--api-connections`` ordinary requests hold a connection at once; the others wait for a free
one (within kopf's request timeout). Watch streams are long-lived and do not count: however
many namespaces are watched, a watch never waits for a request to finish, and requests never
wait behind watches.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any

import aiohttp
import kopf

WATCH_PARAMETER = "watch"


def is_watch(url: Any) -> bool:
    """Whether a request URL is a Kubernetes watch stream (``?watch=true``)."""
    return str(url.query.get(WATCH_PARAMETER, "")).lower() in ("true", "1")


class BoundedConnector(aiohttp.TCPConnector):
    """A connector that lets at most ``max_requests`` non-watch requests hold a connection.

    The pool itself is unbounded (``limit=0``, as in kopf) so watches are never starved; the
    bound is a semaphore taken before a connection is acquired and given back when aiohttp
    releases or closes that connection (after the response body was read).
    """

    def __init__(self, *, max_requests: int, **kwargs: Any) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        super().__init__(limit=0, **kwargs)
        self.max_requests = max_requests
        self._slots = asyncio.Semaphore(max_requests)
        self.in_use = 0
        self.peak_in_use = 0

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109 - aiohttp's signature
        if is_watch(req.url):
            return await super().connect(req, traces, timeout)
        await self._slots.acquire()
        try:
            connection = await super().connect(req, traces, timeout)
        except BaseException:
            self._slots.release()
            raise
        self.in_use += 1
        self.peak_in_use = max(self.peak_in_use, self.in_use)
        released = False

        def give_back() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_use -= 1
                self._slots.release()

        connection.add_callback(give_back)
        return connection


def session_for(info: kopf.ConnectionInfo, max_requests: int) -> aiohttp.ClientSession:
    """The aiohttp session kopf would build for ``info``, with a :class:`BoundedConnector`."""
    with warnings.catch_warnings():
        # kopf silences its own deprecation warning of basic auth the same way.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="kopf")
        auth = info.as_aiohttp_basic_auth()
    return aiohttp.ClientSession(
        connector=BoundedConnector(max_requests=max_requests, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        auth=auth,
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )


async def login(
    *,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    settings: kopf.OperatorSettings,
    max_requests: int,
) -> kopf.AiohttpSession | None:
    """kopf's default login (kubernetes client config), on a bounded session."""
    info = kopf.login_via_client(logger=logger, settings=settings)
    if info is None:
        return None
    return kopf.AiohttpSession(
        server=info.server,
        priority=info.priority,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session_for(info, max_requests),
    )
