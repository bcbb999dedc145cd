"""Measuring stripes: banding of a few pixels that runs one way across the whole picture.

What users object to (Scream's scan lines, Basquiat's woven grid) is a texture a few pixels
across whose marks line up in one direction everywhere, whatever the subject does. A painterly
stipple, however strong, does not line up, and a swirl turns with the subject. So the measure
is directional coherence: the picture's detail (what a blur of ``SIGMA`` px removes, in each
CIELAB channel, the photo's own detail regressed out) correlated with itself ``LAGS`` px away
along each direction, over the calmer half of the photo. Along a stripe the detail repeats
(correlation near 1); across it, or in an even stipple, it does not (near 0). The score is the
strongest direction's correlation plus its perpendicular's, so that a woven grid (lines both
ways) counts as much as lines one way: on 300-px crops at 1:1 of ``set14`` baboon and face, our
striped Scream (before the teacher anchor) 0.17 and 0.31, the peer's clean one 0.03 and 0.02,
every other picture of ours or the peer's 0.02-0.11 (tests/test_stripes.py).

A spectral-peak ratio does not work (the peer's clean stipple has sharper peaks than our
stripes), nor does the photo's own coherence subtracted (a baboon's ridged cheeks, kept by
a clean style, would hide any stripes): what the photo explains is regressed out instead.
"""

from __future__ import annotations

import cv2
import numpy as np

from clipmorph.training.blobs import cielab
from clipmorph.training.droplets import photo_like

SIGMA = 6.0  # px: the detail looked at is what this blur removes
LAGS = np.arange(8, 25)  # px: a mark that repeats this far along one direction is a line
ANGLES = np.deg2rad(np.arange(0, 180, 7.5))
CALM_QUANTILE = 0.5  # the calmer half of the photo, by its own local detail
FLOOR = 1.0  # CIELAB units: detail this faint is invisible (8-bit steps of a smooth gradient line up too)
VISIBLE = 0.13  # above this, stripes show at 1:1 (on the set14 crops: clean 0.02-0.11, striped 0.16-0.31)


def lab_detail(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3): each CIELAB channel less its blur."""
    lab = cielab(rgb)
    return lab - np.stack([cv2.GaussianBlur(lab[..., c], (0, 0), SIGMA) for c in range(3)], -1)


def calm_mask(photo_detail: np.ndarray) -> np.ndarray:
    """Where the photo's own detail (``lab_detail``) is weakest: its local energy at or under the median."""
    energy = cv2.GaussianBlur((photo_detail**2).sum(-1), (0, 0), 2 * SIGMA)
    return energy <= np.quantile(energy, CALM_QUANTILE)


def unexplained(detail: np.ndarray, photo_detail: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The output's detail less its best linear fit (over ``mask``) from the photo's: what the
    photo's own edges and textures do not account for."""
    basis = photo_detail[mask].astype(np.float64)
    coefficients, *_ = np.linalg.lstsq(basis, detail[mask].astype(np.float64), rcond=None)
    return detail - photo_detail @ coefficients.astype(np.float32)


def directional_coherence(detail: np.ndarray, mask: np.ndarray) -> float:
    """The detail's correlation (all channels together) with itself ``LAGS`` px along each
    direction, averaged over the lags, counting the pairs of pixels that both lie in ``mask``;
    the highest, over directions, of a direction's plus its perpendicular's (each at least 0):
    a woven grid is two sets of lines, each of which takes half the variance, so one direction
    alone would score it half as high as lines that run one way."""
    height, width = mask.shape
    shape = (2 * height, 2 * width)  # zero-padded: no wrap-around pairs

    def autocorrelation(values: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft2(values, shape)
        return np.fft.irfft2(spectrum * np.conj(spectrum), shape)

    weight = mask.astype(np.float64)
    channels = detail.reshape(height, width, -1)
    products, energy = np.zeros(shape), 0.0
    for channel in np.moveaxis(channels, -1, 0):
        centred = np.where(mask, channel - channel[mask].mean(), 0.0)
        products += autocorrelation(centred)
        energy += float((centred**2).sum())
    if energy <= 1e-6 * max(weight.sum(), 1.0):
        return 0.0
    pairs = autocorrelation(weight)
    variance = energy / weight.sum() + FLOOR**2  # faint detail cannot score high, however lined up
    along = []
    for angle in ANGLES:
        dy = np.rint(LAGS * np.sin(angle)).astype(int) % shape[0]
        dx = np.rint(LAGS * np.cos(angle)).astype(int) % shape[1]
        count = pairs[dy, dx]
        enough = count > 0.05 * weight.sum()
        correlation = products[dy, dx] / np.maximum(count, 1.0) / variance
        along.append(max(0.0, float(np.mean(np.where(enough, correlation, 0.0)))))
    lined = np.array(along)
    return float((lined + np.roll(lined, -len(ANGLES) // 2)).max())  # ANGLES span 180 degrees evenly


def stripe_score(output: np.ndarray, photo: np.ndarray) -> float:
    """Banding in ``output`` (RGB uint8) that ``photo`` (resized to match) does not explain:
    about 0.05 for a clean picture; above ``VISIBLE``, stripes show at 1:1."""
    photo = photo_like(photo, output)
    photo_detail = lab_detail(photo)
    mask = calm_mask(photo_detail)
    return directional_coherence(unexplained(lab_detail(output), photo_detail, mask), mask)
