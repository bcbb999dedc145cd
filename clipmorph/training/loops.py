"""Counting loops: small closed dark outlines the network draws around small things.

At 1:1 several styles ring every small dark object (a gondola, a railing bar, a window) with a
dark outline around a light centre, and Monet tangles busy areas in such loops until a façade is
hard to read (docs/training.md, "Monet's dark loops come from its style term"). The photo has
none there, and Monet's painting hardly any. Neither the droplet nor the blob detector sees them:
they are dark, not bright, and they sit on busy areas, not calm ones.

A loop here is a closed line at least ``DARKNESS`` L* darker than its surroundings (a black
top-hat ``TOP_HAT`` px wide) around a hole of ``HOLE_AREA`` px: sized for pictures of about the
evaluation's 384 px. Coloured pixel noise seldom closes such a line (on six held-out photos the
peer's stippled Starry Night has 3, ours 77). A painting may draw loops on purpose (Hokusai's
foam, Basquiat's scrawl), so a style's count is read beside its painting's own at the same size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clipmorph.training.blobs import cielab
from clipmorph.training.droplets import photo_like

TOP_HAT = 11  # px: the dark lines looked for are thinner than this
DARKNESS = 30.0  # L* below the line's surroundings that counts as a drawn dark line
OPEN_CENTRE = 20.0  # L* by which the line around a loop is darker than its centre (else a gap in a dark patch)
HOLE_AREA = (8, 150)  # px: the hole a loop closes around (about 3 to 14 px across)
PHOTO_DARKNESS = 15.0  # the photo's own line around a loop counts from this darkness (a style may darken it)...
PHOTO_RING = 10.0  # ...when it is this much darker than the photo's centre of the loop
PER_PIXELS = 100_000  # densities are given per this many pixels
_PIXEL = np.ones((3, 3), np.uint8)


@dataclass(frozen=True)
class Loop:
    x: int  # the hole's bounding box
    y: int
    width: int
    height: int
    hole_area: float


@dataclass(frozen=True)
class _Found:
    loop: Loop
    window: tuple[slice, slice]  # where ``hole`` and ``ring`` lie in the picture
    hole: np.ndarray  # bool masks
    ring: np.ndarray  # the line just around the hole


def darkness(rgb: np.ndarray) -> np.ndarray:
    """How much darker (L*) each pixel is than its surroundings, for lines thinner than ``TOP_HAT``."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (TOP_HAT, TOP_HAT))
    return cv2.morphologyEx(cielab(rgb)[..., 0], cv2.MORPH_BLACKHAT, kernel)


def _loops(rgb: np.ndarray) -> list[_Found]:
    dark = darkness(rgb)
    lines = (dark > DARKNESS).astype(np.uint8)
    contours, hierarchy = cv2.findContours(lines, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    height, width = lines.shape
    found = []
    for contour, (_, _, _, parent) in zip(contours, hierarchy[0], strict=True):
        area = cv2.contourArea(contour)
        if parent < 0 or not HOLE_AREA[0] <= area <= HOLE_AREA[1]:  # only holes (inner contours) of loop size
            continue
        loop = Loop(*cv2.boundingRect(contour), hole_area=float(area))
        x0, y0 = max(0, loop.x - 3), max(0, loop.y - 3)
        window = np.s_[y0 : min(height, loop.y + loop.height + 3), x0 : min(width, loop.x + loop.width + 3)]
        hole = np.zeros_like(lines[window])
        cv2.drawContours(hole, [contour - np.array([x0, y0])], -1, 1, thickness=-1)
        hole &= 1 - lines[window]  # the contour runs over the line's own pixels
        ring = cv2.dilate(hole, _PIXEL) > hole
        hole = hole > 0
        if hole.any() and dark[window][ring].mean() - dark[window][hole].mean() >= OPEN_CENTRE:
            found.append(_Found(loop, window, hole, ring))
    return found


def find_loops(rgb: np.ndarray) -> list[Loop]:
    """The loops in ``rgb`` (RGB uint8)."""
    return [found.loop for found in _loops(rgb)]


def painted_loops(output: np.ndarray, photo: np.ndarray) -> list[Loop]:
    """Loops in ``output`` that the photo (any size: resized to match) does not draw itself. The
    photo draws one where its own line around the hole (a pixel of shift allowed) is dark,
    ``PHOTO_DARKNESS`` L*, and darker than the hole by ``PHOTO_RING``; a ring painted around a
    small dark thing (a gondola: dark all over in the photo) is the network's."""
    photo = photo_like(photo, output)
    photo_dark = darkness(photo)
    photo_dark_near = cv2.dilate(photo_dark, _PIXEL)
    painted = []
    for found in _loops(output):
        around = float(photo_dark_near[found.window][found.ring].mean())
        within = float(photo_dark[found.window][found.hole].mean())
        if around < PHOTO_DARKNESS or around - within < PHOTO_RING:
            painted.append(found.loop)
    return painted


def density(count: int, pixels: int) -> float:
    """``count`` per ``PER_PIXELS`` of ``pixels``."""
    return count * PER_PIXELS / pixels
