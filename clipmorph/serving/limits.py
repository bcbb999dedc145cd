"""ASGI middleware that bounds what a request body may cost before any route sees it.

BentoML has no setting for either bound:

* **size, per route**: an image route takes image-sized bodies, video routes larger ones.
  Content-Length is checked up front and streamed (chunked) bodies are counted as they arrive,
  so a lying or missing header does not help (413).
* **time to receive**: a client that stalls mid-upload would hold a concurrency slot, a thread
  and a temp file for as long as the traffic timeout allows (which is sized for processing, not
  for receiving). A body must keep arriving (no gap longer than ``idle_seconds``) and be
  complete within ``total_seconds``, or the request ends with 408.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_refusal(send: Send, status: int, reason: str, message: str) -> None:
    """A JSON error that closes the connection (the client may still be sending), counted by reason."""
    from clipmorph.serving import metrics

    metrics.rejected(reason)
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        route_bytes: Mapping[str, int] | None = None,
        idle_seconds: float = 20.0,
        total_seconds: float = 300.0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.route_bytes = dict(route_bytes or {})
        self.idle_seconds = idle_seconds
        self.total_seconds = total_seconds

    def limit_for(self, path: str) -> int:
        return self.route_bytes.get(path.rstrip("/") or "/", self.max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", "/"))
        too_large = f"request body too large: the limit for {scope.get('path', '/')} is {limit} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_refusal(send, 413, "body_too_large", too_large)
            return

        received = 0
        refused = False
        started = False
        finished = False
        deadline = time.monotonic() + self.total_seconds

        async def refuse(status: int, reason: str, message: str) -> Message:
            nonlocal refused
            refused = True
            if not started:
                await send_refusal(send, status, reason, message)
            return {"type": "http.disconnect"}

        async def guarded_receive() -> Message:
            nonlocal received, finished
            if refused:
                return {"type": "http.disconnect"}
            if finished:  # the body is in: what is left to wait for is the client going away
                return await receive()
            wait = min(self.idle_seconds, deadline - time.monotonic())
            try:
                message = await asyncio.wait_for(receive(), timeout=max(wait, 0.0))
            except TimeoutError:
                seconds = self.idle_seconds if wait >= self.idle_seconds else self.total_seconds
                kind = "no data for" if wait >= self.idle_seconds else "not complete after"
                return await refuse(408, "body_timeout", f"request body too slow: {kind} {seconds:g} s")
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return await refuse(413, "body_too_large", too_large)
                finished = not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # the 4xx is already out: drop whatever the app answers
                return
            started = True
            await send(message)

        await self.app(scope, guarded_receive, guarded_send)
