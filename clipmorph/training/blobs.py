"""Counting blobs: spots and short streaks of colour the network paints where the photo is smooth.

The droplet detector (``droplets``) looks for bright, round spikes of luminance. The blobs
users point at are often neither: a yellow streak on a blue cheek stands out by its *colour*
more than by its brightness, and is longer than it is round. Here a pixel stands out when its
colour (CIELAB) is far from its neighbourhood's, farther than ``RELATIVE`` times the picture's
own texture contrast around it, so an even painterly stipple, however strong, is not a blob
and a lone mark on a calm area is; the photo must be calm there too (a real spot in the photo
is not the network's doing).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clipmorph.training.droplets import neighbourhood_sigma, photo_like, shaped_regions

RISE = 22.0  # CIELAB distance from the neighbourhood's colour that can count at all
RELATIVE = 2.5  # ...and this many times the local texture contrast (the mean distance around it)
PHOTO_RISE = 10.0  # the photo's own colour must stand out less than this there
MIN_AREA_FRACTION = 3e-4  # of the picture: smaller specks are texture
MAX_AREA_FRACTION = 0.02  # larger regions are the picture's own areas
MIN_FILL = 0.3  # area / bounding box: spots and short streaks, not thin lines
MAX_ASPECT = 6.0


@dataclass(frozen=True)
class Blob:
    x: int
    y: int
    width: int
    height: int
    area: int
    contrast: float  # mean CIELAB distance from the neighbourhood inside the region


def cielab(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 -> L*a*b* with L* in 0..100 (OpenCV scales it to 0..255 for 8-bit input)."""
    lab = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3], dtype=np.uint8), cv2.COLOR_RGB2LAB).astype(np.float32)
    return lab * np.array([100 / 255, 1, 1], np.float32) - np.array([0, 128, 128], np.float32)


def standing_out(rgb: np.ndarray, sigma: float) -> np.ndarray:
    """Each pixel's colour distance from its blurred neighbourhood."""
    lab = cielab(rgb)
    return np.linalg.norm(lab - cv2.GaussianBlur(lab, (0, 0), sigma), axis=-1)


def find_blobs(output: np.ndarray, photo: np.ndarray) -> list[Blob]:
    """Blobs in ``output`` (RGB uint8) painted from ``photo`` (any size: resized to match)."""
    height, width = output.shape[:2]
    photo = photo_like(photo, output)
    sigma = neighbourhood_sigma(height, width)
    out = standing_out(output, sigma)
    texture = cv2.GaussianBlur(out, (0, 0), 3 * sigma)
    calm_photo = standing_out(photo, sigma) < PHOTO_RISE
    candidate = ((out > np.maximum(RISE, RELATIVE * texture)) & calm_photo).astype(np.uint8)
    candidate = cv2.morphologyEx(candidate, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))  # lone pixels are noise
    found = []
    for x, y, w, h, area, region in shaped_regions(
        candidate, (MIN_AREA_FRACTION, MAX_AREA_FRACTION), MIN_FILL, MAX_ASPECT
    ):
        found.append(Blob(x, y, w, h, area, float(out[y : y + h, x : x + w][region].mean())))
    return found


def painting_blobs(painting: np.ndarray) -> list[Blob]:
    """The painting's own lone marks, found as if every place of a photo were calm: the level
    beside which a style's blobs are read (a painter's dabs on a plain ground count here too)."""
    return find_blobs(painting, np.full_like(painting, 128))
