"""Perceptual losses (Johnson et al. 2016) over VGG19 features, plus total variation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from clipmorph.model.vgg import VGGFeatures

CONTENT_LAYER = "relu2_2"
STYLE_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


@dataclass(frozen=True)
class LossWeights:
    """Starting points: with Caffe-scaled features, unweighted content and style losses are of
    the same order (~1e5) on natural photos; TV is a mean absolute difference (~0.1)."""

    content: float = 1.0
    style: float = 5.0
    tv: float = 1e3


def gram_matrix(features: Tensor) -> Tensor:
    """Channel correlations normalised by C*H*W, so the value does not grow with image size."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w).float()
    return flat @ flat.transpose(1, 2) / (c * h * w)


def content_loss(output: Tensor, target: Tensor) -> Tensor:
    return F.mse_loss(output.float(), target.float())


def style_loss(output_grams: dict[str, Tensor], target_grams: dict[str, Tensor]) -> Tensor:
    """Sum over layers of the mean squared Gram difference (targets broadcast over the batch)."""
    losses = [F.mse_loss(output_grams[k], target_grams[k].expand_as(output_grams[k])) for k in output_grams]
    return torch.stack(losses).sum()


def total_variation(image: Tensor) -> Tensor:
    """Mean absolute difference between horizontal plus vertical neighbours (size independent)."""
    dx = (image[..., :, 1:] - image[..., :, :-1]).abs().mean()
    dy = (image[..., 1:, :] - image[..., :-1, :]).abs().mean()
    return dx + dy


def style_grams(vgg: VGGFeatures, style_image: Tensor) -> dict[str, Tensor]:
    """Gram targets of a style image (1, 3, H, W) in [0, 1]."""
    with torch.no_grad():
        feats = vgg(style_image, STYLE_LAYERS)
    return {k: gram_matrix(v) for k, v in feats.items()}


def perceptual_losses(
    vgg: VGGFeatures,
    output: Tensor,
    content: Tensor,
    target_grams: dict[str, Tensor],
    weights: LossWeights = LossWeights(),
) -> dict[str, Tensor]:
    """Weighted content, style and TV losses and their sum ("total") for a batch."""
    layers = set(STYLE_LAYERS) | {CONTENT_LAYER}
    out_feats = vgg(output, layers)
    with torch.no_grad():
        content_feats = vgg(content, [CONTENT_LAYER])
    losses = {
        "content": weights.content * content_loss(out_feats[CONTENT_LAYER], content_feats[CONTENT_LAYER]),
        "style": weights.style * style_loss({k: gram_matrix(out_feats[k]) for k in STYLE_LAYERS}, target_grams),
        "tv": weights.tv * total_variation(output),
    }
    losses["total"] = losses["content"] + losses["style"] + losses["tv"]
    return losses
