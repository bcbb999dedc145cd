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


def test_the_gpu_bento_is_the_same_bento_on_the_cuda_image(stored_styles):
    cpu, gpu = (yaml.safe_load((REPO / name).read_text()) for name in ("bentofile.yaml", "bentofile.gpu.yaml"))
    gpu_only = {"name": "clipmorph-gpu", "cuda_version": "12.8", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility,video"}
    assert gpu.pop("name") == gpu_only["name"] and gpu["docker"].pop("cuda_version") == gpu_only["cuda_version"]
    assert gpu["envs"].pop() == {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": gpu_only["NVIDIA_DRIVER_CAPABILITIES"]}
    cpu.pop("name")
    assert gpu == cpu  # nothing else drifts apart
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", "bentofile.gpu.yaml", "--output", "tag"], cwd=REPO,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    _, version = re.search(r"clipmorph-gpu:([a-z0-9]+)", result.stdout).group(0).split(":")
    folder = Path(os.environ["BENTOML_HOME"]) / "bentos" / "clipmorph-gpu" / version
    dockerfile = (folder / "env" / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM nvidia/cuda:12\.8\.\d+-cudnn-runtime-", dockerfile, re.M), dockerfile[:2000]
    assert any("apt-get install" in run and " ffmpeg" in run for run in dockerfile.split("\nRUN "))
    assert "ENV NVIDIA_DRIVER_CAPABILITIES=$NVIDIA_DRIVER_CAPABILITIES" in dockerfile
    manifest = yaml.safe_load((folder / "bento.yaml").read_text())
    model_service = next(s for s in manifest["services"] if s["name"] == "clipmorph-model")
    assert {"clipmorph-style-rand-0", "clipmorph-style-rand-1"} <= {
        m["tag"].split(":")[0] for m in model_service["models"]
    }


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


@pytest.fixture(scope="module")
def bento_environment(bento, tmp_path_factory) -> Path:
    """A fresh virtual environment holding the bento's own requirements and nothing else: what
    a container built from the bento gets (no clipmorph install, no test extras)."""
    _, folder = bento
    venv = tmp_path_factory.mktemp("bento-env") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # as the bento's Dockerfile (uv) and `make` do: a current resolver (pip 23's gives up on BentoML's tree)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True, timeout=600)
    requirements = folder / "env" / "python" / "requirements.txt"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(requirements)],
        capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-3000:]
    missing = subprocess.run(
        [str(python), "-c", "import clipmorph"], capture_output=True, cwd=tmp_path_factory.getbasetemp()
    )
    assert missing.returncode != 0  # the bento's own source must be what serves
    return python


def test_the_built_bento_runs_every_feature_on_its_own_requirements(
    bento, bento_environment, vgg_assets, tmp_path_factory
):
    """Served from the bento by an environment made from its requirements alone: an image, a
    video job and style creation (the tiny preset) all work, so no feature lacks an import."""
    import io

    from PIL import Image
    from test_style_creation import painting_bytes

    from media_factory import make_video
    from test_service import wait_for_job

    tag, _ = bento
    tmp_path = tmp_path_factory.mktemp("bento-run")  # short: BentoML's sockets live under it
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(gradient_frame(96, 72, t=i)).save(photos / f"{i}.jpg")
    env = {"CLIPMORPH_CACHE": str(vgg_assets[1].parent), "CLIPMORPH_TRAIN_CONTENT": str(photos)}
    env |= {"CLIPMORPH_WANDB_DIR": str(tmp_path / "wandb"), "CLIPMORPH_WANDB": "0"}
    server = start_server(tmp_path, env, target=tag, python=str(bento_environment), cwd=tmp_path)
    try:
        with server.client() as client:
            buffer = io.BytesIO()
            Image.fromarray(gradient_frame(64, 48)).save(buffer, format="PNG")
            image = client.post("/stylize", files={"image": ("x.png", buffer.getvalue())}, data={"style": "rand-0"})
            assert image.status_code == 200, image.text

            clip = make_video(tmp_path / "clip.mp4", frames=8, size=(64, 48))
            submitted = client.post("/video_job/submit", files={"video": ("clip.mp4", clip.read_bytes())},
                                    data={"style": "rand-1"})  # fmt: skip
            assert submitted.status_code == 200, submitted.text
            final, _ = wait_for_job(client, submitted.json()["task_id"])
            assert final["state"] == "succeeded", final

            created = client.post("/create_style", files={"painting": ("p.png", painting_bytes())},
                                  data={"name": "Bento Stripes", "preset": "tiny"})  # fmt: skip
            assert created.status_code == 200, created.text
            final, _ = wait_for_job(client, created.json()["job_id"])
            assert final["state"] == "succeeded", final
            try:
                painted = client.post("/stylize", files={"image": ("x.png", buffer.getvalue())},
                                      data={"style": "bento-stripes"})  # fmt: skip
                assert painted.status_code == 200, painted.text
            finally:
                assert client.post("/delete_style", json={"style": "bento-stripes"}).status_code == 200
    finally:
        stop_server(server)
