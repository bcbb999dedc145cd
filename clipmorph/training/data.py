"""Training content: any folder of photos, read recursively, served as random square crops."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from clipmorph.errors import BadInput
from clipmorph.training import teacher
from clipmorph.training.pictures import load_rgb, to_tensor

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
log = logging.getLogger(__name__)


def find_images(root: Path) -> list[Path]:
    """Every image file under ``root`` (recursive, hidden folders skipped), in a stable order."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"content folder {root} does not exist")
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not _hidden(p.relative_to(root))
    )
    if not paths:
        raise BadInput(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {root}")
    return paths


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def crop_geometry(rng: np.random.Generator, width: int, height: int, min_scale: float) -> tuple[int, int, int, bool]:
    """A random square crop (``min_scale``..1 of the shorter side) and whether to mirror it:
    (left, top, side, mirror). The one draw order both crop paths share (``RandomCrops``, and
    ``DeviceCrops`` on a GPU), so either gives a sample number the same crop."""
    side = max(1, round(min(width, height) * rng.uniform(min_scale, 1.0)))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return left, top, side, bool(rng.random() < 0.5)


class SampleStream(Sampler[int]):
    """Endless sample numbers from ``start``: resuming at step k continues the same stream."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return itertools.count(self.start)


class RandomCrops(Dataset):
    """Sample number -> a random photo, cropped square (``min_scale``..1 of its shorter side),
    resized to ``size`` and maybe mirrored; with ``teacher_root``, also the teacher's rendering
    of that crop in the sample's style (``style_ids[sample % len(style_ids)]``, the trainer's
    round-robin), at the pooled size ``clipmorph.training.teacher`` compares at.

    Everything is drawn from (seed, sample number), so runs are reproducible whatever the
    number of workers, and a resumed run sees the photos the interrupted one would have.
    Unreadable files are logged and replaced by another photo instead of stopping training.
    """

    def __init__(
        self, paths: list[Path], size: int, min_scale: float = 0.5, seed: int = 0,
        teacher_root: Path | None = None, style_ids: Sequence[str] = (),
    ) -> None:  # fmt: skip
        self.paths = paths
        self.size = size
        self.min_scale = min_scale
        self.seed = seed
        self.teacher_root = teacher_root
        self.style_ids = list(style_ids)
        if teacher_root is not None and not self.style_ids:
            raise ValueError("teacher renderings need the style ids of the round-robin")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, sample: int) -> Tensor | tuple[Tensor, Tensor]:
        rng = np.random.default_rng([self.seed, sample])
        for _ in range(min(len(self.paths), 20)):
            path = self.paths[int(rng.integers(len(self.paths)))]
            try:
                image = load_rgb(path)
                rendering = self._rendering(path, sample)
            except (OSError, ValueError) as error:
                log.warning("skipping unreadable training image %s: %s", path, error)
                continue
            return self._crop(image, rng, rendering)
        raise BadInput("the content images cannot be read")

    def _rendering(self, path: Path, sample: int) -> Image.Image | None:
        if self.teacher_root is None:
            return None
        style_id = self.style_ids[sample % len(self.style_ids)]
        return load_rgb(teacher.rendering_path(self.teacher_root, style_id, path))

    def _crop(
        self, image: Image.Image, rng: np.random.Generator, rendering: Image.Image | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        left, top, side, mirror = crop_geometry(rng, image.width, image.height, self.min_scale)
        crop = image.crop((left, top, left + side, top + side))
        crop = crop.resize((self.size, self.size), Image.Resampling.BILINEAR)
        if mirror:
            crop = ImageOps.mirror(crop)
        if rendering is None:
            return to_tensor(crop)
        box = (left / image.width, top / image.height, (left + side) / image.width, (top + side) / image.height)
        return to_tensor(crop), teacher.target_crop(rendering, box, self.size, mirror)
