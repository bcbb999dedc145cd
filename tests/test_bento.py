"""`bentoml build` packs the service, the package, the styles and what style creation trains
with; the bento serves every feature, also unpacked the way its container runs it. These bentos
pack a store of test styles, named by `deploy/bento_models.py --from-store` (a private build);
tests/test_bento_models.py covers the shipped bentofiles' own list."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from PIL import Image

from conftest import REPO, run_cli
from media_factory import gradient_frame
from service_fixture import own_store, start_server, stop_server

pytestmark = [pytest.mark.service, pytest.mark.slow]

TORCH_PIN = next(d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
                 if d.startswith("torch=="))  # fmt: skip


@dataclass(frozen=True)
class Built:
    tag: str
    folder: Path  # the bento in the store
    home: Path  # the BentoML home it was built in


def bentofile_of_the_store(bentofile: Path, workdir: Path, env: dict | None = None) -> Path:
    """A copy of ``bentofile`` whose models list is what the store of ``env`` holds."""
    copy = workdir / bentofile.name
    copy.write_text(bentofile.read_text())
    written = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "bento_models.py"), "--from-store", "--bentofile", str(copy)],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120,
    )  # fmt: skip
    assert written.returncode == 0, written.stderr
    return copy


@pytest.fixture(scope="module")
def bento(vgg_assets, tmp_path_factory) -> Built:
    """Built from a store of its own: the random styles, and what style creation trains with,
    stored the way a user stores them (`clipmorph vgg fetch`, `clipmorph content import`)."""
    workdir = tmp_path_factory.mktemp("bento-build")
    home = own_store(workdir)
    env = {"BENTOML_HOME": str(home)}
    fetched = run_cli("vgg", "fetch", "--from-h5", str(vgg_assets[0]), "--cache-dir", str(workdir / "cache"), env=env)
    assert fetched.returncode == 0 and "+ clipmorph-vgg19:" in fetched.stdout, fetched.stderr
    photos = workdir / "photos"
    photos.mkdir()
    for i in range(4):
        Image.fromarray(gradient_frame(96, 72, t=i)).save(photos / f"{i}.jpg")
    imported = run_cli("content", "import", str(photos), env=env)
    assert imported.returncode == 0 and "clipmorph-content:" in imported.stdout, imported.stderr
    bentofile = bentofile_of_the_store(REPO / "bentofile.yaml", workdir, env)
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile), "--output", "tag"], cwd=REPO,
        capture_output=True, text=True, timeout=600, env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    tag = re.search(r"clipmorph:[a-z0-9]+", result.stdout).group(0)
    name, version = tag.split(":")
    return Built(tag, home / "bentos" / name / version, home)


def test_bento_holds_service_package_models_and_ffmpeg(bento):
    folder = bento.folder
    manifest = yaml.safe_load((folder / "bento.yaml").read_text())
    packed = {m["tag"].split(":")[0] for m in manifest["models"]}
    assert {"clipmorph-style-rand-0", "clipmorph-style-rand-1", "clipmorph-vgg19", "clipmorph-content"} <= packed
    assert any(name.startswith("clipmorph-backbone-") for name in packed)
    assert (folder / "src" / "service.py").is_file() and (
        folder / "src" / "clipmorph" / "inference" / "engine.py"
    ).is_file()
    assert (folder / "src" / "clipmorph" / "serving" / "web" / "static" / "index.html").is_file()
    assert not (folder / "src" / "tests").exists()
    dockerfile = (folder / "env" / "docker" / "Dockerfile").read_text()
    assert re.search(r"apt-get install .*ffmpeg", dockerfile)
    assert "requirements.txt" in dockerfile
    packed = (folder / "env" / "python" / "requirements.txt").read_text().splitlines()
    assert [line for line in packed if line.startswith("torch==")] == [TORCH_PIN]


def test_the_gpu_bento_is_the_same_bento_on_the_cuda_image(stored_styles, tmp_path):
    cpu, gpu = (yaml.safe_load((REPO / name).read_text()) for name in ("bentofile.yaml", "bentofile.gpu.yaml"))
    gpu_only = {"name": "clipmorph-gpu", "cuda_version": "12.8", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility,video"}
    assert gpu.pop("name") == gpu_only["name"] and gpu["docker"].pop("cuda_version") == gpu_only["cuda_version"]
    assert gpu["envs"].pop() == {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": gpu_only["NVIDIA_DRIVER_CAPABILITIES"]}
    cpu.pop("name")
    assert gpu == cpu  # nothing else drifts apart
    bentofile = bentofile_of_the_store(REPO / "bentofile.gpu.yaml", tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "-f", str(bentofile), "--output", "tag"], cwd=REPO,
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
    assert {"clipmorph-style-rand-0", "clipmorph-style-rand-1"} <= {m["tag"].split(":")[0] for m in manifest["models"]}


def test_built_bento_serves(bento, tmp_path):
    import io

    server = start_server(tmp_path, {"BENTOML_HOME": str(bento.home)}, target=bento.tag)
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
    folder = bento.folder
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


def unpacked_like_a_container(bento: Built, target: Path) -> Path:
    """The bento as its image holds it: exported with its models (`bentoml export`, what
    `containerize` copies in), unpacked into a folder of its own."""
    import tarfile

    archive = target / "clipmorph.bento"
    exported = subprocess.run(
        [sys.executable, "-m", "bentoml", "export", bento.tag, str(archive)], capture_output=True, text=True,
        timeout=600, env={**os.environ, "BENTOML_HOME": str(bento.home)},
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    folder = target / "bento"
    with tarfile.open(archive) as packed:
        packed.extractall(folder, filter="data")
    archive.unlink()
    assert (folder / "bento.yaml").is_file() and (folder / "models").is_dir()
    return folder


def test_the_built_bento_runs_every_feature_on_its_own_requirements(bento, bento_environment, tmp_path_factory):
    """Served the way its container serves it, the way the deploy files configure it: `bentoml
    serve` of the unpacked bento folder, by an environment made from its requirements alone, with
    an empty BentoML home, an empty cache, no photo folder and no package index; styles and jobs
    in buckets of a real S3-protocol server, and the OpenVINO backend. An image, a video job and
    style creation (the tiny preset: the bento's own loss network and training photos) all work;
    the job and the new style reach the buckets, and the frames ran through OpenVINO."""
    import io

    from s3_server import s3_server
    from test_style_creation import painting_bytes

    from media_factory import make_video
    from test_service import wait_for_job

    tmp_path = tmp_path_factory.mktemp("bento-run")  # short: BentoML's sockets live under it
    folder = unpacked_like_a_container(bento, tmp_path)
    (tmp_path / "cache").mkdir()
    env = {"BENTOML_HOME": str(tmp_path / "home"), "CLIPMORPH_CACHE": str(tmp_path / "cache"), "PIP_NO_INDEX": "1"}
    env |= {"CLIPMORPH_WANDB_DIR": str(tmp_path / "wandb"), "CLIPMORPH_WANDB": "0", "CLIPMORPH_TRAIN_CONTENT": ""}
    env |= {"CLIPMORPH_BACKEND": "openvino"}
    with s3_server(tmp_path / "moto.log") as s3:
        buckets = s3.filesystem()
        models_url, jobs_url = s3.bucket("bento-models") + "/catalogue", s3.bucket("bento-jobs") + "/jobs"
        env |= {**s3.env, "CLIPMORPH_MODELS_URL": models_url, "CLIPMORPH_JOBS_URL": jobs_url}
        server = start_server(tmp_path, env, target=str(folder), python=str(bento_environment), cwd=tmp_path)
        try:
            with server.client() as client:
                assert client.get("/info").json()["model"]["backend"] == "openvino"
                buffer = io.BytesIO()
                Image.fromarray(gradient_frame(64, 48)).save(buffer, format="PNG")
                image = client.post("/stylize", files={"image": ("x.png", buffer.getvalue())}, data={"style": "rand-0"})
                assert image.status_code == 200, image.text

                clip = make_video(tmp_path / "clip.mp4", frames=8, size=(64, 48))
                submitted = client.post("/video_job/submit", files={"video": ("clip.mp4", clip.read_bytes())},
                                        data={"style": "rand-1"})  # fmt: skip
                assert submitted.status_code == 200, submitted.text
                job_id = submitted.json()["task_id"]
                final, _ = wait_for_job(client, job_id)
                assert final["state"] == "succeeded", final
                assert any(job_id in path for path in buckets.find(jobs_url.removeprefix("s3://")))

                created = client.post("/create_style", files={"painting": ("p.png", painting_bytes())},
                                      data={"name": "Bento Stripes", "preset": "tiny"})  # fmt: skip
                assert created.status_code == 200, created.text
                final, _ = wait_for_job(client, created.json()["job_id"])
                assert final["state"] == "succeeded", final
                try:
                    painted = client.post("/stylize", files={"image": ("x.png", buffer.getvalue())},
                                          data={"style": "bento-stripes"})  # fmt: skip
                    assert painted.status_code == 200, painted.text
                    in_bucket = buckets.find(models_url.removeprefix("s3://"))
                    assert any("bento-stripes" in path for path in in_bucket), in_bucket
                finally:
                    assert client.post("/delete_style", json={"style": "bento-stripes"}).status_code == 200
        finally:
            stop_server(server)
    assert not (tmp_path / "home" / "models").exists() or not list((tmp_path / "home" / "models").iterdir())
    # Nothing was fetched (the bento carried it all); the cache holds only OpenVINO's compiled networks.
    assert {p.name for p in (tmp_path / "cache").iterdir()} == {"openvino"}
    assert any((tmp_path / "cache" / "openvino").iterdir())
