"""`bentoml build` packs the service, the package and the stored styles; the bento serves."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import REPO
from media_factory import gradient_frame
from service_fixture import start_server, stop_server

pytestmark = [pytest.mark.service, pytest.mark.slow]


@pytest.fixture(scope="module")
def bento(stored_styles) -> tuple[str, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"], cwd=REPO, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    tag = re.search(r"clipmorph:[a-z0-9]+", result.stdout).group(0)
    name, version = tag.split(":")
    return tag, Path(os.environ["BENTOML_HOME"]) / "bentos" / name / version


def test_bento_holds_service_package_models_and_ffmpeg(bento):
    _, folder = bento
    manifest = yaml.safe_load((folder / "bento.yaml").read_text())
    model_service = next(s for s in manifest["services"] if s["name"] == "clipmorph-model")
    packed = {m["tag"].split(":")[0] for m in model_service["models"]}
    assert {"clipmorph-style-rand-0", "clipmorph-style-rand-1"} <= packed
    assert any(name.startswith("clipmorph-backbone-") for name in packed)
    assert (folder / "src" / "service.py").is_file() and (
        folder / "src" / "clipmorph" / "inference" / "engine.py"
    ).is_file()
    assert (folder / "src" / "clipmorph" / "serving" / "web" / "static" / "index.html").is_file()
    assert not (folder / "src" / "tests").exists()
    dockerfile = (folder / "env" / "docker" / "Dockerfile").read_text()
    assert re.search(r"apt-get install .*ffmpeg", dockerfile)
    assert "requirements.txt" in dockerfile
    assert "torch==2.14.1" in (folder / "env" / "python" / "requirements.txt").read_text()


def test_built_bento_serves(bento, tmp_path):
    import io

    from PIL import Image

    tag, _ = bento
    server = start_server(tmp_path, target=tag)
    try:
        buffer = io.BytesIO()
        Image.fromarray(gradient_frame(64, 48)).save(buffer, format="PNG")
        response = httpx.post(
            f"{server.url}/stylize",
            files={"image": ("x.png", buffer.getvalue())},
            data={"style": "rand-1"},
            timeout=120,
        )
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == (64, 48)
    finally:
        stop_server(server)
