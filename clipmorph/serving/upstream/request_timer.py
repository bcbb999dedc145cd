"""Let go of every request when it ends: BentoML's traffic timeout keeps each one for 15 minutes.

BentoML 1.4's ``TimeoutMiddleware`` starts a timer per request (``loop.call_later(timeout, ...)``)
and never cancels it. An asyncio timer holds a copy of the request task's context until it
fires, and that context reaches the request: its scope, its body, every middleware's closures,
its tracing span. So each worker holds every request of the last ``traffic.timeout`` seconds
(900 for the API, 600 for the model): under steady load its memory climbs for a quarter of an
hour before it levels off, by hundreds of megabytes. ``install`` gives the middleware a
``__call__`` that behaves the same and cancels its timer when the request ends; asyncio then
drops the cancelled timers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def install() -> bool:
    """Patch BentoML's TimeoutMiddleware once per process; False when it is not the one we know."""
    from bentoml._internal.server.http import traffic

    middleware = traffic.TimeoutMiddleware
    if getattr(middleware, "_clipmorph_cancels_timer", False):
        return True
    if not hasattr(middleware, "_set_timer_out"):  # a BentoML whose middleware we have not read
        log.warning("BentoML's TimeoutMiddleware changed: request timers are left as they are")
        return False

    async def call_and_cancel_timer(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def first_send(message: Any) -> None:
            if not waiter.done():
                waiter.set_result(None)  # the answer has started: the timeout no longer applies
            await send(message)

        work = asyncio.ensure_future(self.app(scope, receive, first_send), loop=loop)
        try:
            try:
                await waiter
            except TimeoutError:
                if work.cancel():
                    from starlette.responses import JSONResponse

                    error = {"error": f"Not able to process the request in {self.timeout} seconds"}
                    await JSONResponse(error, status_code=504)(scope, receive, send)
            else:
                await work
        finally:
            timer.cancel()

    middleware.__call__ = call_and_cancel_timer
    middleware._clipmorph_cancels_timer = True
    return True
