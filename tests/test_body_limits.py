"""The body-limits middleware alone, on a fake ASGI app: size per route, idle and total time."""

import asyncio

from clipmorph.serving.limits import BodyLimits


async def reading_app(scope, receive, send):
    """Reads the whole body, then answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(size).encode()})


def run(middleware, path, chunks, delays=None, headers=()):
    """Feed ``chunks`` (waiting ``delays[i]`` seconds before each); returns (status, body)."""
    sent = []
    queue = list(chunks)
    delays = list(delays or [0.0] * len(queue))

    async def receive():
        if not queue:
            await asyncio.sleep(3600)  # the client stalls
        await asyncio.sleep(delays.pop(0))
        body = queue.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": path, "headers": list(headers)}
    asyncio.run(middleware(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body.decode()


def limits(**options):
    return BodyLimits(reading_app, max_bytes=1000, route_bytes={"/stylize": 100}, **options)


def test_each_route_has_its_own_size_limit_declared_or_counted():
    assert run(limits(), "/stylize", [b"x" * 50, b"x" * 40]) == (200, "90")
    status, body = run(limits(), "/stylize", [b"x" * 60, b"x" * 60])  # streamed: counted
    assert status == 413 and "/stylize is 100 bytes" in body
    assert run(limits(), "/stylize_batch", [b"x" * 60, b"x" * 60]) == (200, "120")
    status, _ = run(limits(), "/stylize", [b"x"], headers=[(b"content-length", b"5000")])  # declared: at once
    assert status == 413


def test_a_stalled_upload_gets_408_after_the_idle_time_and_a_steady_one_passes():
    status, body = run(limits(idle_seconds=0.2), "/stylize", [b"x" * 10, b"x" * 10], delays=[0.0, 5.0])
    assert status == 408 and "no data for 0.2 s" in body
    assert run(limits(idle_seconds=0.5), "/stylize", [b"x"] * 5, delays=[0.1] * 5) == (200, "5")


def test_a_trickle_that_never_stalls_still_ends_at_the_total_deadline():
    middleware = limits(idle_seconds=0.3, total_seconds=0.6)
    status, body = run(middleware, "/x", [b"x"] * 20, delays=[0.1] * 20)
    assert status == 408 and "not complete after 0.6 s" in body
