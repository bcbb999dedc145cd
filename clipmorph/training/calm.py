"""A training penalty against a fine lattice in the photo's calm areas.

At 1:1 several styles cover skies, water and walls with a texture of 2.5-5 px periods (Scream's
scan lines, a lattice in Starry Night's and Monet's skies) that is in neither the photo nor the
painting at that place (docs/training.md, "Stripes: the measure"). Total variation thins it only
at weights that smooth everything. This term is aimed at that band and those places: the
output's energy in a 0.8-1.6 px difference of Gaussians (periods of about 2.5-5 px), averaged
over a few pixels, above the photo's own there, weighted by how smooth the photo is around each
pixel. Larger strokes cost little, the texture of busy areas nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.training.spots import gaussian_blur

FINE_SIGMAS = (0.8, 1.6)  # px: the band's difference of Gaussians (periods of about 2.5-5 px)
SURROUND_SIGMA = 6.0  # px: how far around a pixel the photo's own detail decides its calmness
ENERGY_SIGMA = 2.0  # px: the band's energy is compared averaged over this neighbourhood
# Local detail energy (summed over RGB in [0, 1]) at which a place counts as half calm: a standard
# deviation of about 4 levels in 255 per channel, the grain of a clear sky in a photo.
CALM_ENERGY = 3 * (4 / 255) ** 2


def per_channel(images: Tensor, sigma: float) -> Tensor:
    b, c, h, w = images.shape
    return gaussian_blur(images.reshape(b * c, 1, h, w), sigma).reshape(b, c, h, w)


def fine_band(images: Tensor) -> Tensor:
    """(B, C, H, W) -> the same shape: each channel's 2.5-5 px band."""
    return per_channel(images, FINE_SIGMAS[0]) - per_channel(images, FINE_SIGMAS[1])


def local_energy(bands: Tensor, sigma: float) -> Tensor:
    """(B, C, H, W) -> (B, 1, H, W): the channels' squares summed, averaged around each pixel."""
    return gaussian_blur((bands**2).sum(1, keepdim=True), sigma)


def calmness(photos: Tensor) -> Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) in (0, 1]: 1 where the photo is smooth around a pixel, 1/2 at
    ``CALM_ENERGY``, near 0 where it is textured (an absolute level: a crop of foliage has no calm half)."""
    energy = local_energy(photos - per_channel(photos, SURROUND_SIGMA), SURROUND_SIGMA)
    return CALM_ENERGY**2 / (CALM_ENERGY**2 + energy**2)


def calm_excess(output: Tensor, content: Tensor) -> Tensor:
    """Per image (B,): the mean, weighted by the photo's calmness, of the output's local
    fine-band energy above the photo's."""
    output, content = output.float(), content.float()
    with torch.no_grad():
        weight = calmness(content)
        own = local_energy(fine_band(content), ENERGY_SIGMA)
    excess = F.relu(local_energy(fine_band(output), ENERGY_SIGMA) - own)
    return (weight * excess).mean((1, 2, 3))


def calm_penalty(output: Tensor, content: Tensor) -> Tensor:
    """``calm_excess`` over the batch."""
    return calm_excess(output, content).mean()
