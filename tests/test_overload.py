"""Overload is refused fast instead of queueing without bound: a real server with tiny limits."""

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from service_fixture import own_store, start_server, stop_server
from test_service import png_bytes

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_requests_over_the_concurrency_limit_get_429_quickly_and_the_rest_succeed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("busy")
    home = own_store(workdir)  # two servers on one store at once trip BentoML's task database
    server = start_server(workdir, {"CLIPMORPH_MAX_CONCURRENCY": "2", "BENTOML_HOME": str(home)})
    try:
        photo = png_bytes(512, 384)

        def one(_: int) -> tuple[int, float]:
            with server.client() as client:
                started = time.monotonic()
                response = client.post("/stylize", files={"image": ("p.png", photo)}, data={"style": "rand-0"})
                return response.status_code, time.monotonic() - started

        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(one, range(12)))
        codes = [code for code, _ in results]
        assert set(codes) <= {200, 429} and codes.count(200) >= 2 and codes.count(429) >= 1, codes
        refused = [seconds for code, seconds in results if code == 429]
        served = [seconds for code, seconds in results if code == 200]
        assert max(refused) < min(served) + 1.0  # refused at once, not after waiting in line
        assert server.alive()
    finally:
        stop_server(server)
