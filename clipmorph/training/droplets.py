"""Counting "droplet" artifacts in stylized pictures.

A droplet is a compact bright blob that the network paints where the photo has none (the
instance-norm feature spike seen from outside: see ``NetworkSpec.norm``). It is found as a
connected region whose luminance stands far above its neighbourhood in the output while the
photo's luminance there does not, of blob size and roughly round: brush strokes are long,
textures are small, and a lamp in the photo is not the network's doing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

RISE = 0.18  # luminance above the neighbourhood (0..1) that counts as standing out
PHOTO_RISE = 0.08  # ...where the photo itself rises less than this
MIN_AREA_FRACTION = 1e-3  # of the picture: smaller specks are texture
MAX_AREA_FRACTION = 0.02  # larger bright regions are the picture's own light areas
MIN_FILL = 0.45  # area / bounding box: ovals fill about 0.79, strokes and lines far less
MAX_ASPECT = 3.0
LUMA = (0.299, 0.587, 0.114)  # Rec. 601 luminance weights of R, G, B


@dataclass(frozen=True)
class Droplet:
    x: int
    y: int
    width: int
    height: int
    area: int
    rise: float  # mean luminance above the neighbourhood inside the region


def luminance(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., :3].astype(np.float32) @ np.array(LUMA, np.float32)) / 255.0


def neighbourhood_sigma(height: int, width: int) -> float:
    """The blur that defines a pixel's neighbourhood: a blob stands out from an area larger than itself."""
    return max(2.0, min(height, width) / 24)


def local_rise(lum: np.ndarray, sigma: float) -> np.ndarray:
    """How far each pixel stands above a blurred neighbourhood (the blob itself included)."""
    return lum - cv2.GaussianBlur(lum, (0, 0), sigma)


def shaped_regions(
    candidate: np.ndarray, area_fractions: tuple[float, float], min_fill: float, max_aspect: float
) -> Iterator[tuple[int, int, int, int, int, np.ndarray]]:
    """Connected regions of a 0/1 mask whose size (a fraction of the picture), fill of their
    bounding box and aspect are those of a spot: (x, y, width, height, area, the region's mask)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(candidate, connectivity=8)
    total = candidate.shape[0] * candidate.shape[1]
    for label in range(1, count):
        x, y, w, h, area = (int(v) for v in stats[label])
        if not area_fractions[0] * total <= area <= area_fractions[1] * total:
            continue
        if area / (w * h) < min_fill or max(w, h) / max(1, min(w, h)) > max_aspect:
            continue
        yield x, y, w, h, area, labels[y : y + h, x : x + w] == label


def photo_like(photo: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``photo`` at ``output``'s size (shrunk by area averaging), for comparing them pixel by pixel."""
    height, width = output.shape[:2]
    if photo.shape[:2] == (height, width):
        return photo
    return cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)


def find_droplets(output: np.ndarray, photo: np.ndarray) -> list[Droplet]:
    """Droplets in ``output`` (RGB uint8) painted from ``photo`` (any size: resized to match)."""
    height, width = output.shape[:2]
    photo = photo_like(photo, output)
    sigma = neighbourhood_sigma(height, width)
    rise_out = local_rise(luminance(output), sigma)
    rise_in = local_rise(luminance(photo), sigma)
    candidate = ((rise_out > RISE) & (rise_out - rise_in > RISE - PHOTO_RISE)).astype(np.uint8)
    found = []
    for x, y, w, h, area, region in shaped_regions(
        candidate, (MIN_AREA_FRACTION, MAX_AREA_FRACTION), MIN_FILL, MAX_ASPECT
    ):
        if rise_in[y : y + h, x : x + w][region].mean() > PHOTO_RISE:
            continue  # the photo is bright there too
        found.append(Droplet(x, y, w, h, area, float(rise_out[y : y + h, x : x + w][region].mean())))
    return found
