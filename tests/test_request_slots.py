"""The request-slots middleware alone, on a fake ASGI app: a request holds a processing slot only
once its body is in, and one address may hold only so many requests open."""

import asyncio

import pytest

from clipmorph.serving.slots import RequestSlots


class Processing:
    """An app that reads the whole body, then works until ``release`` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.working = 0

    async def __call__(self, scope, receive, send):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            if not message.get("more_body"):
                break
        self.working += 1
        try:
            await self.release.wait()
        finally:
            self.working -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


def scope(client="10.0.0.1", body=True, path="/stylize"):
    headers = [(b"content-length", b"4")] if body else []
    return {"type": "http", "path": path, "headers": headers, "client": (client, 5000)}


class Client:
    """One request: ``chunks`` arrive at once; ``stall`` keeps the last one from ever arriving."""

    def __init__(self, gate, scope, chunks=(b"data",), stall=False):
        self.sent = []
        self.queue = [
            {"type": "http.request", "body": c, "more_body": stall or i < len(chunks) - 1} for i, c in enumerate(chunks)
        ]
        self.task = asyncio.ensure_future(gate(scope, self.receive, self.send))
        self.answered = asyncio.Event()

    async def receive(self):
        if self.queue:
            return self.queue.pop(0)
        await asyncio.Event().wait()  # stalled (or waiting for a disconnect that never comes)

    async def send(self, message):
        self.sent.append(message)
        if message["type"] == "http.response.body":
            self.answered.set()

    @property
    def status(self):
        return next((m["status"] for m in self.sent if m["type"] == "http.response.start"), None)

    def body(self):
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body").decode()


async def settle(condition):
    """Let the event loop run until ``condition()`` holds (every step is an await, no timers)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the middleware never got there")


def test_stalled_uploads_hold_no_slot_and_complete_requests_are_served():
    async def scenario():
        app = Processing()
        gate = RequestSlots(app, max_processing=2)
        stalled = [Client(gate, scope(f"10.0.1.{n}"), stall=True) for n in range(50)]
        served = [Client(gate, scope("10.0.0.9")) for _ in range(2)]
        await settle(lambda: app.working == 2)
        assert gate.processing == 2 and not any(c.sent for c in stalled)
        app.release.set()
        await asyncio.wait_for(asyncio.gather(*(c.task for c in served)), 5)
        assert [c.status for c in served] == [200, 200] and gate.processing == 0
        for client in stalled:
            client.task.cancel()

    asyncio.run(scenario())


def test_complete_requests_over_the_limit_get_429_at_once_and_slots_come_back():
    async def scenario():
        app = Processing()
        gate = RequestSlots(app, max_processing=2)
        busy = [Client(gate, scope()) for _ in range(2)]
        await settle(lambda: app.working == 2)
        extra = Client(gate, scope())
        without_body = Client(gate, scope(body=False, path="/styles"))
        await asyncio.wait_for(asyncio.gather(extra.task, without_body.task), 5)
        assert extra.status == 429 and "too many requests" in extra.body()
        assert without_body.status == 429
        health = Client(gate, scope(body=False, path="/readyz"))  # never counted, as with BentoML's limiter
        await settle(lambda: app.working == 3)
        app.release.set()
        await asyncio.wait_for(asyncio.gather(*(c.task for c in [*busy, health])), 5)
        assert [c.status for c in busy] == [200, 200] and gate.processing == 0
        again = Client(gate, scope())
        await asyncio.wait_for(again.task, 5)
        assert again.status == 200

    asyncio.run(scenario())


def test_one_address_may_hold_only_so_many_requests_open_and_others_are_not_affected():
    async def scenario():
        app = Processing()
        app.release.set()
        gate = RequestSlots(app, max_processing=64, max_per_client=3)
        held = [Client(gate, scope("10.0.0.1"), stall=True) for _ in range(3)]
        await settle(lambda: gate.open_by_client["10.0.0.1"] == 3)
        refused = Client(gate, scope("10.0.0.1"))
        other = Client(gate, scope("10.0.0.2"))
        await asyncio.wait_for(asyncio.gather(refused.task, other.task), 5)
        assert refused.status == 429 and "at most 3" in refused.body()
        assert other.status == 200
        for client in held:
            client.task.cancel()
        await asyncio.gather(*(c.task for c in held), return_exceptions=True)
        assert "10.0.0.1" not in gate.open_by_client and gate.processing == 0
        after = Client(gate, scope("10.0.0.1"))
        await asyncio.wait_for(after.task, 5)
        assert after.status == 200

    asyncio.run(scenario())


def test_a_failing_app_gives_its_slot_back():
    async def failing(scope, receive, send):
        await receive()
        raise RuntimeError("boom")

    async def run():
        gate = RequestSlots(failing, max_processing=1, max_per_client=1)

        async def receive():
            return {"type": "http.request", "body": b"data", "more_body": False}

        async def send(message):
            raise AssertionError("nothing is sent")

        for _ in range(3):  # the slot and the address count come back each time
            with pytest.raises(RuntimeError):
                await gate(scope(), receive, send)
        assert gate.processing == 0 and not gate.open_by_client

    asyncio.run(run())
