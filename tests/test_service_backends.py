"""The service on the OpenVINO backend: a real server with CLIPMORPH_BACKEND=openvino."""

import io

import pytest
from PIL import Image

from service_fixture import own_store, start_server, stop_server
from test_service import png_bytes, stylize

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_the_service_stylizes_through_openvino(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("openvino")
    home = own_store(workdir)  # two servers on one store at once trip BentoML's task database
    env = {"CLIPMORPH_BACKEND": "openvino", "CLIPMORPH_DEVICE": "cpu", "BENTOML_HOME": str(home)}
    server = start_server(workdir, env)
    try:
        with server.client() as client:
            assert client.post("/info", json={}).json()["model"]["backend"] == "openvino"
            response = stylize(client, png_bytes(96, 64), style="rand-1")
        assert response.status_code == 200, response.text
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.size == (96, 64)
    finally:
        stop_server(server)
