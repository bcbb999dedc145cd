"""Response headers that keep the web page from being framed, sniffed or fed foreign scripts.

Every response says ``nosniff`` and may not be framed (the "create a style" panel changes
state); the page (``/ui``) also gets a Content-Security-Policy that allows only this origin's
own scripts and styles, and the blob: pictures and videos the page makes itself.
"""

from __future__ import annotations

from clipmorph.serving.limits import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
EVERY_RESPONSE = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY")]
PAGE_ONLY = [(b"content-security-policy", PAGE_POLICY.encode()), (b"referrer-policy", b"no-referrer")]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, page_prefix: str = "/ui") -> None:
        self.app = app
        self.page_prefix = page_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = EVERY_RESPONSE + (PAGE_ONLY if scope["path"].startswith(self.page_prefix) else [])

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message = {
                    **message,
                    "headers": [*message.get("headers", []), *(h for h in extra if h[0] not in names)],
                }
            await send(message)

        await self.app(scope, receive, with_headers)
