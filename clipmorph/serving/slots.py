"""ASGI middleware: processing slots are taken once a request's body is in, and one client
address may hold only so many requests open.

BentoML's own limiter (``traffic.max_concurrency``) counts a request from its first byte, so
uploads that stall after their headers held every slot and every other client got 429 until
the body timeout let them go, again and again. Here a request waiting for its body holds no
slot: it costs a socket, a coroutine and what it has sent so far, all bounded by the body
limits (``limits.py``), and per address by ``max_per_client``. A request whose body is
complete (or that has none) takes a slot or gets 429 at once, as before: overload is still
refused fast instead of queueing.
"""

from __future__ import annotations

from collections import Counter

from clipmorph.serving.limits import ASGIApp, Message, Receive, Scope, Send, send_refusal

UNCOUNTED_PATHS = frozenset({"/metrics", "/healthz", "/livez", "/readyz"})  # as BentoML's limiter


def has_body(scope: Scope) -> bool:
    headers = dict(scope.get("headers") or [])
    declared = headers.get(b"content-length")
    return b"transfer-encoding" in headers or (declared is not None and declared.strip() not in (b"", b"0"))


def client_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


class RequestSlots:
    def __init__(self, app: ASGIApp, max_processing: int, max_per_client: int = 0) -> None:
        self.app = app
        self.max_processing = max_processing
        self.max_per_client = max_per_client  # 0: no cap per address
        self.processing = 0
        self.open_by_client: Counter[str] = Counter()

    def _take_slot(self) -> bool:
        if self.processing >= self.max_processing:
            return False
        self.processing += 1
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in UNCOUNTED_PATHS:
            await self.app(scope, receive, send)
            return
        client = client_address(scope)
        if client is not None and self.max_per_client and self.open_by_client[client] >= self.max_per_client:
            message = f"too many requests open from one address (at most {self.max_per_client} at once)"
            await send_refusal(send, 429, "client_busy", message)
            return
        holding = refused = started = False

        async def refuse() -> None:
            nonlocal refused
            refused = True
            if not started:
                await send_refusal(send, 429, "too_many_requests", "too many requests: try again shortly")

        async def counted_receive() -> Message:
            nonlocal holding
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False) and not holding:
                if not self._take_slot():
                    await refuse()
                    return {"type": "http.disconnect"}
                holding = True
            return message

        async def counted_send(message: Message) -> None:
            nonlocal started
            if refused:  # the 429 is already out: drop whatever the app answers
                return
            started = True
            await send(message)

        if client is not None:
            self.open_by_client[client] += 1
        try:
            if not has_body(scope):
                if not self._take_slot():
                    await refuse()
                    return
                holding = True
            await self.app(scope, counted_receive, counted_send)
        finally:
            if holding:
                self.processing -= 1
            if client is not None:
                self.open_by_client[client] -= 1
                if self.open_by_client[client] <= 0:
                    del self.open_by_client[client]
