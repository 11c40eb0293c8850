"""The one daemon shell every kind runs in: pass, sleep until due or woken, until stopped.

Each of our objects has one long-lived kopf daemon. What it does in a pass is the kind's own
(gather → decide → act, :mod:`rotator.handlers.reconciling` for ServicePrincipalSecrets,
:mod:`rotator.handlers.binding` for bindings); the loop around it is shared: the pass runs
under the object's memory lock (the delete handler waits for it), a pass that raises (the API
server refused a read or a status write) is retried with backoff, and between passes the
daemon sleeps until the pass's answer is due, a wake-up arrives (:mod:`waking`), or kopf stops
it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rotator.core import schedule
from rotator.handlers import runtime

logger = logging.getLogger(__name__)

#: One pass over one object: the seconds until the next one is due (None: until woken).
Pass = Callable[[], Awaitable[float | None]]


async def run(
    rt: runtime.Runtime,
    obj: str,
    pass_: Pass,
    stopped: Any,
    *,
    on_exit: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Run ``pass_`` for object ``obj`` until ``stopped``; then ``on_exit`` (if any)."""
    memory = rt.memory(obj)
    crashes = 0
    try:
        while not stopped:
            try:
                async with memory.lock:
                    wait = await pass_()
                crashes = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The API server refused a read or a status write: retry the whole pass.
                crashes += 1
                wait = schedule.backoff_delay(crashes, key=obj)
                logger.warning(
                    "%s: pass failed (%s); retrying in %.0fs", obj, type(exc).__name__, wait
                )
                logger.debug("pass failure of %s", obj, exc_info=exc)
            if stopped:
                return
            await sleep(rt, obj, wait, stopped)
    finally:
        if on_exit is not None:
            await on_exit()


async def sleep(rt: runtime.Runtime, obj: str, seconds: float | None, stopped: Any) -> None:
    """Sleep ``seconds`` (None: until woken), ending early on a wake-up or when ``stopped``."""

    async def until_stopped() -> None:
        await stopped.wait()

    waker = asyncio.ensure_future(rt.wakers.sleep(obj, seconds))
    stopper = asyncio.ensure_future(until_stopped())
    try:
        await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waker, stopper):
            task.cancel()
