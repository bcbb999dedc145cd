"""Overload is refused fast instead of queueing without bound: a real server with tiny limits."""

import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from media_factory import make_video
from service_fixture import own_store, start_server, stop_server
from test_service import png_bytes

pytestmark = [pytest.mark.service, pytest.mark.slow]


def in_progress(client, endpoint: str) -> float:
    """Requests BentoML's API service is processing now on ``endpoint`` (its own gauge)."""
    metrics = client.get("/metrics").text
    pattern = rf'\w*request_in_progress\{{[^}}]*endpoint="{re.escape(endpoint)}"[^}}]*\}} (\S+)'
    return sum(float(value) for value in re.findall(pattern, metrics))


def test_requests_over_the_concurrency_limit_get_429_at_once_and_the_rest_succeed(tmp_path_factory):
    """Two slow requests hold both slots (CLIPMORPH_MAX_CONCURRENCY=2); every request sent while
    they do is refused with 429 before either of them ends (no waiting in line), and the two
    are answered in full."""
    workdir = tmp_path_factory.mktemp("busy")
    home = own_store(workdir)  # two servers on one store at once trip BentoML's task database
    clip = make_video(workdir / "clip.mp4", frames=96, size=(640, 480), fps=12)  # 8 s: a sync video
    limits = {"CLIPMORPH_MAX_CONCURRENCY": "2", "CLIPMORPH_MAX_SYNC_VIDEO_SECONDS": "10"}
    server = start_server(workdir, {**limits, "BENTOML_HOME": str(home)})
    try:

        def slow(_: int) -> int | tuple[int, str]:
            with server.client() as client:
                files = {"video": ("clip.mp4", clip.read_bytes())}
                answer = client.post("/stylize_video", files=files, data={"style": "rand-0"})
                return answer.status_code if answer.status_code == 200 else (answer.status_code, answer.text[:300])

        with ThreadPoolExecutor(2) as pool, server.client() as client:
            holding = [pool.submit(slow, i) for i in range(2)]
            deadline = time.monotonic() + 120
            while in_progress(client, "/stylize_video") < 2:
                assert time.monotonic() < deadline and not any(f.done() for f in holding), "the slots never filled"
                time.sleep(0.1)
            refused = []
            for _ in range(6):
                answer = client.post("/stylize", files={"image": ("p.png", png_bytes())}, data={"style": "rand-0"})
                refused.append((answer.status_code, any(f.done() for f in holding)))
            # Each answered while both slots were still held.
            assert refused == [(429, False)] * 6, (refused, [f.result() for f in holding])
            assert [f.result() for f in holding] == [200, 200]
            after = client.post("/stylize", files={"image": ("p.png", png_bytes())}, data={"style": "rand-0"})
            assert after.status_code == 200  # the slots are free again
        assert server.alive()
    finally:
        stop_server(server)
