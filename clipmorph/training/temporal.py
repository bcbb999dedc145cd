"""Temporal-stability losses: make video frames not flicker without optical-flow training data.

Consecutive video frames are nearly the same picture moved a little, lit a little differently
and with fresh sensor noise. Two terms teach the network to respect that:

* **noise stability** (the original project's term): stylize(x + noise) should equal stylize(x);
* **warp consistency**: for a random small motion W (shift, rotation, zoom) plus light
  brightness/noise change P, stylize(P(W(x))) should equal W(stylize(x)) wherever W is defined.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class MotionRange:
    """Largest random change between two simulated frames (uniformly sampled up to these)."""

    shift: float = 0.04  # fraction of the image side
    rotation_degrees: float = 2.0
    zoom: float = 0.04  # relative scale change
    brightness: float = 0.05  # multiplicative, 1 +- this
    noise: float = 0.02  # Gaussian sigma in [0, 1] pixel units


# One generator for the batch, or one per image: then each image's draws depend on its own
# generator alone, whatever else is in its batch (data-parallel runs split batches).
Draws = torch.Generator | Sequence[torch.Generator] | None


def draw(sample: Callable[..., Tensor], shape: tuple[int, ...], generator: Draws) -> Tensor:
    """``sample(shape)`` (torch.rand or torch.randn), per image when given a generator per image."""
    if generator is None or isinstance(generator, torch.Generator):
        return sample(shape, generator=generator)
    if len(generator) != shape[0]:
        raise ValueError(f"{len(generator)} generators for a batch of {shape[0]}")
    return torch.cat([sample((1, *shape[1:]), generator=g) for g in generator])


def random_motion(batch: int, motion: MotionRange, generator: Draws = None) -> Tensor:
    """Affine matrices (B, 2, 3) in the normalised coordinates ``affine_grid`` uses."""

    def uniform(limit: float) -> Tensor:
        return (draw(torch.rand, (batch,), generator) * 2 - 1) * limit

    angle = uniform(math.radians(motion.rotation_degrees))
    scale = 1 + uniform(motion.zoom)
    # Normalised coordinates span [-1, 1]: a shift of fraction f of the side is 2f.
    tx, ty = uniform(2 * motion.shift), uniform(2 * motion.shift)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    return torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)


def warp(images: Tensor, theta: Tensor) -> tuple[Tensor, Tensor]:
    """Resample images by the affine ``theta``; also return where the result is defined (B,1,H,W)."""
    theta = theta.to(images.device, torch.float32)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ones = torch.ones_like(images[:, :1], dtype=torch.float32)
    valid = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=False) > 0.999
    return warped, valid.float()


def relight(images: Tensor, motion: MotionRange, generator: Draws = None) -> Tensor:
    """A little global brightness change and sensor noise, as between two real frames."""
    batch = images.shape[0]
    gain = 1 + (draw(torch.rand, (batch, 1, 1, 1), generator) * 2 - 1) * motion.brightness
    noise = draw(torch.randn, tuple(images.shape), generator) * motion.noise
    return (images * gain.to(images.device) + noise.to(images.device)).clamp(0, 1)


def weighted_mean(per_image: Tensor, image_weights: Tensor | None) -> Tensor:
    """Mean over the batch, each image's term scaled by its style's temporal weight (None: all 1)."""
    if image_weights is None:
        return per_image.mean()
    return (per_image * image_weights.to(per_image.device, per_image.dtype)).mean()


def masked_mse(a: Tensor, b: Tensor, mask: Tensor, image_weights: Tensor | None = None) -> Tensor:
    """Per-pixel MSE over the valid region; per image, so each style can weigh its own."""
    diff = ((a.float() - b.float()) ** 2 * mask).flatten(1).sum(1)
    per_image = diff / (mask.flatten(1).sum(1) * a.shape[1]).clamp_min(1.0)
    return weighted_mean(per_image, image_weights)


def noise_stability_loss(
    stylize: Callable[[Tensor], Tensor],
    content: Tensor,
    output: Tensor,
    sigma: float,
    generator: Draws = None,
    image_weights: Tensor | None = None,
) -> Tensor:
    noisy = (content + draw(torch.randn, tuple(content.shape), generator).to(content.device) * sigma).clamp(0, 1)
    per_image = F.mse_loss(stylize(noisy).float(), output.float(), reduction="none").flatten(1).mean(1)
    return weighted_mean(per_image, image_weights)


def warp_consistency_loss(
    stylize: Callable[[Tensor], Tensor],
    content: Tensor,
    output: Tensor,
    motion: MotionRange,
    generator: Draws = None,
    image_weights: Tensor | None = None,
) -> Tensor:
    theta = random_motion(content.shape[0], motion, generator)
    moved, valid = warp(content, theta)
    next_frame = relight(moved, motion, generator).to(content.dtype)
    expected, _ = warp(output, theta)
    return masked_mse(stylize(next_frame), expected, valid, image_weights)
