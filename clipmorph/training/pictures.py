"""Reading pictures for training and evaluation: photos and paintings as upright RGB, sized
and turned into tensors the same way everywhere."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from clipmorph.inference.media.images import upright


def load_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return upright(image).convert("RGB")


def to_tensor(image: Image.Image) -> Tensor:
    """PIL RGB -> float tensor (3, H, W) in [0, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float().div_(255.0)


def fit_long_side(image: Image.Image, long_side: int) -> Image.Image:
    scale = long_side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)
