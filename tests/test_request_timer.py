"""BentoML's per-request timeout timer must not keep requests alive after they end (the soak's
memory growth): what an outer middleware put in the request's context is freed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO

SCENARIO = textwrap.dedent(
    """
    import asyncio, contextvars, gc, weakref, sys
    from bentoml._internal.server.http.traffic import TimeoutMiddleware
    if sys.argv[1] == "fixed":
        from clipmorph.serving.upstream import request_timer
        assert request_timer.install()

    REQUEST = contextvars.ContextVar("request")  # what tracing or BentoML's context set outside

    class Body:  # stands for a request, its body and its middleware closures
        pass

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def one_request(middleware, alive):
        body = Body()
        alive.append(weakref.ref(body))
        REQUEST.set(body)
        sent = []
        async def send(message):
            sent.append(message)
        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}
        await middleware({"type": "http"}, receive, send)
        assert sent[0]["status"] == 200

    async def main():
        middleware = TimeoutMiddleware(app, timeout=900)
        alive = []
        for _ in range(300):
            await asyncio.create_task(one_request(middleware, alive))  # a task per request, as uvicorn does
        await asyncio.sleep(0)
        gc.collect()
        print(sum(ref() is not None for ref in alive))

    asyncio.run(main())
    """
)


def alive_after_300_requests(variant: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, variant], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1])


def test_bentoml_as_released_keeps_every_request_for_the_whole_traffic_timeout():
    # If this fails, BentoML fixed its TimeoutMiddleware and clipmorph.serving.upstream.request_timer can go.
    assert alive_after_300_requests("as-released") == 300


def test_with_the_timer_cancelled_ended_requests_are_freed():
    # asyncio drops cancelled timers in bulk once more than 100 are waiting: at most that many stay.
    assert alive_after_300_requests("fixed") <= 101
