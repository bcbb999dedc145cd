"""A training penalty against droplets: the differentiable twin of ``droplets.find_droplets``.

The count in ``droplets`` is what evaluation reports; this term gives the network a gradient
away from the same thing: output luminance that stands above its blurred neighbourhood by more
than the photo's own does there. Only the excess over the detector's margin is penalised, so
ordinary strokes and texture (small rises) cost nothing.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.training.droplets import LUMA, PHOTO_RISE, RISE, neighbourhood_sigma

MARGIN = RISE - PHOTO_RISE  # the detector's rise over the photo's


def gaussian_blur(image: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of (B, 1, H, W), reflecting at the borders."""
    radius = min(math.ceil(3 * sigma), min(image.shape[-2:]) - 1)
    offsets = torch.arange(-radius, radius + 1, device=image.device, dtype=image.dtype)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(image, (radius, radius, 0, 0), mode="reflect")
    image = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    padded = F.pad(image, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(padded, kernel.view(1, 1, -1, 1))


def local_rise(images: Tensor, sigma: float) -> Tensor:
    """(B, 3, H, W) in [0, 1] -> (B, 1, H, W): luminance above its blurred neighbourhood."""
    weights = torch.tensor(LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    lum = (images * weights).sum(1, keepdim=True)
    return lum - gaussian_blur(lum, sigma)


def spot_penalty(output: Tensor, content: Tensor, margin: float = MARGIN) -> Tensor:
    """Mean squared excess of the output's local rise over the photo's, beyond ``margin``."""
    output, content = output.float(), content.float()
    sigma = neighbourhood_sigma(*output.shape[-2:])
    with torch.no_grad():
        rise_in = local_rise(content, sigma)
    excess = F.relu(local_rise(output, sigma) - rise_in - margin)
    return (excess**2).mean()
