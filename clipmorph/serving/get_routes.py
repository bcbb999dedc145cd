"""``GET`` for the routes that only read (``curl host/styles``), beside BentoML's ``POST``.

BentoML routes every API method as POST. This middleware turns a GET of a listed,
argument-free route into the same POST with an empty JSON body, so both answer alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from clipmorph.serving.limits import ASGIApp, Message, Receive, Scope, Send

EMPTY_JSON = b"{}"


class ReadOnlyGets:
    def __init__(self, app: ASGIApp, paths: Iterable[str]) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        kept = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers = [*kept, (b"content-type", b"application/json"), (b"content-length", str(len(EMPTY_JSON)).encode())]
        delivered = False

        async def body() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": EMPTY_JSON, "more_body": False}

        await self.app({**scope, "method": "POST", "headers": headers}, body, send)
