"""Training crops drawn on the training device: the GPU path of ``RandomCrops``.

Loader processes decoding a JPEG with PIL for every crop cannot feed a GPU that trains a few
hundred crops a second. Here every photo (and every teacher rendering) is decoded once into a
uint8 tensor on the device, and each step's crops are cut, resized and mirrored there. The crop
geometry comes from the same (seed, sample number) draws as ``RandomCrops``
(``data.crop_geometry``), so a run resumes exactly and sees the crops the loader path would;
only the resampling differs (torch's antialiased bilinear and area filters for PIL's bilinear
and box), by less than the JPEG noise of the photos.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.errors import BadInput
from clipmorph.training import teacher
from clipmorph.training.data import crop_geometry
from clipmorph.training.pictures import load_rgb

log = logging.getLogger(__name__)


def _uint8(image) -> Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1)


class DeviceCrops:
    """Sample numbers -> a batch of crops (B, 3, size, size) in [0, 1] on ``device``, and with
    ``teacher_root`` the teacher's renderings under them at the pooled size (B, 3, s, s)."""

    def __init__(
        self, paths: list[Path], size: int, device: torch.device, min_scale: float = 0.5, seed: int = 0,
        teacher_root: Path | None = None, style_ids: Sequence[str] = (), threads: int = 8,
    ) -> None:  # fmt: skip
        self.size, self.device, self.min_scale, self.seed = size, torch.device(device), min_scale, seed
        self.style_ids = list(style_ids)
        if teacher_root is not None and not self.style_ids:
            raise ValueError("teacher renderings need the style ids of the round-robin")
        with ThreadPoolExecutor(max(1, threads)) as pool:  # PIL decodes outside the GIL
            loaded = list(pool.map(lambda p: self._load(p, teacher_root), paths))
        kept = [(path, item) for path, item in zip(paths, loaded, strict=True) if item is not None]
        if not kept:
            raise BadInput("the content images cannot be read")
        self.paths = [path for path, _ in kept]
        self.photos = [photo for _, (photo, _) in kept]
        self.renderings = [renderings for _, (_, renderings) in kept]  # per photo: style id -> tensor
        self.with_teacher = teacher_root is not None

    def _load(self, path: Path, teacher_root: Path | None) -> tuple[Tensor, dict[str, Tensor]] | None:
        try:
            photo = _uint8(load_rgb(path)).to(self.device)
            renderings = {}
            if teacher_root is not None:
                for style_id in self.style_ids:
                    rendering = load_rgb(teacher.rendering_path(teacher_root, style_id, path))
                    renderings[style_id] = _uint8(rendering).to(self.device)
        except (OSError, ValueError) as error:
            log.warning("skipping unreadable training image %s: %s", path, error)
            return None
        return photo, renderings

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def nbytes(self) -> int:
        """Device memory the decoded photos and renderings hold."""
        tensors = self.photos + [t for per_photo in self.renderings for t in per_photo.values()]
        return sum(t.numel() for t in tensors)

    def batch(self, samples: Sequence[int]) -> Tensor | tuple[Tensor, Tensor]:
        crops, targets = [], []
        for sample in samples:
            rng = np.random.default_rng([self.seed, sample])
            index = int(rng.integers(len(self.paths)))
            photo = self.photos[index]
            height, width = photo.shape[-2:]
            left, top, side, mirror = crop_geometry(rng, width, height, self.min_scale)
            crop = photo[:, top : top + side, left : left + side][None].float()
            crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", antialias=True)
            crops.append(crop.flip(-1) if mirror else crop)
            if self.with_teacher:
                style_id = self.style_ids[sample % len(self.style_ids)]
                box = (left / width, top / height, (left + side) / width, (top + side) / height)
                targets.append(self._target(self.renderings[index][style_id], box, mirror))
        content = torch.cat(crops).clamp_(0, 255).div_(255.0)
        if not self.with_teacher:
            return content
        return content, torch.cat(targets)

    def _target(self, rendering: Tensor, box: tuple[float, float, float, float], mirror: bool) -> Tensor:
        """``teacher.target_crop`` on the device: the rendering under the crop, box-averaged."""
        height, width = rendering.shape[-2:]
        left, top, right, bottom = teacher.crop_box_in(width, height, box)
        small = max(1, self.size // teacher.POOL)
        part = rendering[:, top:bottom, left:right][None].float()
        part = F.interpolate(part, size=(small, small), mode="area").div_(255.0)
        return part.flip(-1) if mirror else part
