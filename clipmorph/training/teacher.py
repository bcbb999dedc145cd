"""The teacher anchor: renderings of each training photo by an any-painting network, which a
style learns to stay near in colour and layout while its Gram terms bring the painting's marks.

Gram statistics alone let a style repaint the subject in the painting's palette (a Starry Night
baboon turns blue) and invent regular textures. Magenta's arbitrary-style network
(``clipmorph.inference.arbitrary``) keeps the subject's colours and shapes under the painting's
manner; its renderings, computed once per (painting, photo) and cached as small JPEGs, give a
per-pixel target that is cheap to regress to. Only their low frequencies are used (the
rendering and the output compared after ``POOL`` x ``POOL`` averaging): the teacher says which
colour goes where, not which stroke, so the network's own, sharper marks are not blurred toward
its strokes, and a cached rendering at 1/4 of the photo's size is all a crop needs.

Layout: ``<root>/<style id>/<photo folder>/<photo stem>.jpg``; a crop of a rendering stands in
for the rendering of the crop (checked by ``crop_agreement``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

if TYPE_CHECKING:
    from clipmorph.training.config import StyleSource

log = logging.getLogger(__name__)
POOL = 4  # the output is compared with the rendering after this much averaging per side
STORED_SHORT_SIDE = 96  # a rendering's stored short side: a crop of half a 192-px photo still has 1/POOL resolution
QUALITY = 90


def rendering_path(root: Path, style_id: str, photo: Path) -> Path:
    return Path(root) / style_id / photo.parent.name / (photo.stem + ".jpg")


def covered_photos(root: Path, style_ids: Sequence[str], photos: Iterable[Path]) -> list[Path]:
    """The photos every named style has a rendering of, in the given order."""
    return [p for p in photos if all(rendering_path(root, s, p).is_file() for s in style_ids)]


def shrink_to_short_side(
    image: Image.Image, short_side: int, resample: Image.Resampling = Image.Resampling.BOX
) -> Image.Image:
    """Smaller so that its short side is ``short_side`` (never larger)."""
    scale = short_side / min(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, resample)


def render_missing(
    root: Path,
    paintings: dict[str, np.ndarray],
    photos: Sequence[Path],
    render: Callable[[np.ndarray, str], np.ndarray],
    load: Callable[[Path], Image.Image],
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Render every (painting, photo) pair not cached yet; returns how many were rendered.
    ``render(photo_rgb, style_id)`` paints one photo; each file is written whole or not at all."""
    from clipmorph.fsutil import atomic_path

    todo = [(s, p) for p in photos for s in paintings if not rendering_path(root, s, p).is_file()]
    for done, (style_id, photo) in enumerate(todo, 1):
        rgb = np.asarray(load(photo))
        painted = Image.fromarray(render(rgb, style_id))
        target = rendering_path(root, style_id, photo)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as partial:
            shrink_to_short_side(painted, STORED_SHORT_SIDE).save(partial, format="JPEG", quality=QUALITY)
        if progress:
            progress(done, len(todo))
    return len(todo)


def arbitrary_renderer(paintings: dict[str, np.ndarray], threads: int | None = None):
    """``render(photo, style_id)`` with Magenta's network (OpenVINO, this CPU), each painting's
    style vector computed once."""
    from clipmorph.inference.arbitrary import ArbitraryStylizer

    stylizer = ArbitraryStylizer(threads=threads)
    vectors = {style_id: stylizer.painting_style(painting) for style_id, painting in paintings.items()}

    def render(photo: np.ndarray, style_id: str) -> np.ndarray:
        return stylizer.stylize(photo, vectors[style_id])

    return render


def spread(paths: Sequence[Path], count: int) -> list[Path]:
    """``count`` of ``paths`` spread evenly over the list (all of them when there are fewer)."""
    picked = sorted({round(i * len(paths) / count) for i in range(min(count, len(paths)))})
    return [paths[i] for i in picked]


def render_for(
    sources: Sequence[StyleSource], photos: Sequence[Path], root: Path, threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:  # fmt: skip
    """Cache the teacher's renderings of ``photos`` in each source's painting (the catalogue's
    `teach` stage, a style-creation job); returns how many were new. Raises
    ``ArbitraryModelMissing`` when the network is not fetched."""
    from clipmorph.training.pictures import fit_long_side, load_rgb

    paintings = {s.id: np.asarray(fit_long_side(load_rgb(s.image), 512)) for s in sources}
    render = arbitrary_renderer(paintings, threads)
    return render_missing(root, paintings, photos, render, lambda p: fit_long_side(load_rgb(p), 384), progress)


def crop_box_on(image: Image.Image, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """A crop given as fractions (left, top, right, bottom) of a picture, in ``image``'s pixels."""
    return crop_box_in(*image.size, box)


def crop_box_in(width: int, height: int, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
    """``crop_box_on`` for a picture of ``width`` x ``height`` pixels (at least one pixel)."""
    left, top, right, bottom = box
    return (
        round(left * width),
        round(top * height),
        max(round(right * width), round(left * width) + 1),
        max(round(bottom * height), round(top * height) + 1),
    )


def target_crop(rendering: Image.Image, box: tuple[float, float, float, float], side: int, mirror: bool) -> Tensor:
    """The rendering's part under a photo crop, at the pooled output's size (``side`` // POOL)."""
    small = max(1, side // POOL)
    crop = rendering.crop(crop_box_on(rendering, box)).resize((small, small), Image.Resampling.BOX)
    array = np.asarray(crop, dtype=np.uint8)
    if mirror:
        array = array[:, ::-1]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(255.0)


def teacher_distance(output: Tensor, target: Tensor, image_weights: Tensor | None = None) -> Tensor:
    """Mean absolute difference between the output averaged to the target's size and the
    teacher's rendering there; per image, weighed by each style's teacher multiplier."""
    pooled = F.adaptive_avg_pool2d(output.float(), target.shape[-2:])
    per_image = (pooled - target.float()).abs().flatten(1).mean(1)
    if image_weights is not None:
        per_image = per_image * image_weights.to(per_image.device, per_image.dtype)
    return per_image.mean()


def crop_agreement(render: Callable[[np.ndarray], np.ndarray], photo: np.ndarray, fraction: float = 0.5) -> float:
    """PSNR (dB) at the compared resolution between a crop of the whole photo's rendering and
    the rendering of that crop: how far the cache's shortcut is from the real thing."""
    h, w = photo.shape[:2]
    ch, cw = int(h * fraction), int(w * fraction)
    top, left = (h - ch) // 2, (w - cw) // 2
    whole = render(photo)[top : top + ch, left : left + cw]
    alone = render(np.ascontiguousarray(photo[top : top + ch, left : left + cw]))

    def pooled(rgb: np.ndarray) -> Tensor:
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        return F.avg_pool2d(x, POOL)

    mse = float(((pooled(whole) - pooled(alone)) ** 2).mean())
    return 10 * np.log10(1 / max(mse, 1e-12))
